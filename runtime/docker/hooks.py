"""The Docker runtime's lifecycle hooks (postStart, preStop) and the end of a pod's sidecars.

Where it sits: ``DockerContainers`` (containers.py) is built on this class. The rules are the pod
kernel's (runtime/kernel/hooks.py), performing a handler is runtime/hooks.py (exec handlers run
through ``docker exec``, httpGet goes to the pod's IP). postStart runs under the pod's lock right
after the container started: the container is ``waiting: ContainerCreating`` until it returns, and
a failure kills it (FailedPostStartHook; its exit's message says ``PostStartHookError: ...``).
``_kill`` is the kubelet's killContainer: preStop with the whole grace period, then SIGTERM with
what is left (at least 2 s), then SIGKILL; a failed preStop is the event FailedPreStopHook.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.hooks import run_handler
from runtime.kernel.hooks import (
    FAILED_POST_START,
    FAILED_PRE_STOP,
    POST_START,
    POST_START_ERROR,
    PRE_STOP,
    grace_after_pre_stop,
    hook,
    pod_ref,
)

from . import inits
from .common import DContainer, DPod
from .pods import DockerPods

log = structlog.get_logger("runtime.docker")

HOOK_EXEC_TIMEOUT = 3600.0  # the kubelet sets none for a hook's exec; preStop is bounded by the grace period


class DockerHooks(DockerPods):
    """Runs the containers' lifecycle hooks; stops containers as the kubelet does."""

    async def _post_start(self, p: DPod, c: DContainer, cid: str) -> bool:
        """Run the postStart hook (the container is not Running until it returns). On a failure,
        kill the container (its exit then goes through the restart policy); False."""
        c.state = {"waiting": {"reason": "ContainerCreating"}}
        self._notify(p)
        msg = await self._run_hook(p, c, cid, POST_START)
        if msg is None:
            return True
        log.warning(FAILED_POST_START, pod=p.name, uid=p.uid, container=c.name, message=msg)
        c.kill_reason = f"{POST_START_ERROR}: {msg}"  # the exit's message (_on_exit)
        with contextlib.suppress(Exception):
            await self._kill(p, c, cid, p.grace)
        return False

    async def _exec_in(self, cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run argv in the container (docker exec): (exit code, output)."""

        def run() -> tuple[int, str]:
            ex = self._api.exec_create(cid, argv, stdout=True, stderr=True)
            out = self._api.exec_start(ex["Id"])
            code = int(self._api.exec_inspect(ex["Id"]).get("ExitCode") or 0)
            return code, out.decode(errors="replace") if isinstance(out, bytes) else str(out)

        try:
            return await asyncio.wait_for(self._call(run), timeout)
        except docker.errors.APIError as exc:
            raise OSError(str(exc.explanation or exc)) from None

    async def _run_hook(self, p: DPod, c: DContainer, cid: str, which: str) -> str | None:
        """Run the container's ``which`` hook (runtime/hooks.py): None on success, else the message."""
        h = hook(c.spec, which)
        if h is None:
            return None

        async def exec_run(argv: list[str]) -> tuple[int, str]:
            return await self._exec_in(cid, argv, HOOK_EXEC_TIMEOUT)

        try:
            return await run_handler(
                h,
                container_spec=c.spec,
                pod_ip=p.pod_ip or "",
                pod=pod_ref(p.name, p.namespace, p.uid),
                exec_run=exec_run,
            )
        except asyncio.TimeoutError:
            return f"{which} hook of container {c.name!r} timed out"

    async def _kill(self, p: DPod, c: DContainer, cid: str, grace: float) -> None:
        """Stop a container as the kubelet's killContainer: preStop with the whole grace period,
        then SIGTERM with what is left (at least 2 s), then SIGKILL."""
        if grace > 0 and hook(c.spec, PRE_STOP) is not None:
            t0 = time.monotonic()
            try:
                msg = await asyncio.wait_for(self._run_hook(p, c, cid, PRE_STOP), grace)
            except asyncio.TimeoutError:
                log.info("pre_stop_hook_not_completed_in_grace_period", pod=p.name, uid=p.uid, container=c.name)
            else:
                if msg is not None:
                    log.warning(FAILED_PRE_STOP, pod=p.name, uid=p.uid, container=c.name, message=msg)
            grace = grace_after_pre_stop(grace, time.monotonic() - t0)
        await self._stop(cid, grace)

    def _finish_sidecars(self, p: DPod) -> None:
        """Once every app container has terminated for good, stop the sidecars (in reverse order)
        for good, so the pod can complete (the kubelet does the same)."""
        names = inits.init_names(p)
        sidecars = [c for c in p.containers.values() if inits.is_sidecar(p, c) and not c.done]
        apps = [c for c in p.containers.values() if c.name not in names]
        if not sidecars or p.deleting or not all(c.done for c in apps):
            return
        for c in sidecars:
            c.done = True
            c.want_start = False
            for t in c.timers:
                t.cancel()
            c.timers.clear()

        async def stop() -> None:
            for c in reversed(sidecars):
                if c.cid and c.running:
                    with contextlib.suppress(Exception):
                        await self._kill(p, c, c.cid, p.grace)

        self._spawn(stop())
