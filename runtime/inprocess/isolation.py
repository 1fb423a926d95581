"""Which isolation the in-process runtime gives pods, and each pod's sandbox from birth to death.

Where it sits: ``InProcessRuntime`` (supervisor.py) is built on this class. Two modes:

``sandbox``
    when asked for (``isolation="sandbox"``, or ``"auto"``, the default) and possible: gitship
    runs as root, the pod CIDR is not loopback and unshare, nsenter, ip and sleep exist. Each pod
    (but ``hostNetwork`` ones) gets its own network, UTS, IPC and mount namespaces, held by a
    sandbox (sandbox.py) on gitship's bridge (runtime/net/bridge.py), the gateway address is
    the pods' ``hostIP``. The kubelet's order: the sandbox first, then the containers
    (they wait as ``ContainerCreating``); a sandbox that cannot be made is retried with
    back-off, its containers' waiting message says why ("Failed to create pod sandbox: ...",
    the kubelet's FailedCreatePodSandBox). When a holder dies, the pod's containers are
    killed ("Pod sandbox changed, it will be killed and re-created.") and restart, under
    their restart policy, in a new sandbox, as the kubelet does.
``host``
    otherwise: every pod shares the host's network, a 127.x address each (network.py);
    ``info()`` says why ("pods share the host's network: not running as root").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import structlog

from ..base import RuntimeError_
from ..kernel.podfiles import (
    DNSConfig,
    PodFilesError,
    parse_resolv_conf,
    pod_dns_config,
    pod_hostname,
    render_hosts,
    render_resolv_conf,
)
from ..net import bridge as br
from . import podnet, procid, sandbox
from .probing import ProbeSupervisor
from .state import PodState

log = structlog.get_logger("runtime.inprocess")

ISOLATIONS = ("auto", "sandbox", "host")
SANDBOX_CHANGED = "Pod sandbox changed, it will be killed and re-created."
RETRY_FIRST, RETRY_MAX = 0.5, 30.0
HOST_RESOLV_CONF = "/etc/resolv.conf"


def choose_isolation(requested: str, pod_cidr: str, euid: int, missing_tool: str | None) -> tuple[str, str]:
    """(mode, reason): "sandbox" when asked for (or "auto") and possible, else "host" with the reason."""
    if requested not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}: {requested!r}")
    net = ipaddress.ip_network(pod_cidr, strict=False)
    why = ""
    if requested == "host":
        why = "isolation=host was asked for"
    elif euid != 0:
        why = "not running as root"
    elif net.is_loopback:
        why = f"pod CIDR {net} is loopback"
    elif missing_tool:
        why = f"{missing_tool} not found"
    if why:
        return "host", f"pods share the host's network: {why}"
    return "sandbox", "each pod has its own network, UTS, IPC and mount namespaces"


class SandboxSupervisor(ProbeSupervisor):
    """Pods in sandboxes: the mode, the host's network, and each pod's sandbox."""

    isolation: str
    isolation_reason: str
    bridge: str
    service_cidr: str | None
    dns_servers: tuple[str, ...]
    cluster_domain: str
    tools: sandbox.Tools | None
    gateway: str
    prefix: int
    pod_cidr: str

    def _init_isolation(
        self,
        requested: str,
        pod_cidr: str,
        bridge: str,
        service_cidr: str | None,
        dns_servers: Sequence[str],
        cluster_domain: str,
        service_route: str = "bridge",
    ) -> None:
        if service_route not in br.SERVICE_ROUTES:
            raise ValueError(f"service_route must be one of {', '.join(br.SERVICE_ROUTES)}: {service_route!r}")
        self.service_route = service_route
        self.requested_isolation = requested
        self.bridge = br.check_ifname(bridge)
        self.service_cidr = service_cidr
        self.dns_servers = tuple(dns_servers)
        self.cluster_domain = cluster_domain
        self.tools, missing = sandbox.find_tools()
        self.isolation, self.isolation_reason = choose_isolation(requested, pod_cidr, os.geteuid(), missing)
        self.gateway, self.prefix = br.gateway(pod_cidr) if self.isolation == "sandbox" else ("", 0)
        self._host_dns: DNSConfig | None = None

    def isolation_info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"isolation": self.isolation, "isolationReason": self.isolation_reason}
        if self.isolation == "sandbox":
            out["bridge"] = self.bridge
        return out

    async def _start_isolation(self) -> None:
        """start(): the host's side of the pods' network (sandbox mode). Raises RuntimeError_."""
        if self.isolation != "sandbox":
            if self.requested_isolation == "sandbox":
                raise RuntimeError_(f"pod sandboxes are not possible: {self.isolation_reason}")
            return
        try:
            await asyncio.to_thread(self._ensure_host_network)
        except (br.NetworkSetupError, OSError) as e:
            raise RuntimeError_(f"cannot set up the pods' network on bridge {self.bridge}: {e}") from None
        self._host_dns = await asyncio.to_thread(_read_host_dns)

    def _ensure_host_network(self) -> str:
        return br.ensure_host_network(self.bridge, self.pod_cidr, self.service_cidr, self.service_route)

    def _isolated(self, p: PodState) -> bool:
        return self.isolation == "sandbox" and not p.spec.get("hostNetwork")

    # -- hooks of the container lifecycle ---------------------------------------------------

    def _sandbox_usable(self, p: PodState) -> bool:
        if not self._isolated(p):
            return True
        return p.sandbox is not None and p.sandbox.ready and p.holder_pidfd is not None

    def _enter_prefix(self, p: PodState, cwd: str | None) -> list[str] | None:
        if not self._isolated(p):
            return []
        if not self._sandbox_usable(p) or p.sandbox is None or self.tools is None:
            return None
        return sandbox.enter_argv(self.tools, p.sandbox.holder.pid, cwd)

    def _hostname(self, p: PodState) -> str | None:
        if not self._isolated(p):
            return None
        with contextlib.suppress(PodFilesError):
            return pod_hostname(p.pod, self.cluster_domain).kernel
        return None

    def _ensure_sandbox(self, p: PodState) -> None:
        if not self._isolated(p) or self._sandbox_usable(p) or not self._alive(p):
            return
        if p.sandbox_task is None or p.sandbox_task.done():
            p.sandbox_task = self._spawn(self._make_sandbox(p))

    # -- making a sandbox --------------------------------------------------------------------

    async def _make_sandbox(self, p: PodState) -> None:
        """Make the pod's sandbox, retrying with back-off; then start the containers waiting for it."""
        delay = RETRY_FIRST
        while self._alive(p):
            try:
                await self._create_sandbox(p)
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                p.sandbox_error = f"Failed to create pod sandbox: {e}"
                log.warning("FailedCreatePodSandBox", uid=p.uid, pod=p.name, error=str(e), retry_in=delay)
                for c in p.containers:
                    if c.awaiting_sandbox:
                        self._wait(p, c, "ContainerCreating", p.sandbox_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                await self._repair_host_network()
        else:
            return
        p.sandbox_error = None
        p.sandbox_task = None
        for c in p.containers:
            if c.awaiting_sandbox:
                self._launch(p, c)

    async def _repair_host_network(self) -> None:
        """Before a retry: bring the bridge back should someone have deleted it."""
        if br.link_exists(self.bridge):
            return
        with contextlib.suppress(br.NetworkSetupError, OSError):
            await asyncio.to_thread(self._ensure_host_network)

    def _pod_files(self, p: PodState) -> tuple[str, str, str]:
        """(kernel hostname, resolv.conf, hosts) of the pod."""
        try:
            hn = pod_hostname(p.pod, self.cluster_domain)
        except PodFilesError as e:
            raise sandbox.SandboxError(str(e)) from None
        if self._host_dns is None:
            self._host_dns = _read_host_dns()
        cfg = pod_dns_config(
            p.pod, cluster_dns=self.dns_servers, cluster_domain=self.cluster_domain, host=self._host_dns
        )
        hosts = render_hosts([p.ip], hn, p.spec.get("hostAliases") or [])
        return hn.kernel, render_resolv_conf(cfg), hosts

    async def _create_sandbox(self, p: PodState) -> None:
        tools = self.tools
        if tools is None:
            raise sandbox.SandboxError("unshare, nsenter or ip is missing")
        t0 = time.monotonic()
        hostname, resolv, hosts = self._pod_files(p)
        veth = br.veth_name(p.uid)
        await br.delete_link(tools.ip, veth)  # left by a sandbox that died
        files = sandbox.write_files(sandbox.sandbox_dir(self.state_dir, p.uid), resolv, hosts)
        proc = sandbox.spawn_holder(tools, p.uid)
        ident = procid.identity_of(proc.pid) or procid.ProcessIdentity(proc.pid, -1, procid.boot_id())
        p.sandbox, p.holder_proc = sandbox.Sandbox(ident, veth, p.ip, hostname), proc
        self._save(p)  # recorded before it is up: a crash now leaves nothing unknown behind
        setup = functools.partial(
            sandbox.setup,
            proc.pid,
            hostname=hostname,
            files=files,
            veth=veth,
            bridge=self.bridge,
            ip=p.ip,
            prefix=self.prefix,
            gw=self.gateway,
        )
        try:
            try:
                await podnet.run_configure(setup)
            except sandbox.SandboxError as e:
                raise sandbox.SandboxError(sandbox.holder_failure(proc) or str(e)) from None
            sandbox.holder_failure(proc)  # closes our end of its stderr
            if not self._watch_holder(p):
                raise sandbox.SandboxError("the sandbox's holder exited")
        except BaseException:
            self._discard_sandbox(p)
            raise
        p.sandbox.ready = True
        self._save(p)
        ms = round((time.monotonic() - t0) * 1000, 1)
        log.info("sandbox_created", uid=p.uid, pod=p.name, holder=proc.pid, ip=p.ip, veth=veth, ms=ms)

    def _discard_sandbox(self, p: PodState) -> None:
        """A half-made sandbox goes (synchronously: it is rare, and may run while the task is cancelled)."""
        sb = p.sandbox
        self._unwatch_holder(p)
        self._kill_holder(p)
        if sb is not None:
            br.delete_link_sync(sb.veth)
        if p.holder_proc is not None:
            with contextlib.suppress(Exception):
                p.holder_proc.wait(timeout=1)
            if p.holder_proc.stderr is not None:
                p.holder_proc.stderr.close()
        p.sandbox, p.holder_proc = None, None
        self._save(p)

    def _kill_holder(
        self, p: PodState, sb: sandbox.Sandbox | None = None, proc: subprocess.Popen[bytes] | None = None
    ) -> None:
        """SIGKILL the pod's holder: directly if it is our unreaped child, else only if it is still ours."""
        sb = sb or p.sandbox
        proc = proc or p.holder_proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        elif sb is not None:
            sandbox.kill_holder(sb.holder, p.uid)

    # -- watching the holder --------------------------------------------------------------------

    def _watch_holder(self, p: PodState) -> bool:
        """Watch the holder's exit. False if it is gone (or not ours any more)."""
        sb = p.sandbox
        if sb is None:
            return False
        try:
            pidfd = os.pidfd_open(sb.holder.pid)
        except OSError:
            return False
        # Our own child (not yet reaped, so its pid is its own) needs no identity check, and must
        # not get one: right after spawning, its /proc environ can read empty while unshare execs
        # sleep. An adopted holder is checked once pinned by the pidfd (the pid cannot be reused now).
        proc = p.holder_proc
        alive = proc.poll() is None if proc is not None else procid.is_ours(sb.holder, p.uid)
        if not alive:
            os.close(pidfd)
            return False
        p.holder_pidfd = pidfd
        assert self._loop is not None
        self._loop.add_reader(pidfd, self._on_holder_exit, p, pidfd)
        return True

    def _unwatch_holder(self, p: PodState) -> None:
        fd, p.holder_pidfd = p.holder_pidfd, None
        if fd is None:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def _on_holder_exit(self, p: PodState, pidfd: int) -> None:
        if p.holder_pidfd != pidfd:
            return
        self._unwatch_holder(p)
        if p.holder_proc is not None:
            p.holder_proc.poll()  # reap our child
        if not self._alive(p):
            return
        log.warning("sandbox_died", uid=p.uid, pod=p.name, holder=p.sandbox.holder.pid if p.sandbox else None)
        p.sandbox, p.holder_proc = None, None
        self._save(p)
        self._kill_sandboxed(p)
        if any(c.awaiting_sandbox for c in p.containers):
            self._ensure_sandbox(p)

    def _kill_sandboxed(self, p: PodState) -> None:
        """SIGKILL the pod's running containers: their sandbox is gone (they restart per policy in a new one)."""
        for c in p.containers:
            if c.running and c.pid is not None:
                c.stop_probes()
                c.kill_message = SANDBOX_CHANGED
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.pid, signal.SIGKILL)

    # -- the end of a sandbox ----------------------------------------------------------------------

    async def _destroy_sandbox(self, p: PodState) -> None:
        """delete_pod, once the containers are gone: the veth, the holder, the files."""
        task, p.sandbox_task = p.sandbox_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # its own clean-up (_discard_sandbox) runs; its outcome does not matter
        self._unwatch_holder(p)
        sb, proc = p.sandbox, p.holder_proc
        p.sandbox, p.holder_proc = None, None
        if sb is not None:
            if self.tools is not None:
                await br.delete_link(self.tools.ip, sb.veth)
            self._kill_holder(p, sb, proc)
            for _ in range(500):
                if not _running(sb.holder.pid):
                    break
                await asyncio.sleep(0.01)
        if proc is not None:
            proc.poll()
        if self.isolation == "sandbox":
            shutil.rmtree(sandbox.sandbox_dir(self.state_dir, p.uid), ignore_errors=True)

    def _remove_stale_sandbox_dirs(self, keep: set[str]) -> None:
        """start(): the files of sandboxes whose pod has no state file any more (a crash mid-delete)."""
        root = os.path.join(self.state_dir, "sandboxes")
        with contextlib.suppress(OSError):
            for uid in os.listdir(root):
                if uid not in keep:
                    shutil.rmtree(os.path.join(root, uid), ignore_errors=True)

    def _stop_watching_sandboxes(self) -> None:
        """close(stop_pods=False): the holders keep running; forget them."""
        for p in self._pods.values():
            self._unwatch_holder(p)
            if p.holder_proc is not None and p.holder_proc.poll() is None:
                _abandoned_holders.append(p.holder_proc)


# Popen objects of holders left running by close(stop_pods=False) (see supervisor._abandoned).
_abandoned_holders: list[Any] = []


def _running(pid: int) -> bool:
    st = procid.read_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _read_host_dns() -> DNSConfig:
    try:
        with open(HOST_RESOLV_CONF, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read())
    except OSError:
        return DNSConfig()
