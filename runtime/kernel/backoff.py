"""Crash and image-pull back-off, as the kubelet's flowcontrol.Backoff entry per container.

Kubernetes (pkg/kubelet/kuberuntime/kuberuntime_manager.go doBackOff, and
staging/src/k8s.io/client-go/util/flowcontrol/backoff.go): when a container exited, the
kubelet restarts it at once if it is not "in back-off since" its finish time, and then
calls ``Next``: the first entry is ``base`` (10 s), each later one doubles up to ``cap``
(300 s). An entry expires (starts again at ``base``) when the container finished more
than ``2 × cap`` after the entry was last updated, i.e. after it ran for 10 minutes.
So the restart delays after consecutive crashes are 0, 10, 20, 40, 80, 160, 300, 300 s.
"""

from __future__ import annotations

from dataclasses import dataclass


def crash_backoff(crashes: int, base: float, cap: float) -> float:
    """Seconds to wait before restarting after the ``crashes``-th consecutive crash.

    The first restart is immediate (no back-off entry yet), then ``base``, doubling each
    time, capped at ``cap``: 0, 10, 20, 40, 80, 160, 300, 300, ... with the defaults.
    """
    if crashes <= 1:
        return 0.0
    return float(min(base * 2 ** (crashes - 2), cap))


@dataclass
class Backoff:
    """One back-off entry. Times are seconds on any clock, as long as it is always the same one."""

    base: float
    cap: float
    delay: float | None = None  # None: no entry (never backed off, or expired)
    updated: float | None = None  # when ``next`` last ran

    def expired(self, event: float) -> bool:
        return self.delay is None or self.updated is None or event - self.updated > 2 * self.cap

    def remaining(self, now: float, since: float | None = None) -> float:
        """Seconds still to wait at ``now`` for an event (a container's exit) at ``since``; 0: go now.

        ``since`` defaults to the entry's last update (an image pull's failure).
        """
        event = self.updated if since is None else since
        if event is None or self.expired(event):
            return 0.0
        assert self.delay is not None
        return max(0.0, self.delay - (now - event))

    def next(self, now: float, event: float | None = None) -> float:
        """Record a restart (or a failed pull) at ``now`` for an event at ``event``; returns the new delay."""
        if self.expired(now if event is None else event):
            self.delay = self.base
        else:
            assert self.delay is not None
            self.delay = min(self.delay * 2, self.cap)
        self.updated = now
        return self.delay

    def reset(self) -> None:
        self.delay, self.updated = None, None

    def to_json(self) -> dict[str, float | None]:
        return {"delay": self.delay, "updated": self.updated}

    def load(self, d: object) -> None:
        """Restore ``delay``/``updated`` from ``to_json`` output (anything else: no entry)."""
        if (
            isinstance(d, dict)
            and isinstance(d.get("delay"), (int, float))
            and isinstance(d.get("updated"), (int, float))
        ):
            self.delay, self.updated = float(d["delay"]), float(d["updated"])
        else:
            self.reset()
