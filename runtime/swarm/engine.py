"""The Swarm runtime's engine side: the manager's client, the overlay and the gateway (gateway.py),
Service addresses on the host, node ports on every node (nodeports.py), the Swarm's nodes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.base import OnChange, RuntimeError_

from . import gateway, nodeports
from .mapping import node_object, parse_node_apis
from .pods import SPod

log = structlog.get_logger("runtime.swarm")

SWARM_POD_CIDR = "10.245.0.0/16"


class SwarmEngine:
    """Talks to the Swarm manager for the pod layer (runtime.py)."""

    name = "swarm"

    def __init__(
        self,
        state_dir: str,
        *,
        docker_host: str | None = None,
        pod_cidr: str = SWARM_POD_CIDR,
        service_cidr: str = "10.97.0.0/16",
        dns: tuple[str, int] | None = None,
        dns_search: Sequence[str] = (),
        poll_seconds: float = 0.5,
        restart_delay: float = 1.0,
        instance: str | None = None,
        node_apis: Sequence[str] = (),
    ) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.instance = instance or hashlib.sha256(self.state_dir.encode()).hexdigest()[:16]
        self.docker_host = docker_host
        self.pod_cidr, self.service_cidr, self.dns, self.dns_search = pod_cidr, service_cidr, dns, list(dns_search)
        self.poll_seconds, self.restart_delay = poll_seconds, restart_delay
        self.node_urls = parse_node_apis(node_apis)  # node hostname or id -> its Engine API (nodeexec.py)
        self.network = f"gitship-{self.instance[:8]}"
        self.network_id = ""
        self.gateway_ip: str | None = None
        self.gateway_error: str | None = None
        self.config_objects: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        self._pods: dict[str, SPod] = {}
        self._nodes: dict[str, dict[str, Any]] = {}
        self._on_change: OnChange = lambda uid: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="gitship-swarm")
        self._client: docker.DockerClient | None = None
        self._version: dict[str, Any] = {}
        self._engine_error: str | None = "not connected yet"
        self._poller: asyncio.Task[None] | None = None
        self._exposed: set[str] = set()
        self._gateway_pid: tuple[int, str] | None = None
        self._polls = 0
        self._node_ports: set[nodeports.NodePort] | None = None
        self._closed = False

    # ------------------------------------------------------------------ engine
    async def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._pool, functools.partial(fn, *args, **kw))

    @property
    def _api(self) -> Any:
        if self._client is None:
            raise RuntimeError_(f"swarm manager unreachable: {self._engine_error}")
        return self._client.api

    def _new_client(self) -> docker.DockerClient:
        kw: dict[str, Any] = {"version": "auto", "timeout": 60, "max_pool_size": 16}
        if self.docker_host:
            return docker.DockerClient(base_url=self.docker_host, **kw)
        return docker.DockerClient.from_env(**kw)

    async def _connect(self) -> None:
        if self._client is None:
            self._client = await self._call(self._new_client)
        self._version = await self._call(self._client.version)
        info = await self._call(self._api.info)
        if ((info.get("Swarm") or {}).get("ControlAvailable")) is not True:
            raise RuntimeError_(
                "the Docker Engine is not a Swarm manager (docker swarm init / DOCKER_HOST of a manager)"
            )
        self.network_id = await self._call(
            gateway.ensure_network, self._api, self.network, self.pod_cidr, self.service_cidr, self.instance
        )
        self._engine_error = None
        await self._join_gateway()

    async def _join_gateway(self) -> None:
        """The host on the overlay (gateway.py); without it Services and probes cannot reach pods."""
        try:
            sid = await self._call(gateway.ensure_gateway, self._api, self.instance, self.network, self.service_cidr)
            deadline = time.monotonic() + 60
            while (local := await self._call(gateway.local_gateway, self._api, sid, self.network_id)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError_("the gateway task on this node did not start (is gitship/pause:1 there?)")
                await asyncio.sleep(0.3)
            cid, pid, ip = local
            if not gateway.local_process(pid, cid):
                raise RuntimeError_("the manager's engine is not on this host: no gateway to the overlay")
            if (pid, ip) != self._gateway_pid:
                await gateway.join_host(self.instance, pid, ip, self.pod_cidr, self.service_cidr, self.dns)
                self._gateway_pid = (pid, ip)
                log.info("swarm_gateway_joined", gateway=ip, pod_cidr=self.pod_cidr)
            self.gateway_ip, self.gateway_error = ip, None
        except (RuntimeError_, docker.errors.APIError, OSError) as exc:
            self.gateway_error = str(exc)
            log.warning("swarm_gateway_failed", error=str(exc))

    async def expose_service_ip(self, ip: str) -> None:
        """A ClusterIP (or the DNS address) on the host's ``lo``: the gateway routes the Service range
        to the host, so pods reach the proxy and the DNS there."""
        if ip in self._exposed:
            return
        await gateway.sh(
            "ip",
            "addr",
            "add",
            f"{ip}/32",
            "dev",
            "lo",
            "label",
            "lo:gitship",
            ok_if=("File exists", "already assigned"),
        )
        self._exposed.add(ip)

    def info(self) -> dict[str, Any]:
        base: dict[str, Any] = {"name": self.name, "instance": self.instance, "network": self.network}
        base["nodes"] = [
            {"name": n["metadata"]["name"], "ready": n["status"]["conditions"][0]["status"]}
            for n in self.node_objects()
        ]
        base["gateway"] = self.gateway_ip or f"none: {self.gateway_error}"
        if self._engine_error is not None:
            return {**base, "engine": "unreachable", "error": self._engine_error}
        return {
            **base,
            "engine": "up",
            "engineVersion": self._version.get("Version"),
            "apiVersion": self._version.get("ApiVersion"),
        }

    def wrap_plane(self, plane: Any) -> Any:
        """The daemon's data plane, also keeping a node-port service per nodePort (nodeports.py)."""
        return nodeports.NodePortPlane(plane, self.set_node_ports)

    async def set_node_ports(self, wanted: set[nodeports.NodePort]) -> None:
        if wanted == self._node_ports or self._client is None:
            return
        try:
            await self._call(nodeports.sync_node_ports, self._api, self.instance, self.network_id, wanted)
            self._node_ports = set(wanted)
        except Exception as exc:  # the next pass tries again
            log.warning("swarm_node_ports_failed", error=str(exc))

    def node_objects(self) -> list[dict[str, Any]]:
        """The Swarm's nodes as Kubernetes Nodes (DaemonSets, ``get nodes``), as last polled."""
        return [
            node_object(n)
            for n in sorted(self._nodes.values(), key=lambda n: str((n.get("Description") or {}).get("Hostname")))
        ]
