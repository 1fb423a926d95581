"""The scratch state of one pass: a copy of the live objects and what the steps decided so far."""

from __future__ import annotations

import copy

from ..cluster import Cluster, key_of
from ..controllers.podutil import Event, to_rfc3339
from ..types import Obj
from .model import PassInput, PodStop, Problem


class Work:
    """Each step reads and writes ``cluster`` (a scratch copy of the live objects) and appends
    to the lists; ``decide`` turns the result into ``Changes``."""

    def __init__(self, inp: PassInput):
        self.inp = inp
        self.now = inp.now
        self.cluster = Cluster(inp.live.values())
        self.events: list[Obj] = []
        self.problems: list[Problem] = []
        self.replaced: list[PodStop] = []  # pods gone from the cluster, to stop after the Service step
        self.requeue_after: float | None = None
        self.net_warned: frozenset[str] = frozenset()  # the Service step's network Warnings in force

    def event(self, type_: str, reason: str, kind: str, namespace: str, name: str, message: str) -> None:
        self.events.append(
            {
                "time": self.now,
                "type": type_,
                "reason": reason,
                "kind": kind,
                "namespace": namespace,
                "name": name,
                "message": message,
                "reconcile_id": self.inp.reconcile_id,
                "revision": self.inp.revision,
            }
        )

    def controller_event(self, ev: Event) -> None:
        self.event(ev.type, ev.reason, ev.kind, ev.namespace, ev.name, ev.message)

    def requeue(self, after: float | None) -> None:
        if after is None:
            return
        after = max(0.0, after)
        if self.requeue_after is None or after < self.requeue_after:
            self.requeue_after = after

    def problem(self, level: str, event: str, exc: BaseException | None = None, **fields: object) -> None:
        self.problems.append(Problem(level, event, fields, exc))

    def terminate(self, pod: Obj, keep: bool = True) -> None:
        """Mark a pod terminating; the runtime stops it after the endpoints have dropped it.

        ``keep=False`` (a bare pod replaced under the same name): gone from the cluster now,
        stopped in the runtime step, after the Service step has taken it out of the endpoints."""
        if keep:
            p = copy.deepcopy(pod)
            p["metadata"]["deletionTimestamp"] = to_rfc3339(self.now)
            p["metadata"]["deletionGracePeriodSeconds"] = p["spec"].get("terminationGracePeriodSeconds", 30)
            self.cluster.put(p)
        else:
            self.cluster.delete(key_of(pod))
            self.replaced.append(PodStop(pod["metadata"]["uid"], None))
