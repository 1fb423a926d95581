"""The in-process container lifecycle: launch, watch, exit, restart with back-off, stop.

Where it sits: ``InProcessRuntime`` (supervisor.py) is this class plus probes
(probing.py), sandboxes (isolation.py: the ``_sandbox_usable``/``_enter_prefix`` hooks
below; a container of a sandboxed pod waits until its sandbox is up and then starts
through ``nsenter``), adoption (adoption.py), the Runtime interface and status. Every
decision Kubernetes defines is asked of the pod kernel (runtime/kernel: should_restart,
Backoff, the probe machine, env/argv); what is left here is processes.

Processes
    ``subprocess.Popen(argv, start_new_session=True, ...)``, never a shell and never an
    asyncio subprocess, so a container outlives gitship after kill -9 and can be adopted.
    Each container leads its own session and process group (pgid == pid). Exits are
    watched with ``os.pidfd_open`` + ``loop.add_reader`` (this works for adopted processes
    too, which are not our children). When a container's main process exits, the rest of
    its process group is SIGKILLed, as the kernel does to a container's pid namespace
    when its PID 1 exits. Output (stdout and stderr) is appended to
    ``{state_dir}/logs/{uid}/{container}.log`` across restarts.

Exit codes
    Our own children are reaped (``Popen.poll``); death by signal N is reported as 128+N,
    like a container runtime. An *adopted* process is not our child, so its exit status
    cannot be read: it is reported as ``exitCode: 137, reason: "ContainerStatusUnknown"``
    (the kubelet's own convention for a container whose status was lost).

Restarts and back-off (docs/kubernetes.md §7.2, §7.3)
    ``Always`` restarts after any exit, ``OnFailure`` after a non-zero one, ``Never`` not
    at all; delays are runtime/kernel/backoff.py. While waiting the container is
    ``waiting: CrashLoopBackOff`` with
    ``back-off 20s restarting failed container=<c> pod=<name>_<ns>(<uid>)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Coroutine, Mapping
from typing import Any

import structlog

from ..base import OnChange
from ..kernel import go_duration, rfc3339, should_restart
from ..kernel.phase import terminated
from . import procid
from .cgroups import CgroupError, ContainerCgroups
from .resolve import ImageRule, StartError, Waiting, resolve
from .state import Container, PodState, group_gone, reap

log = structlog.get_logger("runtime.inprocess")

STOP_POLL = 0.05


class ContainerSupervisor:
    """Runs the containers of the pods in ``_pods``; subclasses provide ``_save`` and ``_notify``."""

    state_dir: str
    host_ip: str
    repo_dir: str | None
    image_rules: list[ImageRule]
    backoff_base: float
    backoff_max: float

    def __init__(self) -> None:
        self._pods: dict[str, PodState] = {}
        self._on_change: OnChange | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.node_name = socket.gethostname()
        # every live ConfigMap and Secret (Runtime.set_config_objects): env at start, volumes
        self.config_objects: dict[tuple[str, str, str], Mapping[str, Any]] = {}

    @functools.cached_property
    def cgroups(self) -> ContainerCgroups:
        """Resources: each container's cgroup (cgroups.py)."""
        return ContainerCgroups(self.state_dir)

    # -- hooks -----------------------------------------------------------------------------

    def _save(self, p: PodState) -> None:
        raise NotImplementedError

    def _notify(self, p: PodState, save: bool = False) -> None:
        """Status changed: recompute the conditions, write the state file (when they flipped, or
        ``save``: once, not twice) and tell the daemon."""
        raise NotImplementedError

    def _start_probes(self, p: PodState, c: Container) -> None:
        raise NotImplementedError

    # Sandbox hooks (isolation.py overrides them; these defaults are host mode: no sandbox).

    def _sandbox_usable(self, p: PodState) -> bool:
        """Whether the pod's containers can start now (its sandbox is up, or it needs none)."""
        return True

    def _ensure_sandbox(self, p: PodState) -> None:
        """Make the pod's sandbox if it has none yet; its waiting containers start when it is up."""

    def _enter_prefix(self, p: PodState, cwd: str | None) -> list[str] | None:
        """The argv prefix that runs a command in the pod's sandbox: [] without one, None if it is not up."""
        return []

    def _hostname(self, p: PodState) -> str | None:
        """The pod's hostname (the HOSTNAME variable); None: the pod name."""
        return None

    def _creating_status(self, p: PodState) -> tuple[str, str | None]:
        """(waiting reason, message) of a container waiting for its pod's sandbox (and volumes)."""
        return "ContainerCreating", p.sandbox_error

    def _log_dir(self, uid: str) -> str:
        return os.path.join(self.state_dir, "logs", uid)

    def _alive(self, p: PodState) -> bool:
        return not p.deleting and not self._closed and self._pods.get(p.uid) is p

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        assert self._loop is not None
        t = self._loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # -- launching ---------------------------------------------------------------------------

    def _resolve(
        self, p: PodState, c: Container, warnings: list[str] | None = None
    ) -> tuple[list[str], dict[str, str], str]:
        return resolve(
            p.pod,
            c.spec,
            pod_ip=p.ip,
            host_ip=self.host_ip,
            node_name=self.node_name,
            rules=self.image_rules,
            repo_dir=self.repo_dir,
            hostname=self._hostname(p),
            objects=self.config_objects,
            warnings=warnings,
        )

    def _launch(self, p: PodState, c: Container) -> None:
        """Start (or restart) one container. Never raises."""
        if not self._alive(p):
            return
        c.cancel_timer()
        c.stop_probes()
        c.kill_message = None
        if not self._sandbox_usable(p):
            self._await_sandbox(p, c)
            return
        c.awaiting_sandbox = False
        now = time.time()
        warnings: list[str] = []
        try:
            argv, env, cwd = self._resolve(p, c, warnings)
        except Waiting as w:
            self._wait(p, c, w.reason, w.message)
            return
        except StartError as e:
            self._on_terminated(p, c, self._start_error(str(e), now))
            return
        except Exception as e:  # a spec we did not foresee must not take the daemon down
            log.exception("container_resolve_failed", uid=p.uid, container=c.name)
            self._wait(p, c, "CreateContainerError", f"{type(e).__name__}: {e}")
            return
        for msg in warnings:  # the kubelet's InvalidEnvironmentVariableNames event
            log.warning("InvalidEnvironmentVariableNames", uid=p.uid, pod=p.name, container=c.name, message=msg)
        c.env, c.cwd = env, cwd
        enter = self._enter_prefix(p, cwd)
        if enter is None:  # not reached: _sandbox_usable said yes a moment ago
            self._await_sandbox(p, c)
            return
        try:  # resources: the container enters its cgroup before its command runs (cgroups.py)
            command = self.cgroups.wrap(p.uid, c.name, c.restart_count, c.spec, [*enter, *argv], env, cwd)
        except CgroupError as e:
            self._on_terminated(p, c, self._start_error(str(e), now))
            return
        os.makedirs(self._log_dir(p.uid), exist_ok=True)
        try:
            with open(os.path.join(self._log_dir(p.uid), f"{c.name}.log"), "ab") as logf:
                proc = subprocess.Popen(
                    command,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    close_fds=True,
                )
        except (OSError, ValueError, TypeError) as e:
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.cgroups.finish(p.uid, c.name, c.restart_count)
            self._on_terminated(p, c, self._start_error(f"failed to start {argv[0]!r} in {cwd!r}: {msg}", now))
            return
        ident = procid.identity_of(proc.pid) or procid.ProcessIdentity(proc.pid, -1, procid.boot_id())
        c.proc = proc
        self._attach(p, c, ident, os.pidfd_open(proc.pid), now)
        log.info("container_started", uid=p.uid, pod=p.name, container=c.name, pid=proc.pid, restarts=c.restart_count)
        self._notify(p, save=True)  # the pid is in the state file before the loop runs anything else

    def _await_sandbox(self, p: PodState, c: Container) -> None:
        """The container starts once the pod's sandbox is up (the kubelet makes the sandbox first)."""
        c.awaiting_sandbox = True
        self._wait(p, c, *self._creating_status(p))
        self._ensure_sandbox(p)

    def _wait(self, p: PodState, c: Container, reason: str, message: str | None) -> None:
        c.state = {"waiting": {"reason": reason, "message": message} if message else {"reason": reason}}
        self._save(p)
        self._notify(p)

    @staticmethod
    def _start_error(message: str, now: float) -> dict[str, Any]:
        return terminated(128, rfc3339(now), rfc3339(now), reason="StartError", message=message)

    def _attach(self, p: PodState, c: Container, ident: procid.ProcessIdentity, pidfd: int, started_at: float) -> None:
        c.ident, c.pidfd, c.started_at = ident, pidfd, started_at
        c.exit_event = asyncio.Event()
        c.incarnation += 1
        c.state = {"running": {"startedAt": rfc3339(started_at)}}
        assert self._loop is not None
        self._loop.add_reader(pidfd, self._on_exit, p, c, c.incarnation)
        self._start_probes(p, c)

    def _unwatch(self, c: Container) -> None:
        if c.pidfd is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(c.pidfd)
            with contextlib.suppress(OSError):
                os.close(c.pidfd)
            c.pidfd = None

    # -- exits and restarts --------------------------------------------------------------

    def _on_exit(self, p: PodState, c: Container, incarnation: int) -> None:
        if incarnation != c.incarnation:
            return
        self._unwatch(c)
        now = time.time()
        pid = c.pid
        if pid is not None:  # container semantics: when PID 1 dies, everything else in it dies too
            # (before reaping: the unreaped leader keeps the pid, so the group id cannot be reused yet)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        code = reap(c, pid)
        started = rfc3339(c.started_at or now)
        oom = self.cgroups.finish(p.uid, c.name, c.restart_count)  # resources: OOMKilled, the cgroup goes
        if oom:
            term = terminated(137 if code is None else code, started, rfc3339(now), oom=True)
        elif code is None:
            msg = "exit status unknown: the process was adopted after a gitship restart"
            term = terminated(137, started, rfc3339(now), reason="ContainerStatusUnknown", message=msg)
        else:
            term = terminated(code, started, rfc3339(now))
        if c.kill_message:
            term["message"] = c.kill_message
        log.info(
            "container_exited",
            uid=p.uid,
            pod=p.name,
            container=c.name,
            pid=pid,
            exit_code=term["exitCode"],
            reason=c.kill_message,
        )
        c.exit_event.set()
        self._on_terminated(p, c, term, now)

    def _on_terminated(self, p: PodState, c: Container, term: dict[str, Any], now: float | None = None) -> None:
        """A container's process ended (or could not start): restart it per policy, with back-off."""
        c.stop_probes()
        c.proc, c.ident = None, None
        c.started = False
        c.readiness = False
        c.kill_message = None
        if not self._alive(p):
            c.state = {"terminated": term}
            self._notify(p)
            return
        if not should_restart(c.restart_policy, term.get("exitCode")):
            c.state = {"terminated": term}
            self._save(p)
            self._notify(p)
            return
        now = time.time() if now is None else now
        c.finished_at = now
        c.last_state = {"terminated": term}
        delay = c.backoff.remaining(now, now)
        if delay <= 0:
            c.state = {"waiting": {"reason": "ContainerCreating"}}
            self._restart(p, c)
            return
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {go_duration(delay)} restarting failed container={c.name} "
                f"pod={p.name}_{p.namespace}({p.uid})",
            }
        }
        assert self._loop is not None
        c.timer = self._loop.call_later(delay, self._restart, p, c)
        self._save(p)
        self._notify(p)

    def _restart(self, p: PodState, c: Container) -> None:
        c.timer = None
        if not self._alive(p):
            return
        now = time.time()
        c.backoff.next(now, c.finished_at if c.finished_at is not None else now)
        c.restart_count += 1
        self._launch(p, c)

    # -- stopping ----------------------------------------------------------------------------

    async def _stop_container(self, c: Container, grace: float) -> None:
        """SIGTERM the container's process group, wait up to grace, SIGKILL the group, wait until gone."""
        pid = c.pid
        if pid is None or not c.running:
            return
        ev = c.exit_event
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ev.wait(), grace if grace > 0 else 0.001)
        # past the grace period (or the leader is gone): kill whatever is left of the group
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (ev.is_set() or c.pidfd is None) and group_gone(pid):
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            await asyncio.sleep(STOP_POLL)
        log.warning("container_stop_timeout", pid=pid, container=c.name)
