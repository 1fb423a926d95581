"""Scaling ReplicaSets: one RS's size, and proportional scaling (docs/kubernetes.md §1.7).

Kubernetes: ``scale``, ``scaleReplicaSet`` and ``isScalingEvent`` in kubernetes/kubernetes
pkg/controller/deployment/sync.go. The arithmetic of proportional scaling is
``reconciler.rollout.proportional_sizes``.
"""

from __future__ import annotations

from reconciler import rollout
from reconciler.controllers.deployment.revision import set_replicas_annotations
from reconciler.controllers.deployment.state import SyncState
from reconciler.controllers.deployment.util import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REASON_SCALING,
    active,
    by_size,
    find_active_or_latest,
    int_annotation,
    is_rolling,
    spec_replicas,
    status_count,
)
from reconciler.controllers.podutil import EVENT_NORMAL
from reconciler.types import Obj


def scale(s: SyncState, rs: Obj, new_scale: int, operation: str | None = None) -> bool:
    """``scaleReplicaSet``: write size and desired/max annotations; True if the size changed."""
    old_scale = spec_replicas(rs)
    size_changed = old_scale != new_scale
    annotations_changed = set_replicas_annotations(s, rs)
    if size_changed or annotations_changed:
        rs["spec"]["replicas"] = new_scale
        s.touch(rs)
    if size_changed:
        op = operation or ("down" if old_scale > new_scale else "up")
        name = rs["metadata"]["name"]
        s.event(EVENT_NORMAL, REASON_SCALING, f"Scaled {op} replica set {name} to {new_scale} from {old_scale}")
    return size_changed


def scale_and_record(s: SyncState, rs: Obj, new_scale: int) -> bool:
    """``scaleReplicaSetAndRecordEvent``: nothing when the size is already right."""
    if spec_replicas(rs) == new_scale:
        return False
    return scale(s, rs, new_scale)


def proportional_scale(s: SyncState, new_rs: Obj | None, old: list[Obj]) -> None:
    """``scale()``: the Deployment's replicas changed (or it is paused)."""
    target = find_active_or_latest(new_rs, old)
    if target is not None:
        if spec_replicas(target) != s.replicas:
            scale_and_record(s, target, s.replicas)
        return
    if _is_saturated(s, new_rs):
        for rs in active(old):
            scale_and_record(s, rs, 0)
        return
    if not is_rolling(s.d):
        return
    act = active(old + ([new_rs] if new_rs is not None else []))
    allowed = s.replicas + s.max_surge if s.replicas > 0 else 0
    to_add = rollout.replicas_to_add(allowed, [spec_replicas(rs) for rs in act])
    operation = ""
    if to_add > 0:
        act = by_size(act, newer_first=True)
        operation = "up"
    elif to_add < 0:
        act = by_size(act, newer_first=False)
        operation = "down"
    entries = [(spec_replicas(rs), int_annotation(rs, MAX_REPLICAS_ANNOTATION)) for rs in act]
    sizes = rollout.proportional_sizes(entries, s.replicas, s.max_surge, status_count(s.d, "replicas"))
    for rs, size in zip(act, sizes):
        scale(s, rs, size, operation)


def _is_saturated(s: SyncState, rs: Obj | None) -> bool:
    """``IsSaturated``: the new RS runs every replica, all available."""
    if rs is None:
        return False
    desired = int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
    return (
        desired is not None
        and spec_replicas(rs) == s.replicas
        and desired == s.replicas
        and status_count(rs, "availableReplicas") == s.replicas
    )


def is_scaling_event(s: SyncState, new_rs: Obj | None, old: list[Obj]) -> bool:
    """``isScalingEvent``: an active RS's desired-replicas annotation differs from spec.replicas."""
    for rs in active(old + ([new_rs] if new_rs is not None else [])):
        desired = int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
        if desired is not None and desired != s.replicas:
            return True
    return False
