"""Probe defaults, schedule and the one probe state machine every runtime drives.

Kubernetes: pkg/kubelet/prober/worker.go (one worker per probe of a container: the first
probe ``initialDelaySeconds`` after the container started, then every ``periodSeconds``;
a result takes effect after ``successThreshold`` / ``failureThreshold`` consecutive equal
outcomes) and pkg/apis/core/v1/defaults.go (SetDefaults_Probe). See docs/kubernetes.md §7.4.

The runtime performs each attempt (runtime/probes.py: httpGet, tcpSocket; exec is the
runtime's own) and feeds the outcome to ``ProbeMachine.record``; the machine says whether
the effective result changed, whether the worker is done, and when to probe next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
FIRST_READY_RETRY = 0.05  # seconds: the first retry of a readiness probe that has never succeeded


def with_defaults(probe: Mapping[str, Any]) -> dict[str, Any]:
    """The probe with every numeric default filled in (0 period means the default, as in Kubernetes)."""
    out = dict(probe)
    for k, v in PROBE_DEFAULTS.items():
        if out.get(k) is None:
            out[k] = v
    if not out["periodSeconds"] or out["periodSeconds"] < 0:
        out["periodSeconds"] = PROBE_DEFAULTS["periodSeconds"]
    if not out["timeoutSeconds"] or out["timeoutSeconds"] < 0:
        out["timeoutSeconds"] = PROBE_DEFAULTS["timeoutSeconds"]
    out["successThreshold"] = max(1, int(out["successThreshold"]))
    out["failureThreshold"] = max(1, int(out["failureThreshold"]))
    out["initialDelaySeconds"] = max(0, out["initialDelaySeconds"])
    return out


def next_probe_delay(kind: str, period: float, ever_ready: bool, failures_before_ready: int) -> float:
    """Seconds until the next probe.

    Every period, as the kubelet does, with one exception that only makes a pod
    serve sooner: a readiness probe that has never succeeded retries after 50 ms,
    100 ms, 200 ms ... up to its period, so an app that binds its port 30 ms
    after the first probe is Ready in about 50 ms instead of a whole period
    later. Failures before the first success only keep a pod unready, so no
    threshold is reached sooner; startup and liveness probes keep their
    period, since their failures count toward a restart.

    >>> [round(next_probe_delay("readiness", 1.0, False, n), 2) for n in range(1, 7)]
    [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    >>> next_probe_delay("liveness", 1.0, False, 1)
    1.0
    """
    if kind != "readiness" or ever_ready or failures_before_ready < 1:
        return period
    return float(min(period, FIRST_READY_RETRY * 2 ** (failures_before_ready - 1)))


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """A probe port: a number, a numeric string, or the name of one of the container's own ports."""
    if isinstance(port, bool):
        raise ValueError(f"invalid port {port!r}")
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for p in container.get("ports") or []:
            if p.get("name") == port and p.get("containerPort") is not None:
                return int(p["containerPort"])
        raise ValueError(f"no containerPort named {port!r}")
    raise ValueError(f"invalid port {port!r}")


class ProbeMachine:
    """The thresholds of one probe of one container incarnation.

    ``kind`` is "startup", "readiness" or "liveness". ``initial`` is the effective result
    before the first thresholded one (readiness: False, liveness: True, startup: None).
    A startup probe is done after its first effective result; a liveness probe after a
    failure (the container is being killed).
    """

    def __init__(self, kind: str, probe: Mapping[str, Any], initial: bool | None):
        self.kind = kind
        self.probe = with_defaults(probe)
        self.result = initial
        self.done = False
        self._last_raw: bool | None = None
        self._run = 0
        self._ever_ok = False
        self._fails_before_ok = 0

    def first_delay(self, started_at: float, now: float) -> float:
        """Seconds from ``now`` to the first probe: ``initialDelaySeconds`` after the container started."""
        return max(0.0, started_at + float(self.probe["initialDelaySeconds"]) - now)

    def record(self, ok: bool) -> bool:
        """Take one attempt's outcome; True when the effective result changed (it is ``ok`` now)."""
        if ok == self._last_raw:
            self._run += 1
        else:
            self._last_raw, self._run = ok, 1
        threshold = self.probe["successThreshold"] if ok else self.probe["failureThreshold"]
        changed = False
        if self._run >= threshold and self.result != ok:
            self.result = ok
            changed = True
            self.done = self.kind == "startup" or (self.kind == "liveness" and not ok)
        elif self.kind == "startup" and ok and self._run >= threshold:
            self.done = True
        if ok:
            self._ever_ok = True
        else:
            self._fails_before_ok += 1
        return changed

    def next_delay(self) -> float:
        """Seconds from the start of the last attempt to the next one."""
        return next_probe_delay(self.kind, float(self.probe["periodSeconds"]), self._ever_ok, self._fails_before_ok)
