"""What the in-process supervisor knows about each pod and container (in memory and in its state file)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Mapping
from typing import Any

from ..base import Pod
from ..kernel import Backoff
from ..kernel.initc import container_restart_policy, init_specs, is_sidecar
from ..probes import ProbeWorker
from . import procid
from .sandbox import Sandbox

DEFAULT_GRACE = 30.0
_MISSING = object()
_UNVERSIONED = frozenset({"version", "status_memo", "resource_fields"})


class Versioned:
    """Counts the assignments to its attributes that change one (by identity): ``version``.

    The one place every state change of a pod or container passes, whoever makes it (lifecycle,
    probes, hooks, init containers, adoption): the supervisor's status memo is valid while the
    versions stay (supervisor.py status). State is replaced, never edited in place
    (``c.state = {...}``), so an assignment is a change; an assignment of an equal new value only
    costs one recomputation."""

    version = 0

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _UNVERSIONED and self.__dict__.get(name, _MISSING) is not value:
            object.__setattr__(self, "version", self.version + 1)
        object.__setattr__(self, name, value)


class Container(Versioned):
    def __init__(
        self,
        spec: Mapping[str, Any],
        backoff_base: float,
        backoff_max: float,
        *,
        init: bool = False,
        pod_policy: str = "Always",
    ):
        self.spec = spec
        self.init = init  # one of spec.initContainers (runtime/inprocess/initc.py runs them in order)
        self.sidecar = init and is_sidecar(spec)
        self.restart_policy = container_restart_policy(pod_policy, spec, init)
        self.name: str = spec["name"]
        self.image: str = spec.get("image", "")
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.backoff = Backoff(backoff_base, backoff_max)
        self.finished_at: float | None = None  # when the last instance exited (the back-off's event time)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ident: procid.ProcessIdentity | None = None
        self.pidfd: int | None = None
        self.started_at: float | None = None
        self.exit_event = asyncio.Event()
        self.incarnation = 0
        self.started = False  # startup probe passed (or none)
        self.readiness = False  # last effective readiness result
        self.probes: list[ProbeWorker] = []
        self.timer: asyncio.TimerHandle | None = None
        self.kill_message: str | None = None
        self.env: dict[str, str] | None = None
        self.cwd: str | None = None
        self.awaiting_sandbox = False  # waits for the pod's sandbox, then starts (isolation.py)
        self.awaiting_init = False  # waits for the init containers before it (initc.py)
        self.post_start_pending = False  # its postStart hook runs: not Running yet (hooks.py)

    @property
    def pid(self) -> int | None:
        return self.ident.pid if self.ident else None

    @property
    def running(self) -> bool:
        return "running" in self.state

    def shown_state(self) -> dict[str, Any]:
        """The state the status reports: ContainerCreating while the postStart hook runs."""
        return {"waiting": {"reason": "ContainerCreating"}} if self.post_start_pending else self.state

    def ready(self) -> bool:
        if not self.running or not self.started or self.post_start_pending:
            return False
        return self.readiness if self.spec.get("readinessProbe") else True

    def stop_probes(self) -> None:
        for w in self.probes:
            w.stop()
        self.probes = []

    def cancel_timer(self) -> None:
        if self.timer:
            self.timer.cancel()
            self.timer = None

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.ident.to_json() if self.ident else None,
            "startedAt": self.started_at,
            "state": self.state,
            "lastState": self.last_state,
            "restartCount": self.restart_count,
            "backoff": self.backoff.to_json(),
            "finishedAt": self.finished_at,
            "started": self.started,
            "readiness": self.readiness,
        }

    def load(self, rec: Mapping[str, Any]) -> None:
        """Counters and states from ``to_json`` output (adoption after a restart of gitship)."""
        self.restart_count = int(rec.get("restartCount") or 0)
        self.backoff.load(rec.get("backoff"))
        fin = rec.get("finishedAt")
        self.finished_at = float(fin) if isinstance(fin, (int, float)) else None
        self.last_state = rec.get("lastState") or {}


class PodState(Versioned):
    def __init__(self, pod: Pod, ip: str, start_time: float, backoff_base: float, backoff_max: float):
        self.pod = pod
        md = pod.get("metadata") or {}
        self.uid: str = md["uid"]
        self.name: str = md.get("name", "")
        self.namespace: str = md.get("namespace") or "default"
        spec = pod.get("spec") or {}
        self.spec = spec
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        self.ip = ip
        self.start_time = start_time
        # the init containers first, in order, then the app containers (names are unique across both)
        policy = self.restart_policy
        self.containers = [
            Container(c, backoff_base, backoff_max, init=True, pod_policy=policy) for c in init_specs(spec)
        ] + [Container(c, backoff_base, backoff_max, pod_policy=policy) for c in spec.get("containers") or []]
        self.initialized = not any(c.init for c in self.containers)  # latched once per sandbox (initc.py)
        self.conditions: dict[str, dict[str, Any]] = {}
        # the status' resource fields (QoS class, not-enforced condition) and what they were computed from
        self.resource_fields: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.status_memo: tuple[tuple[Any, ...], dict[str, Any]] | None = None  # (versions, status)
        self.deleting = False
        self.delete_task: asyncio.Task[None] | None = None
        # the pod's sandbox (isolation.py): its record, holder process and watch, the task making it
        self.sandbox: Sandbox | None = None
        self.holder_proc: subprocess.Popen[bytes] | None = None
        self.holder_pidfd: int | None = None
        self.sandbox_task: asyncio.Task[None] | None = None
        self.sandbox_error: str | None = None
        # the pod's volumes (mounts.py): mounted in the sandbox, or why not (and the waiting reason)
        self.volumes_ready = False
        self.volume_error: tuple[str, str] | None = None
        self.volume_task: asyncio.Task[None] | None = None

    def grace(self) -> float:
        g = self.spec.get("terminationGracePeriodSeconds")
        return DEFAULT_GRACE if g is None else max(0.0, float(g))

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "ip": self.ip,
            "startTime": self.start_time,
            "conditions": self.conditions,
            "containers": {c.name: c.to_json() for c in self.containers},
            "sandbox": self.sandbox.to_json() if self.sandbox else None,
            "volumesMounted": self.volumes_ready,
            "initialized": self.initialized,
        }


def exit_code(returncode: int) -> int:
    """Popen's returncode as a container runtime reports it: death by signal N is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def group_gone(pgid: int) -> bool:
    """No live process left in the group (cheap killpg probe first; /proc scan only to ignore zombies)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return not procid.group_members(pgid)


def reap(c: Container, pid: int | None) -> int | None:
    """The exit code of the container's process, None when it cannot be read (adopted)."""
    if c.proc is not None:
        rc = c.proc.poll()
        if rc is None:
            with contextlib.suppress(Exception):
                rc = c.proc.wait(timeout=1)
        return exit_code(rc) if rc is not None else None
    if pid is not None:
        # adopted: normally not our child; if it is (same interpreter), we can still read the status
        with contextlib.suppress(ChildProcessError, OSError):
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                return exit_code(os.waitstatus_to_exitcode(status))
    return None
