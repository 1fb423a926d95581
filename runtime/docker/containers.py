"""The Docker runtime's container lifecycle: sync a pod, create and start a container instance,
its exit and the restart under the pod kernel's policy and back-off, its probes, deletion."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.kernel import go_duration, rfc3339, should_restart
from runtime.kernel.hooks import (
    POST_START,
    POST_START_ERROR,
    hook,
)
from runtime.kernel.initc import waiting_initializing
from runtime.kernel.phase import terminated
from runtime.probes import ProbeWorker, make_check

from . import inits
from .common import DContainer, DPod, docker_time, engine_down
from .hooks import DockerHooks

log = structlog.get_logger("runtime.docker")


class DockerContainers(DockerHooks):
    """Starts, restarts, probes and deletes the containers of each pod."""

    def _kick(self, p: DPod) -> None:
        """Schedule a sync of the pod (coalesced)."""
        if p.sync_pending or p.deleting or self._closed:
            return
        p.sync_pending = True

        async def run() -> None:
            p.sync_pending = False
            await self._sync_pod(p)

        self._spawn(run())

    async def _sync_pod(self, p: DPod) -> None:
        async with p.lock:
            if p.deleting or self._closed or p.uid not in self._pods:
                return
            if p.sandbox_id is None:
                await self._create_sandbox(p)
            for c in p.containers.values():  # the init containers first, in order (inits.py)
                if p.deleting or self._closed:
                    return
                inits.advance(p)
                if not (c.want_start and not c.timers):
                    continue
                if not inits.turn(p, c):
                    if not c.running and c.state.get("waiting", {}).get("reason") != "PodInitializing":
                        c.state = waiting_initializing()
                    continue
                await self._start_container(p, c)
                if inits.is_init(p, c) and not inits.is_sidecar(p, c):
                    break  # the next one starts once this one exited 0 (_handle_exit kicks)
            inits.advance(p)
            p.error = None
            self._notify(p)

    async def _start_container(self, p: DPod, c: DContainer) -> None:
        """Create and start (a new instance of) a container. Called under p.lock."""
        api = self._api
        c.want_start = False
        restarting = c.cid is not None or c.exited_cid is not None
        if not restarting:
            self._set_waiting(p, c, "ContainerCreating")
        if not await self._ensure_image(p, c):
            return
        if restarting:
            c.crash.next(time.monotonic(), c.finished)
            c.attempt += 1
        try:
            kwargs = self._container_config(p, c)
        except ValueError as exc:
            if restarting:
                c.attempt -= 1
            self._set_waiting(p, c, getattr(exc, "reason", "CreateContainerConfigError"), str(exc))
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
            now = rfc3339(time.time())
            c.exited_cid = cid
            self._on_exit(p, c, 128, now, now, reason="StartError", message=str(exc.explanation or exc))
            return
        info = await self._call(api.inspect_container, cid)
        state = info.get("State") or {}
        started_at = docker_time(state.get("StartedAt")) or rfc3339(time.time())
        if not state.get("Running") and c.exited_cid != cid:
            c.exited_cid = cid
            self._on_exit(
                p,
                c,
                int(state.get("ExitCode", 0)),
                started_at,
                docker_time(state.get("FinishedAt")),
                oom=bool(state.get("OOMKilled")),
            )
            return
        if hook(c.spec, POST_START) is not None and not await self._post_start(p, c, cid):
            return
        self._mark_running(p, c, started_at)

    def _mark_running(self, p: DPod, c: DContainer, started_at: str) -> None:
        c.running = True
        c.state = {"running": {"startedAt": started_at}}
        c.cancel()
        startup = c.spec.get("startupProbe")
        c.started = startup is None
        c.ready = c.started and c.spec.get("readinessProbe") is None
        cid = c.cid
        assert cid is not None
        if startup is not None:
            self._probe(p, c, cid, "startup", None)
        else:
            self._start_probes(p, c, cid)
        self._notify(p)

    def _start_probes(self, p: DPod, c: DContainer, cid: str) -> None:
        if c.spec.get("readinessProbe") is not None:
            self._probe(p, c, cid, "readiness", c.ready)
        if c.spec.get("livenessProbe") is not None:
            self._probe(p, c, cid, "liveness", True)

    def _on_exit(
        self,
        p: DPod,
        c: DContainer,
        code: int,
        started_at: str | None,
        finished_at: str | None,
        oom: bool = False,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """A container instance ended: record it, decide on a restart (the pod kernel's rules)."""
        c.cancel()
        c.running = c.ready = c.started = False
        if message is None and c.kill_reason and c.kill_reason.startswith(POST_START_ERROR):
            message = c.kill_reason
        term = terminated(
            code, started_at, finished_at or rfc3339(time.time()), reason=reason, message=message, oom=oom
        )
        if c.cid:
            term["containerID"] = f"docker://{c.cid}"
        if not should_restart(inits.restart_policy(p, c), code) or p.deleting or c.done:
            c.state = {"terminated": term}
            c.done = True
            self._notify(p)
            self._finish_sidecars(p)
            return
        c.last_state = {"terminated": term}
        now = time.monotonic()
        c.finished = now
        wait = c.crash.remaining(now, now)
        if wait <= 0:
            c.state = {"terminated": term}
            c.want_start = True
            self._notify(p)
            self._kick(p)
            return
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {go_duration(wait)} restarting failed container={c.name} "
                f"pod={p.name}_{p.namespace}({p.uid})",
            }
        }
        self._notify(p)
        self._retry_later(p, c, wait)

    # ------------------------------------------------------------------ probes

    def _probe(self, p: DPod, c: DContainer, cid: str, kind: str, initial: bool | None) -> None:
        """Start the container's ``kind`` probe worker (runtime/probes.py) for this container instance."""
        probe = c.spec.get(f"{kind}Probe") or {}

        async def exec_check(argv: list[str], timeout: float) -> tuple[bool, str]:
            try:
                code, _out = await self._exec_in(cid, argv, timeout)
            except asyncio.TimeoutError:
                return False, f"command {argv!r} timed out after {timeout:g}s"
            except Exception as exc:
                return False, f"exec {argv!r}: {exc}"
            return code == 0, f"command {argv!r} exited with {code}"

        def on_result(ok: bool, msg: str) -> None:
            if c.cid != cid or not c.running or p.deleting:
                return
            if kind == "readiness":
                c.ready = ok
                self._notify(p)
            elif kind == "startup" and ok:
                c.started = True
                c.ready = c.spec.get("readinessProbe") is None
                self._start_probes(p, c, cid)
                self._notify(p)
                if inits.is_sidecar(p, c):
                    self._kick(p)  # the next init container's turn
            elif not ok:  # startup or liveness failed: restart the container
                self._spawn(self._kill_for_probe(p, c, cid, kind, probe, msg))

        w = ProbeWorker(
            kind, probe, make_check(probe, c.spec, p.pod_ip or "", exec_check), on_result, time.time(), initial
        )
        c.probes.append(w)
        w.start()

    async def _kill_for_probe(
        self, p: DPod, c: DContainer, cid: str, kind: str, probe: dict[str, Any], message: str
    ) -> None:
        grace = probe.get("terminationGracePeriodSeconds")
        grace = p.grace if grace is None else float(grace)
        c.kill_reason = kind
        log.info("container_unhealthy", pod=p.name, uid=p.uid, container=c.name, probe=kind, message=message)
        with contextlib.suppress(Exception):
            await self._kill(p, c, cid, grace)
        # the die event (or the resync) records the exit and applies the restart policy

    # ------------------------------------------------------------------ deletion

    async def _delete(self, p: DPod, grace_seconds: float | None) -> None:
        grace = p.grace if grace_seconds is None else float(grace_seconds)
        for c in p.containers.values():
            c.cancel()
        try:
            async with p.lock:
                if self._client is not None:
                    # the app containers (and a running init container) first, then the sidecars
                    running = [c for c in p.containers.values() if c.cid and c.running]
                    for sidecars in (False, True):
                        group = [c for c in running if inits.is_sidecar(p, c) == sidecars]
                        await asyncio.gather(*(self._kill(p, c, c.cid or "", grace) for c in group))
                    await self._remove_leftovers(p.uid)
        except Exception as exc:
            if not engine_down(exc):
                raise
            self._pending_deletes.add(p.uid)  # the next converge removes what is left
        finally:
            self._pods.pop(p.uid, None)
            with contextlib.suppress(Exception):
                self._on_change(p.uid)
