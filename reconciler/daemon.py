"""`gitship up`: one process, one event loop.

Where it sits: the wiring. The source wakes ``_check_source``; a new revision
is loaded and validated in a worker thread, planned, and stored; then the
reconcile pass (``reconcile.py``) makes the live objects and the runtime match
it. Runtime events (a pod exited, a probe flipped) and timers wake the same
pass; wake-ups are merged, and passes never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.base import Runtime
from runtime.net.dns import DNSServer, Zone, build_zone

from . import log as logmod
from .api import ApiServer
from .cluster import Cluster, key_of
from runtime.net.bridge import bridge_name

from .controllers.daemonset import node_object
from .dataplane import DataPlane, choose
from .errors import GitshipError, SourceError, StoreError
from .manifests.load import Limits
from .applier import RevisionApplier
from .ops.prune import last_attempted
from .sources.runner import source_loop
from .reconcile import Reconciler
from .rollbacks import AutoRollbacks
from .sync import Settings
from .source.git import GitReader, Revision, clone_or_update, fetch, is_url
from .source.revision import RevisionLoader
from .source.watch import LocalWatcher
from .ingress.engine import ingress_engine
from .ops.verify import signed_writer
from .storage_exec import CONFIG_KINDS
from .store import Store
from .web.server import start_web


@dataclass
class Options:
    source: str
    state_dir: str
    runtime: str = "inprocess"
    branch: str | None = None
    path: str = ""
    interval: float = 30.0
    service_cidr: str | None = None  # None: the runtime's default (below)
    pod_cidr: str | None = None  # None: 10.244.0.0/16 when pods get sandboxes, else loopback
    dns_addr: str | None = None  # None: the service CIDR's .10, port 53
    isolation: str = "auto"  # in-process pods: "sandbox" (namespaces; root), "host", or "auto"
    data_plane: str = "auto"  # "nftables" (root), "proxy", or "auto"
    node_address: str = "0.0.0.0"
    backoff_base: float = 10.0
    limits: Limits = field(default_factory=Limits)
    decryption_key_file: str | None = None  # age identities for SOPS files (else SOPS_AGE_KEY_FILE / SOPS_AGE_KEY)
    allow_host_paths: tuple[str, ...] = ()  # --allow-host-path: where pods may mount hostPath volumes
    ingress_ports: tuple[int, int] = (80, 443)  # --ingress-http-port, --ingress-https-port (reconciler/ingress)
    api_addr: str = "127.0.0.1:6443"  # --api-addr: the Kubernetes API (reconciler/kapi); "none" turns it off
    metrics_addr: str = "none"  # --metrics-addr, --webhook-addr, --webhook-secret-file: reconciler/ops/start.py
    webhook_addr: str = "none"
    webhook_secret_file: str | None = None
    verify_signatures: str | None = None  # --verify-signatures, --verify-gpg, --signing-key (reconciler/ops/verify.py)
    verify_gpg: str | None = None
    signing_key: str | None = None
    notify: tuple[str, ...] = ()  # --notify URL (reconciler/ops/notify.py)
    web_addr: str = "127.0.0.1:7080"  # --web-addr: the web view (reconciler/web); "none" turns it off
    prune_threshold: str | None = None  # --prune-threshold PERCENT|off (reconciler/prune.py); None: gitship.yaml
    sources_file: str | None = None  # --sources FILE: several sources (reconciler/sources); else gitship.yaml's
    docker_host: str | None = None  # --docker-host: the engine (swarm: a manager); None: DOCKER_HOST or the socket
    swarm_node_apis: tuple[str, ...] = ()  # --swarm-node-api NODE=URL: a Swarm node's engine (exec, docs/swarm.md)

    def __post_init__(self) -> None:
        # Default ranges (docs/architecture.md, "Addresses"): sandboxed in-process pods get
        # Kubernetes' own defaults (pods 10.244.0.0/16 behind a bridge of gitship's, Services
        # 10.96.0.0/16, the DNS at .10); without sandboxes pods live on loopback (127.244.0.0/16,
        # Services 127.96.0.0/16). Docker containers can't reach the host's loopback, so with
        # Docker ClusterIPs come from 10.97.0.0/16, a range of its own (docs/docker.md).
        import ipaddress

        if self.runtime == "swarm":  # the pods' overlay; pods' Service traffic comes back out (docs/swarm.md)
            self.pod_cidr, self.data_plane = self.pod_cidr or "10.245.0.0/16", self.data_plane.replace("auto", "proxy")
        if self.pod_cidr is None:
            sandboxed = self.runtime == "inprocess" and sandbox_unavailable(self.isolation) is None
            self.pod_cidr = SANDBOX_POD_CIDR if sandboxed else LOOPBACK_POD_CIDR
        if self.service_cidr is None and self.runtime == "swarm":  # the overlay's upper half (docs/swarm.md)
            self.service_cidr = str(list(ipaddress.ip_network(self.pod_cidr, strict=False).subnets())[1])
        if self.service_cidr is None:
            if self.runtime == "docker":
                self.service_cidr = DOCKER_SERVICE_CIDR
            elif ipaddress.ip_network(self.pod_cidr, strict=False).is_loopback:
                self.service_cidr = LOOPBACK_SERVICE_CIDR
            else:
                self.service_cidr = SANDBOX_SERVICE_CIDR
        if self.dns_addr is None:  # Kubernetes' kube-dns address: the service range's .10
            net = ipaddress.ip_network(self.service_cidr, strict=False)
            self.dns_addr = f"{net.network_address + 10}:53"


def config_objects(store: Store) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The live ConfigMaps, Secrets, PersistentVolumeClaims and PersistentVolumes in the store, as
    the runtime takes them: given before the runtime starts, an adopted container that restarts
    resolves its env and volumes (claims included) from them."""
    return {key_of(o): o for kind in CONFIG_KINDS for o in store.cluster(kind)}


def sandbox_unavailable(isolation: str) -> str | None:
    """Why in-process pods cannot get sandboxes here (None: they can), decided as the in-process
    runtime decides it (runtime/inprocess/isolation.py choose_isolation, sandbox.py find_tools)."""
    from runtime.inprocess.isolation import choose_isolation
    from runtime.inprocess.sandbox import find_tools

    _tools, missing = find_tools()
    mode, why = choose_isolation(isolation, SANDBOX_POD_CIDR, os.geteuid(), missing)
    return None if mode == "sandbox" else why


def overlapping_route(cidr: str, own_device: str) -> str | None:
    """A route of this machine (not the default route, not on a device whose name starts with
    ``own_device``: gitship's bridge and its service device) that overlaps ``cidr``, as
    "NET on DEVICE"; None when the range is free (reads /proc/net/route)."""
    import ipaddress
    import socket
    import struct

    net = ipaddress.ip_network(cidr, strict=False)
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return None
    for row in rows:
        if len(row) < 8 or row[0].startswith(own_device):
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(row[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(row[7], 16)))
        route = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
        if route.prefixlen and route.overlaps(net):
            return f"{route} on {row[0]}"
    return None


def check_ranges(opts: Options, state_dir: str) -> None:
    """Sandboxed pods route their ranges to gitship's bridge: a range this machine already
    uses elsewhere would take its traffic away, so it is refused with the route it hits."""
    import ipaddress

    pod_cidr = opts.pod_cidr or LOOPBACK_POD_CIDR
    if ipaddress.ip_network(pod_cidr, strict=False).is_loopback or sandbox_unavailable(opts.isolation):
        return
    own = bridge_name(state_dir)
    for flag, cidr in (("--pod-cidr", pod_cidr), ("--service-cidr", opts.service_cidr or "")):
        hit = overlapping_route(cidr, own) if cidr else None
        if hit:
            raise GitshipError(f"{flag} {cidr} overlaps a network of this machine ({hit}): choose another range")


SANDBOX_POD_CIDR = "10.244.0.0/16"
SANDBOX_SERVICE_CIDR = "10.96.0.0/16"
LOOPBACK_POD_CIDR = "127.244.0.0/16"
LOOPBACK_SERVICE_CIDR = "127.96.0.0/16"
DOCKER_SERVICE_CIDR = "10.97.0.0/16"
# Kubernetes' search path for a pod in {namespace} (ndots:5 is set by the runtime)
DOCKER_DNS_SEARCH = ["{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def _host_resolvers() -> list[str]:
    """The host's non-loopback nameservers: pods ask them after gitship's DNS (external names)."""
    import ipaddress

    out = []
    with contextlib.suppress(OSError):
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    with contextlib.suppress(ValueError):
                        if not ipaddress.ip_address(parts[1]).is_loopback:
                            out.append(parts[1])
    return out[:2]


def _docker_runtime(rt_dir: str, opts: Options, log: logmod.Logger) -> Runtime:
    """The Docker runtime, its pods resolving through the cluster DNS when containers can reach it."""
    from runtime.docker import DockerRuntime

    host, port = _dns_host_port(opts.dns_addr or "")
    dns_servers = None
    if port == 53 and _reachable_from_containers(host):
        dns_servers = [host] + _host_resolvers()
    else:
        log.warning(
            "docker_dns_unreachable_from_pods",
            dns_addr=opts.dns_addr,
            hint="pods resolve services only if the DNS listens on port 53 of a "
            "non-loopback address (the default: the service CIDR's .10)",
        )
    return DockerRuntime(
        rt_dir,
        docker_host=opts.docker_host,
        backoff_base=opts.backoff_base,
        dns_servers=dns_servers,
        dns_search=list(DOCKER_DNS_SEARCH) if dns_servers else None,
        allow_host_paths=opts.allow_host_paths,
    )


def _other_runtime(rt_dir: str, o: Options) -> Runtime:
    """The Swarm runtime (one Swarm service per pod, docs/swarm.md); GitshipError for an unknown name."""
    if o.runtime != "swarm":
        raise GitshipError(f"unknown runtime {o.runtime!r} (inprocess, docker or swarm)")
    from runtime.swarm import SwarmRuntime

    pods, services, dns = o.pod_cidr or "", o.service_cidr or "", _dns_host_port(o.dns_addr or "")
    return SwarmRuntime(
        rt_dir,
        docker_host=o.docker_host,
        pod_cidr=pods,
        service_cidr=services,
        dns=dns,
        dns_search=DOCKER_DNS_SEARCH,
        node_apis=o.swarm_node_apis,
    )


def _nodes(runtime: Runtime) -> tuple[dict[str, Any], ...]:
    """The Nodes DaemonSets run on: a multi-node runtime's (swarm: ``node_objects``), else this machine."""
    return tuple(runtime.node_objects()) or (node_object(os.uname().nodename, os.uname().machine),)


def _dns_host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return (host or addr, int(port) if port else 53)


def _reachable_from_containers(host: str) -> bool:
    import ipaddress

    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        return not (ip.is_loopback or ip.is_unspecified)
    return False


class Daemon:
    plane: DataPlane

    def __init__(self, opts: Options):
        self.opts = opts
        self.state_dir = os.path.abspath(opts.state_dir)
        self.log = logmod.get_logger()
        self.stopping = asyncio.Event()
        self._source_wake, self._fetch_due = asyncio.Event(), False
        self._lock_fd: int | None = None
        self.reader: GitReader | None = None
        self.repo_dir = ""
        self.branch = ""
        self.remote = False
        self._kick_reconciler: Callable[[], None] = lambda: None

    # -- start-up ---------------------------------------------------------------
    def _acquire_lock(self) -> None:
        try:
            os.makedirs(self.state_dir, exist_ok=True)
            probe = os.path.join(self.state_dir, ".write-test")
            with open(probe, "w") as f:
                f.write("ok")
            os.unlink(probe)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise StoreError(f"the state dir {self.state_dir} is on a full disk: {e.strerror}") from e
            raise StoreError(f"the state dir {self.state_dir} is not writable: {e.strerror}") from e
        fd = os.open(os.path.join(self.state_dir, "up.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise StoreError(f"another `gitship up` is running on the state dir {self.state_dir}") from e
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _open_source(self) -> None:
        src = self.opts.source
        if is_url(src):
            self.remote = True
            self.repo_dir = os.path.join(self.state_dir, "repo")
            self.branch = clone_or_update(src, self.repo_dir, self.opts.branch)
        else:
            self.repo_dir = os.path.abspath(src)
            if not os.path.isdir(self.repo_dir):
                raise SourceError(f"{src} is not a directory nor a git URL")
            self.reader = GitReader(self.repo_dir)
            if not self.reader.is_repository():
                raise SourceError(
                    f"{src} is not a git repository (`gitship init DIR` makes a new one from the template)"
                )
            self.branch = self.opts.branch or self.reader.current_branch()
        self.reader = GitReader(self.repo_dir)

    def _make_runtime(self) -> Runtime:
        rt_dir = os.path.join(self.state_dir, "runtime")
        if self.opts.runtime == "inprocess":
            from runtime.inprocess import InProcessRuntime

            dns_host, dns_port = _dns_host_port(self.opts.dns_addr or "")
            check_ranges(self.opts, self.state_dir)
            return InProcessRuntime(
                rt_dir,
                [],
                repo_dir=self.repo_dir,
                pod_cidr=self.opts.pod_cidr or LOOPBACK_POD_CIDR,
                backoff_base=self.opts.backoff_base,
                isolation=self.opts.isolation,
                bridge=bridge_name(self.state_dir),
                service_cidr=self.opts.service_cidr,
                # the cluster DNS alone: the host's resolvers may sit on addresses pods cannot reach
                dns_servers=[dns_host] if dns_port == 53 else [],
                # the Service range is local: a ClusterIP without a Service is refused, never forwarded out
                service_route="local",
                allow_host_paths=self.opts.allow_host_paths,
            )
        if self.opts.runtime == "docker":
            return _docker_runtime(rt_dir, self.opts, self.log)
        return _other_runtime(rt_dir, self.opts)  # swarm (docs/swarm.md), or an error

    async def run(self) -> int:
        self._acquire_lock()
        logmod.configure(self.state_dir)
        self.log = logmod.get_logger()
        self.store = Store(self.state_dir)
        self._open_source()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        self.runtime = self._make_runtime()
        o = self.opts
        self.loader = RevisionLoader(self.reader, o.path, o.limits, o.decryption_key_file)  # type: ignore[arg-type]
        await self._restore_repo_config()
        self.runtime.set_config_objects(config_objects(self.store))  # before any container restarts
        adopted = await self.runtime.start(self._on_pod_change)
        await self._expose_dns_address()
        await self._start_network()
        self.reconciler = Reconciler(
            self.store,
            self.runtime,
            Cluster(self.store.cluster()),
            self._reconcile_settings(),
            self.log,
            self.stopping,
            self.plane,
            self._set_zone,
        )
        self._kick_reconciler, self.reconciler.network.ingress = self.reconciler.kick, ingress_engine(self)
        self.applier = RevisionApplier(
            self.store, self.loader, self.reconciler, self.runtime, self.repo_dir, self.branch, self.log
        )
        rollbacks = AutoRollbacks(
            self.store, self.reconciler.cluster, self.writer, self.log, self.stopping, self.wake_source
        )
        await self.reconciler.start(adopted)
        self.store.set_meta(
            source={
                "url": self.opts.source,
                "branch": self.branch,
                "path": self.opts.path,
                "repoDir": self.repo_dir,
                "remote": self.remote,
            },
            runtime=self.runtime.info(),
            dataPlane=self.plane.info(),
            daemon={"pid": os.getpid(), "startedAt": time.time()},
        )
        self.api = await start_apis(self)
        watcher = None
        if not self.remote:
            watcher = LocalWatcher(self.repo_dir, loop, self._source_wake.set)
            watcher.start()
        self.log.info(
            "gitship_started",
            source=self.opts.source,
            branch=self.branch,
            runtime=self.opts.runtime,
            state_dir=self.state_dir,
            adopted=len(adopted),
            dns=self.dns_address(),
        )
        tasks = [
            asyncio.create_task(source_loop(self)),  # the prune gate, and one source or several (reconciler/sources)
            asyncio.create_task(self.reconciler.loop()),
            asyncio.create_task(rollbacks.loop()),
        ]
        await self.stopping.wait()
        self.log.info("gitship_stopping")
        for t in tasks:
            t.cancel()
        # the loops also check the stop flag: a cancellation that races a wake-up is never lost
        await asyncio.wait(tasks, timeout=10)
        if watcher:
            watcher.stop()
        await self.api.close()
        await self.reconciler.close()
        await self._close_network()
        await self.runtime.close(stop_pods=True)
        self.reader.close()  # type: ignore[union-attr]
        self.store.close()
        self.log.info("gitship_stopped")
        return 0

    async def _expose_dns_address(self) -> None:
        """Docker: the DNS listens on an address the host must own (the service CIDR's .10)."""
        host, port = _dns_host_port(self.opts.dns_addr or "")
        if not _reachable_from_containers(host):
            return
        try:
            await self.runtime.expose_service_ip(host)
        except Exception as e:  # no CAP_NET_ADMIN: DNS on the host's loopback, pods without cluster DNS
            fallback = f"127.0.0.1:{port}"
            self.log.warning("dns_address_expose_failed", address=self.opts.dns_addr, error=str(e), fallback=fallback)
            self.opts.dns_addr = fallback

    # -- the service network: the proxy and the DNS server ---------------------------------
    async def _start_network(self) -> None:
        """The Service data plane and the cluster DNS server (the reconciler programs both)."""
        try:
            self.plane = self.runtime.wrap_plane(choose(self.opts.data_plane, self.state_dir))
        except ValueError as e:
            raise GitshipError(str(e)) from None
        self.log.info("data_plane", **self.plane.info())
        host, port = _dns_host_port(self.opts.dns_addr or "")
        try:
            self.dns = await DNSServer.start(host, port)
        except OSError as e:
            self.log.warning("dns_bind_failed", address=self.opts.dns_addr, error=str(e), fallback_port=10053)
            self.dns = await DNSServer.start(host, 10053)
        self.dns.set_zone(build_zone([], [], []))
        self.store.set_meta(dns={"address": self.dns_address()})

    async def _close_network(self) -> None:
        await self.plane.close()
        self.dns.close()

    def _set_zone(self, zone: Zone) -> None:
        self.dns.set_zone(zone)

    def dns_address(self) -> str:
        return "%s:%d" % self.dns.address[:2]

    def _reconcile_settings(self) -> Settings:
        host = _dns_host_port(self.opts.dns_addr)[0] if self.opts.dns_addr else ""
        return Settings(
            service_cidr=self.opts.service_cidr or LOOPBACK_SERVICE_CIDR,
            reserved_ips=(host,) if host else (),  # the DNS server's address is never a ClusterIP
            node_address=self.opts.node_address,
            nodes=_nodes(self.runtime),  # the one node, or a multi-node runtime's (swarm) (DaemonSets)
        )

    def _on_pod_change(self, uid: str) -> None:
        """The runtime's callback: a pod's status changed (the first pass comes after start-up anyway)."""
        self._kick_reconciler()

    async def _restore_repo_config(self) -> None:
        """The applied revision's gitship.yaml (image map) before any pod starts again after a restart."""
        sha = self.store.get_meta("lastAppliedRevision")
        if not sha:
            return
        try:
            _, config = await asyncio.to_thread(self.loader.load, sha)
        except GitshipError as e:
            self.log.warning("repo_config_restore_failed", sha=sha, error=str(e))
            return
        self.runtime.set_image_rules(config.images, self.repo_dir)

    # -- the source ---------------------------------------------------------------
    def wake_source(self, fetch: bool = False) -> None:  # fetch: a push webhook's "fetch a URL source now"
        self._fetch_due |= fetch
        self._source_wake.set()

    async def _source_loop(self) -> None:
        last_fetch = 0.0
        while not self.stopping.is_set():
            try:
                if self.remote and (self._fetch_due or time.monotonic() - last_fetch >= self.opts.interval):
                    last_fetch, self._fetch_due = time.monotonic(), False
                    await asyncio.to_thread(fetch, self.repo_dir, self.branch)
                    self._set_source_error(None)
                # clear before looking: a wake-up that comes while we look is never lost
                self._source_wake.clear()
                await self._check_source()
                if not self.remote:  # a local source read again clears its error (a URL's: its next fetch)
                    self._set_source_error(None)
            except SourceError as e:
                self._set_source_error(str(e))
                self.log.warning("source_error", error=str(e))
            except Exception as e:  # never let the source loop die
                self.log.exception("source_loop_failed", error=str(e))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._source_wake.wait(),
                    timeout=min(self.opts.interval, 5.0)
                    if not self.remote
                    else max(1.0, self.opts.interval - (time.monotonic() - last_fetch)),
                )

    # -- automatic rollback --------------------------------------------------------------
    def writer(self) -> Any:  # a RepoWriter signing with --signing-key (reconciler/ops/verify.py)
        return signed_writer(self.repo_dir, self.opts.path, self.branch, self.remote, self.state_dir)

    def _set_source_error(self, error: str | None) -> None:
        self.applier.set_source_error(error)

    async def apply_revision(self, rev: Revision) -> bool:
        """Load, validate, record and hand over one revision (reconciler/applier.py)."""
        return await self.applier.apply_revision(rev)

    async def _check_source(self) -> None:
        reader = self.reader
        assert reader
        # git runs in a worker thread: the loop (proxy, DNS, probes) never waits on a subprocess
        sha = await asyncio.to_thread(reader.resolve, f"refs/heads/{self.branch}")
        if sha is None:
            raise SourceError(f"the repository has no branch {self.branch!r}")
        if sha == last_attempted(self.applier) or self.stopping.is_set():  # (a held one, once approved: None)
            return
        await self.apply_revision(await asyncio.to_thread(reader.revision, sha))


class Apis:
    """The daemon's APIs: its Unix socket (reconciler/api.py), the Kubernetes API over HTTPS
    (reconciler/kapi, on ``--api-addr``; also writes ``<state-dir>/kubeconfig``) and the web view
    (reconciler/web, on ``--web-addr``)."""

    def __init__(self, sock: ApiServer, kube: Any, ops: Any = None, web: Any = None):
        self.sock, self.kube, self.ops, self.web = sock, kube, ops, web

    async def close(self) -> None:
        if self.web is not None:
            await self.web.close()
        if self.ops is not None:  # /metrics, webhooks, sd_notify (reconciler/ops/start.py)
            await self.ops.close()
        if self.kube is not None:
            await self.kube.close()
        await self.sock.close()


async def start_apis(d: Daemon) -> Apis:
    from .ops.notify import start_notifications
    from .ops.verify import start_verification

    start_verification(d)  # --verify-signatures / --verify-gpg / --signing-key, before the first revision
    start_notifications(d)  # --notify
    sock = ApiServer(d)
    await sock.start(os.path.join(d.state_dir, "gitship.sock"))
    kube = None
    if d.opts.api_addr.lower() != "none":
        from .kapi.server import KubeApi

        kube = KubeApi(d, d.opts.api_addr)
        try:
            await kube.start()
        except OSError as e:  # the address is taken (another daemon): the rest of gitship runs without it
            d.log.warning("kube_api_unavailable", addr=d.opts.api_addr, error=str(e))
            await kube.close()
            kube = None
    from .ops.start import start_ops

    return Apis(sock, kube, await start_ops(d), await start_web(d, kube))


def run(opts: Options) -> int:
    daemon = Daemon(opts)
    try:
        import uvloop  # the service proxy's throughput depends on it (see bench/)
    except ImportError:
        return asyncio.run(daemon.run())
    return uvloop.run(daemon.run())
