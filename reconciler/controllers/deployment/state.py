"""The working state of one Deployment sync and the value it returns.

Kubernetes' controller keeps this state in the API server (it writes each change as it goes);
here one sync works on copies and collects what changed into a ``DeploymentResult`` that the
reconciler carries out. The steps that change this state live beside it, one module per concern
of kubernetes/kubernetes pkg/controller/deployment: ``revision`` (sync.go's new-ReplicaSet and
history parts), ``scaling`` (sync.go's scale), ``rolling`` (rolling.go), ``recreate``
(recreate.go), ``progress`` (progress.go and the status part of sync.go).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.controllers.deployment.util import KIND_DEPLOYMENT, deployment_complete, fenceposts, meta, replicas_of
from reconciler.controllers.podutil import Event
from reconciler.types import Obj


@dataclass
class DeploymentResult:
    """What one Deployment sync decided.

    ``update_rs`` holds complete ReplicaSet dicts (spec.replicas, annotations, labels or
    ownerReferences changed); ``delete_rs`` holds names. ``deployment_annotations`` is the
    Deployment's full ``metadata.annotations`` when the sync changed them (the
    ``deployment.kubernetes.io/revision`` copy of the new RS's revision), else None.
    """

    create_rs: list[Obj] = field(default_factory=list)
    update_rs: list[Obj] = field(default_factory=list)
    delete_rs: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    deployment_annotations: dict[str, str] | None = None


class SyncState:
    """Working state of one sync: copies of the owned RSs and what changed."""

    def __init__(self, deploy: Obj, now: float, new_uid: Callable[[], str]) -> None:
        self.d = deploy
        self.name = meta(deploy)["name"]
        self.namespace = meta(deploy).get("namespace", "default")
        self.now = now
        self.new_uid = new_uid
        self.replicas = replicas_of(deploy)
        self.max_surge, self.max_unavailable = fenceposts(deploy)
        self.status: Obj = copy.deepcopy(deploy.get("status") or {})  # "d.Status", mutated in place
        self.annotations: dict[str, str] = dict(meta(deploy).get("annotations") or {})
        self.owned: list[Obj] = []
        self.all_names: set[str] = set()
        self.created: list[Obj] = []
        self.changed: dict[str, Obj] = {}
        self.events: list[Event] = []
        self.delete: list[str] = []
        self.requeue: list[float] = []

    def event(self, etype: str, reason: str, message: str) -> None:
        self.events.append(Event(etype, reason, message, KIND_DEPLOYMENT, self.namespace, self.name))

    def is_created(self, rs: Obj) -> bool:
        """True for an RS this sync creates (by identity: its copy is not in the cluster yet)."""
        return any(rs is c for c in self.created)

    def touch(self, rs: Obj) -> None:
        """Record ``rs`` (an existing RS's copy) as changed."""
        if not self.is_created(rs):
            self.changed[meta(rs)["name"]] = rs

    def complete_as_read(self) -> bool:
        """k8s checks ``DeploymentComplete(d, &d.Status)`` here: the status as read."""
        return deployment_complete(self.d, self.d.get("status") or {})

    def result(self, status: Obj) -> DeploymentResult:
        original_annotations = dict(meta(self.d).get("annotations") or {})
        deleted = set(self.delete)
        return DeploymentResult(
            create_rs=list(self.created),
            update_rs=[rs for name, rs in self.changed.items() if name not in deleted],
            delete_rs=list(self.delete),
            status=status,
            events=list(self.events),
            requeue_after=min(self.requeue) if self.requeue else None,
            deployment_annotations=self.annotations if self.annotations != original_annotations else None,
        )
