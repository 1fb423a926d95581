"""The ReplicaSet controller as a pure function (docs/kubernetes.md §3.1-3.3;
kubernetes/kubernetes pkg/controller/replicaset/replica_set.go).

Where it sits: the daemon calls ``sync_replicaset`` with one ReplicaSet, every pod of
its namespace and the clock, then carries out the returned ``RSResult`` (create the
pods, delete the listed pods, add/remove ownerReferences, write the status, record the
events). It re-runs the sync whenever pods of the namespace change and after
``requeue_after`` seconds. Randomness (pod-name suffix and uid) comes from the
``new_pod`` callable so the function stays deterministic.

Creating a pod can fail (the runtime refuses it). As Kubernetes' ``podControl`` does, the
create itself records ``SuccessfulCreate`` (``created_event``) or ``FailedCreate``
(``failed_create_event``); the pods go in slow-start batches (``slow_start_batches``), and
the next sync's status carries the ``ReplicaFailure`` condition (``with_replica_failure``).

The same controller runs ReplicationControllers (kubernetes/kubernetes
pkg/controller/replication/replication_controller.go wraps the ReplicaSet controller the same
way, converting the RC to a ReplicaSet): an RC's ``spec.selector`` is a plain map of labels (an
equality-based selector, ``selector_of``), and its pods' owner reference and its events name the
RC.

Like Kubernetes, the status describes the pods *observed* by this sync (before its own
creates and deletes take effect); the next sync, triggered by those pod changes,
reports the new counts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.controllers.podutil import (
    EVENT_NORMAL,
    EVENT_WARNING,
    Event,
    controller_ref,
    deletion_order,
    generated_name,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    is_terminating,
    owner_ref,
    seconds_until_available,
    to_rfc3339,
)
from reconciler.selectors import Selector, from_label_selector, from_match_labels
from reconciler.errors import SelectorError
from reconciler.types import Obj

BURST_REPLICAS = 500
"""At most this many pods are created or deleted by one sync."""
SLOW_START_INITIAL_BATCH_SIZE = 1
"""The first batch of pod creations in one sync; each next batch doubles (replica_set.go)."""

REASON_SUCCESSFUL_CREATE = "SuccessfulCreate"
REASON_FAILED_CREATE = "FailedCreate"
REASON_FAILED_DELETE = "FailedDelete"
REASON_SUCCESSFUL_DELETE = "SuccessfulDelete"
COND_REPLICA_FAILURE = "ReplicaFailure"
KIND_REPLICASET = "ReplicaSet"
KIND_REPLICATION_CONTROLLER = "ReplicationController"
KINDS = (KIND_REPLICASET, KIND_REPLICATION_CONTROLLER)
"""The kinds this controller runs."""


@dataclass
class RSResult:
    """What one ReplicaSet sync decided. ``delete`` and ``adopt``/``release`` are pod uids."""

    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    adopt: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def selector_of(rs: Obj) -> Selector | None:
    """The pod selector of a ReplicaSet (a LabelSelector) or a ReplicationController (a plain map
    of labels, every one required: an equality-based selector). None when it cannot be read."""
    sel = (rs.get("spec") or {}).get("selector")
    try:
        if rs.get("kind") == KIND_REPLICATION_CONTROLLER:
            return from_match_labels(sel) if isinstance(sel, dict) and sel else None
        return from_label_selector(sel)
    except SelectorError:
        return None


def _kind(rs: Obj) -> str:
    return str(rs.get("kind") or KIND_REPLICASET)


def _labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def claim_pods(rs: Obj, pods: list[Obj]) -> tuple[list[Obj], list[str], list[str]]:
    """Spec 3.1 over the *active* pods: (owned pods after the claim, adopted uids, released uids)."""
    meta = rs["metadata"]
    uid, namespace = meta.get("uid"), meta.get("namespace", "default")
    selector = selector_of(rs)
    rs_deleting = is_terminating(rs)
    owned: list[Obj] = []
    adopted: list[str] = []
    released: list[str] = []
    for pod in pods:
        pmeta = pod.get("metadata") or {}
        if pmeta.get("namespace", "default") != namespace or not is_pod_active(pod):
            continue
        matches = selector is not None and selector.matches(_labels(pod))
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                owned.append(pod)
            elif not rs_deleting:
                released.append(pmeta["uid"])
            continue
        if matches and not rs_deleting and not is_terminating(pod):
            adopted.append(pmeta["uid"])
            owned.append(pod)
    return owned, adopted, released


def _min_ready_seconds(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("minReadySeconds") or 0)


def _desired(rs: Obj) -> int:
    replicas = (rs.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def calculate_status(rs: Obj, owned: list[Obj], now: float) -> Obj:
    """RS status from its active owned pods (docs/kubernetes.md §3.2; replica_set_utils.go calculateStatus)."""
    template_labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    template_selector = from_match_labels(template_labels)
    mrs = _min_ready_seconds(rs)
    ready = [p for p in owned if is_pod_ready(p)]
    status: Obj = {
        "replicas": len(owned),
        "fullyLabeledReplicas": sum(1 for p in owned if template_selector.matches(_labels(p))),
        "readyReplicas": len(ready),
        "availableReplicas": sum(1 for p in ready if is_pod_available(p, mrs, now)) if mrs else len(ready),
        "observedGeneration": (rs.get("metadata") or {}).get("generation", 0),
    }
    conditions = (rs.get("status") or {}).get("conditions")
    if conditions:  # kept as they are: only a sync's outcome changes them (with_replica_failure)
        status["conditions"] = copy.deepcopy(conditions)
    return status


def with_replica_failure(status: Obj, reason: str | None, message: str | None, now: float) -> Obj:
    """The ReplicaFailure part of calculateStatus (replica_set_utils.go), on a copy of ``status``.

    ``reason`` (``FailedCreate`` / ``FailedDelete``) and ``message`` describe the error of the
    sync's pod creations or deletions, None when it had none. The condition is set when an
    error happened and none is recorded (an existing one is kept as it is), and removed by a
    sync without an error."""
    conditions = list(status.get("conditions") or [])
    current = next((c for c in conditions if c.get("type") == COND_REPLICA_FAILURE), None)
    if reason is not None and current is None:
        cond = {
            "type": COND_REPLICA_FAILURE,
            "status": "True",
            "lastTransitionTime": to_rfc3339(now),
            "reason": reason,
            "message": message or "",
        }
        return {**status, "conditions": [*conditions, cond]}
    if reason is None and current is not None:
        rest = [c for c in conditions if c.get("type") != COND_REPLICA_FAILURE]
        new = {k: v for k, v in status.items() if k != "conditions"}
        if rest:
            new["conditions"] = rest
        return new
    return status


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH_SIZE) -> list[int]:
    """The batch sizes ``slowStartBatch`` (replica_set.go) creates ``count`` pods in: ``initial``,
    then twice the last, the remainder last (10 -> 1, 2, 4, 3). A batch is tried only when every
    creation of the batches before it succeeded; the pods of the batches not tried are skipped
    (not created in this sync; the next sync starts again at ``initial``)."""
    sizes: list[int] = []
    remaining = count
    size = min(remaining, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


def pod_from_template(rs: Obj, suffix: str, uid: str, now: float) -> Obj:
    """A new pod for ``rs``: generateName ``<rs>-`` + suffix, template labels/annotations/spec."""
    meta = rs["metadata"]
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    prefix = meta["name"] + "-"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": generated_name(prefix, suffix),
            "generateName": prefix,
            "namespace": meta.get("namespace", "default"),
            "uid": uid,
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner_ref({"apiVersion": "apps/v1", **rs, "kind": _kind(rs)})],
            "creationTimestamp": to_rfc3339(now),
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
        "status": {"phase": "Pending"},
    }


def _event(rs: Obj, reason: str, message: str, type_: str = EVENT_NORMAL) -> Event:
    meta = rs["metadata"]
    return Event(type_, reason, message, _kind(rs), meta.get("namespace", "default"), meta["name"])


def created_event(rs: Obj, pod_name: str) -> Event:
    """What the create records once the pod exists (podControl.CreatePods)."""
    return _event(rs, REASON_SUCCESSFUL_CREATE, f"Created pod: {pod_name}")


def failed_create_event(rs: Obj, error: str) -> Event:
    """What a failed create records (podControl.CreatePods: FailedCreatePodReason)."""
    return _event(rs, REASON_FAILED_CREATE, f"Error creating: {error}", EVENT_WARNING)


def sync_replicaset(
    rs: Obj,
    pods: list[Obj],
    now: float,
    new_pod: Callable[[], tuple[str, str]],
) -> RSResult:
    """One ReplicaSet sync: claim pods, create or delete toward ``spec.replicas``, status.

    ``pods`` = every pod of the namespace; ``new_pod()`` returns (name suffix, uid). The pods
    to create carry no event: the create records one (``created_event``), after it happened.
    """
    owned, adopted, released = claim_pods(rs, pods)
    result = RSResult(adopt=adopted, release=released, status=calculate_status(rs, owned, now))
    if is_terminating(rs):
        return result
    diff = len(owned) - _desired(rs)
    if diff < 0:
        for _ in range(min(-diff, BURST_REPLICAS)):
            suffix, uid = new_pod()
            result.create.append(pod_from_template(rs, suffix, uid, now))
    elif diff > 0:
        victims = deletion_order(owned, now)[: min(diff, BURST_REPLICAS)]
        for pod in victims:
            result.delete.append(pod["metadata"]["uid"])
            result.events.append(_event(rs, REASON_SUCCESSFUL_DELETE, f"Deleted pod: {pod['metadata']['name']}"))
    return result


def requeue_after(rs: Obj, pods: list[Obj], now: float) -> float | None:
    """Seconds until the next owned Ready pod passes minReadySeconds (None: nothing pending)."""
    mrs = _min_ready_seconds(rs)
    if not mrs:  # every Ready pod is available at once: no claim over every pod of the namespace
        return None
    owned, _, _ = claim_pods(rs, pods)
    waits = [w for p in owned if (w := seconds_until_available(p, mrs, now)) is not None]
    return min(waits) if waits else None
