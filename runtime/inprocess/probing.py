"""Probes of the in-process runtime's containers: startup, readiness, liveness.

Where it sits: ``ContainerSupervisor`` (lifecycle.py) starts a container and calls
``_start_probes``; this class runs the probe workers (runtime/probes.py performs a probe,
runtime/kernel/probe.py holds the thresholds) and acts on their verdicts: a failed
startup or liveness probe kills the container (TERM, grace, KILL), its exit then goes
through the restart policy. exec probes run in the pod's sandbox when it has one
(probes.py ``exec_check`` with the nsenter prefix); httpGet and tcpSocket connect from the
host to the pod IP.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog

from ..kernel import with_defaults
from ..probes import ProbeWorker, make_check
from .lifecycle import ContainerSupervisor
from .probes import exec_check
from .state import Container, PodState

log = structlog.get_logger("runtime.inprocess")


class ProbeSupervisor(ContainerSupervisor):
    """The probe half of the container lifecycle."""

    def _worker(self, p: PodState, c: Container, kind: str, initial: bool | None) -> ProbeWorker:
        probe = c.spec.get(f"{kind}Probe") or {}
        env, cwd = c.env or {}, c.cwd

        async def run(argv: list[str], timeout: float) -> tuple[bool, str]:
            enter = self._enter_prefix(p, cwd)  # the sandbox as it is now
            if enter is None:
                return False, "the pod's sandbox is not running"
            return await exec_check(argv, env, cwd, timeout, enter)

        inc = c.incarnation
        handler = {"startup": self._on_startup, "readiness": self._on_readiness, "liveness": self._on_liveness}[kind]
        w = ProbeWorker(
            kind,
            probe,
            make_check(probe, c.spec, p.ip, run),
            lambda ok, msg: handler(p, c, inc, ok, msg),
            c.started_at or time.time(),
            initial,
        )
        c.probes.append(w)
        w.start()
        return w

    def _start_probes(self, p: PodState, c: Container) -> None:
        if c.spec.get("startupProbe") and not c.started:
            self._worker(p, c, "startup", None)
        else:
            c.started = True
            self._start_lr_probes(p, c)

    def _start_lr_probes(self, p: PodState, c: Container) -> None:
        if c.spec.get("readinessProbe"):
            self._worker(p, c, "readiness", c.readiness)
        if c.spec.get("livenessProbe"):
            self._worker(p, c, "liveness", True)

    def _current(self, p: PodState, c: Container, inc: int) -> bool:
        return inc == c.incarnation and c.running and not p.deleting and not self._closed

    def _on_startup(self, p: PodState, c: Container, inc: int, ok: bool, msg: str) -> None:
        if not self._current(p, c, inc):
            return
        if ok:
            c.started = True
            self._start_lr_probes(p, c)
            self._save(p)
            self._notify(p)
        else:
            self._probe_kill(p, c, c.spec.get("startupProbe") or {}, f"Startup probe failed: {msg}")

    def _on_readiness(self, p: PodState, c: Container, inc: int, ok: bool, msg: str) -> None:
        if not self._current(p, c, inc):
            return
        c.readiness = ok
        log.info("container_readiness", uid=p.uid, pod=p.name, container=c.name, ready=ok, message=msg)
        self._save(p)
        self._notify(p)

    def _on_liveness(self, p: PodState, c: Container, inc: int, ok: bool, msg: str) -> None:
        if not ok and self._current(p, c, inc):
            self._probe_kill(p, c, c.spec.get("livenessProbe") or {}, f"Liveness probe failed: {msg}")

    def _probe_kill(self, p: PodState, c: Container, probe: Mapping[str, Any], message: str) -> None:
        """Kill the container (TERM, grace, KILL); its exit then goes through the restart policy."""
        log.info("container_unhealthy", uid=p.uid, pod=p.name, container=c.name, message=message)
        c.stop_probes()
        c.kill_message = message
        g = with_defaults(probe).get("terminationGracePeriodSeconds")
        grace = p.grace() if g is None else max(0.0, float(g))
        self._spawn(self._stop_container(c, grace))
