"""The Swarm runtime: each pod is one Swarm service with one replica; Swarm places it.

See docs/swarm.md for the design. In short: gitship's controllers decide which pods exist and
roll them out exactly as on the other runtimes; the runtime makes a service per pod (labels
``gitship.instance`` and the pod as JSON, so a restarted gitship adopts them and two gitships
never touch each other's), on an attachable overlay network, with endpoint mode dnsrr (no
IPVS needed) and the pod's restartPolicy as Swarm's restart condition. Status comes from the
service's tasks, polled from the manager (``poll_seconds``); a task on a node that is not
Ready is not Ready. Readiness probes (httpGet, tcpSocket) run from gitship through the gateway
(gateway.py), which also carries gitship's Service proxy and DNS to the pods.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.base import ExecResult, OnChange, Pod, PodStatus, Runtime, RuntimeError_
from runtime.docker.common import engine_down
from runtime.kernel import rfc3339
from runtime.probes import ProbeWorker, make_check

from . import gateway
from .mapping import LABEL_INSTANCE, LABEL_ROLE, LABEL_SPEC, LABEL_UID, node_object, service_name
from .pods import SPod, refresh, service_spec, status

log = structlog.get_logger("runtime.swarm")

SWARM_POD_CIDR = "10.245.0.0/16"


class SwarmRuntime(Runtime):
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
    ) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.instance = instance or hashlib.sha256(self.state_dir.encode()).hexdigest()[:16]
        self.docker_host = docker_host
        self.pod_cidr, self.service_cidr, self.dns, self.dns_search = pod_cidr, service_cidr, dns, list(dns_search)
        self.poll_seconds, self.restart_delay = poll_seconds, restart_delay
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

    # ------------------------------------------------------------------ Runtime
    async def start(self, on_change: OnChange) -> dict[str, Pod]:
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        try:
            await self._connect()
            await self._adopt()
            await self._poll_once()
        except Exception as exc:
            if not engine_down(exc):
                raise
            self._engine_error = str(exc)
            log.warning("swarm_manager_unreachable", error=str(exc))
        self._poller = self._loop.create_task(self._poll_loop())
        return {uid: p.pod for uid, p in self._pods.items()}

    async def _adopt(self) -> None:
        services = await self._call(
            self._api.services, filters={"label": [f"{LABEL_INSTANCE}={self.instance}", f"{LABEL_ROLE}=pod"]}
        )
        for s in sorted(services, key=lambda s: str(s.get("CreatedAt"))):
            lab = (s.get("Spec") or {}).get("Labels") or {}
            uid = lab.get(LABEL_UID, "")
            try:
                pod = json.loads(lab.get(LABEL_SPEC) or "")
            except ValueError:
                pod = None
            if uid in self._pods or pod is None:  # a double, or unreadable: not ours to keep
                with contextlib.suppress(docker.errors.NotFound):
                    await self._call(self._api.remove_service, s["ID"])
                continue
            p = self._new(pod)
            p.service_id, p.service_name = str(s["ID"]), str((s.get("Spec") or {}).get("Name"))
            p.start_time = str(s.get("CreatedAt") or p.start_time)[:19] + "Z"
            self._pods[uid] = p
            log.info("pod_adopted", namespace=p.namespace, pod=p.name, uid=uid, service=p.service_name)

    def _new(self, pod: Pod) -> SPod:
        meta = pod.get("metadata") or {}
        pod = {k: v for k, v in pod.items() if k != "status"}
        uid, name, ns = str(meta["uid"]), str(meta.get("name", "")), str(meta.get("namespace", "default"))
        return SPod(pod, uid, name, ns, rfc3339(time.time()), service_name=service_name(self.instance, ns, name, uid))

    async def create_pod(self, pod: Pod) -> None:
        uid = str((pod.get("metadata") or {})["uid"])
        if uid in self._pods:
            return
        p = self._pods[uid] = self._new(pod)
        await self._create_service(p)
        self._notify(p)

    async def _create_service(self, p: SPod) -> None:
        nameserver = self.gateway_ip if self.dns else None
        try:
            kw = service_spec(
                self.instance, p, self.network_id, self.config_objects, nameserver, self.dns_search, self.restart_delay
            )
        except ValueError as exc:
            p.config_error = str(exc)
            return
        p.config_error = None
        try:
            p.service_id = str((await self._call(self._api.create_service, **kw))["ID"])
            p.error = None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # a service of this pod exists (its name has the uid): take it
                info = await self._call(self._api.inspect_service, p.service_name)
                if ((info.get("Spec") or {}).get("Labels") or {}).get(LABEL_INSTANCE) == self.instance:
                    p.service_id = str(info["ID"])
                    return
            p.error = f"creating service {p.service_name}: {exc.explanation or exc}"
        except Exception as exc:
            if not engine_down(exc):
                raise
            p.error = f"swarm manager unreachable: {exc}"

    async def delete_pod(self, uid: str, grace_seconds: float | None = None) -> None:
        p = self._pods.get(uid)
        if p is None:
            return
        if p.delete_task is None:
            p.deleting = True
            p.stop_probe()
            self._notify(p)
            assert self._loop is not None
            p.delete_task = self._loop.create_task(self._delete(p, grace_seconds))
        await asyncio.shield(p.delete_task)

    async def _delete(self, p: SPod, grace_seconds: float | None) -> None:
        """Remove the service (Swarm stops its task: SIGTERM, the grace period, SIGKILL) and wait until
        its tasks are gone."""
        try:
            if p.service_id is not None:
                if grace_seconds is not None and grace_seconds < p.grace:
                    with contextlib.suppress(Exception):  # a shorter grace: the task's stop period first
                        await self._update_grace(p.service_id, grace_seconds)
                with contextlib.suppress(docker.errors.NotFound):
                    await self._call(self._api.remove_service, p.service_id)
                deadline = time.monotonic() + (p.grace if grace_seconds is None else grace_seconds) + 15
                while time.monotonic() < deadline:
                    tasks = await self._call(self._api.tasks, filters={"service": p.service_id})
                    if not tasks:
                        break
                    await asyncio.sleep(0.2)
        finally:
            self._pods.pop(p.uid, None)
            with contextlib.suppress(Exception):
                self._on_change(p.uid)

    async def _update_grace(self, service_id: str, grace: float) -> None:
        info = await self._call(self._api.inspect_service, service_id)
        spec = info["Spec"]
        spec["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] = int(max(grace, 0) * 1e9)
        await self._call(
            self._api.update_service,
            service_id,
            info["Version"]["Index"],
            task_template=spec["TaskTemplate"],
            name=spec["Name"],
            labels=spec.get("Labels"),
            mode=spec.get("Mode"),
            endpoint_spec=spec.get("EndpointSpec"),
            fetch_current_spec=False,
        )

    def status(self, uid: str) -> PodStatus | None:
        p = self._pods.get(uid)
        return None if p is None else status(p, rfc3339(time.time()))

    def pods(self) -> dict[str, Pod]:
        return {uid: p.pod for uid, p in self._pods.items()}

    def log_path(self, uid: str, container: str) -> str | None:
        return None

    async def logs(
        self, uid: str, container: str, *, tail: int | None = None, previous: bool = False, timestamps: bool = False
    ) -> bytes:
        p = self._pods.get(uid)
        if p is None or p.service_id is None:
            raise RuntimeError_(f"unknown pod {uid}")

        def read() -> bytes:
            out = self._api.service_logs(
                p.service_id, stdout=True, stderr=True, timestamps=timestamps, tail="all" if tail is None else tail
            )
            return b"".join(out) if not isinstance(out, bytes) else out

        data: bytes = await self._call(read)
        return data

    async def expose_service_ip(self, ip: str) -> None:
        """A ClusterIP (or the DNS address) on the host's ``lo``: the gateway routes the Service range
        to the host, so pods reach the proxy and the DNS there."""
        if ip in self._exposed:
            return
        await gateway._sh(
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

    def set_image_rules(self, rules: Sequence[Mapping[str, Any]], repo_dir: str | None) -> None:
        """Nothing to do: images are real on Swarm."""

    def set_config_objects(self, objects: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> None:
        self.config_objects = dict(objects)

    async def provision_volume(self, pv_name: str, claim: Mapping[str, Any]) -> dict[str, Any]:
        raise RuntimeError_("the swarm runtime provisions no volumes (a node's local volume does not follow a pod)")

    async def delete_volume(self, pv: Mapping[str, Any]) -> None:
        raise RuntimeError_("the swarm runtime provisions no volumes")

    async def exec(self, uid: str, container: str, argv: list[str], timeout: float = 30.0) -> ExecResult:
        raise RuntimeError_("exec is not available on the swarm runtime (the manager cannot exec on other nodes)")

    async def close(self, stop_pods: bool) -> None:
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
        if stop_pods and self._client is not None:
            await asyncio.gather(*(self.delete_pod(uid) for uid in list(self._pods)), return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._call(gateway.remove_gateway, self._api, self.instance)
            with contextlib.suppress(Exception):
                await self._call(self._api.remove_network, self.network_id)
            for ip in list(self._exposed):
                with contextlib.suppress(RuntimeError_):
                    await gateway._sh("ip", "addr", "del", f"{ip}/32", "dev", "lo", ok_if=("Cannot assign",))
        for p in self._pods.values():
            p.stop_probe()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

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

    def node_objects(self) -> list[dict[str, Any]]:
        """The Swarm's nodes as Kubernetes Nodes (DaemonSets, ``get nodes``), as last polled."""
        return [
            node_object(n)
            for n in sorted(self._nodes.values(), key=lambda n: str((n.get("Description") or {}).get("Hostname")))
        ]

    # ------------------------------------------------------------------ polling
    async def _poll_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.poll_seconds)
            try:
                if self._engine_error is not None:
                    await self._connect()
                    log.info("swarm_manager_reachable")
                await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if engine_down(exc) or isinstance(exc, RuntimeError_):
                    if self._engine_error is None:
                        log.warning("swarm_manager_unreachable", error=str(exc))
                    self._engine_error = str(exc)
                else:
                    log.exception("swarm_poll_failed")

    async def _poll_once(self) -> None:
        self._polls += 1
        if self._polls % 10 == 0 or self.gateway_error is not None:  # its task restarted: a new pid to join
            await self._join_gateway()
        nodes = await self._call(self._api.nodes)
        self._nodes = {str(n["ID"]): n for n in nodes}
        ids = [p.service_id for p in self._pods.values() if p.service_id]
        tasks = await self._call(self._api.tasks, filters={"service": ids}) if ids else []
        by_service: dict[str, list[dict[str, Any]]] = {}
        for t in tasks:
            by_service.setdefault(str(t.get("ServiceID")), []).append(t)
        for p in list(self._pods.values()):
            if p.deleting:
                continue
            if p.service_id is None:
                await self._create_service(p)
            else:
                refresh(p, by_service.get(p.service_id, []), self._nodes, self.network_id)
                self._probe(p)
            self._notify(p)

    def _probe(self, p: SPod) -> None:
        probe = p.container.get("readinessProbe")
        if not probe or p.probe is not None or "running" not in p.state or not p.pod_ip:
            return
        tid = p.task_id

        async def no_exec(argv: list[str], timeout: float) -> tuple[bool, str]:
            return True, "exec probes do not run on the swarm runtime"

        def on_result(ok: bool, msg: str) -> None:
            if p.task_id == tid and not p.deleting:
                p.probe_ready = ok
                self._notify(p)

        started = time.time()
        w = ProbeWorker(
            "readiness", probe, make_check(probe, p.container, p.pod_ip, no_exec), on_result, started, False
        )
        p.probe = w
        w.start()

    def _notify(self, p: SPod) -> None:
        if p.uid not in self._pods:
            return
        snap = json.dumps(status(p, rfc3339(time.time())), sort_keys=True, default=str)
        if snap != p.last_status:
            p.last_status = snap
            try:
                self._on_change(p.uid)
            except Exception:
                log.exception("on_change_failed", uid=p.uid)
