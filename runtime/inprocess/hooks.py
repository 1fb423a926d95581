"""Lifecycle hooks of the in-process runtime's containers: postStart and preStop.

Where it sits: ``InProcessRuntime`` is built on this class (after adoption.py). The rules are
the pod kernel's (runtime/kernel/hooks.py), performing a handler is runtime/hooks.py; here is
when each runs:

* postStart runs right after the container's process started (not after an adoption: the hook
  ran when it started). Until it returns, the container reports ``waiting: ContainerCreating``,
  is not ready and its probes do not run. If it fails the container is killed (preStop first,
  as the kubelet's killContainer does) with the event FailedPostStartHook, and restarts per its
  restart policy with back-off; its last state's message says ``PostStartHookError: ...``.
* preStop runs before SIGTERM whenever the supervisor stops a running container (pod deletion,
  a failed liveness or startup probe), with the whole grace period; the stop then gets what is
  left of it, at least 2 s. A failed preStop is the event FailedPreStopHook; the stop goes on.

exec handlers run like ``gitship exec``: a local process with the container's environment and
working directory, in the pod's sandbox when it has one; httpGet goes to the pod's IP.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from ..hooks import ExecRun, run_handler
from ..kernel.hooks import (
    FAILED_POST_START,
    FAILED_PRE_STOP,
    POST_START,
    POST_START_ERROR,
    PRE_STOP,
    grace_after_pre_stop,
    hook,
    pod_ref,
)
from . import procid
from .adoption import Adopter
from .probes import run_exec
from .state import Container, PodState

log = structlog.get_logger("runtime.inprocess")

EXEC_TIMEOUT = 3600.0  # the kubelet sets none for a hook's exec; preStop is bounded by the grace period


class HookSupervisor(Adopter):
    """postStart after a container starts, preStop before it is stopped."""

    def _pod_of(self, c: Container) -> PodState | None:
        return next((p for p in self._pods.values() if c in p.containers), None)

    def _hook_exec(self, p: PodState, c: Container) -> ExecRun:
        env, cwd = dict(c.env or {}), c.cwd

        async def run(argv: list[str]) -> tuple[int, str]:
            enter = self._enter_prefix(p, cwd)
            if enter is None:
                raise OSError("the pod's sandbox is not running")
            r = await run_exec(argv, env, cwd, EXEC_TIMEOUT, enter)
            return r.exit_code, (r.stdout + r.stderr).decode(errors="replace")

        return run

    async def _run_hook(self, p: PodState, c: Container, which: str) -> str | None:
        """Run the container's ``which`` hook: None on success (or none), else the failure message."""
        h = hook(c.spec, which)
        if h is None:
            return None
        try:
            return await run_handler(
                h,
                container_spec=c.spec,
                pod_ip=p.ip,
                pod=pod_ref(p.name, p.namespace, p.uid),
                exec_run=self._hook_exec(p, c),
            )
        except asyncio.TimeoutError:
            return f"{which} hook of container {c.name!r} timed out"

    # -- postStart ---------------------------------------------------------------------------

    def _attach(self, p: PodState, c: Container, ident: procid.ProcessIdentity, pidfd: int, started_at: float) -> None:
        # c.proc is set for a process we just started, None for an adopted one
        c.post_start_pending = c.proc is not None and hook(c.spec, POST_START) is not None
        super()._attach(p, c, ident, pidfd, started_at)
        if c.post_start_pending:
            self._spawn(self._post_start(p, c, c.incarnation))

    def _start_probes(self, p: PodState, c: Container) -> None:
        if not c.post_start_pending:  # the probes start once postStart returned
            super()._start_probes(p, c)

    async def _post_start(self, p: PodState, c: Container, incarnation: int) -> None:
        msg = await self._run_hook(p, c, POST_START)
        if incarnation != c.incarnation or not c.running or not self._alive(p):
            c.post_start_pending = False
            return
        c.post_start_pending = False
        if msg is None:
            self._start_probes(p, c)
            self._save(p)
            self._notify(p)
            return
        log.warning(FAILED_POST_START, uid=p.uid, pod=p.name, container=c.name, message=msg)
        c.kill_message = f"{POST_START_ERROR}: {msg}"  # the exit's terminated state carries it
        self._save(p)
        await self._stop_container(c, p.grace())

    # -- preStop -------------------------------------------------------------------------------

    async def _stop_container(self, c: Container, grace: float) -> None:
        p = self._pod_of(c)
        if p is not None and grace > 0 and c.running and hook(c.spec, PRE_STOP) is not None:
            t0 = time.monotonic()
            try:
                msg = await asyncio.wait_for(self._run_hook(p, c, PRE_STOP), grace)
            except asyncio.TimeoutError:
                log.info("pre_stop_hook_not_completed_in_grace_period", uid=p.uid, pod=p.name, container=c.name)
            else:
                if msg is not None:
                    log.warning(FAILED_PRE_STOP, uid=p.uid, pod=p.name, container=c.name, message=msg)
            grace = grace_after_pre_stop(grace, time.monotonic() - t0)
        await super()._stop_container(c, grace)
