"""What needs a pod's container itself on the Swarm runtime: exec (``gitship exec``, ``kubectl exec``,
``-it``), exec probes, lifecycle hooks; and ``logs -f`` (Swarm's service log stream, via the manager).

A Swarm manager runs no command in a task's container: only the engine of the task's node can.
gitship finds the task's node and container id from the manager (``inspect_task``) and talks to
that node's Engine API, given per node by the operator (``--swarm-node-api NODE=URL``, NODE a
hostname or node id; ``tcp://`` URLs use the Docker CLI's TLS variables ``DOCKER_TLS_VERIFY`` and
``DOCKER_CERT_PATH``). The manager's own node needs none (its engine is the one gitship talks to).
Without an API for a node, exec in its pods says so, exec probes fail and hooks fail (with the
kubelet's messages, runtime/kernel/hooks.py).

Hooks follow the kubelet (runtime/kernel/hooks.py): postStart runs when Swarm reports a new task
running; the container shows ``ContainerCreating`` until it returns and a failure kills the
container (Swarm then restarts the task as the restart policy says). preStop runs before the
service is removed, with the whole grace period; the stop gets what is left (at least 2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.utils  # type: ignore[import-untyped]
import structlog

from runtime.base import ExecResult, ExecSession, RuntimeError_
from runtime.docker import execstream
from runtime.hooks import run_handler
from runtime.probes import ProbeWorker, make_check
from runtime.kernel.hooks import FAILED_POST_START, FAILED_PRE_STOP, POST_START, POST_START_ERROR, PRE_STOP
from runtime.kernel.hooks import grace_after_pre_stop
from runtime.kernel.hooks import hook, pod_ref

from .pods import SPod
from .volumes import SwarmVolumes

log = structlog.get_logger("runtime.swarm")

HOOK_EXEC_TIMEOUT = 3600.0


def _client(url: str) -> Any:
    kw = docker.utils.kwargs_from_env() if url.startswith(("tcp://", "https://")) else {}
    kw.pop("base_url", None)
    return docker.APIClient(base_url=url, version="auto", timeout=60, **kw)


class SwarmNodes(SwarmVolumes):
    """The node engines of the Swarm runtime (the module docstring)."""

    _manager_node: str | None = None
    _node_clients: dict[str, Any] | None = None

    async def node_api(self, node_id: str) -> Any:
        if self._manager_node is None:
            info = await self._call(self._api.info)
            self._manager_node = str((info.get("Swarm") or {}).get("NodeID") or "")
        host = str(((self._nodes.get(node_id) or {}).get("Description") or {}).get("Hostname") or "")
        url = self.node_urls.get(host) or self.node_urls.get(node_id)
        if url is None:
            return self._api if node_id == self._manager_node else None
        clients = self._node_clients = self._node_clients or {}
        if url not in clients:
            clients[url] = await self._call(_client, url)
        return clients[url]

    async def _container(self, uid: str, container: str | None = None) -> tuple[Any, str]:
        """(the node's Engine API, the container id) of the pod's running task."""
        p = self._pods.get(uid)
        if p is None or p.task_id is None:
            raise RuntimeError_(f"pod {uid} has no task yet")
        if container and container != p.container.get("name"):
            raise RuntimeError_(f"container {container} is not valid for pod {p.name}")
        task = await self._call(self._api.inspect_task, p.task_id)
        st = task.get("Status") or {}
        cid = str((st.get("ContainerStatus") or {}).get("ContainerID") or "")
        if st.get("State") != "running" or not cid:
            raise RuntimeError_(f"container {p.container.get('name')} of pod {p.name} is not running")
        node = str(task.get("NodeID") or "")
        api = await self.node_api(node)
        if api is None:
            host = str(((self._nodes.get(node) or {}).get("Description") or {}).get("Hostname") or node)
            raise RuntimeError_(f"no Engine API for node {host}: start gitship with --swarm-node-api {host}=URL")
        return api, cid

    async def exec(self, uid: str, container: str, argv: list[str], timeout: float = 30.0) -> ExecResult:
        api, cid = await self._container(uid, container)

        def run() -> ExecResult:
            ex = api.exec_create(cid, list(argv), stdout=True, stderr=True)
            out, err = api.exec_start(ex["Id"], demux=True)
            code = api.exec_inspect(ex["Id"]).get("ExitCode")
            return ExecResult(exit_code=-1 if code is None else int(code), stdout=out or b"", stderr=err or b"")

        try:
            return await asyncio.wait_for(self._call(run), timeout)
        except docker.errors.APIError as exc:
            raise RuntimeError_(f"exec in {container} of pod {uid}: {exc.explanation or exc}") from exc

    async def exec_stream(self, uid: str, container: str, argv: list[str], stdin: bool, tty: bool) -> ExecSession:
        api, cid = await self._container(uid, container)
        return await execstream.exec_stream(api, cid, argv, stdin, tty)

    async def _exec_check(self, uid: str, argv: list[str], timeout: float) -> tuple[bool, str]:
        """An exec probe: success is exit code 0 (the kubelet's rule)."""
        try:
            r = await self.exec(uid, "", argv, timeout)
        except (RuntimeError_, asyncio.TimeoutError) as exc:
            return False, str(exc) or "timeout"
        return r.exit_code == 0, (r.stdout + r.stderr).decode(errors="replace")[-400:]

    async def _run_hook(self, p: SPod, which: str) -> str | None:
        h = hook(p.container, which)
        if h is None:
            return None

        async def exec_run(argv: list[str]) -> tuple[int, str]:
            try:
                r = await self.exec(p.uid, "", argv, HOOK_EXEC_TIMEOUT)
            except RuntimeError_ as exc:
                raise OSError(str(exc)) from None
            return r.exit_code, (r.stdout + r.stderr).decode(errors="replace")

        return await run_handler(
            h,
            container_spec=p.container,
            pod_ip=p.pod_ip or "",
            pod=pod_ref(p.name, p.namespace, p.uid),
            exec_run=exec_run,
        )

    def _probe(self, p: SPod) -> None:
        """The readiness and liveness probe workers (runtime/probes.py) of the pod's running task."""
        if "running" not in p.state or not p.pod_ip or p.hook_pending:
            return
        for kind in ("readiness", "liveness"):
            probe = p.container.get(f"{kind}Probe")
            if probe and (p.probe if kind == "readiness" else p.liveness) is None:
                self._probe_worker(p, kind, probe)

    def _probe_worker(self, p: SPod, kind: str, probe: dict[str, Any]) -> None:
        tid = p.task_id

        async def exec_check(argv: list[str], timeout: float) -> tuple[bool, str]:
            return await self._exec_check(p.uid, argv, timeout)

        def on_result(ok: bool, msg: str) -> None:
            if p.task_id != tid or p.deleting:
                return
            if kind == "readiness":
                p.probe_ready = ok
                self._notify(p)
            elif not ok:  # liveness failed: the kubelet restarts the container; here Swarm, once it is stopped
                assert self._loop is not None
                self._loop.create_task(self._kill_for_probe(p, tid, probe, msg))

        w = ProbeWorker(
            kind,
            probe,
            make_check(probe, p.container, p.pod_ip or "", exec_check),
            on_result,
            time.time(),
            False if kind == "readiness" else True,
        )
        if kind == "readiness":
            p.probe = w
        else:
            p.liveness = w
        w.start()

    async def _kill_for_probe(self, p: SPod, tid: str | None, probe: dict[str, Any], message: str) -> None:
        grace = probe.get("terminationGracePeriodSeconds")
        grace = p.grace if grace is None else float(grace)
        log.info("container_unhealthy", pod=p.name, uid=p.uid, probe="liveness", message=message)
        with contextlib.suppress(Exception):
            api, cid = await self._container(p.uid)
            grace = await self._pre_stop(p, grace)  # the kubelet's killContainer, as for a deletion
            if p.task_id == tid:
                await self._call(api.stop, cid, timeout=max(int(grace), 0))

    def _post_start(self, p: SPod) -> None:
        """A new running task of a pod with a postStart hook: run it (the pod waits meanwhile)."""
        if "running" not in p.state or p.post_started == p.task_id or hook(p.container, POST_START) is None:
            return
        p.post_started, p.hook_pending = p.task_id, True
        assert self._loop is not None
        self._loop.create_task(self._post_start_run(p, p.task_id))

    async def _post_start_run(self, p: SPod, task_id: str | None) -> None:
        try:
            msg = await self._run_hook(p, POST_START)
        except Exception as exc:
            msg = str(exc)
        if p.task_id == task_id and msg is not None:
            log.warning(FAILED_POST_START, pod=p.name, uid=p.uid, message=msg)
            p.kill_messages[str(task_id)] = f"{POST_START_ERROR}: {msg}"  # the exit's message (pods.refresh)
            with contextlib.suppress(Exception):
                api, cid = await self._container(p.uid)
                await self._call(api.kill, cid)
        if msg is None or p.task_id != task_id:  # a failed one stays pending: its container is being killed
            p.hook_pending = False
        self._notify(p)

    async def _pre_stop(self, p: SPod, grace: float) -> float:
        """Run the preStop hook within ``grace``: what is left of it for the stop."""
        if grace <= 0 or hook(p.container, PRE_STOP) is None or "running" not in p.state:
            return grace
        t0 = time.monotonic()
        try:
            msg = await asyncio.wait_for(self._run_hook(p, PRE_STOP), grace)
        except asyncio.TimeoutError:
            log.info("pre_stop_hook_not_completed_in_grace_period", pod=p.name, uid=p.uid)
        else:
            if msg is not None:
                log.warning(FAILED_PRE_STOP, pod=p.name, uid=p.uid, message=msg)
        return grace_after_pre_stop(grace, time.monotonic() - t0)

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

    async def read_logs(
        self, uid: str, container: str, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[bytes]:
        """The pod's output; with ``follow``, Swarm's service log stream until the pod is gone."""
        p = self._pods.get(uid)
        if not follow or p is None or p.service_id is None:
            yield await self.logs(uid, container, tail=tail)
            return
        assert self._loop is not None
        loop, sid = self._loop, p.service_id
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)
        box: list[Any] = []

        def pump() -> None:
            try:
                stream = self._api.service_logs(
                    sid, stdout=True, stderr=True, follow=True, tail="all" if tail is None else int(tail)
                )
                box.append(stream)
                for chunk in stream:
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except Exception:
                pass
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop)

        fut = loop.run_in_executor(None, pump)
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            for s in box:
                with contextlib.suppress(Exception):
                    s.close()
            fut.cancel()
