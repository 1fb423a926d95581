"""The Docker runtime's engine plumbing: the client, blocking SDK calls in a thread pool, the network,
the sandbox image, naming, stopping and removing containers, and service addresses on the host."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import ipaddress
import json
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.base import OnChange, RuntimeError_

from .mounts import remove_volumes
from .common import (
    BUSYBOX,
    EXPOSE_DEV,
    EXPOSE_LABEL,
    LABEL_CONTAINER,
    LABEL_INSTANCE,
    LABEL_UID,
    PAUSE_IMAGE,
    RESYNC_SECONDS,
    SANDBOX,
    SANDBOX_SCRIPT,
    DPod,
    EngineUnreachable,
    busybox_rootfs_tar,
    engine_down,
)

log = structlog.get_logger("runtime.docker")


class DockerEngine:
    """Talks to the Docker Engine for the layers above (pods.py, containers.py, supervision.py, runtime.py)."""

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
        allow_host_paths: Sequence[str] = (),
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
        self.allow_host_paths = tuple(allow_host_paths)  # --allow-host-path: where hostPath volumes may be
        self._pods: dict[str, DPod] = {}
        self._on_change: OnChange = lambda uid: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=24, thread_name_prefix="gitship-docker")
        self._client: docker.DockerClient | None = None
        self._version: dict[str, Any] = {}
        self._engine_error: str | None = "not connected yet"
        self._adopted = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resync_task: asyncio.Task[Any] | None = None
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
        # every live ConfigMap and Secret (Runtime.set_config_objects): env at start, volumes
        self.config_objects: dict[tuple[str, str, str], Mapping[str, Any]] = {}

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
            if engine_down(exc):
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
            log.warning("docker_engine_unreachable", error=msg)
            self._wake.set()
        self._engine_error = msg

    async def _connect(self) -> None:
        if self._client is None:
            self._client = await self._call(self._new_client)
        self._version = await self._call(self._client.version)
        self._engine_error = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            if not engine_down(exc):
                log.error("docker_task_failed", error=repr(exc), exc_info=exc)

    # ------------------------------------------------------------------ service addresses

    async def expose_service_ip(self, ip: str) -> None:
        """Make a ClusterIP (or the DNS address) reachable from containers: ``ip/32`` on ``lo``.

        Idempotent (an address already there is fine). Raises RuntimeError_ when the address
        cannot be added (no CAP_NET_ADMIN, no ``ip``); the caller logs it and goes on.
        """
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
            bridge = (info.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{info['Id'][:12]}"
            _route_localnet(bridge)
        self._network_ready = True

    async def _pause_image(self, p: DPod) -> tuple[str, list[str] | None]:
        """(image, command) of the sandbox: ``sandbox_image``, else gitship/pause:1 (built from the host's
        busybox), else the pod's first image (it must have ``sh`` and ``sleep``)."""
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

    async def _create(self, **kwargs: Any) -> str:
        return str((await self._call(self._api.create_container, **kwargs))["Id"])

    async def _create_named(self, name: str, kwargs: dict[str, Any]) -> str:
        api = self._api
        try:
            return await self._create(name=name, **kwargs)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        # name taken: ours (a leftover) -> remove it; not ours -> go without a name
        try:
            other = await self._call(api.inspect_container, name)
            if (other.get("Config", {}).get("Labels") or {}).get(LABEL_INSTANCE) == self.instance:
                await self._call(api.remove_container, other["Id"], force=True)
                return await self._create(name=name, **kwargs)
        except docker.errors.NotFound:
            return await self._create(name=name, **kwargs)
        return await self._create(**kwargs)

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
        await self._call(remove_volumes, self._api, self.state_dir, self.instance, uid)
        self._pending_deletes.discard(uid)


def _route_localnet(bridge: str) -> None:
    """Let the kernel data plane send a packet from 127.0.0.1 (a nodePort asked on the host's
    loopback, DNATed by nftables) out to the containers of this bridge; without root, or on a
    host without the device, nothing to do (the userspace proxy needs none of it)."""
    path = f"/proc/sys/net/ipv4/conf/{os.path.basename(bridge)}/route_localnet"
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write("1")
    except OSError:
        pass
