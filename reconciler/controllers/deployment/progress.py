"""Status and conditions of a Deployment (docs/kubernetes.md §1.10).

Kubernetes: ``calculateStatus`` and ``syncDeploymentStatus`` in kubernetes/kubernetes
pkg/controller/deployment/sync.go; ``syncRolloutStatus``, ``getReplicaFailures`` and
``requeueStuckDeployment`` in pkg/controller/deployment/progress.go; ``checkPausedConditions``
in sync.go.
"""

from __future__ import annotations

import copy

from reconciler.controllers.deployment.state import SyncState
from reconciler.controllers.deployment.util import (
    COND_AVAILABLE,
    COND_PROGRESSING,
    COND_REPLICA_FAILURE,
    REASON_MIN_AVAILABLE,
    REASON_MIN_UNAVAILABLE,
    REASON_NEW_RS_AVAILABLE,
    REASON_PAUSED,
    REASON_RESUMED,
    REASON_RS_UPDATED,
    REASON_TIMED_OUT,
    deployment_complete,
    get_condition,
    by_creation,
    has_progress_deadline,
    meta,
    new_condition,
    progressed,
    remove_condition,
    rs_to_deployment_condition,
    set_condition,
    spec_replicas,
    status_count,
)
from reconciler.controllers.podutil import controller_ref, from_rfc3339, seconds_until_available
from reconciler.types import Obj


def calculate_status(s: SyncState, new_rs: Obj | None) -> Obj:
    """``calculateStatus``: counts over the owned RSs and the Available condition."""
    rss = s.owned
    available = sum(status_count(rs, "availableReplicas") for rs in rss)
    total_spec = sum(spec_replicas(rs) for rs in rss)
    status: Obj = {
        "observedGeneration": meta(s.d).get("generation", 0),
        "replicas": sum(status_count(rs, "replicas") for rs in rss),
        "updatedReplicas": status_count(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_spec - available),
    }
    if s.status.get("collisionCount") is not None:
        status["collisionCount"] = s.status["collisionCount"]
    status["conditions"] = copy.deepcopy(s.status.get("conditions") or [])
    if available >= s.replicas - s.max_unavailable:
        cond = new_condition(
            COND_AVAILABLE, "True", REASON_MIN_AVAILABLE, "Deployment has minimum availability.", s.now
        )
    else:
        cond = new_condition(
            COND_AVAILABLE,
            "False",
            REASON_MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            s.now,
        )
    set_condition(status, cond)
    return status


def sync_rollout_status(s: SyncState, new_rs: Obj | None) -> Obj:
    """``syncRolloutStatus``: status plus the Progressing and ReplicaFailure conditions."""
    new_status = calculate_status(s, new_rs)
    if not has_progress_deadline(s.d):
        remove_condition(new_status, COND_PROGRESSING)
    elif not _complete_before(s, new_status):
        _estimate_progress(s, new_rs, new_status)
        requeue_stuck(s, new_status)
    failure = replica_failure(s, new_rs)
    if failure is not None:
        set_condition(new_status, failure)
    else:
        remove_condition(new_status, COND_REPLICA_FAILURE)
    return new_status


def _complete_before(s: SyncState, new_status: Obj) -> bool:
    """The latest rollout completed already: a resync, no progress to estimate."""
    current = get_condition(s.status, COND_PROGRESSING)
    return (
        new_status["replicas"] == new_status["updatedReplicas"]
        and current is not None
        and current.get("reason") == REASON_NEW_RS_AVAILABLE
    )


def _estimate_progress(s: SyncState, new_rs: Obj | None, new_status: Obj) -> None:
    """The Progressing condition: complete, progressing, or timed out."""
    current = get_condition(s.status, COND_PROGRESSING)
    subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None else f'Deployment "{s.name}"'
    if deployment_complete(s.d, new_status):
        cond = new_condition(
            COND_PROGRESSING, "True", REASON_NEW_RS_AVAILABLE, f"{subject} has successfully progressed.", s.now
        )
        set_condition(new_status, cond)
    elif progressed(s.status, new_status):
        cond = new_condition(COND_PROGRESSING, "True", REASON_RS_UPDATED, f"{subject} is progressing.", s.now)
        if current is not None:
            if current["status"] == "True":
                cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
            remove_condition(new_status, COND_PROGRESSING)
        set_condition(new_status, cond)
    elif timed_out(s, new_status):
        cond = new_condition(
            COND_PROGRESSING, "False", REASON_TIMED_OUT, f"{subject} has timed out progressing.", s.now
        )
        set_condition(new_status, cond)


def replica_failure(s: SyncState, new_rs: Obj | None) -> Obj | None:
    """``getReplicaFailures``: the new ReplicaSet's ReplicaFailure condition, else an old one's
    (oldest first), as a Deployment condition; None when no ReplicaSet has one."""
    owned = [rs for rs in by_creation(s.owned) if new_rs is None or meta(rs).get("uid") != meta(new_rs).get("uid")]
    for rs in ([new_rs] if new_rs is not None else []) + owned:
        cond = get_condition(rs.get("status") or {}, COND_REPLICA_FAILURE)
        if cond is not None:
            return rs_to_deployment_condition(cond)
    return None


def timed_out(s: SyncState, status: Obj) -> bool:
    """``DeploymentTimedOut``: the Progressing condition is older than progressDeadlineSeconds."""
    cond = get_condition(status, COND_PROGRESSING)
    if cond is None or cond.get("reason") == REASON_NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == REASON_TIMED_OUT:
        return True
    since = from_rfc3339(cond["lastUpdateTime"])
    return since + int(s.d["spec"]["progressDeadlineSeconds"]) < s.now


def requeue_stuck(s: SyncState, new_status: Obj) -> None:
    """``requeueStuckDeployment``: re-run just after the progress deadline would pass."""
    cond = get_condition(new_status, COND_PROGRESSING)
    if cond is None or deployment_complete(s.d, new_status):
        return
    if cond.get("reason") in (REASON_TIMED_OUT, REASON_NEW_RS_AVAILABLE):
        return
    after = from_rfc3339(cond["lastUpdateTime"]) + int(s.d["spec"]["progressDeadlineSeconds"]) - s.now
    s.requeue.append(max(after, 0.0) + 1.0)


def check_paused_conditions(s: SyncState) -> None:
    """Progressing Unknown/DeploymentPaused while paused, Unknown/DeploymentResumed on resume."""
    if not has_progress_deadline(s.d):
        return
    cond = get_condition(s.status, COND_PROGRESSING)
    if cond is not None and cond.get("reason") == REASON_TIMED_OUT:
        return
    paused_exists = cond is not None and cond.get("reason") == REASON_PAUSED
    if s.d["spec"].get("paused") and not paused_exists:
        set_condition(
            s.status,
            new_condition(COND_PROGRESSING, "Unknown", REASON_PAUSED, "Deployment is paused", s.now),
        )
    elif not s.d["spec"].get("paused") and paused_exists:
        set_condition(
            s.status,
            new_condition(COND_PROGRESSING, "Unknown", REASON_RESUMED, "Deployment is resumed", s.now),
        )


def min_ready_requeue(s: SyncState, pods: list[Obj]) -> None:
    """Re-run when an owned pod becomes available (minReadySeconds after it turned Ready)."""
    uids = {meta(rs).get("uid") for rs in s.owned}
    mrs = int(s.d["spec"].get("minReadySeconds") or 0)
    if not mrs:  # a Ready pod is available at once: nothing to wait for
        return
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None or ref.get("uid") not in uids:
            continue
        wait = seconds_until_available(pod, mrs, s.now)
        if wait is not None:
            s.requeue.append(wait)
