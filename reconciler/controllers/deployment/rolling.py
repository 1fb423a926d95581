"""One step of the RollingUpdate strategy (docs/kubernetes.md §1.5).

Kubernetes: ``rolloutRolling``, ``reconcileNewReplicaSet`` and ``reconcileOldReplicaSets`` in
kubernetes/kubernetes pkg/controller/deployment/rolling.go. The arithmetic (how far the new RS
may grow, how many old pods may go) is ``reconciler.rollout``.
"""

from __future__ import annotations

from reconciler import rollout
from reconciler.controllers.deployment.revision import cleanup, get_new_rs
from reconciler.controllers.deployment.scaling import scale_and_record
from reconciler.controllers.deployment.state import SyncState
from reconciler.controllers.deployment.util import active, by_creation, spec_replicas, status_count
from reconciler.types import Obj


def rollout_rolling(s: SyncState) -> None:
    """Grow the new RS, else shrink the old ones, else (complete) clean up history."""
    new_rs, old = get_new_rs(s, create=True)
    assert new_rs is not None
    if reconcile_new_rs(s, new_rs, old):
        return
    if reconcile_old_rss(s, new_rs, old):
        return
    if s.complete_as_read():
        cleanup(s, old)


def reconcile_new_rs(s: SyncState, new_rs: Obj, old: list[Obj]) -> bool:
    spec = spec_replicas(new_rs)
    if spec == s.replicas:
        return False
    if spec > s.replicas:
        return scale_and_record(s, new_rs, s.replicas)
    total = sum(spec_replicas(rs) for rs in old) + spec
    size = rollout.new_rs_new_replicas(s.replicas, s.max_surge, s.max_unavailable, total, spec)
    return scale_and_record(s, new_rs, size)


def reconcile_old_rss(s: SyncState, new_rs: Obj, old: list[Obj]) -> bool:
    active_old = by_creation(active(old))
    if sum(spec_replicas(rs) for rs in active_old) == 0:
        return False
    all_rss = old + [new_rs]
    min_available = s.replicas - s.max_unavailable
    budget = rollout.scale_down_budget(
        sum(spec_replicas(rs) for rs in all_rss),
        min_available,
        spec_replicas(new_rs),
        status_count(new_rs, "availableReplicas"),
    )
    if budget <= 0:
        return False
    scaled = False
    sizes = rollout.cleanup_unhealthy(
        [(spec_replicas(rs), status_count(rs, "availableReplicas")) for rs in active_old], budget
    )
    for rs, size in zip(active_old, sizes):
        scaled |= scale_and_record(s, rs, size)
    total_available = sum(status_count(rs, "availableReplicas") for rs in all_rss)
    sizes = rollout.scale_down_healthy([spec_replicas(rs) for rs in active_old], total_available, min_available)
    for rs, size in zip(active_old, sizes):
        scaled |= scale_and_record(s, rs, size)
    return scaled
