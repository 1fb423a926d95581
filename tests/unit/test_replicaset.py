"""ReplicaSet controller and pod helpers (docs/kubernetes.md §3.1-3.3)."""

from __future__ import annotations

import itertools
import random

from reconciler.controllers.podutil import (
    ALPHABET,
    deletion_order,
    from_rfc3339,
    is_pod_active,
    is_pod_available,
    owner_ref,
    pod_ready_since,
    random_suffix,
    to_rfc3339,
)
from reconciler.controllers.replicaset import requeue_after, sync_replicaset

T0 = from_rfc3339("2026-11-25T20:00:00Z")


def make_rs(replicas: int = 3, min_ready: int = 0) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-abc",
            "namespace": "default",
            "uid": "rs-uid",
            "generation": 4,
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}], "restartPolicy": "Always"},
            },
        },
    }


def make_pod(
    uid: str,
    *,
    owned=True,
    labels=None,
    ready_since: float | None = T0 - 100,
    phase="Running",
    created: float = T0 - 200,
    restarts=0,
    cost=None,
    deleting=False,
    owner_uid="rs-uid",
) -> dict:
    meta = {
        "name": f"web-abc-{uid}",
        "namespace": "default",
        "uid": uid,
        "labels": {"app": "web", "tier": "front"} if labels is None else labels,
        "annotations": {} if cost is None else {"controller.kubernetes.io/pod-deletion-cost": str(cost)},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": owner_uid, "controller": True}
        ]
        if owned
        else [],
        "creationTimestamp": to_rfc3339(created),
    }
    if deleting:
        meta["deletionTimestamp"] = to_rfc3339(T0)
    cond = {"type": "Ready", "status": "False"}
    if ready_since is not None:
        cond = {"type": "Ready", "status": "True", "lastTransitionTime": to_rfc3339(ready_since)}
    return {
        "metadata": meta,
        "spec": {"nodeName": "local"},
        "status": {
            "phase": phase,
            "conditions": [cond],
            "containerStatuses": [{"name": "web", "restartCount": restarts}],
        },
    }


def counter():
    ids = itertools.count(1)
    return lambda: (f"s{next(ids):04d}"[-5:], f"new-{next(ids)}")


def test_rfc3339_round_trip():
    assert to_rfc3339(T0) == "2026-11-25T20:00:00Z"
    assert from_rfc3339(to_rfc3339(T0 + 42)) == T0 + 42
    assert from_rfc3339("2026-11-25T20:00:00.5Z") == T0 + 0.5
    assert from_rfc3339("2026-11-25T21:00:00+01:00") == T0


def test_random_suffix_uses_alphabet():
    s = random_suffix(random.Random(1))
    assert len(s) == 5 and set(s) <= set(ALPHABET)
    assert len(random_suffix(random.Random(1), 8)) == 8


def test_replaces_a_deleted_pod():
    rs = make_rs(3)
    pods = [make_pod("a"), make_pod("b")]
    res = sync_replicaset(rs, pods, T0, lambda: ("xyz12", "new-uid"))
    assert res.delete == [] and len(res.create) == 1
    pod = res.create[0]
    assert pod["metadata"]["name"] == "web-abc-xyz12"
    assert pod["metadata"]["uid"] == "new-uid"
    assert pod["metadata"]["namespace"] == "default"
    assert pod["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert pod["metadata"]["annotations"] == {"a": "b"}
    assert pod["metadata"]["creationTimestamp"] == "2026-11-25T20:00:00Z"
    assert pod["metadata"]["ownerReferences"] == [owner_ref(rs)]
    assert pod["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
    assert pod["spec"] == rs["spec"]["template"]["spec"] and pod["spec"] is not rs["spec"]["template"]["spec"]
    assert res.events == []  # SuccessfulCreate comes with the create itself (created_event)
    assert res.status["replicas"] == 2


def test_terminating_and_failed_pods_are_replaced_not_deleted():
    rs = make_rs(2)
    pods = [make_pod("a"), make_pod("b", deleting=True), make_pod("c", phase="Failed")]
    assert not is_pod_active(pods[1]) and not is_pod_active(pods[2])
    res = sync_replicaset(rs, pods, T0, counter())
    assert len(res.create) == 1 and res.delete == []


def test_adopts_orphan_and_ignores_foreign_pods():
    rs = make_rs(2)
    pods = [
        make_pod("a"),
        make_pod("orphan", owned=False),
        make_pod("foreign", owner_uid="other"),
        make_pod("unrelated", owned=False, labels={"app": "db"}),
    ]
    res = sync_replicaset(rs, pods, T0, counter())
    assert res.adopt == ["orphan"]
    assert res.create == [] and res.delete == []
    assert res.status["replicas"] == 2


def test_releases_relabeled_pod_and_replaces_it():
    rs = make_rs(2)
    pods = [make_pod("a"), make_pod("b", labels={"app": "debug"})]
    res = sync_replicaset(rs, pods, T0, counter())
    assert res.release == ["b"]
    assert len(res.create) == 1


def test_surplus_deleted_in_deletion_order_with_events():
    rs = make_rs(2)
    pods = [
        make_pod("ready-old", ready_since=T0 - 10000),
        make_pod("unready", ready_since=None),
        make_pod("ready-new", ready_since=T0 - 1),
        make_pod("pending", phase="Pending", ready_since=None),
    ]
    res = sync_replicaset(rs, pods, T0, counter())
    assert res.delete == ["pending", "unready"]
    assert [e.message for e in res.events] == ["Deleted pod: web-abc-pending", "Deleted pod: web-abc-unready"]
    assert {e.reason for e in res.events} == {"SuccessfulDelete"}


def test_at_most_500_per_sync():
    rs = make_rs(0)
    pods = [make_pod(f"p{i:04d}") for i in range(520)]
    assert len(sync_replicaset(rs, pods, T0, counter()).delete) == 500
    rs = make_rs(600)
    assert len(sync_replicaset(rs, [], T0, counter()).create) == 500


def test_deletion_order_rules():
    now = T0
    unassigned = make_pod("u")
    unassigned["spec"] = {}
    pending = make_pod("p", phase="Pending", ready_since=None)
    unready = make_pod("n", ready_since=None)
    cheap = make_pod("c", cost=-5)
    young = make_pod("y", ready_since=now - 3)
    old = make_pod("o", ready_since=now - 5000)
    order = [p["metadata"]["uid"] for p in deletion_order([old, young, cheap, unready, pending, unassigned], now)]
    assert order == ["u", "p", "n", "c", "y", "o"]


def test_deletion_order_log_buckets_uid_and_restarts():
    now = T0
    # ready 100s and 101s ago fall in the same log2 bucket: the smaller uid goes first
    a = make_pod("b-uid", ready_since=now - 100)
    b = make_pod("a-uid", ready_since=now - 101)
    assert [p["metadata"]["uid"] for p in deletion_order([a, b], now)] == ["a-uid", "b-uid"]
    # same ready time: more restarts first, then newer creation first
    c = make_pod("c", restarts=5)
    d = make_pod("d", restarts=0)
    assert [p["metadata"]["uid"] for p in deletion_order([d, c], now)] == ["c", "d"]
    e = make_pod("e", created=now - 10)
    f = make_pod("f", created=now - 100000)
    assert [p["metadata"]["uid"] for p in deletion_order([f, e], now)] == ["e", "f"]


def test_status_counts_and_min_ready_seconds():
    rs = make_rs(4, min_ready=30)
    pods = [
        make_pod("long", ready_since=T0 - 100),
        make_pod("recent", ready_since=T0 - 10),
        make_pod("unready", ready_since=None),
        make_pod("partial", labels={"app": "web"}),  # matches selector, lacks the tier label
    ]
    res = sync_replicaset(rs, pods, T0, counter())
    assert res.status == {
        "replicas": 4,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 2,
        "observedGeneration": 4,
    }
    wait = requeue_after(rs, pods, T0)
    assert wait is not None and 20 <= wait <= 20.01
    assert is_pod_available(pods[1], 30, T0 + wait)
    assert not is_pod_available(pods[1], 30, T0 + 20)  # strictly after minReadySeconds
    assert requeue_after(make_rs(4), pods, T0) is None
    assert pod_ready_since(pods[0]) == T0 - 100 and pod_ready_since(pods[2]) is None


# --- issue 11 item 8: creation failures and slow start ----------------------------------------
# Kubernetes: pkg/controller/replicaset/replica_set.go (slowStartBatch, burstReplicas) and
# replica_set_utils.go (calculateStatus: the ReplicaFailure condition).


def test_slow_start_batches_double_from_one():
    from reconciler.controllers.replicaset import BURST_REPLICAS, slow_start_batches

    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(2) == [1, 1]
    assert slow_start_batches(6) == [1, 2, 3]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(15) == [1, 2, 4, 8]
    burst = slow_start_batches(BURST_REPLICAS)
    assert burst == [1, 2, 4, 8, 16, 32, 64, 128, 245] and sum(burst) == 500
    assert slow_start_batches(5, initial=2) == [2, 3]


def test_creation_events_come_from_the_create_not_the_decision():
    # the SuccessfulCreate event is recorded when the pod was created (podControl.CreatePods):
    # a pod the runtime refused or a later batch skipped never gets one
    from reconciler.controllers.replicaset import created_event, failed_create_event

    res = sync_replicaset(make_rs(3), [], T0, counter())
    assert len(res.create) == 3 and res.events == []
    ev = created_event(make_rs(), "web-abc-xyz12")
    assert (ev.type, ev.reason, ev.message, ev.kind, ev.name) == (
        "Normal",
        "SuccessfulCreate",
        "Created pod: web-abc-xyz12",
        "ReplicaSet",
        "web-abc",
    )
    ev = failed_create_event(make_rs(), "pod CIDR 127.1.0.0/30 is exhausted")
    assert (ev.type, ev.reason, ev.message, ev.kind, ev.name) == (
        "Warning",
        "FailedCreate",
        "Error creating: pod CIDR 127.1.0.0/30 is exhausted",
        "ReplicaSet",
        "web-abc",
    )


def _failure_cond(status: dict) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "ReplicaFailure"), None)


def test_replica_failure_condition_set_kept_and_removed():
    from reconciler.controllers.replicaset import with_replica_failure

    base = {"replicas": 2, "readyReplicas": 2}
    failed = with_replica_failure(base, "FailedCreate", "pod CIDR is exhausted", T0)
    assert base == {"replicas": 2, "readyReplicas": 2}  # the status given is not changed
    assert _failure_cond(failed) == {
        "type": "ReplicaFailure",
        "status": "True",
        "lastTransitionTime": to_rfc3339(T0),
        "reason": "FailedCreate",
        "message": "pod CIDR is exhausted",
    }
    # a later failure keeps the condition as it is (calculateStatus sets it only when absent)
    again = with_replica_failure(failed, "FailedCreate", "another error", T0 + 5)
    assert _failure_cond(again) == _failure_cond(failed)
    # a sync without an error removes it
    ok = with_replica_failure(again, None, None, T0 + 10)
    assert _failure_cond(ok) is None and ok["replicas"] == 2
    assert with_replica_failure(base, None, None, T0) == base


def test_status_keeps_conditions_it_does_not_own():
    rs = make_rs(2)
    cond = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "x"}
    rs["status"] = {"replicas": 1, "conditions": [cond]}
    res = sync_replicaset(rs, [make_pod("a"), make_pod("b")], T0, counter())
    assert res.status["conditions"] == [cond] and res.status["replicas"] == 2
    assert "conditions" not in sync_replicaset(make_rs(2), [], T0, counter()).status
