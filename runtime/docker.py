"""The Docker runtime: each pod is a sandbox container plus one container per app container.

Layout of a pod on the engine (mirrors dockershim / the kubelet):

* a **sandbox** container (label ``gitship.container=POD``) on the user-defined bridge
  network ``network`` (created if missing), hostname = pod name, with the pod's DNS
  settings; it holds the network (and IPC) namespace. Its image is ``gitship/pause:1``,
  built locally once from ``/usr/bin/busybox`` (``docker import``, no registry needed);
  if busybox is not on the host, the first app container's image is used and must have
  ``sh`` and ``sleep``. A ``sandbox_image`` argument overrides both (its own CMD is used).
* every app container runs with ``network_mode=container:<sandbox>`` (and the sandbox's IPC
  namespace): one IP and one port space per pod; containers reach each other on localhost.
  The pod IP is the sandbox's IP on ``network``; the host reaches it directly (probes).
* every container carries labels ``gitship.instance``, ``gitship.pod.uid``,
  ``gitship.pod.name``, ``gitship.pod.namespace``, ``gitship.container``,
  ``gitship.owner`` ("Kind/name" of the controller ownerReference, or ""),
  ``gitship.attempt`` (restartCount of that container instance) and ``gitship.pod.spec``
  (the pod dict as JSON, without status). A restarted gitship rebuilds everything from
  the engine alone (``start``). Every list / event filter includes the instance label,
  so two instances never touch each other's containers.

Supervision is ours, not Docker's (no Docker restart policy): exits arrive through the
engine's event stream (a thread, results posted to the loop with call_soon_threadsafe);
restarts follow the pod's restartPolicy with the kubelet's back-off (first restart
immediately, then ``backoff_base`` doubling up to ``backoff_max``, reset after a clean run
of 2 x max; the waiting reason is CrashLoopBackOff). Image pulls follow imagePullPolicy
with the same back-off (ErrImagePull, then ImagePullBackOff). A periodic resync (5 s) is
a safety net for missed events and for the engine going away and coming back.

imagePullPolicy follows Kubernetes strictly: ``Always`` (the default for ``:latest`` or
untagged references) pulls every time a container is created and a failed pull fails the
container with ErrImagePull even if an older copy exists locally. On an offline host use
explicit tags (default IfNotPresent) or ``imagePullPolicy: IfNotPresent``/``Never``.

Services (see docs/docker.md): the daemon's proxy and DNS run on the host. A ClusterIP is
made reachable from containers by ``expose_service_ip``: the address is added as a /32 to
the host's loopback device (label ``lo:gitship``); a container's packets to it follow its
default route to the bridge gateway, i.e. to the host, which owns the address. This needs
no engine (the DNS address is exposed before the engine answers) and survives the network
being recreated. ``close(stop_pods=True)`` removes the addresses again.

Logs: Docker keeps them (json-file); ``log_path`` returns None. Use
``await runtime.logs(uid, container, tail=None, previous=False) -> bytes`` or
``async for chunk in runtime.read_logs(uid, container, follow=True)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests.exceptions

from runtime import probes
from runtime.base import ExecResult, OnChange, Pod, PodStatus, Runtime, RuntimeError_

log = logging.getLogger("gitship.runtime.docker")

LABEL_INSTANCE = "gitship.instance"
LABEL_UID = "gitship.pod.uid"
LABEL_NAME = "gitship.pod.name"
LABEL_NAMESPACE = "gitship.pod.namespace"
LABEL_CONTAINER = "gitship.container"
LABEL_OWNER = "gitship.owner"
LABEL_SPEC = "gitship.pod.spec"
LABEL_ATTEMPT = "gitship.attempt"
SANDBOX = "POD"
PAUSE_IMAGE = "gitship/pause:1"
BUSYBOX = "/usr/bin/busybox"
SANDBOX_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done'
RESYNC_SECONDS = 5.0
EXPOSE_DEV = "lo"
EXPOSE_LABEL = "lo:gitship"


# ----------------------------------------------------------------------------- helpers


def _now_rfc3339(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def _docker_time(s: str | None) -> str | None:
    """Docker's '2026-11-25T20:00:00.123456789Z' -> '2026-11-25T20:00:00Z' (None for zero)."""
    if not s or s.startswith("0001-"):
        return None
    return s[:19] + "Z"


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def parse_quantity(q: Any) -> float:
    """A Kubernetes resource quantity ("128Mi", "1G", "500m", 2) as a float."""
    if isinstance(q, (int, float)):
        return float(q)
    m = _QUANTITY.match(str(q).strip())
    if not m or m.group(2) not in _SUFFIXES:
        raise ValueError(f"invalid quantity {q!r}")
    return float(m.group(1)) * _SUFFIXES[m.group(2)]


def expand_vars(s: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names replaced, unknown kept, $$ -> $."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        if s.startswith("$$", i):
            out.append("$")
            i += 2
        elif s.startswith("$(", i):
            j = s.find(")", i + 2)
            if j < 0:
                out.append(s[i:])
                break
            name = s[i + 2 : j]
            out.append(env[name] if name in env else s[i : j + 1])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def default_pull_policy(image: str) -> str:
    """Always for ':latest' or no tag (and no digest), else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        return "Always"
    return "IfNotPresent"


def _split_ref(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    head, _, last = image.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (head + "/" + name if head else name), tag
    return image, "latest"


def busybox_rootfs_tar(files: dict[str, tuple[bytes, int]] | None = None, busybox: str = BUSYBOX) -> bytes:
    """A tar of a tiny root filesystem: /bin/busybox with every applet linked in /bin,
    empty /tmp /etc /proc /sys /dev, plus ``files`` ({path: (content, mode)})."""
    import subprocess

    applets = subprocess.run([busybox, "--list"], capture_output=True, check=True, text=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(path: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(path)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tar.addfile(ti)

        for d in ("bin", "etc", "proc", "sys", "dev", "root", "var", "www"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        with open(busybox, "rb") as f:
            data = f.read()
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode = len(data), 0o755
        tar.addfile(ti, io.BytesIO(data))
        for a in applets:
            if a == "busybox":
                continue
            ti = tarfile.TarInfo(f"bin/{a}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(ti)
        for path, (content, mode) in (files or {}).items():
            ti = tarfile.TarInfo(path.lstrip("/"))
            ti.size, ti.mode = len(content), mode
            tar.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


class EngineUnreachable(RuntimeError_):
    """The Docker Engine does not answer (yet); the runtime retries with back-off."""


def _engine_down(exc: BaseException) -> bool:
    if isinstance(exc, EngineUnreachable):
        return True
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    if isinstance(exc, docker.errors.DockerException) and not isinstance(exc, docker.errors.APIError):
        return True
    return False


def _fmt_delay(d: float) -> str:
    return f"{d:g}s" if d >= 1 else f"{int(round(d * 1000))}ms"


# ----------------------------------------------------------------------------- state


@dataclass
class _Backoff:
    """The kubelet's flowcontrol.Backoff entry for one key."""

    delay: float | None = None
    updated: float = 0.0

    def active(self, now: float, since: float, maximum: float) -> float:
        """Seconds still to wait (0 = not in back-off) for an event at ``since``."""
        if self.delay is None or now - self.updated > 2 * maximum:
            return 0.0
        return max(0.0, self.delay - (now - since))

    def next(self, now: float, base: float, maximum: float) -> None:
        if self.delay is None or now - self.updated > 2 * maximum:
            self.delay = base
        else:
            self.delay = min(self.delay * 2, maximum)
        self.updated = now


@dataclass
class _Container:
    spec: dict[str, Any]
    name: str
    image: str
    cid: str | None = None
    attempt: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    image_id: str | None = None
    running: bool = False
    ready: bool = False
    started: bool = False
    want_start: bool = True  # (re)create at the next sync
    done: bool = False  # terminated for good (restart policy says no)
    exited_cid: str | None = None  # last container id whose exit was handled
    crash: _Backoff = field(default_factory=_Backoff)
    pull: _Backoff = field(default_factory=_Backoff)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    probes: list[asyncio.Task] = field(default_factory=list)
    kill_reason: str | None = None
    previous_cid: str | None = None

    def cancel(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()
        for p in self.probes:
            p.cancel()
        self.probes.clear()


@dataclass
class _Pod:
    pod: Pod
    uid: str
    name: str
    namespace: str
    containers: dict[str, _Container]
    start_time: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sandbox_id: str | None = None
    sandbox_attempt: int = 0
    pod_ip: str | None = None
    deleting: bool = False
    delete_task: asyncio.Task | None = None
    sync_pending: bool = False
    conditions: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    last_status: str | None = None
    error: str | None = None

    @property
    def restart_policy(self) -> str:
        return self.pod.get("spec", {}).get("restartPolicy", "Always")

    @property
    def grace(self) -> float:
        g = self.pod.get("spec", {}).get("terminationGracePeriodSeconds")
        return 30.0 if g is None else float(g)


# ----------------------------------------------------------------------------- runtime


class DockerRuntime(Runtime):
    """Runs pods as Docker containers. See the module docstring for the layout."""

    name = "docker"

    def __init__(
        self,
        state_dir: str,
        instance: str | None = None,
        network: str = "gitship",
        dns_servers: list[str] | None = None,
        dns_search: list[str] | None = None,
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        *,
        docker_host: str | None = None,
        sandbox_image: str | None = None,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.instance = instance or hashlib.sha256(self.state_dir.encode()).hexdigest()[:16]
        self.network = network
        self.dns_servers = list(dns_servers) if dns_servers else None
        self.dns_search = list(dns_search) if dns_search else None
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.docker_host = docker_host
        self.sandbox_image = sandbox_image
        self.resync_seconds = resync_seconds
        self._pods: dict[str, _Pod] = {}
        self._on_change: OnChange = lambda uid: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=24, thread_name_prefix="gitship-docker")
        self._client: docker.DockerClient | None = None
        self._version: dict[str, Any] = {}
        self._engine_error: str | None = "not connected yet"
        self._adopted = False
        self._closed = False
        self._tasks: set[asyncio.Task] = set()
        self._resync_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._events_thread: threading.Thread | None = None
        self._events_stop = threading.Event()
        self._events_stream: Any = None
        self._pause_lock = asyncio.Lock()
        self._pause_ready: str | None = None
        self._network_ready = False
        self._gateway: str | None = None
        self._pending_deletes: set[str] = set()
        self._exposed: set[str] = set()

    # ------------------------------------------------------------------ engine plumbing

    def _new_client(self, timeout: int = 60) -> docker.DockerClient:
        kw: dict[str, Any] = {"version": "auto", "timeout": timeout, "max_pool_size": 32}
        if self.docker_host:
            return docker.DockerClient(base_url=self.docker_host, **kw)
        return docker.DockerClient.from_env(**kw)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call in the pool; notes engine outages."""
        assert self._loop is not None
        try:
            return await self._loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except Exception as exc:
            if _engine_down(exc):
                self._set_engine_down(exc)
            raise

    @property
    def _api(self) -> docker.APIClient:
        if self._client is None:
            raise EngineUnreachable(f"docker engine unreachable: {self._engine_error}")
        return self._client.api

    def _set_engine_down(self, exc: BaseException | str) -> None:
        msg = str(exc)
        if self._engine_error is None:
            log.warning("docker engine unreachable: %s", msg)
            self._wake.set()
        self._engine_error = msg

    async def _connect(self) -> None:
        if self._client is None:
            self._client = await self._call(self._new_client)
        self._version = await self._call(self._client.version)
        self._engine_error = None

    def _spawn(self, coro: Any) -> asyncio.Task:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not _engine_down(exc):
                log.error("docker runtime task failed: %r", exc, exc_info=exc)

    # ------------------------------------------------------------------ Runtime API

    async def start(self, on_change: OnChange) -> dict[str, Pod]:
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        self._start_events_thread()
        try:
            await self._connect()
            await self._converge()
        except Exception as exc:
            if not _engine_down(exc):
                raise
            self._set_engine_down(exc)
        self._resync_task = self._spawn(self._resync_loop())
        return {uid: p.pod for uid, p in self._pods.items()}

    async def create_pod(self, pod: Pod) -> None:
        meta = pod.get("metadata", {})
        uid = str(meta["uid"])
        if uid in self._pods:
            return
        self._pending_deletes.discard(uid)
        p = self._new_pod(pod)
        self._pods[uid] = p
        self._notify(p)
        try:
            await self._sync_pod(p)
        except Exception as exc:
            if not _engine_down(exc):
                raise
            p.error = f"docker engine unreachable: {exc}"
            self._notify(p)

    async def delete_pod(self, uid: str, grace_seconds: float | None = None) -> None:
        p = self._pods.get(uid)
        if p is None:
            if self._client is not None and self._engine_error is None:
                with contextlib.suppress(Exception):
                    await self._remove_leftovers(uid)
            return
        if p.delete_task is None:
            p.deleting = True
            p.delete_task = self._spawn(self._delete(p, grace_seconds))
        await asyncio.shield(p.delete_task)

    def status(self, uid: str) -> PodStatus | None:
        p = self._pods.get(uid)
        return None if p is None else self._status(p)

    def pods(self) -> dict[str, Pod]:
        return {uid: p.pod for uid, p in self._pods.items()}

    def log_path(self, uid: str, container: str) -> str | None:
        return None  # Docker owns the logs: use logs() / read_logs()

    async def exec(self, uid: str, container: str, argv: list[str], timeout: float = 30.0) -> ExecResult:
        cid = self._cid(uid, container)

        def run() -> ExecResult:
            ex = self._api.exec_create(cid, list(argv), stdout=True, stderr=True)
            out, err = self._api.exec_start(ex["Id"], demux=True)
            code = self._api.exec_inspect(ex["Id"]).get("ExitCode")
            return ExecResult(exit_code=-1 if code is None else int(code), stdout=out or b"", stderr=err or b"")

        try:
            return await asyncio.wait_for(self._call(run), timeout)
        except docker.errors.APIError as exc:
            raise RuntimeError_(f"exec in {container} of pod {uid}: {exc.explanation or exc}") from exc

    async def logs(
        self, uid: str, container: str, tail: int | None = None, previous: bool = False, timestamps: bool = False
    ) -> bytes:
        """stdout and stderr of a container (``previous``: the instance before the last restart)."""
        cid = self._cid(uid, container, previous=previous, must_run=False)
        return await self._call(
            self._api.logs,
            cid,
            stdout=True,
            stderr=True,
            timestamps=timestamps,
            tail="all" if tail is None else int(tail),
        )

    async def read_logs(
        self, uid: str, container: str, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[bytes]:
        """Chunks of a container's output; with ``follow`` until the container stops."""
        cid = self._cid(uid, container, must_run=False)
        if not follow:
            yield await self.logs(uid, container, tail=tail)
            return
        assert self._loop is not None
        loop = self._loop
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)
        stream_box: list[Any] = []

        def pump() -> None:
            try:
                stream = self._api.logs(
                    cid, stdout=True, stderr=True, stream=True, follow=True, tail="all" if tail is None else int(tail)
                )
                stream_box.append(stream)
                for chunk in stream:
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except Exception:
                pass
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop)

        fut = loop.run_in_executor(self._pool, pump)
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            for s in stream_box:
                with contextlib.suppress(Exception):
                    s.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(fut), 2)

    # ------------------------------------------------------------------ service addresses

    async def expose_service_ip(self, ip: str) -> None:
        """Make a ClusterIP (or the DNS address) reachable from containers: ``ip/32`` on ``lo``.

        Idempotent (an address already there is fine). Raises RuntimeError_ when the address
        cannot be added (no CAP_NET_ADMIN, no ``ip``); the caller logs it and goes on.
        """
        import ipaddress

        addr = ipaddress.ip_address(ip)
        if addr.is_loopback or addr.is_unspecified:
            return  # already local; containers can't reach it anyway
        if ip in self._exposed:
            return
        await self._ip(
            "addr",
            "add",
            f"{ip}/32",
            "dev",
            EXPOSE_DEV,
            "label",
            EXPOSE_LABEL,
            ok_if=("File exists", "already assigned"),
        )  # e.g. left by a gitship killed -9
        self._exposed.add(ip)

    async def unexpose_service_ip(self, ip: str) -> None:
        if ip in self._exposed:
            self._exposed.discard(ip)
            with contextlib.suppress(RuntimeError_):
                await self._ip("addr", "del", f"{ip}/32", "dev", EXPOSE_DEV, ok_if=("Cannot assign", "not found"))

    @staticmethod
    async def _ip(*args: str, ok_if: tuple[str, ...]) -> None:
        """Run ``ip ARGS``; an error whose message contains one of ``ok_if`` is success (the
        wording differs between iproute2 versions)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise RuntimeError_(f"ip {' '.join(args)}: {exc}") from exc
        _, err = await proc.communicate()
        if proc.returncode != 0 and not any(x in err.decode(errors="replace") for x in ok_if):
            raise RuntimeError_(f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")

    async def close(self, stop_pods: bool) -> None:
        if stop_pods and self._loop is not None:
            await asyncio.gather(*(self.delete_pod(uid) for uid in list(self._pods)), return_exceptions=True)
        if stop_pods:
            for ip in list(self._exposed):
                await self.unexpose_service_ip(ip)
        self._closed = True
        self._wake.set()
        for p in self._pods.values():
            for c in p.containers.values():
                c.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._events_stop.set()
        stream = self._events_stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        if self._events_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._events_thread.join, 5)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def info(self) -> dict[str, Any]:
        base = {"name": self.name, "instance": self.instance, "network": self.network, "pods": len(self._pods)}
        if self._engine_error is not None:
            return {**base, "engine": "unreachable", "error": self._engine_error}
        return {
            **base,
            "engine": "up",
            "version": self._version.get("Version"),
            "engineVersion": self._version.get("Version"),
            "apiVersion": self._version.get("ApiVersion"),
            "os": self._version.get("Os"),
            "arch": self._version.get("Arch"),
        }

    # ------------------------------------------------------------------ pod model

    def _new_pod(self, pod: Pod) -> _Pod:
        meta = pod.get("metadata", {})
        pod = {k: v for k, v in pod.items() if k != "status"}
        containers = {}
        for spec in pod.get("spec", {}).get("containers", []):
            containers[spec["name"]] = _Container(spec=spec, name=spec["name"], image=spec.get("image", ""))
        p = _Pod(
            pod=pod,
            uid=str(meta["uid"]),
            name=meta.get("name", ""),
            namespace=meta.get("namespace", "default"),
            containers=containers,
            start_time=_now_rfc3339(),
        )
        t = p.start_time
        p.conditions = {
            "PodScheduled": ("True", t, None),
            "Initialized": ("True", t, None),
            "ContainersReady": ("False", t, "ContainersNotReady"),
            "Ready": ("False", t, "ContainersNotReady"),
        }
        return p

    def _labels(self, p: _Pod, container: str, attempt: int) -> dict[str, str]:
        owner = ""
        for ref in p.pod.get("metadata", {}).get("ownerReferences") or []:
            if ref.get("controller"):
                owner = f"{ref.get('kind')}/{ref.get('name')}"
                break
        return {
            LABEL_INSTANCE: self.instance,
            LABEL_UID: p.uid,
            LABEL_NAME: p.name,
            LABEL_NAMESPACE: p.namespace,
            LABEL_CONTAINER: container,
            LABEL_OWNER: owner,
            LABEL_ATTEMPT: str(attempt),
            LABEL_SPEC: json.dumps(p.pod, sort_keys=True, separators=(",", ":")),
        }

    def _cname(self, p: _Pod, container: str, attempt: int) -> str:
        base = f"gs_{p.namespace}_{p.name}_{container}_{p.uid[:8]}_{attempt}"
        return re.sub(r"[^a-zA-Z0-9_.-]", "-", base)

    def _cid(self, uid: str, container: str, previous: bool = False, must_run: bool = True) -> str:
        p = self._pods.get(uid)
        if p is None:
            raise RuntimeError_(f"unknown pod {uid}")
        c = p.containers.get(container)
        if c is None:
            raise RuntimeError_(f"pod {p.name} has no container {container!r}")
        cid = c.previous_cid if previous else c.cid
        if cid is None or (must_run and not c.running):
            raise RuntimeError_(f"container {container} of pod {p.name} is not running")
        return cid

    # ------------------------------------------------------------------ status

    def _phase(self, p: _Pod) -> str:
        running = waiting = stopped = succeeded = failed = 0
        for c in p.containers.values():
            if "running" in c.state:
                running += 1
            elif "terminated" in c.state:
                stopped += 1
                if c.state["terminated"].get("exitCode") == 0:
                    succeeded += 1
                else:
                    failed += 1
            elif "terminated" in c.last_state:
                stopped += 1
                if c.last_state["terminated"].get("exitCode") == 0:
                    succeeded += 1
                else:
                    failed += 1
            else:
                waiting += 1
        n = len(p.containers)
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped == n and n:
            policy = p.restart_policy
            if policy == "Always":
                return "Running"
            if policy == "OnFailure":
                return "Succeeded" if succeeded == stopped else "Running"
            return "Failed" if failed else "Succeeded"
        return "Pending"

    def _status(self, p: _Pod) -> PodStatus:
        phase = self._phase(p)
        statuses = []
        for c in p.containers.values():
            st: dict[str, Any] = {
                "name": c.name,
                "image": c.image,
                "ready": c.ready,
                "started": c.started,
                "restartCount": c.attempt,
                "state": c.state,
                "lastState": c.last_state,
            }
            if c.cid:
                st["containerID"] = f"docker://{c.cid}"
            if c.image_id:
                st["imageID"] = c.image_id
            statuses.append(st)
        conds = []
        for typ in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            status, ltt, reason = p.conditions[typ]
            d = {"type": typ, "status": status, "lastTransitionTime": ltt}
            if reason:
                d["reason"] = reason
            conds.append(d)
        out: PodStatus = {
            "phase": phase,
            "hostIP": self._gateway or "127.0.0.1",
            "startTime": p.start_time,
            "conditions": conds,
            "containerStatuses": statuses,
        }
        if p.pod_ip:
            out["podIP"] = p.pod_ip
            out["podIPs"] = [{"ip": p.pod_ip}]
        if p.error:
            out["message"] = p.error
        return out

    def _notify(self, p: _Pod) -> None:
        """Recompute conditions; call on_change if anything in the status changed."""
        if p.uid not in self._pods:
            return
        phase = self._phase(p)
        ready = bool(p.containers) and all(c.ready for c in p.containers.values())
        reason = None if ready else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
        for typ in ("ContainersReady", "Ready"):
            want = "True" if ready else "False"
            if p.conditions[typ][0] != want:
                p.conditions[typ] = (want, _now_rfc3339(), reason)
        snap = json.dumps(self._status(p), sort_keys=True, default=str)
        if snap != p.last_status:
            p.last_status = snap
            try:
                self._on_change(p.uid)
            except Exception:
                log.exception("on_change(%s) failed", p.uid)

    # ------------------------------------------------------------------ sync

    def _kick(self, p: _Pod) -> None:
        """Schedule a sync of the pod (coalesced)."""
        if p.sync_pending or p.deleting or self._closed:
            return
        p.sync_pending = True

        async def run() -> None:
            p.sync_pending = False
            await self._sync_pod(p)

        self._spawn(run())

    async def _sync_pod(self, p: _Pod) -> None:
        async with p.lock:
            if p.deleting or self._closed or p.uid not in self._pods:
                return
            if p.sandbox_id is None:
                await self._create_sandbox(p)
            for c in p.containers.values():
                if p.deleting or self._closed:
                    return
                if c.want_start and not c.timers:
                    await self._start_container(p, c)
            p.error = None
            self._notify(p)

    async def _ensure_network(self) -> None:
        if self._network_ready:
            return
        api = self._api
        nets = await self._call(api.networks, names=[self.network])
        nets = [n for n in nets if n.get("Name") == self.network]
        if not nets:
            try:
                await self._call(
                    api.create_network,
                    self.network,
                    driver="bridge",
                    check_duplicate=True,
                    labels={"gitship.managed": "true"},
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
            nets = await self._call(api.networks, names=[self.network])
        if nets:
            info = await self._call(api.inspect_network, nets[0]["Id"])
            for cfg in (info.get("IPAM") or {}).get("Config") or []:
                if cfg.get("Gateway"):
                    self._gateway = cfg["Gateway"]
        self._network_ready = True

    async def _pause_image(self, p: _Pod) -> tuple[str, list[str] | None]:
        """(image, command) of the sandbox."""
        if self.sandbox_image:
            return self.sandbox_image, None
        cmd = ["sh", "-c", SANDBOX_SCRIPT]
        async with self._pause_lock:
            if self._pause_ready is None:
                try:
                    await self._call(self._api.inspect_image, PAUSE_IMAGE)
                    self._pause_ready = PAUSE_IMAGE
                except docker.errors.ImageNotFound:
                    if os.path.exists(BUSYBOX):
                        data = await self._call(busybox_rootfs_tar)
                        repo, tag = PAUSE_IMAGE.split(":")
                        await self._call(
                            self._api.import_image_from_data,
                            data,
                            repository=repo,
                            tag=tag,
                            changes=['CMD ["/bin/sh", "-c", %s]' % json.dumps(SANDBOX_SCRIPT)],
                        )
                        self._pause_ready = PAUSE_IMAGE
                    else:
                        self._pause_ready = ""
        if self._pause_ready:
            return self._pause_ready, cmd
        first = next(iter(p.containers.values()), None)
        return (first.image if first else "busybox"), cmd

    async def _create_sandbox(self, p: _Pod) -> None:
        api = self._api
        await self._ensure_network()
        image, cmd = await self._pause_image(p)
        spec = p.pod.get("spec", {})
        dns_kw: dict[str, Any] = {}
        if spec.get("dnsPolicy", "ClusterFirst") in ("ClusterFirst", "ClusterFirstWithHostNet"):
            if self.dns_servers:
                dns_kw["dns"] = self.dns_servers
            if self.dns_search:
                dns_kw["dns_search"] = [s.replace("{namespace}", p.namespace) for s in self.dns_search]
            dns_kw["dns_opt"] = ["ndots:5"]
        dns_cfg = spec.get("dnsConfig") or {}
        if dns_cfg.get("nameservers"):
            dns_kw["dns"] = (dns_kw.get("dns") or []) + list(dns_cfg["nameservers"])
        if dns_cfg.get("searches"):
            dns_kw["dns_search"] = (dns_kw.get("dns_search") or []) + list(dns_cfg["searches"])
        if dns_cfg.get("options"):
            opts = [o["name"] + (f":{o['value']}" if o.get("value") is not None else "") for o in dns_cfg["options"]]
            dns_kw["dns_opt"] = [
                o for o in dns_kw.get("dns_opt", []) if o.split(":")[0] not in {x.split(":")[0] for x in opts}
            ] + opts
        hostname = (spec.get("hostname") or p.name)[:63].rstrip("-.") or "pod"
        host_config = api.create_host_config(network_mode=self.network, ipc_mode="shareable", init=False, **dns_kw)
        attempt = p.sandbox_attempt
        cid = await self._create_named(
            self._cname(p, SANDBOX, attempt),
            dict(
                image=image,
                command=cmd,
                hostname=hostname,
                labels=self._labels(p, SANDBOX, attempt),
                host_config=host_config,
                detach=True,
                stop_signal="SIGTERM",
            ),
        )
        p.sandbox_id = cid
        await self._call(api.start, cid)
        info = await self._call(api.inspect_container, cid)
        nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
        p.pod_ip = (nets.get(self.network) or {}).get("IPAddress") or None
        if not p.pod_ip:
            p.pod_ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)

    async def _create_named(self, name: str, kwargs: dict[str, Any]) -> str:
        api = self._api
        try:
            return (await self._call(api.create_container, name=name, **kwargs))["Id"]
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        # name taken: ours (a leftover) -> remove it; not ours -> go without a name
        try:
            other = await self._call(api.inspect_container, name)
            if (other.get("Config", {}).get("Labels") or {}).get(LABEL_INSTANCE) == self.instance:
                await self._call(api.remove_container, other["Id"], force=True)
                return (await self._call(api.create_container, name=name, **kwargs))["Id"]
        except docker.errors.NotFound:
            return (await self._call(api.create_container, name=name, **kwargs))["Id"]
        return (await self._call(api.create_container, **kwargs))["Id"]

    def _set_waiting(self, p: _Pod, c: _Container, reason: str, message: str | None = None) -> None:
        w: dict[str, Any] = {"reason": reason}
        if message:
            w["message"] = message
        c.state = {"waiting": w}
        c.running = c.ready = c.started = False
        self._notify(p)

    def _retry_later(self, p: _Pod, c: _Container, delay: float, fn: Callable[[], None] | None = None) -> None:
        assert self._loop is not None

        def fire() -> None:
            c.timers = [t for t in c.timers if t is not handle]
            if fn is not None:
                fn()
            else:
                c.want_start = True
                self._kick(p)

        handle = self._loop.call_later(max(0.0, delay), fire)
        c.timers.append(handle)

    async def _ensure_image(self, p: _Pod, c: _Container) -> bool:
        api = self._api
        image = c.image
        policy = c.spec.get("imagePullPolicy") or default_pull_policy(image)
        present = None
        try:
            present = await self._call(api.inspect_image, image)
        except docker.errors.ImageNotFound:
            present = None
        if policy == "Never" or (policy == "IfNotPresent" and present is not None):
            if present is None:
                self._set_waiting(
                    p, c, "ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never'
                )
                self._retry_later(p, c, self.resync_seconds)
                return False
            c.image_id = present.get("Id")
            return True
        now = time.monotonic()
        wait = c.pull.active(now, c.pull.updated, self.backoff_max)
        if wait > 0:
            self._set_waiting(p, c, "ImagePullBackOff", f'Back-off pulling image "{image}"')
            self._retry_later(p, c, wait)
            return False
        repo, tag = _split_ref(image)
        try:
            await self._call(api.pull, repo, tag=tag)
            info = await self._call(api.inspect_image, image)
            c.image_id = info.get("Id")
            c.pull = _Backoff()
            return True
        except docker.errors.APIError as exc:
            c.pull.next(time.monotonic(), self.backoff_base, self.backoff_max)
            msg = f'Failed to pull image "{image}": {exc.explanation or exc}'
            self._set_waiting(p, c, "ErrImagePull", msg)
            delay = c.pull.delay or self.backoff_base

            def flip() -> None:
                if "waiting" in c.state and c.state["waiting"].get("reason") == "ErrImagePull":
                    self._set_waiting(p, c, "ImagePullBackOff", f'Back-off pulling image "{image}"')

            self._retry_later(p, c, min(1.0, delay / 2), flip)
            self._retry_later(p, c, delay)
            return False

    def _env(self, p: _Pod, c: _Container) -> dict[str, str]:
        meta = p.pod.get("metadata", {})
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        env: dict[str, str] = {
            "POD_NAME": p.name,
            "POD_NAMESPACE": p.namespace,
            "POD_IP": p.pod_ip or "",
            "CONTAINER_IMAGE": c.image,
        }
        for e in c.spec.get("env") or []:
            name = e["name"]
            if "value" in e or "valueFrom" not in e:
                env[name] = expand_vars(str(e.get("value", "")), env)
                continue
            vf = e["valueFrom"] or {}
            if "fieldRef" in vf:
                path = vf["fieldRef"].get("fieldPath", "")
                m = re.match(r"^metadata\.(labels|annotations)\['(.*)'\]$", path)
                if m:
                    env[name] = str((labels if m.group(1) == "labels" else annotations).get(m.group(2), ""))
                elif path in ("metadata.name", "metadata.namespace", "metadata.uid"):
                    env[name] = {"metadata.name": p.name, "metadata.namespace": p.namespace, "metadata.uid": p.uid}[
                        path
                    ]
                elif path in ("status.podIP", "status.podIPs"):
                    env[name] = p.pod_ip or ""
                elif path == "status.hostIP":
                    env[name] = self._gateway or ""
                elif path == "spec.nodeName":
                    env[name] = p.pod.get("spec", {}).get("nodeName") or os.uname().nodename
                elif path == "spec.serviceAccountName":
                    env[name] = p.pod.get("spec", {}).get("serviceAccountName") or "default"
                else:
                    raise ValueError(f"env {name}: unsupported fieldRef {path!r}")
            elif "resourceFieldRef" in vf:
                ref = vf["resourceFieldRef"]
                res = ref.get("resource", "")
                kind, _, what = res.partition(".")
                qty = ((c.spec.get("resources") or {}).get(kind) or {}).get(what)
                div = parse_quantity(ref.get("divisor", "1"))
                if qty is None:
                    env[name] = "0"
                else:
                    env[name] = str(int(math.ceil(parse_quantity(qty) / div)))
            else:
                raise ValueError(f"env {name}: valueFrom {sorted(vf)} must be resolved before the runtime")
        return env

    def _container_config(self, p: _Pod, c: _Container) -> dict[str, Any]:
        api = self._api
        env = self._env(p, c)
        command = [expand_vars(str(a), env) for a in c.spec.get("command") or []] or None
        args = [expand_vars(str(a), env) for a in c.spec.get("args") or []] or None
        res = c.spec.get("resources") or {}
        limits, requests_ = res.get("limits") or {}, res.get("requests") or {}
        hc: dict[str, Any] = {"network_mode": f"container:{p.sandbox_id}", "ipc_mode": f"container:{p.sandbox_id}"}
        if limits.get("memory") is not None:
            hc["mem_limit"] = int(parse_quantity(limits["memory"]))
        if limits.get("cpu") is not None:
            hc["nano_cpus"] = int(parse_quantity(limits["cpu"]) * 1e9)
        cpu_req = requests_.get("cpu", limits.get("cpu"))
        if cpu_req is not None:
            hc["cpu_shares"] = max(2, int(parse_quantity(cpu_req) * 1024))
        sc = c.spec.get("securityContext") or {}
        user = None
        if sc.get("runAsUser") is not None:
            user = str(sc["runAsUser"]) + (f":{sc['runAsGroup']}" if sc.get("runAsGroup") is not None else "")
        if sc.get("privileged"):
            hc["privileged"] = True
        if sc.get("readOnlyRootFilesystem"):
            hc["read_only"] = True
        return dict(
            image=c.image,
            command=args,
            entrypoint=command,
            environment=env,
            working_dir=c.spec.get("workingDir") or None,
            user=user,
            tty=bool(c.spec.get("tty")),
            stdin_open=bool(c.spec.get("stdin")),
            detach=True,
            labels=self._labels(p, c.name, c.attempt),
            host_config=api.create_host_config(**hc),
        )

    async def _start_container(self, p: _Pod, c: _Container) -> None:
        """Create and start (a new instance of) a container. Called under p.lock."""
        api = self._api
        c.want_start = False
        restarting = c.cid is not None or c.exited_cid is not None
        if not restarting:
            self._set_waiting(p, c, "ContainerCreating")
        if not await self._ensure_image(p, c):
            return
        if restarting:
            c.crash.next(time.monotonic(), self.backoff_base, self.backoff_max)
            c.attempt += 1
        try:
            kwargs = self._container_config(p, c)
        except ValueError as exc:
            if restarting:
                c.attempt -= 1
            self._set_waiting(p, c, "CreateContainerConfigError", str(exc))
            self._retry_later(p, c, self.resync_seconds)
            return
        try:
            cid = await self._create_named(self._cname(p, c.name, c.attempt), kwargs)
        except docker.errors.APIError as exc:
            if restarting:
                c.attempt -= 1
            if exc.status_code == 404 and "No such container" in str(exc):
                p.sandbox_id = None  # the sandbox vanished under us
                c.want_start = True
                self._kick(p)
                return
            self._set_waiting(p, c, "CreateContainerError", str(exc.explanation or exc))
            self._retry_later(p, c, self.resync_seconds)
            return
        old, older = c.cid, c.previous_cid
        c.cid, c.running, c.kill_reason = cid, False, None
        if old is not None:
            c.previous_cid = old
            if older and older != old:
                self._spawn(self._remove_quietly(older))
        try:
            await self._call(api.start, cid)
        except docker.errors.APIError as exc:
            # kubelet: RunContainerError; the container counts as terminated (StartError, 128)
            now = _now_rfc3339()
            c.exited_cid = cid
            self._on_exit(p, c, 128, now, now, reason="StartError", message=str(exc.explanation or exc))
            return
        info = await self._call(api.inspect_container, cid)
        state = info.get("State") or {}
        started_at = _docker_time(state.get("StartedAt")) or _now_rfc3339()
        if not state.get("Running") and c.exited_cid != cid:
            c.exited_cid = cid
            self._on_exit(
                p,
                c,
                int(state.get("ExitCode", 0)),
                started_at,
                _docker_time(state.get("FinishedAt")),
                oom=bool(state.get("OOMKilled")),
            )
            return
        self._mark_running(p, c, started_at)

    def _mark_running(self, p: _Pod, c: _Container, started_at: str) -> None:
        c.running = True
        c.state = {"running": {"startedAt": started_at}}
        c.cancel()
        startup = c.spec.get("startupProbe")
        c.started = startup is None
        c.ready = c.started and c.spec.get("readinessProbe") is None
        cid = c.cid
        assert cid is not None
        if startup is not None:
            c.probes.append(self._spawn(self._probe_loop(p, c, cid, "startup", startup)))
        else:
            self._start_probes(p, c, cid)
        self._notify(p)

    def _start_probes(self, p: _Pod, c: _Container, cid: str) -> None:
        for kind in ("readiness", "liveness"):
            probe = c.spec.get(f"{kind}Probe")
            if probe is not None:
                c.probes.append(self._spawn(self._probe_loop(p, c, cid, kind, probe)))

    def _on_exit(
        self,
        p: _Pod,
        c: _Container,
        code: int,
        started_at: str | None,
        finished_at: str | None,
        oom: bool = False,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """A container instance ended: record it, decide on a restart (kubelet rules)."""
        c.cancel()
        c.running = c.ready = c.started = False
        if reason is None:
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        term: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": finished_at or _now_rfc3339(),
        }
        if message:
            term["message"] = message
        if c.cid:
            term["containerID"] = f"docker://{c.cid}"
        policy = p.restart_policy
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if not restart or p.deleting:
            c.state = {"terminated": term}
            c.done = True
            self._notify(p)
            return
        c.last_state = {"terminated": term}
        now = time.monotonic()
        wait = c.crash.active(now, now, self.backoff_max)
        if wait <= 0:
            c.state = {"terminated": term}
            c.want_start = True
            self._notify(p)
            self._kick(p)
            return
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {_fmt_delay(wait)} restarting failed container={c.name} "
                f"pod={p.name}_{p.namespace}({p.uid})",
            }
        }
        self._notify(p)
        self._retry_later(p, c, wait)

    # ------------------------------------------------------------------ probes

    async def _probe_loop(self, p: _Pod, c: _Container, cid: str, kind: str, probe: dict[str, Any]) -> None:
        initial = float(probe.get("initialDelaySeconds") or 0)
        period = float(probe.get("periodSeconds") or 10)
        timeout = float(probe.get("timeoutSeconds") or 1)
        succ_th = int(probe.get("successThreshold") or 1)
        fail_th = int(probe.get("failureThreshold") or 3)
        if initial:
            await asyncio.sleep(initial)
        succ = fail = early_fails = 0
        ever_ok = False
        while c.cid == cid and c.running and not p.deleting:
            t0 = time.monotonic()
            ok = await self._run_probe(p, c, cid, probe, timeout)
            if c.cid != cid or not c.running or p.deleting:
                return
            succ, fail = (succ + 1, 0) if ok else (0, fail + 1)
            if kind == "readiness":
                if ok and succ >= succ_th and not c.ready:
                    c.ready = True
                    self._notify(p)
                elif not ok and fail >= fail_th and c.ready:
                    c.ready = False
                    self._notify(p)
            elif kind == "startup":
                if ok:
                    c.started = True
                    c.ready = c.spec.get("readinessProbe") is None
                    self._start_probes(p, c, cid)
                    self._notify(p)
                    return
                if fail >= fail_th:
                    await self._kill_for_probe(p, c, cid, "startup", probe)
                    return
            elif kind == "liveness" and fail >= fail_th:
                await self._kill_for_probe(p, c, cid, "liveness", probe)
                return
            ever_ok = ever_ok or ok
            early_fails += 0 if ever_ok else 1
            wait = probes.next_probe_delay(kind, period, ever_ok, early_fails)
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - t0)))

    async def _kill_for_probe(self, p: _Pod, c: _Container, cid: str, kind: str, probe: dict[str, Any]) -> None:
        grace = probe.get("terminationGracePeriodSeconds")
        grace = p.grace if grace is None else float(grace)
        c.kill_reason = kind
        log.info("container %s of pod %s failed its %s probe, restarting", c.name, p.name, kind)
        with contextlib.suppress(Exception):
            await self._stop(cid, grace)
        # the die event (or the resync) records the exit and applies the restart policy

    async def _run_probe(self, p: _Pod, c: _Container, cid: str, probe: dict[str, Any], timeout: float) -> bool:
        try:
            if "exec" in probe:
                argv = list((probe["exec"] or {}).get("command") or [])

                def run() -> int:
                    ex = self._api.exec_create(cid, argv, stdout=True, stderr=True)
                    self._api.exec_start(ex["Id"])
                    return int(self._api.exec_inspect(ex["Id"]).get("ExitCode") or 0)

                return await asyncio.wait_for(self._call(run), timeout) == 0
            if "httpGet" in probe:
                hg = probe["httpGet"]
                host = hg.get("host") or p.pod_ip
                port = self._probe_port(p, c, hg.get("port"))
                ok, _ = await probes.http_get(
                    host,
                    port,
                    hg.get("path") or "/",
                    timeout,
                    (hg.get("scheme") or "HTTP").upper(),
                    hg.get("httpHeaders") or [],
                )
                return ok
            if "tcpSocket" in probe:
                ts = probe["tcpSocket"]
                host = ts.get("host") or p.pod_ip
                port = self._probe_port(p, c, ts.get("port"))
                ok, _ = await probes.tcp_check(host, port, timeout)
                return ok
            return True  # grpc etc.: not supported, counts as success
        except asyncio.CancelledError:
            raise
        except Exception:
            return False

    def _probe_port(self, p: _Pod, c: _Container, port: Any) -> int:
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            return int(port)
        for spec in [c.spec] + [x.spec for x in p.containers.values()]:
            for cp in spec.get("ports") or []:
                if cp.get("name") == port:
                    return int(cp["containerPort"])
        raise ValueError(f"unknown port {port!r}")

    # ------------------------------------------------------------------ deletion

    async def _stop(self, cid: str, grace: float) -> None:
        api = self._api
        try:
            if grace <= 0:
                await self._call(api.kill, cid)
            else:
                await self._call(api.stop, cid, timeout=max(1, int(math.ceil(grace))))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code not in (304, 409):  # already stopped / not running
                raise

    async def _remove_quietly(self, cid: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            try:
                await self._call(self._api.remove_container, cid, force=True, v=True)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # removal already in progress
                    raise

    async def _delete(self, p: _Pod, grace_seconds: float | None) -> None:
        grace = p.grace if grace_seconds is None else float(grace_seconds)
        for c in p.containers.values():
            c.cancel()
        try:
            async with p.lock:
                if self._client is not None:
                    app = [c.cid for c in p.containers.values() if c.cid and c.running]
                    await asyncio.gather(*(self._stop(cid, grace) for cid in app))
                    await self._remove_leftovers(p.uid)
        except Exception as exc:
            if not _engine_down(exc):
                raise
            self._pending_deletes.add(p.uid)  # the next converge removes what is left
        finally:
            self._pods.pop(p.uid, None)
            with contextlib.suppress(Exception):
                self._on_change(p.uid)

    async def _remove_leftovers(self, uid: str) -> None:
        lst = await self._call(
            self._api.containers,
            all=True,
            filters={"label": [f"{LABEL_INSTANCE}={self.instance}", f"{LABEL_UID}={uid}"]},
        )
        # app containers first, the sandbox last
        lst.sort(key=lambda x: (x.get("Labels") or {}).get(LABEL_CONTAINER) == SANDBOX)
        await asyncio.gather(
            *(self._remove_quietly(x["Id"]) for x in lst if (x.get("Labels") or {}).get(LABEL_CONTAINER) != SANDBOX)
        )
        await asyncio.gather(
            *(self._remove_quietly(x["Id"]) for x in lst if (x.get("Labels") or {}).get(LABEL_CONTAINER) == SANDBOX)
        )
        self._pending_deletes.discard(uid)

    # ------------------------------------------------------------------ events

    def _start_events_thread(self) -> None:
        loop = self._loop
        assert loop is not None
        filters = {
            "label": [f"{LABEL_INSTANCE}={self.instance}"],
            "type": ["container"],
            "event": ["die", "destroy", "oom"],
        }

        def main() -> None:
            backoff = 0.5
            since: float | None = time.time() - 1
            while not self._events_stop.is_set():
                client = None
                try:
                    client = self._new_client(timeout=60)
                    stream = client.api.events(since=int(since) if since else None, filters=filters, decode=True)
                    self._events_stream = stream
                    if self._events_stop.is_set():
                        break
                    loop.call_soon_threadsafe(self._events_connected)
                    backoff = 0.5
                    for ev in stream:
                        since = ev.get("time", since)
                        loop.call_soon_threadsafe(self._on_event, ev)
                    if not self._events_stop.is_set():
                        loop.call_soon_threadsafe(self._events_lost, "event stream ended")
                except Exception as exc:  # engine gone, socket closed...
                    if self._events_stop.is_set():
                        break
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._events_lost, str(exc))
                finally:
                    self._events_stream = None
                    if client is not None:
                        with contextlib.suppress(Exception):
                            client.close()
                self._events_stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

        self._events_thread = threading.Thread(target=main, name=f"gitship-docker-events-{self.instance}", daemon=True)
        self._events_thread.start()

    def _events_connected(self) -> None:
        if self._engine_error is not None:
            self._wake.set()  # converge now

    def _events_lost(self, msg: str) -> None:
        if self._closed:
            return
        self._wake.set()  # the resync loop pings and tells "down" from "stream hiccup"

    def _on_event(self, ev: dict[str, Any]) -> None:
        if self._closed:
            return
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        p = self._pods.get(attrs.get(LABEL_UID, ""))
        if p is None or p.deleting:
            return
        cid = ev.get("id") or (ev.get("Actor") or {}).get("ID")
        action = ev.get("Action") or ev.get("status")
        if action == "oom":
            return
        code = attrs.get("exitCode")
        self._spawn(self._handle_exit(p, cid, None if code is None else int(code)))

    async def _handle_exit(self, p: _Pod, cid: str, code: int | None) -> None:
        async with p.lock:
            if p.deleting or p.uid not in self._pods:
                return
            if cid == p.sandbox_id:
                await self._sandbox_lost(p)
                return
            c = next((c for c in p.containers.values() if c.cid == cid), None)
            if c is None or c.exited_cid == cid:
                return
            try:
                info = await self._call(self._api.inspect_container, cid)
                state = info.get("State") or {}
                if state.get("Running"):
                    return
                c.exited_cid = cid
                self._on_exit(
                    p,
                    c,
                    int(state.get("ExitCode", code or 0)),
                    _docker_time(state.get("StartedAt")),
                    _docker_time(state.get("FinishedAt")),
                    oom=bool(state.get("OOMKilled")),
                )
            except docker.errors.NotFound:
                c.exited_cid = cid
                started = c.state.get("running", {}).get("startedAt")
                self._on_exit(
                    p, c, 137 if code is None else code, started, _now_rfc3339(), message="container was removed"
                )
        self._kick(p)

    async def _sandbox_lost(self, p: _Pod) -> None:
        """The sandbox died or vanished: kill the pod's containers, start it again (under p.lock)."""
        log.warning("sandbox of pod %s is gone, recreating the pod", p.name)
        old = p.sandbox_id
        p.sandbox_id, p.pod_ip = None, None
        p.sandbox_attempt += 1
        for c in p.containers.values():
            if c.cid and c.exited_cid != c.cid:
                c.exited_cid = c.cid
                cid = c.cid
                with contextlib.suppress(Exception):
                    await self._call(self._api.remove_container, cid, force=True)
                self._on_exit(
                    p,
                    c,
                    137,
                    c.state.get("running", {}).get("startedAt"),
                    _now_rfc3339(),
                    message="pod sandbox changed",
                )
        if old:
            with contextlib.suppress(Exception):
                await self._remove_quietly(old)
        self._notify(p)

    # ------------------------------------------------------------------ resync / adoption

    async def _resync_loop(self) -> None:
        delay = self.resync_seconds
        while not self._closed:
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._closed:
                return
            was_down = self._engine_error is not None
            try:
                if self._client is None or was_down:
                    await self._connect()
                    if was_down:
                        log.info("docker engine reachable again, converging")
                        self._network_ready = False
                await self._converge()
                delay = self.resync_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _engine_down(exc):
                    self._set_engine_down(exc)
                    delay = min(max(1.0, delay * 2 if was_down else 1.0), 30.0)
                else:
                    log.exception("docker resync failed")
                    delay = self.resync_seconds

    async def _converge(self) -> None:
        """One list call; adopt unknown pods, repair known ones, remove pending deletes."""
        lst = await self._call(self._api.containers, all=True, filters={"label": [f"{LABEL_INSTANCE}={self.instance}"]})
        by_uid: dict[str, list[dict[str, Any]]] = {}
        for x in lst:
            uid = (x.get("Labels") or {}).get(LABEL_UID)
            if uid:
                by_uid.setdefault(uid, []).append(x)
        for uid in list(self._pending_deletes):
            if uid not in self._pods:
                await self._remove_leftovers(uid)
                by_uid.pop(uid, None)
        for uid, conts in by_uid.items():
            if uid in self._pods:
                continue
            if not self._adopted:
                await self._adopt(uid, conts)
            else:
                # ours but unknown: the rest of a deletion (create_pod registers before creating)
                await self._remove_leftovers(uid)
        for uid, p in list(self._pods.items()):
            if p.deleting or p.lock.locked():
                continue  # being worked on (a pull can take minutes): next round
            await self._check_pod(p, by_uid.get(uid, []))
        self._adopted = True

    async def _check_pod(self, p: _Pod, conts: list[dict[str, Any]]) -> None:
        by_id = {x["Id"]: x for x in conts}
        async with p.lock:
            if p.deleting:
                return
            if p.sandbox_id is not None and (by_id.get(p.sandbox_id) or {}).get("State") != "running":
                await self._sandbox_lost(p)
            else:
                for c in p.containers.values():
                    if (
                        c.cid
                        and c.running
                        and c.exited_cid != c.cid
                        and (by_id.get(c.cid) or {}).get("State") != "running"
                    ):
                        self._spawn(self._handle_exit(p, c.cid, None))
        if p.sandbox_id is None or any(c.want_start and not c.timers for c in p.containers.values()):
            self._kick(p)

    async def _adopt(self, uid: str, conts: list[dict[str, Any]]) -> None:
        api = self._api

        def attempt(x: dict[str, Any]) -> int:
            with contextlib.suppress(ValueError):
                return int((x.get("Labels") or {}).get(LABEL_ATTEMPT, "0"))
            return 0

        spec_json = None
        for x in sorted(conts, key=lambda x: (x.get("Labels") or {}).get(LABEL_CONTAINER) != SANDBOX):
            spec_json = (x.get("Labels") or {}).get(LABEL_SPEC)
            if spec_json:
                break
        try:
            pod = json.loads(spec_json or "")
        except ValueError:
            log.warning("containers of pod %s carry no readable spec; removing them", uid)
            await self._remove_leftovers(uid)
            return
        p = self._new_pod(pod)
        sandboxes = sorted(
            (x for x in conts if (x.get("Labels") or {}).get(LABEL_CONTAINER) == SANDBOX),
            key=lambda x: (x.get("State") == "running", attempt(x)),
            reverse=True,
        )
        sandbox = sandboxes[0] if sandboxes and sandboxes[0].get("State") == "running" else None
        for x in sandboxes:
            if x is not sandbox:
                await self._remove_quietly(x["Id"])
        if sandboxes:
            p.sandbox_attempt = attempt(sandboxes[0]) + (0 if sandbox else 1)
        if sandbox is not None:
            info = await self._call(api.inspect_container, sandbox["Id"])
            nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
            p.sandbox_id = sandbox["Id"]
            p.pod_ip = (nets.get(self.network) or {}).get("IPAddress") or next(
                (n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None
            )
            p.start_time = _docker_time((info.get("State") or {}).get("StartedAt")) or p.start_time
            for typ in p.conditions:
                st, _, reason = p.conditions[typ]
                p.conditions[typ] = (st, p.start_time, reason)
        self._pods[uid] = p
        for c in p.containers.values():
            mine = sorted(
                (x for x in conts if (x.get("Labels") or {}).get(LABEL_CONTAINER) == c.name), key=attempt, reverse=True
            )
            for x in mine[2:]:
                await self._remove_quietly(x["Id"])
            if sandbox is None:
                for x in mine:
                    await self._remove_quietly(x["Id"])
                if mine:
                    c.attempt = attempt(mine[0])
                    c.exited_cid = "gone"  # recreating it counts as a restart
                c.want_start = True
                continue
            if not mine:
                c.want_start = True
                continue
            cur = mine[0]
            c.attempt = attempt(cur)
            c.cid = cur["Id"]
            if len(mine) > 1:
                c.previous_cid = mine[1]["Id"]
                with contextlib.suppress(Exception):
                    prev = (await self._call(api.inspect_container, mine[1]["Id"])).get("State") or {}
                    code = int(prev.get("ExitCode", 0))
                    c.last_state = {
                        "terminated": {
                            "exitCode": code,
                            "reason": "OOMKilled" if prev.get("OOMKilled") else ("Completed" if code == 0 else "Error"),
                            "startedAt": _docker_time(prev.get("StartedAt")),
                            "finishedAt": _docker_time(prev.get("FinishedAt")),
                            "containerID": f"docker://{mine[1]['Id']}",
                        }
                    }
            info = await self._call(api.inspect_container, cur["Id"])
            state = info.get("State") or {}
            c.image_id = info.get("Image")
            c.want_start = False
            if state.get("Running"):
                self._mark_running(p, c, _docker_time(state.get("StartedAt")) or _now_rfc3339())
            else:
                c.exited_cid = cur["Id"]
                self._on_exit(
                    p,
                    c,
                    int(state.get("ExitCode", 0)),
                    _docker_time(state.get("StartedAt")),
                    _docker_time(state.get("FinishedAt")),
                    oom=bool(state.get("OOMKilled")),
                )
        log.info("adopted pod %s/%s (%s)", p.namespace, p.name, uid)
        self._notify(p)
