"""Adoption: a new runtime on the same state dir takes over the pods gitship left running.

Where it sits: ``InProcessRuntime.start`` (supervisor.py) reads every
``{state_dir}/pods/{uid}.json`` (procid.py) and hands each to ``_adopt``, which rebuilds the
pod's in-memory state and decides per container:

* running and still ours (procid.is_ours: boot id, start time, ``GITSHIP_POD_UID``): watched
  again, untouched;
* running when gitship stopped and gone now: ``exitCode 137, reason ContainerStatusUnknown``,
  then the restart policy;
* terminated for good: kept; waiting (back-off, unresolved image): tried again now.

Sandboxes (isolation.py): a pod whose recorded holder is alive, ready and ours keeps its
sandbox (same namespaces, IP and hostname) and its containers are adopted as above. If the
holder is gone (or the pod has no sandbox and needs one, or has one and must not), the
sandbox changed: its containers are killed and restart under their policy in a new one
(``restartCount`` + 1), as the kubelet does when a pod's sandbox dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import structlog

from ..kernel import rfc3339
from ..kernel.phase import terminated
from . import procid, sandbox
from .isolation import SANDBOX_CHANGED
from .mounts import MountSupervisor
from .network import IPAllocator
from .resolve import StartError, Waiting
from .state import Container, PodState

log = structlog.get_logger("runtime.inprocess")

Todo = list[tuple[PodState, Container, dict[str, Any] | None]]


class Adopter(MountSupervisor):
    """Rebuilds pods from their state files (``start``)."""

    _ipam: IPAllocator

    def _pod_ip(self, p: PodState, recorded: str | None = None) -> str:
        """A pod's IP: the host's for a hostNetwork pod in sandbox mode; else its recorded one if
        still valid, else a new one (IPAllocationError when the CIDR is full)."""
        if self.isolation == "sandbox" and p.spec.get("hostNetwork"):
            return self.host_ip
        if recorded and self._ipam.usable(recorded) and self._ipam.reserve(p.uid, recorded):
            return recorded
        return self._ipam.allocate(p.uid)

    def _adopt(self, uid: str, st: dict[str, Any], todo: Todo) -> PodState:
        pod = st["pod"]
        (pod.setdefault("metadata", {}))["uid"] = uid
        p = PodState(pod, "", float(st.get("startTime") or time.time()), self.backoff_base, self.backoff_max)
        p.ip = self._pod_ip(p, st.get("ip"))
        for k, v in (st.get("conditions") or {}).items():
            if isinstance(v, dict):
                p.conditions[k] = v
        keep = self._adopt_sandbox(p, st.get("sandbox"))
        p.volumes_ready = keep and bool(st.get("volumesMounted"))  # the mounts live in the sandbox
        # init containers run once per sandbox: a new one runs them again (initc.py)
        p.initialized = p.initialized or (keep and bool(st.get("initialized")))
        recs = st.get("containers") or {}
        now = time.time()
        for c in p.containers:
            rec = recs.get(c.name) or {}
            c.load(rec)
            state = rec.get("state") or {}
            if "running" in state and keep and self._adopt_process(p, c, rec, now):
                continue
            if "running" in state:
                started = state["running"].get("startedAt") or rfc3339(now)
                c.state = {"waiting": {"reason": "ContainerCreating"}}
                if keep:
                    msg = "The container could not be located when gitship restarted"
                    term = terminated(137, started, rfc3339(now), reason="ContainerStatusUnknown", message=msg)
                else:
                    _kill_recorded(uid, rec)
                    term = terminated(137, started, rfc3339(now), message=SANDBOX_CHANGED)
                todo.append((p, c, term))
            elif "terminated" in state and (keep or not c.init):
                c.state = state  # finished for good under its policy
            else:  # waiting (back-off, unresolved image, config error, creating): try again now
                c.state = {"waiting": {"reason": "ContainerCreating"}}
                if state.get("waiting", {}).get("reason") == "CrashLoopBackOff":
                    c.restart_count += 1
                todo.append((p, c, None))
        return p

    def _adopt_sandbox(self, p: PodState, rec: Any) -> bool:
        """Take over the pod's recorded sandbox. False when it changed (its containers must restart)."""
        sb = sandbox.Sandbox.from_json(rec)
        if not self._isolated(p):
            if sb is None:
                return True  # host mode, as it always was
            sandbox.kill_holder(sb.holder, p.uid)  # made in sandbox mode; this runtime does not isolate
            return False
        if sb is None or not sb.ready or sb.ip != p.ip:
            if sb is not None:
                sandbox.kill_holder(sb.holder, p.uid)
            return False
        p.sandbox = sb
        if not self._watch_holder(p):
            p.sandbox = None
            log.info("sandbox_gone", uid=p.uid, pod=p.name, holder=sb.holder.pid)
            return False
        log.info("sandbox_adopted", uid=p.uid, pod=p.name, holder=sb.holder.pid)
        return True

    def _adopt_process(self, p: PodState, c: Container, rec: Mapping[str, Any], now: float) -> bool:
        """Watch the container's recorded process again if it is still ours; False if it is gone."""
        ident = procid.ProcessIdentity.from_json(rec.get("process"))
        if ident is None or not procid.is_ours(ident, p.uid):
            return False
        try:
            pidfd = os.pidfd_open(ident.pid)
        except OSError:
            return False
        # re-check after pinning the process with its pidfd: the pid cannot be reused under us now
        if not procid.is_ours(ident, p.uid):
            os.close(pidfd)
            return False
        c.started = bool(rec.get("started"))
        c.readiness = bool(rec.get("readiness"))
        try:
            _argv, c.env, c.cwd = self._resolve(p, c)
        except (Waiting, StartError):
            c.env, c.cwd = None, None
        self._attach(p, c, ident, pidfd, float(rec.get("startedAt") or now))
        log.info("container_adopted", uid=p.uid, pod=p.name, container=c.name, pid=ident.pid)
        return True


def _kill_recorded(uid: str, rec: Mapping[str, Any]) -> None:
    """SIGKILL a recorded container's process group if it is still ours (its sandbox is gone)."""
    ident = procid.ProcessIdentity.from_json(rec.get("process"))
    if ident is not None and procid.is_ours(ident, uid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ident.pid, signal.SIGKILL)
