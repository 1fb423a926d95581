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
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.base import OnChange, Pod, PodStatus, Runtime, RuntimeError_
from runtime.docker.common import engine_down
from runtime.kernel import rfc3339

from . import gateway, nodeports
from .mapping import LABEL_INSTANCE, LABEL_ROLE, LABEL_SPEC, LABEL_UID, service_name
from .pods import SPod, refresh, status
from .nodeexec import SwarmNodes
from .volumes import prune_files

log = structlog.get_logger("runtime.swarm")

_MAY_RUN = {"new", "pending", "assigned", "accepted", "ready", "preparing", "starting", "running"}


class SwarmRuntime(SwarmNodes, Runtime):
    """Pods as Swarm services (the module docstring)."""

    name = "swarm"

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
        try:
            kw = await self._service_kwargs(p, self._nameserver())
        except ValueError as exc:
            p.config_error = str(exc)
            return
        except docker.errors.APIError as exc:  # its configs or secrets
            p.error = f"configs of {p.service_name}: {exc.explanation or exc}"
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
        tasks: list[dict[str, Any]] | None = None
        try:
            if p.service_id is not None:
                grace = await self._pre_stop(p, p.grace if grace_seconds is None else grace_seconds)
                target = await self._kill_target(p) if grace < p.grace else None
                if grace < p.grace and target is None:
                    with contextlib.suppress(Exception):  # no node engine: the task's stop period first
                        await self._update_grace(p.service_id, grace)
                with contextlib.suppress(docker.errors.NotFound):
                    tasks = await self._call(self._api.tasks, filters={"service": p.service_id})
                with contextlib.suppress(docker.errors.NotFound):
                    await self._call(self._api.remove_service, p.service_id)
                t0 = time.monotonic()
                left = [str(t["ID"]) for t in tasks or []]
                while left and time.monotonic() < t0 + grace + 15:  # until their containers are gone
                    if target is not None and time.monotonic() - t0 >= grace:  # a shorter grace: SIGKILL now
                        with contextlib.suppress(Exception):
                            await self._call(target[0].kill, target[1])
                        target = None
                    left = [t for t in left if await self._task_exists(t)]
                    await asyncio.sleep(0.2)
                with contextlib.suppress(Exception):
                    await self._call(prune_files, self._api, self.instance)
        finally:
            self._pods.pop(p.uid, None)
            with contextlib.suppress(Exception):
                self._on_change(p.uid)

    async def _kill_target(self, p: SPod) -> tuple[Any, str] | None:
        """(node engine, container id) of the pod's running task, to SIGKILL it after a shorter grace."""
        try:
            return await self._container(p.uid)
        except (RuntimeError_, docker.errors.APIError):
            return None

    async def _tasks(self, service_ids: list[str]) -> list[dict[str, Any]]:
        """The tasks of these services (one missing makes the Engine refuse the whole list: then one by one)."""
        if not service_ids:
            return []
        try:
            found: list[dict[str, Any]] = await self._call(self._api.tasks, filters={"service": service_ids})
            return found
        except docker.errors.NotFound:
            out: list[dict[str, Any]] = []
            for sid in service_ids:
                with contextlib.suppress(docker.errors.NotFound):
                    out += await self._call(self._api.tasks, filters={"service": sid})
            return out

    async def _task_exists(self, task_id: str) -> bool:
        """The task is still there and its container may run (a stopped one counts as gone)."""
        try:
            task = await self._call(self._api.inspect_task, task_id)
        except docker.errors.NotFound:
            return False
        return str((task.get("Status") or {}).get("State")) in _MAY_RUN

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

    def set_image_rules(self, rules: Sequence[Mapping[str, Any]], repo_dir: str | None) -> None:
        """Nothing to do: images are real on Swarm."""

    async def close(self, stop_pods: bool) -> None:
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
        if stop_pods and self._client is not None:
            await asyncio.gather(*(self.delete_pod(uid) for uid in list(self._pods)), return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._call(prune_files, self._api, self.instance)
            with contextlib.suppress(Exception):
                await self._call(gateway.remove_gateway, self._api, self.instance)
            with contextlib.suppress(Exception):
                await self._call(nodeports.sync_node_ports, self._api, self.instance, self.network_id, set())
            with contextlib.suppress(Exception):
                await self._call(self._api.remove_network, self.network_id)
            for ip in list(self._exposed):
                with contextlib.suppress(RuntimeError_):
                    await gateway.sh("ip", "addr", "del", f"{ip}/32", "dev", "lo", ok_if=("Cannot assign",))
        for p in self._pods.values():
            p.stop_probe()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        ids = [p.service_id for p in self._pods.values() if p.service_id and not p.deleting]
        tasks = await self._tasks(ids)
        by_service: dict[str, list[dict[str, Any]]] = {}
        for t in tasks:
            by_service.setdefault(str(t.get("ServiceID")), []).append(t)
        for p in list(self._pods.values()):
            if p.deleting:
                continue
            if p.service_id is None:
                await self._create_service(p)
            else:
                cur = refresh(p, by_service.get(p.service_id, []), self._nodes, self.network_id)
                if p.claims:
                    await self._pin(p, cur)
                self._post_start(p)
                self._probe(p)
            self._notify(p)
