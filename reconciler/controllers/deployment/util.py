"""Constants and read-only helpers of the Deployment controller.

The counterpart of kubernetes/kubernetes pkg/controller/deployment/util/deployment_util.go:
annotation keys, condition reasons, accessors of Deployments and ReplicaSets, the orderings
the controller sorts by, the conditions and the completeness / progress predicates. Nothing
here changes an object it is given (the ``*_condition`` helpers change the status dict passed).
"""

from __future__ import annotations

import functools
from typing import cast

from reconciler import annotation_keys, rollout
from reconciler.controllers.podutil import from_rfc3339, to_rfc3339
from reconciler.errors import SelectorError
from reconciler.selectors import Selector, from_label_selector
from reconciler.types import Obj

MAX_INT32 = 2147483647
HASH_LABEL = annotation_keys.POD_TEMPLATE_HASH
KIND_DEPLOYMENT = "Deployment"
KIND_REPLICASET = "ReplicaSet"

REVISION_ANNOTATION = annotation_keys.REVISION
REVISION_HISTORY_ANNOTATION = annotation_keys.REVISION_HISTORY
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
CHANGE_CAUSE_ANNOTATION = annotation_keys.KUBERNETES_CHANGE_CAUSE
SKIPPED_ANNOTATIONS = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        ROLLBACK_TO_ANNOTATION,
    }
)
"""Deployment annotations not copied onto its ReplicaSets (``annotationsToSkip``)."""
MAX_REV_HISTORY_CHARS = 2000

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"

COND_AVAILABLE = "Available"
COND_PROGRESSING = "Progressing"
COND_REPLICA_FAILURE = "ReplicaFailure"

# Condition reasons (deployment_util.go)
REASON_MIN_AVAILABLE = "MinimumReplicasAvailable"
REASON_MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
REASON_NEW_RS_CREATED = "NewReplicaSetCreated"
REASON_FOUND_NEW_RS = "FoundNewReplicaSet"
REASON_RS_UPDATED = "ReplicaSetUpdated"
REASON_NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
REASON_TIMED_OUT = "ProgressDeadlineExceeded"
REASON_PAUSED = "DeploymentPaused"
REASON_RESUMED = "DeploymentResumed"

# Event reasons
REASON_SCALING = "ScalingReplicaSet"
REASON_SELECTING_ALL = "SelectingAll"


# --- accessors --------------------------------------------------------------------------


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec_replicas(rs: Obj) -> int:
    value = (rs.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_count(rs: Obj, key: str) -> int:
    return int((rs.get("status") or {}).get(key) or 0)


def int_annotation(rs: Obj, key: str) -> int | None:
    raw = (meta(rs).get("annotations") or {}).get(key)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def revision_of(rs: Obj) -> int:
    """The RS's ``deployment.kubernetes.io/revision`` (0 when absent or invalid)."""
    return int_annotation(rs, REVISION_ANNOTATION) or 0


def created(rs: Obj) -> float:
    ts = meta(rs).get("creationTimestamp")
    return from_rfc3339(ts) if ts else 0.0


def selector_of(deploy: Obj) -> Selector | None:
    try:
        return from_label_selector((deploy.get("spec") or {}).get("selector"))
    except SelectorError:
        return None


def has_progress_deadline(deploy: Obj) -> bool:
    pds = deploy["spec"].get("progressDeadlineSeconds")
    return pds is not None and pds != MAX_INT32


def is_rolling(deploy: Obj) -> bool:
    return ((deploy["spec"].get("strategy") or {}).get("type") or ROLLING_UPDATE) == ROLLING_UPDATE


def replicas_of(deploy: Obj) -> int:
    value = deploy["spec"].get("replicas")
    return 1 if value is None else int(value)


def fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved for the Deployment; (0, 0) for Recreate."""
    if not is_rolling(deploy):
        return 0, 0
    ru = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return rollout.resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), replicas_of(deploy))


# --- orderings and selections -----------------------------------------------------------


def by_creation(rss: list[Obj]) -> list[Obj]:
    """``ReplicaSetsByCreationTimestamp``: oldest first, then by name."""
    return sorted(rss, key=lambda rs: (created(rs), meta(rs).get("name", "")))


def by_size(rss: list[Obj], newer_first: bool) -> list[Obj]:
    """``ReplicaSetsBySizeNewer`` / ``BySizeOlder``: largest first, ties by creation."""

    def cmp(a: Obj, b: Obj) -> int:
        sa, sb = spec_replicas(a), spec_replicas(b)
        if sa != sb:
            return -1 if sa > sb else 1
        ka = (created(a), meta(a).get("name", ""))
        kb = (created(b), meta(b).get("name", ""))
        if ka == kb:
            return 0
        older_first = -1 if ka < kb else 1
        return -older_first if newer_first else older_first

    return sorted(rss, key=functools.cmp_to_key(cmp))


def active(rss: list[Obj]) -> list[Obj]:
    """``FilterActiveReplicaSets``: the RSs with spec.replicas > 0."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def find_active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    """``FindActiveOrLatest``: the only active RS, the newest one when none is active, else None."""
    if new_rs is None and not old:
        return None
    old_sorted = list(reversed(by_creation(old)))
    act = active(old_sorted + ([new_rs] if new_rs is not None else []))
    if len(act) == 0:
        return new_rs if new_rs is not None else old_sorted[0]
    if len(act) == 1:
        return act[0]
    return None


# --- conditions -------------------------------------------------------------------------


def conditions(status: Obj) -> list[Obj]:
    return cast(list[Obj], status.setdefault("conditions", []))


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cast(Obj, cond)
    return None


def new_condition(ctype: str, status: str, reason: str, message: str, now: float) -> Obj:
    ts = to_rfc3339(now)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, cond: Obj) -> None:
    """``SetDeploymentCondition``: no-op on same status+reason; keep transition time on same status."""
    current = get_condition(status, cond["type"])
    if current is not None and current["status"] == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current["status"] == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime", cond["lastTransitionTime"])}
    status["conditions"] = [c for c in conditions(status) if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in conditions(status) if c.get("type") != ctype]


def rs_to_deployment_condition(cond: Obj) -> Obj:
    """``ReplicaSetToDeploymentCondition``: a ReplicaSet condition as the Deployment shows it
    (its lastTransitionTime is both of the Deployment condition's times)."""
    return {
        "type": cond["type"],
        "status": cond["status"],
        "lastUpdateTime": cond.get("lastTransitionTime"),
        "lastTransitionTime": cond.get("lastTransitionTime"),
        "reason": cond.get("reason", ""),
        "message": cond.get("message", ""),
    }


# --- completeness and progress ----------------------------------------------------------


def progressed(old: Obj, new: Obj) -> bool:
    """``DeploymentProgressing``: more updated / fewer old / more ready / more available."""
    o = {k: int(old.get(k) or 0) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
    old_old = o["replicas"] - o["updatedReplicas"]
    new_old = new["replicas"] - new["updatedReplicas"]
    return bool(
        new["updatedReplicas"] > o["updatedReplicas"]
        or new_old < old_old
        or new["readyReplicas"] > o["readyReplicas"]
        or new["availableReplicas"] > o["availableReplicas"]
    )


def deployment_complete(deploy: Obj, status: Obj) -> bool:
    """updated == replicas == available == spec.replicas and the generation is observed."""
    replicas = replicas_of(deploy)
    return (
        int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
        and int(status.get("observedGeneration") or 0) >= int(meta(deploy).get("generation") or 0)
    )
