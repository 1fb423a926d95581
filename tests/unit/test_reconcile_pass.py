"""The reconcile pass's decisions (reconciler/sync), driven as a pure function.

The runtime here is a FAKE: a dict of the pods it "runs" and their statuses, handed to the pass
as ``Observed``, and a fake executor that applies ``Changes`` the way reconciler/reconcile.py
does (objects first, then stops and starts) but instantly. The clock is a FAKE too: ``now`` is a
number the test moves. A fake is right here: the real runtimes are covered by the runtime
conformance suite (tests/conformance), and the executor end to end by tests/integration.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from reconciler import annotation_keys as keys
from reconciler.controllers.podutil import from_rfc3339, to_rfc3339
from reconciler.controllers.service import Allocation
from reconciler.manifests.model import obj_key
from reconciler.sync import (
    Changes,
    Ids,
    Memory,
    Observed,
    PassInput,
    Settings,
    backends_for,
    decide,
    lost_pods,
    template_commits,
)
from reconciler.sync.objects import with_change_cause
from reconciler.sync.services import merge_endpoints, pod_for_runtime, proxy_table

T0 = from_rfc3339("2026-11-25T20:00:00Z")
Key = tuple[str, str, str]


# -- objects as the loader hands them over (defaulted) ------------------------------------------


def pod(name: str = "web", image: str = "web:1", labels: dict | None = None, **meta: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": labels or {"app": name},
            "annotations": {},
            **meta,
        },
        "spec": {
            "containers": [{"name": "c", "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    }


def deployment(name: str = "web", image: str = "web:1", replicas: int = 2, **spec: Any) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {}, "annotations": {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "c", "image": image}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "minReadySeconds": 0,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "paused": False,
            **spec,
        },
    }


def service(name: str = "web", type_: str = "ClusterIP", **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {}, "annotations": {}},
        "spec": {
            "type": type_,
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "sessionAffinity": "None",
            **spec,
        },
    }


def key(obj: dict) -> Key:
    return obj_key(obj)  # ("Namespace", "", name) for the built-in namespaces


def ready_status(ip: str, now: float) -> dict:
    t = to_rfc3339(now)
    return {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": "127.0.0.1",
        "startTime": t,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}],
        "containerStatuses": [
            {"name": "c", "image": "x", "ready": True, "started": True, "restartCount": 0, "state": {"running": {}}}
        ],
    }


# -- the fake runtime and the fake executor -------------------------------------------------------


class World:
    """Desired and live objects, a fake runtime and a fake clock; ``step()`` is one pass carried
    out at once: stops finish in the same step unless ``hold_stops`` (then they stay in flight)."""

    def __init__(self, *desired: dict, now: float = T0) -> None:
        self.desired: dict[Key, dict] = {key(d): d for d in desired}
        self.live: dict[Key, dict] = {}
        self.now = now
        self.running: dict[str, dict] = {}  # uid -> status the fake runtime reports
        self.launched: set[str] = set()
        self.terminating: set[str] = set()
        self.was_endpoint: set[str] = set()
        self.allocations: dict[tuple[str, str], Allocation] = {}
        self.commits: dict[str, Any] = {}
        self.revision_info: dict[str, Any] | None = None
        self.hold_stops = False
        self.stopped: list[str] = []
        self._uids = itertools.count(1)
        self._names = itertools.count(1)
        self._ips = itertools.count(10)

    def ids(self) -> Ids:
        return Ids(lambda: f"uid-{next(self._uids)}", lambda: (f"p{next(self._names):04d}", f"uid-{next(self._uids)}"))

    def input(self, **kw: Any) -> PassInput:
        return PassInput(
            desired=self.desired,
            live=self.live,
            observed=Observed(dict(self.running), set(self.running)),
            memory=Memory(
                launched=frozenset(self.launched),
                terminating=frozenset(self.terminating),
                was_endpoint=frozenset(self.was_endpoint),
                allocations=self.allocations,
                template_commits=self.commits,
                revision_info=self.revision_info,
            ),
            settings=Settings(service_cidr="127.96.0.0/16", reserved_ips=("127.96.0.10",)),
            ids=self.ids(),
            now=self.now,
            **kw,
        )

    def step(self, **kw: Any) -> Changes:
        before, desired = copy.deepcopy(self.live), copy.deepcopy(self.desired)
        ch = decide(self.input(**kw))
        assert self.live == before and self.desired == desired, "the pass must not change its input"
        for k in ch.delete:
            self.live.pop(k, None)  # may be one the pass itself created and dropped
        for obj in ch.put:
            self.live[key(obj)] = obj
        if ch.allocations is not None:
            self.allocations = ch.allocations
        self.was_endpoint |= ch.endpoint_pods
        for s in ch.stop:
            if self.hold_stops:
                self.terminating.add(s.uid)
                continue
            self.stopped.append(s.uid)
            self.running.pop(s.uid, None)
            self.launched.discard(s.uid)
            if s.key is not None and (self.live.get(s.key) or {}).get("metadata", {}).get("uid") == s.uid:
                del self.live[s.key]
        for s in ch.start:
            self.launched.add(s.uid)
            self.running[s.uid] = ready_status(f"127.244.0.{next(self._ips)}", self.now)
        return ch

    def of_kind(self, kind: str) -> list[dict]:
        return [o for k, o in self.live.items() if k[0] == kind]


def reasons(ch: Changes) -> list[tuple[str, str, str]]:
    return sorted((e["reason"], e["kind"], e["name"]) for e in ch.events)


def put_keys(ch: Changes) -> set[Key]:
    return {key(o) for o in ch.put}


# -- 1. git into live objects: create, update, replace, prune ---------------------------------------


def test_created_from_git_then_nothing_to_do() -> None:
    w = World(pod("a"))
    ch = w.step()
    a = w.live[("Pod", "default", "a")]
    uid = a["metadata"]["uid"]  # the built-in namespaces took the first uids
    assert uid.startswith("uid-") and a["metadata"]["creationTimestamp"] == to_rfc3339(T0)
    assert "generation" not in a["metadata"] and a["status"] == {"phase": "Pending"}
    assert reasons(ch) == [("Created", "Pod", "a")]
    assert [s.uid for s in ch.start] == [uid]
    w.running[uid] = a["status"]  # the runtime reports what the store has: nothing changes
    again = w.step()
    assert again.put == [] and again.delete == [] and again.events == [] and again.start == [] and again.stop == []


def _edit_labels(d: dict) -> None:
    d["metadata"]["labels"] = {"tier": "front"}


def _edit_annotation(d: dict) -> None:
    d["metadata"]["annotations"] = {"team": "blue"}


def _edit_managed_annotation(d: dict) -> None:
    d["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "7"}


def _edit_spec(d: dict) -> None:
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"


@pytest.mark.parametrize(
    ("edit", "generation", "updated"),
    [
        (_edit_spec, 2, True),  # spec changed: generation bumped
        (_edit_annotation, 2, True),  # the user's annotations are part of what git changes
        (_edit_labels, 1, True),  # labels: updated, same generation
        (_edit_managed_annotation, 1, False),  # the controllers' annotations are theirs, not git's
    ],
    ids=["spec", "annotation", "labels", "managed-annotation"],
)
def test_changed_object_updated_with_generation(edit: Any, generation: int, updated: bool) -> None:
    d = deployment(replicas=0)
    w = World(d)
    w.step()
    live = w.live[key(d)]
    revision = live["metadata"]["annotations"][keys.REVISION]
    d2 = copy.deepcopy(d)
    edit(d2)
    w.desired = {key(d2): d2}
    w.step()
    new = w.live[key(d)]
    assert new["metadata"]["generation"] == generation
    assert new["metadata"]["uid"] == live["metadata"]["uid"]
    assert (new["metadata"]["labels"] == d2["metadata"]["labels"]) or not updated
    # the controllers' own annotations survive an update from git
    assert new["metadata"]["annotations"][keys.REVISION] in (revision, str(int(revision) + 1))


def test_changed_bare_pod_is_replaced_and_stopped_after_the_service_step() -> None:
    w = World(pod("a"))
    w.step()
    old_uid = w.live[("Pod", "default", "a")]["metadata"]["uid"]
    w.desired = {("Pod", "default", "a"): pod("a", image="web:2")}
    ch = w.step()
    new = w.live[("Pod", "default", "a")]
    assert new["metadata"]["uid"] != old_uid and new["spec"]["containers"][0]["image"] == "web:2"
    assert reasons(ch) == [("Replaced", "Pod", "a")]
    # the old pod is gone from the live objects at once, stopped by uid; the new one starts
    assert [(s.uid, s.key) for s in ch.stop] == [(old_uid, None)]
    assert [s.uid for s in ch.start] == [new["metadata"]["uid"]]


def test_spelling_out_empty_values_changes_nothing() -> None:
    """Empty equals absent, as Kubernetes compares objects: a bare pod that gains `resources: {}`
    and `env: []` is not replaced, and a Deployment that gains them keeps its generation."""
    w = World(pod("a"), deployment("d"))
    _settle(w)
    uid = w.live[("Pod", "default", "a")]["metadata"]["uid"]
    generation = w.live[("Deployment", "default", "d")]["metadata"]["generation"]
    spelled = pod("a")
    spelled["spec"]["containers"][0].update({"resources": {}, "env": []})
    spelled["metadata"]["creationTimestamp"] = None
    d = deployment("d")
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {}}
    w.desired = {("Pod", "default", "a"): spelled, ("Deployment", "default", "d"): d}
    changes = _settle(w)
    assert w.live[("Pod", "default", "a")]["metadata"]["uid"] == uid
    assert w.live[("Deployment", "default", "d")]["metadata"]["generation"] == generation
    assert all(c.stop == [] for c in changes)


def test_an_unchanged_service_is_left_alone() -> None:
    """Git never writes the clusterIP or the defaults the Service step fills in: an unchanged
    Service is not rewritten every pass and its generation stays 1; a real change still bumps it."""
    w = World(pod("a"), service("s"))
    _settle(w)
    ch = w.step()
    assert [o["kind"] for o in ch.put if o["kind"] == "Service"] == []
    live = w.live[("Service", "default", "s")]
    assert live["metadata"]["generation"] == 1 and live["spec"]["clusterIP"]
    changed = service("s")
    changed["spec"]["ports"][0]["port"] = 81
    w.desired[("Service", "default", "s")] = changed
    _settle(w)
    live = w.live[("Service", "default", "s")]
    assert live["metadata"]["generation"] == 2 and live["spec"]["ports"][0]["port"] == 81
    assert live["spec"]["clusterIP"]


def test_bare_pod_label_change_is_an_update_not_a_replacement() -> None:
    w = World(pod("a"))
    w.step()
    uid = w.live[("Pod", "default", "a")]["metadata"]["uid"]
    w.desired = {("Pod", "default", "a"): pod("a", labels={"app": "a", "v": "2"})}
    ch = w.step()
    assert w.live[("Pod", "default", "a")]["metadata"]["uid"] == uid
    assert w.live[("Pod", "default", "a")]["metadata"]["labels"] == {"app": "a", "v": "2"}
    assert ch.stop == [] and ch.events == []


@pytest.mark.parametrize(
    ("removed", "deleted", "terminating", "events"),
    [
        # a bare pod removed from git terminates (its object stays until the runtime stopped it)
        ("pod", set(), {"a"}, [("Pruned", "Pod", "a")]),
        # a Deployment removed from git: pruned; its ReplicaSet collected; their pods terminate
        ("deployment", {"Deployment", "ReplicaSet"}, {"web-pods"}, [("Pruned", "Deployment", "web")]),
        # a Service removed from git: pruned, with its Endpoints
        ("service", {"Service", "Endpoints"}, set(), [("Pruned", "Service", "web")]),
    ],
)
def test_removed_from_git_is_pruned(removed: str, deleted: set, terminating: set, events: list) -> None:
    objs = {"pod": pod("a"), "deployment": deployment(replicas=2), "service": service()}
    w = World(*objs.values())
    w.step()
    w.step()
    before = set(w.live)
    gone = objs[removed]
    w.hold_stops = True
    w.desired = {k: v for k, v in w.desired.items() if k != key(gone)}
    ch = w.step()
    assert {k[0] for k in before - set(w.live)} == deleted
    now_terminating = {o["metadata"]["name"] for o in w.of_kind("Pod") if o["metadata"].get("deletionTimestamp")}
    if terminating == {"web-pods"}:
        assert len(now_terminating) == 2 and all(n.startswith("web-") for n in now_terminating)
    else:
        assert now_terminating == terminating
    pruned = [e for e in reasons(ch) if e[0] == "Pruned"]
    assert pruned == events
    for p in w.of_kind("Pod"):
        if p["metadata"].get("deletionTimestamp"):
            assert p["metadata"]["deletionGracePeriodSeconds"] == 30
            assert any(s.uid == p["metadata"]["uid"] and s.key == key(p) for s in ch.stop)


def test_controlled_pod_is_not_pruned_by_git() -> None:
    w = World(deployment(replicas=1))
    w.step()
    ch = w.step()
    assert not [e for e in ch.events if e["reason"] == "Pruned"]
    assert len(w.of_kind("Pod")) == 1 and not w.of_kind("Pod")[0]["metadata"].get("deletionTimestamp")


def test_already_terminating_pod_is_not_pruned_twice() -> None:
    w = World(pod("a"))
    w.step()
    w.hold_stops = True
    w.desired = {}
    first = w.step()
    second = w.step()
    assert [e["reason"] for e in first.events] == ["Pruned"]
    assert second.events == [] and second.stop == []  # its stop is under way


def _settle(w: World, passes: int = 3) -> list[Changes]:
    return [w.step() for _ in range(passes)]


def _bare_rs(replicas: int = 1) -> dict:
    d = deployment(replicas=replicas)
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default", "labels": {}, "annotations": {}},
        "spec": {"replicas": replicas, "selector": d["spec"]["selector"], "template": d["spec"]["template"]},
    }


def test_a_released_replicaset_is_orphaned_not_pruned() -> None:
    """Before: the Deployment released its ReplicaSet and the next pass pruned it as "removed from
    git", so all its pods terminated at once. Kubernetes orphans it: the ownerReference goes, the
    ReplicaSet and its pods stay. (The applier refuses a selector change of a live Deployment; the
    pass is driven here with one, the only way a Deployment releases a ReplicaSet.)"""
    d = deployment(replicas=2)
    w = World(d)
    _settle(w)
    (old_rs,) = w.of_kind("ReplicaSet")
    pod_uids = {p["metadata"]["uid"] for p in w.of_kind("Pod")}
    d2 = copy.deepcopy(d)
    d2["spec"]["selector"] = {"matchLabels": {"app": "web2"}}
    d2["spec"]["template"]["metadata"]["labels"] = {"app": "web2"}
    w.desired = {key(d2): d2}
    changes = _settle(w, 4)
    rs = w.live[key(old_rs)]
    assert rs["metadata"]["uid"] == old_rs["metadata"]["uid"]
    assert not [r for r in rs["metadata"].get("ownerReferences") or [] if r.get("controller")]
    assert rs["spec"]["replicas"] == 2
    live_pods = {p["metadata"]["uid"]: p for p in w.of_kind("Pod")}
    for uid in pod_uids:
        assert uid in live_pods and not live_pods[uid]["metadata"].get("deletionTimestamp")
    assert not any(s.uid in pod_uids for ch in changes for s in ch.stop)
    assert not [e for ch in changes for e in ch.events if e["reason"] == "Pruned"]


def test_a_released_pod_is_orphaned_and_replaced_not_pruned() -> None:
    """A pod its ReplicaSet no longer selects (relabelled) loses its ownerReference and keeps
    running; the ReplicaSet makes a replacement (kubernetes/kubernetes
    pkg/controller/controller_ref_manager.go ClaimPods, then syncReplicaSet)."""
    rs = _bare_rs(replicas=1)
    w = World(rs)
    _settle(w)
    (p,) = w.of_kind("Pod")
    uid = p["metadata"]["uid"]
    relabelled = copy.deepcopy(w.live[key(p)])
    relabelled["metadata"]["labels"] = {"app": "other"}
    w.live[key(p)] = relabelled
    changes = _settle(w, 4)
    released = w.live[key(p)]
    assert released["metadata"]["uid"] == uid and not released["metadata"].get("deletionTimestamp")
    assert not released["metadata"].get("ownerReferences")
    assert uid in w.running and not any(s.uid == uid for ch in changes for s in ch.stop)
    others = [q for q in w.of_kind("Pod") if q["metadata"]["uid"] != uid]
    assert len(others) == 1 and others[0]["metadata"]["labels"] == {"app": "web"}
    assert not [e for ch in changes for e in ch.events if e["reason"] == "Pruned"]


def test_an_adopted_pod_from_git_is_released_when_relabelled_and_pruned_when_removed() -> None:
    """A bare pod from git that a ReplicaSet adopted: relabelled in git, it is released (and stays:
    git declares it); removed from git, it is pruned, though a controller owned it."""
    rs = _bare_rs(replicas=2)
    extra = pod("extra", labels={"app": "web"})
    w = World(rs, extra)
    _settle(w)
    assert len(w.of_kind("Pod")) == 2  # the ReplicaSet adopted the pod from git and made one more
    owned = w.live[key(extra)]
    assert [r["kind"] for r in owned["metadata"]["ownerReferences"]] == ["ReplicaSet"]
    relabelled = pod("extra", labels={"app": "other"})
    w.desired[key(extra)] = relabelled
    _settle(w)
    free = w.live[key(extra)]
    assert free["metadata"]["uid"] == owned["metadata"]["uid"] and not free["metadata"].get("deletionTimestamp")
    assert not free["metadata"].get("ownerReferences")
    assert len([q for q in w.of_kind("Pod") if q["metadata"]["labels"] == {"app": "web"}]) == 2

    # adopted again (labels match once more; room for it, so no scale-down picks it), then removed
    # from git: pruned like any git object
    w.desired[key(rs)] = _bare_rs(replicas=3)
    w.desired[key(extra)] = extra
    _settle(w)
    assert w.live[key(extra)]["metadata"].get("ownerReferences")
    w.hold_stops = True
    w.desired.pop(key(extra))
    ch = w.step()
    assert ("Pruned", "Pod", "extra") in reasons(ch)
    assert w.live[key(extra)]["metadata"].get("deletionTimestamp")


def test_objects_from_before_the_git_marker_are_still_pruned() -> None:
    """Live objects written before gitship marked what git declared: one with no controller, no
    generateName and no pod-template-hash label is git's; removed from git, it is pruned."""
    w = World()
    legacy = pod("a")
    legacy["metadata"]["uid"] = "old-uid"
    legacy["status"] = {"phase": "Running"}
    w.live[key(legacy)] = legacy
    w.running["old-uid"] = legacy["status"]
    w.launched.add("old-uid")
    w.hold_stops = True
    ch = w.step()
    assert reasons(ch) == [("Pruned", "Pod", "a")]


# -- 2. garbage collection ---------------------------------------------------------------------------


def _owned(obj: dict, owner_uid: str, uid: str) -> dict:
    o = copy.deepcopy(obj)
    o["metadata"]["uid"] = uid
    o["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x", "uid": owner_uid, "controller": True}]
    return o


@pytest.mark.parametrize(
    ("owner_exists", "was_terminating", "expect"),
    [
        (True, False, "kept"),
        (False, False, "terminating"),  # the owner is gone: the pod terminates
        (False, True, "kept"),  # a terminating orphan stays until the runtime stopped it
    ],
)
def test_orphaned_pods_terminate(owner_exists: bool, was_terminating: bool, expect: str) -> None:
    w = World()
    p = _owned(pod("o"), "rs-uid", "pod-uid")
    p["status"] = {"phase": "Running"}
    if was_terminating:
        p["metadata"]["deletionTimestamp"] = to_rfc3339(T0)
    w.live[key(p)] = p
    w.running["pod-uid"] = p["status"]
    w.launched.add("pod-uid")
    if owner_exists:
        rs = {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": {"name": "x", "namespace": "default", "uid": "rs-uid", "labels": {}, "annotations": {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "o"}}, "template": pod("o")},
            "status": {},
        }
        w.desired[key(rs)] = {k: v for k, v in rs.items() if k != "status"}
        w.live[key(rs)] = rs
        w.step()
    w.hold_stops = True
    ch = w.step()
    live = w.live[key(p)]
    got = "terminating" if live["metadata"].get("deletionTimestamp") and not was_terminating else "kept"
    assert got == expect
    assert any(s.uid == "pod-uid" for s in ch.stop) == (expect == "terminating" or was_terminating)


def test_garbage_collection_follows_owner_chains() -> None:
    w = World()
    rs = _owned(deployment()["spec"]["template"], "gone-deploy", "rs-1")
    rs.update(kind="ReplicaSet", apiVersion="apps/v1")
    rs["metadata"].update(name="web-abc", namespace="default")
    rs["spec"] = {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": pod("web")}
    child = _owned(pod("web-abc-x", labels={"app": "web"}), "rs-1", "pod-1")
    grandchild_free = _owned(pod("other"), "someone-else", "pod-2")
    for o in (rs, child, grandchild_free):
        w.live[key(o)] = o
    w.running.update({"pod-1": {"phase": "Running"}, "pod-2": {"phase": "Running"}})  # they run: stopped, not forgotten
    w.hold_stops = True
    w.step()
    assert key(rs) not in w.live
    assert w.live[key(child)]["metadata"].get("deletionTimestamp")
    assert w.live[key(grandchild_free)]["metadata"].get("deletionTimestamp")


# -- 3. the commit behind a revision ----------------------------------------------------------------


def _rs(revision: str, ann: dict | None = None) -> dict:
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "annotations": {keys.REVISION: revision, **(ann or {})},
            "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d", "controller": True}],
        },
    }


COMMIT_A = {"sha": "a" * 40, "author": "Ann", "subject": "image v2"}
COMMIT_B = {"sha": "b" * 40, "author": "Bob", "subject": "replicas 5"}
OLD_CAUSE = {keys.COMMIT: "c" * 40, keys.CHANGE_CAUSE: "ccccccc Cy: old"}


@pytest.mark.parametrize(
    ("old", "new_rev", "commits", "applied", "expect"),
    [
        # a new revision: the commit that changed the template
        (None, "1", {"default/web": COMMIT_A}, COMMIT_B, COMMIT_A),
        # no commit recorded for the template: the applied commit
        (None, "1", {}, COMMIT_B, COMMIT_B),
        # an existing ReplicaSet that becomes the new revision again (rollback): the template's commit
        (_rs("1", OLD_CAUSE), "3", {"default/web": COMMIT_A}, COMMIT_B, COMMIT_A),
        # same revision (a scale): keeps the commit it has
        (_rs("2", OLD_CAUSE), "2", {"default/web": COMMIT_A}, COMMIT_B, "old"),
        # nothing known: no annotation
        (None, "1", {}, None, None),
    ],
    ids=["new", "fallback-applied", "becomes-new", "same-revision", "unknown"],
)
def test_change_cause(old: dict | None, new_rev: str, commits: dict, applied: dict | None, expect: Any) -> None:
    rs = with_change_cause(_rs(new_rev), old, commits, applied)
    ann = rs["metadata"]["annotations"]
    if expect is None:
        assert keys.COMMIT not in ann and keys.CHANGE_CAUSE not in ann
    elif expect == "old":
        assert ann[keys.COMMIT] == OLD_CAUSE[keys.COMMIT] and ann[keys.CHANGE_CAUSE] == OLD_CAUSE[keys.CHANGE_CAUSE]
    else:
        assert ann[keys.COMMIT] == expect["sha"]
        assert ann[keys.CHANGE_CAUSE] == f"{expect['sha'][:7]} {expect['author']}: {expect['subject']}"


@pytest.mark.parametrize(
    ("before", "after", "expect"),
    [
        ({}, {"web": "v1"}, {"default/web"}),  # a new Deployment
        ({"web": "v1"}, {"web": "v2"}, {"default/web"}),  # its template changed
        ({"web": "v1"}, {"web": "v1"}, set()),  # unchanged (a scale changes no template)
        ({"web": "v1"}, {}, set()),  # removed
    ],
)
def test_template_commits(before: dict, after: dict, expect: set) -> None:
    def objs(m: dict) -> dict:
        return {("Deployment", "default", n): deployment(n, image=img) for n, img in m.items()} | {
            ("Pod", "default", "p"): pod("p")
        }

    b, a = objs(before), objs(after)
    if before and after and before == after:
        a[("Deployment", "default", "web")]["spec"]["replicas"] = 9
    assert set(template_commits(b, a, COMMIT_A)) == expect


# -- 4. Services: endpoints, listeners, backends ------------------------------------------------------


def test_endpoints_merge_keeps_identity() -> None:
    ep = {"kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"}, "subsets": []}
    new = merge_endpoints(ep, None, T0, lambda: "ep-uid")
    assert new["metadata"]["uid"] == "ep-uid" and new["metadata"]["creationTimestamp"] == to_rfc3339(T0)
    later = merge_endpoints(ep, new, T0 + 60, lambda: "other")
    assert later == new  # unchanged Endpoints compare equal: not written again
    changed = merge_endpoints({**ep, "subsets": [{"addresses": [{"ip": "127.244.0.9"}]}]}, new, T0 + 60, lambda: "x")
    assert changed["metadata"]["uid"] == "ep-uid" and changed["subsets"]


def _view(type_: str, **spec: Any) -> dict:
    s = service(type_=type_, **spec)
    s["spec"].setdefault("clusterIP", "127.96.0.5")
    s["spec"]["ports"][0]["nodePort"] = 30080
    return s


@pytest.mark.parametrize(
    ("svc", "listen"),
    [
        (_view("ClusterIP"), (("127.96.0.5", 80),)),
        (_view("NodePort"), (("127.96.0.5", 80), ("0.0.0.0", 30080))),
        (_view("LoadBalancer"), (("127.96.0.5", 80), ("0.0.0.0", 30080), ("0.0.0.0", 80))),
        (_view("ClusterIP", clusterIP="None"), None),  # headless: DNS only
        (_view("ExternalName", externalName="example.com"), None),
    ],
    ids=["ClusterIP", "NodePort", "LoadBalancer", "headless", "ExternalName"],
)
def test_listeners(svc: dict, listen: tuple | None) -> None:
    ep = {
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "127.244.0.9"}], "ports": [{"name": "http", "port": 8080}]}],
    }
    rules, ips = proxy_table([svc], {("Endpoints", "default", "web"): ep}, "0.0.0.0")
    if listen is None:
        assert rules == [] and ips == []
        return
    assert [(r.key, r.listen, r.backends) for r in rules] == [("default/web:http", listen, (("127.244.0.9", 8080),))]
    assert ips == ["127.96.0.5"]


@pytest.mark.parametrize(
    ("port", "subsets", "expect"),
    [
        ({"name": "http"}, [{"addresses": [{"ip": "a"}], "ports": [{"name": "http", "port": 1}]}], [("a", 1)]),
        # a subset with one port serves any service port
        ({"name": "x"}, [{"addresses": [{"ip": "a"}], "ports": [{"name": "http", "port": 1}]}], [("a", 1)]),
        # two ports: matched by name only
        (
            {"name": "x"},
            [{"addresses": [{"ip": "a"}], "ports": [{"name": "http", "port": 1}, {"name": "m", "port": 2}]}],
            [],
        ),
        (
            {"name": "m"},
            [{"addresses": [{"ip": "a"}, {"ip": "b"}], "ports": [{"name": "m", "port": 2}]}],
            [("a", 2), ("b", 2)],
        ),
        ({}, [], []),
    ],
)
def test_backends_for(port: dict, subsets: list, expect: list) -> None:
    assert backends_for({"subsets": subsets}, port) == expect


def test_service_env_for_started_pods_own_env_wins() -> None:
    svc = _view("ClusterIP")
    p = pod("a")
    p["spec"]["containers"][0]["env"] = [{"name": "WEB_SERVICE_PORT", "value": "mine"}]
    out = pod_for_runtime(p, [svc], {("default", "web"): Allocation("127.96.0.5")})
    env = {e["name"]: e["value"] for e in out["spec"]["containers"][0]["env"]}
    assert env["WEB_SERVICE_HOST"] == "127.96.0.5" and env["WEB_SERVICE_PORT"] == "mine"
    assert p["spec"]["containers"][0]["env"] == [{"name": "WEB_SERVICE_PORT", "value": "mine"}]  # input untouched


# -- 5. the runtime step and its ordering guarantees --------------------------------------------------


def test_lost_pods_at_start_up() -> None:
    live = {("Pod", "default", n): {"metadata": {"uid": n}} for n in ("kept", "lost")}
    live[("Service", "default", "s")] = {"metadata": {"uid": "s"}}
    assert lost_pods(live, {"kept": {}}) == [("Pod", "default", "lost")]


@pytest.mark.parametrize(
    ("terminating", "running", "launched", "in_flight", "expect"),
    [
        (False, False, False, False, "start"),
        (False, True, False, False, "nothing"),  # adopted after a restart
        (False, False, True, False, "nothing"),  # asked already (its start failed, or it is on its way)
        (True, True, False, False, "stop"),
        (True, False, True, False, "stop"),
        (True, False, False, False, "forget"),  # never ran: its object goes at once
        (True, True, True, True, "nothing"),  # its stop is under way
    ],
)
def test_runtime_step(terminating: bool, running: bool, launched: bool, in_flight: bool, expect: str) -> None:
    w = World(pod("a"))
    p = pod("a", uid="u1")
    p["status"] = {"phase": "Running"}
    if terminating:
        p["metadata"]["deletionTimestamp"] = to_rfc3339(T0)
    w.live[key(p)] = p
    if running:
        w.running["u1"] = p["status"]
    if launched:
        w.launched.add("u1")
    if in_flight:
        w.terminating.add("u1")
    ch = decide(w.input())
    got = "nothing"
    if ch.start:
        got = "start"
    elif ch.stop:
        assert [(s.uid, s.key) for s in ch.stop] == [("u1", key(p))]
        got = "stop"
    elif key(p) in ch.delete:
        got = "forget"
    assert got == expect


def test_unwanted_running_pod_is_stopped_once() -> None:
    w = World()
    w.running["stray"] = {"phase": "Running"}
    ch = w.input()
    first = decide(ch)
    assert [(s.uid, s.key, s.drain) for s in first.stop] == [("stray", None, False)]
    w.terminating.add("stray")
    assert decide(w.input()).stop == []


def test_deleted_backend_leaves_the_proxy_before_it_is_stopped() -> None:
    """`gitship delete pod` on a ready backend: in one value of changes its address is gone from
    the proxy table and the Endpoints, and its stop says to drain (the executor programs the
    proxy first, then waits ENDPOINT_DRAIN_SECONDS before SIGTERM), with the user's grace."""
    w = World(deployment(replicas=2), service())
    w.step()
    w.now += 1
    ch = w.step()
    backends = {b for r in ch.proxy for b in r.backends}
    assert len(backends) == 2
    victim = w.of_kind("Pod")[0]
    uid = victim["metadata"]["uid"]
    ip = w.running[uid]["podIP"]
    w.hold_stops = True
    w.now += 1
    ch = w.step(delete_requests={uid: 3.0})
    assert ip not in {b[0] for r in ch.proxy for b in r.backends}
    ep = w.live[("Endpoints", "default", "web")]
    assert ip not in [a["ip"] for s in ep["subsets"] for a in s.get("addresses") or []]
    stop = next(s for s in ch.stop if s.uid == uid)
    assert stop.drain and stop.grace == 3.0 and stop.key == key(victim)
    assert ("Killing", "Pod", victim["metadata"]["name"]) in reasons(ch)
    # its owner replaces it in the same pass
    assert len(ch.start) == 1


def test_stopped_pods_that_never_served_do_not_drain() -> None:
    w = World(pod("a"))
    w.step()
    w.running[w.live[("Pod", "default", "a")]["metadata"]["uid"]] = {"phase": "Running"}  # not ready
    w.hold_stops = True
    w.desired = {}
    ch = w.step()
    assert [s.drain for s in ch.stop] == [False]


# -- 6. time: requeues and windows where nothing may happen (fake clock) ------------------------------


def test_min_ready_seconds_requeues_at_the_right_time() -> None:
    w = World(deployment(replicas=1, minReadySeconds=10))
    w.step()
    w.now += 1
    ch = w.step()  # the pod is ready from now on
    assert ch.requeue_after is not None and 0 < ch.requeue_after <= 10
    d = w.live[("Deployment", "default", "web")]
    assert d["status"].get("availableReplicas", 0) == 0
    w.now += ch.requeue_after
    w.step()
    assert w.live[("Deployment", "default", "web")]["status"]["availableReplicas"] == 1


def test_paused_rollout_does_not_move() -> None:
    """A paused Deployment with one new pod ready (a canary): over a minute of passes nothing
    is created, stopped or scaled."""
    d = deployment(replicas=3)
    w = World(d)
    for _ in range(12):
        w.step()
        w.now += 1
    assert len(w.of_kind("Pod")) == 3
    d2 = deployment(replicas=3, image="web:2")
    w.desired = {key(d2): d2}
    w.step()  # the rollout's first step: one new pod (maxSurge 1)
    d3 = deployment(replicas=3, image="web:2", paused=True)
    w.desired = {key(d3): d3}
    w.now += 1
    w.step()
    images = sorted(p["spec"]["containers"][0]["image"] for p in w.of_kind("Pod"))
    assert images == ["web:1", "web:1", "web:1", "web:2"]
    pods_before = {p["metadata"]["uid"] for p in w.of_kind("Pod")}
    rss_before = {r["metadata"]["name"]: r["spec"]["replicas"] for r in w.of_kind("ReplicaSet")}
    for _ in range(60):
        w.now += 1
        ch = w.step()
        assert ch.start == [] and ch.stop == []
    assert {p["metadata"]["uid"] for p in w.of_kind("Pod")} == pods_before
    assert {r["metadata"]["name"]: r["spec"]["replicas"] for r in w.of_kind("ReplicaSet")} == rss_before


def test_progress_deadline_requeue() -> None:
    """A rollout whose new pods never become ready: the pass asks to come back by the deadline,
    and at the deadline the Deployment says ProgressDeadlineExceeded."""
    w = World(deployment(replicas=1, progressDeadlineSeconds=30))
    w.step()
    uid = w.of_kind("Pod")[0]["metadata"]["uid"]
    w.running[uid] = {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
    ch = w.step()
    # Kubernetes checks one second after the deadline (pkg/controller/deployment/progress.go)
    assert ch.requeue_after is not None and ch.requeue_after <= 31
    w.now += 31
    w.step()
    conds = {c["type"]: c for c in w.live[("Deployment", "default", "web")]["status"]["conditions"]}
    assert conds["Progressing"]["reason"] == "ProgressDeadlineExceeded"


# -- 7. observed statuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "warn"),
    [
        (None, "CrashLoopBackOff", True),
        ("CrashLoopBackOff", "CrashLoopBackOff", False),  # once per change
        (None, "ContainerCreating", False),  # not a bad reason
        ("CrashLoopBackOff", "ImagePullBackOff", True),
    ],
)
def test_container_warning_events(before: str | None, after: str, warn: bool) -> None:
    def st(reason: str | None) -> dict:
        state = {"waiting": {"reason": reason, "message": "boom"}} if reason else {"running": {}}
        return {"phase": "Running", "containerStatuses": [{"name": "c", "state": state}]}

    w = World(pod("a"))
    w.step()
    uid = w.live[("Pod", "default", "a")]["metadata"]["uid"]
    w.running[uid] = st(before)
    w.step()
    w.running[uid] = st(after)
    ch = w.step()
    assert w.live[("Pod", "default", "a")]["status"] == st(after)
    assert [(e["type"], e["reason"]) for e in ch.events] == ([("Warning", after)] if warn else [])


# == issue 11 items 6 and 7 (helper "netfix"): what the proxy reports back, UDP and SCTP ports ==========
#
# The proxy answers which listeners it bound and which it could not; the next pass reads that from
# Observed.listening / Observed.listen_failed (reconciler/sync/netstatus.py). NetWorld plays the
# executor's part: it feeds the last answer back, and remembers Changes.net_warned.

TAKEN = "address already in use (EADDRINUSE)"


class NetWorld(World):
    def __init__(self, *desired: dict, now: float = T0) -> None:
        super().__init__(*desired, now=now)
        self.listening: set[tuple[str, str, int]] = set()
        self.listen_failed: dict[tuple[str, str, int], str] = {}
        self.net_warned: frozenset[str] = frozenset()
        self.proxy: list = []

    def input(self, **kw: Any) -> PassInput:
        import dataclasses

        inp = super().input(**kw)
        observed = dataclasses.replace(
            inp.observed, listening=frozenset(self.listening), listen_failed=dict(self.listen_failed)
        )
        memory = dataclasses.replace(inp.memory, net_warned=self.net_warned)
        return dataclasses.replace(inp, observed=observed, memory=memory)

    def step(self, **kw: Any) -> Changes:
        ch = super().step(**kw)
        self.net_warned = ch.net_warned
        self.proxy = ch.proxy
        return ch

    def bind_all(self, except_: dict[tuple[str, str, int], str] | None = None) -> None:
        """The proxy binds every listener of the last proxy table, but those in ``except_``."""
        except_ = except_ or {}
        every = {(r.protocol, h, p) for r in self.proxy for h, p in r.listen}
        self.listening = every - set(except_)
        self.listen_failed = dict(except_)

    def svc(self, name: str = "web") -> dict:
        return self.live[("Service", "default", name)]


def _warnings(ch: Changes) -> list[tuple[str, str, str]]:
    return [(e["reason"], e["name"], e["message"]) for e in ch.events if e["type"] == "Warning"]


def _ingress(svc: dict) -> list:
    return svc["status"]["loadBalancer"].get("ingress") or []


def test_lb_shows_its_address_only_once_the_proxy_holds_its_port() -> None:
    w = NetWorld(service("web", "LoadBalancer"))
    w.step()
    assert _ingress(w.svc()) == []  # the proxy has not tried yet: <pending>
    [rule] = w.proxy
    assert ("0.0.0.0", 80) in rule.listen and rule.protocol == "TCP"
    w.bind_all()
    ch = w.step()
    assert _ingress(w.svc()) == [{"ip": "127.0.0.1"}]
    assert ("EnsuredLoadBalancer", "Service", "web") in reasons(ch)
    assert reasons(w.step()) == []  # said once


def test_lb_port_taken_stays_pending_with_one_warning_then_gets_its_address() -> None:
    w = NetWorld(service("web", "LoadBalancer"))
    w.step()
    w.bind_all(except_={("TCP", "0.0.0.0", 80): TAKEN})
    ch = w.step()
    assert _ingress(w.svc()) == []
    [(reason, name, message)] = _warnings(ch)
    assert (reason, name) == ("SyncLoadBalancerFailed", "web")
    assert "0.0.0.0:80" in message and TAKEN in message
    node_port = w.svc()["spec"]["ports"][0]["nodePort"]
    # the next passes: still pending, no new Warning, the listener still in the table (tried again)
    for _ in range(3):
        w.now += 1
        ch = w.step()
        assert _ingress(w.svc()) == [] and _warnings(ch) == []
        assert ("0.0.0.0", 80) in w.proxy[0].listen
    assert w.svc()["spec"]["ports"][0]["nodePort"] == node_port
    # the port is free: the address appears
    w.bind_all()
    ch = w.step()
    assert _ingress(w.svc()) == [{"ip": "127.0.0.1"}]
    assert ("EnsuredLoadBalancer", "Service", "web") in reasons(ch)
    # taken again later: pending again, and warned again
    w.bind_all(except_={("TCP", "0.0.0.0", 80): TAKEN})
    ch = w.step()
    assert _ingress(w.svc()) == [] and [r for r, _, _ in _warnings(ch)] == ["SyncLoadBalancerFailed"]


def test_lb_keeps_its_address_until_the_proxy_has_answered() -> None:
    """After a restart the proxy has bound nothing yet: the stored address stays (no flapping)."""
    w = NetWorld(service("web", "LoadBalancer"))
    w.step()
    w.bind_all()
    w.step()
    assert _ingress(w.svc()) == [{"ip": "127.0.0.1"}]
    w.listening, w.listen_failed = set(), {}  # a new daemon: nothing bound yet
    ch = w.step()
    assert _ingress(w.svc()) == [{"ip": "127.0.0.1"}] and ch.events == []


def test_node_port_taken_warns_and_keeps_its_allocation() -> None:
    w = NetWorld(service("web", "NodePort"))
    w.step()
    node_port = w.svc()["spec"]["ports"][0]["nodePort"]
    w.bind_all(except_={("TCP", "0.0.0.0", node_port): TAKEN})
    ch = w.step()
    [(reason, _, message)] = _warnings(ch)
    assert reason == "ListenFailed" and f"0.0.0.0:{node_port}/TCP" in message and TAKEN in message
    assert w.svc()["spec"]["ports"][0]["nodePort"] == node_port
    assert ("0.0.0.0", node_port) in w.proxy[0].listen
    assert "loadBalancer" not in w.svc()["status"] or not _ingress(w.svc())
    assert _warnings(w.step()) == []
    w.bind_all()
    assert w.step().net_warned == frozenset()


def test_udp_ports_are_proxied_and_sctp_gets_one_warning() -> None:
    ports = [
        {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "targetPort": 5353, "protocol": "TCP"},
        {"name": "assoc", "port": 9899, "targetPort": 9899, "protocol": "SCTP"},
    ]
    w = NetWorld(service("web", "NodePort", ports=ports))
    ch = w.step()
    assert sorted((r.key, r.protocol) for r in ch.proxy) == [("default/web:dns", "UDP"), ("default/web:dns-tcp", "TCP")]
    [(reason, name, message)] = _warnings(ch)
    assert (reason, name) == ("UnsupportedProtocol", "web")
    assert "SCTP" in message and "9899" in message and "not supported" in message
    assert _warnings(w.step()) == []  # once


def test_a_udp_listener_failure_names_its_protocol() -> None:
    ports = [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]
    w = NetWorld(service("web", "LoadBalancer", ports=ports))
    w.step()
    w.bind_all(except_={("UDP", "0.0.0.0", 53): "permission denied (EACCES)"})
    ch = w.step()
    assert _ingress(w.svc()) == []
    [(reason, _, message)] = _warnings(ch)
    assert reason == "SyncLoadBalancerFailed" and "0.0.0.0:53/UDP" in message and "EACCES" in message


# == issue 11 item 8: pods the runtime cannot create (slow start, ReplicaFailure, FailedCreate) =====
# Kubernetes: pkg/controller/replicaset/replica_set.go (slowStartBatch, podControl events) and
# replica_set_utils.go calculateStatus; pkg/controller/deployment/progress.go getReplicaFailures.

import dataclasses  # noqa: E402

from reconciler.sync.model import CreateFailure  # noqa: E402

REFUSED = "pod CIDR 127.244.0.0/29 is exhausted"


class Capacity(World):
    """A World whose fake runtime refuses every pod beyond ``capacity``, and whose fake executor
    starts pods as reconciler/reconcile.py does: in their slow-start batches, stopping after a
    batch with a refusal, dropping the live objects of refused and skipped pods, and handing what
    failed to the next pass (``Memory.create_failures``)."""

    def __init__(self, *desired: dict, capacity: int) -> None:
        super().__init__(*desired)
        self.capacity = capacity
        self.failures: dict[str, CreateFailure] = {}
        self.tried: list[dict[str, list[int]]] = []  # per step: owner name -> sizes of the batches tried
        self.created_events: list[dict] = []

    def input(self, **kw: Any) -> PassInput:
        inp = super().input(**kw)
        return dataclasses.replace(inp, memory=dataclasses.replace(inp.memory, create_failures=dict(self.failures)))

    def step(self, **kw: Any) -> Changes:
        ch = decide(self.input(**kw))
        for k in ch.delete:
            self.live.pop(k, None)
        for obj in ch.put:
            self.live[key(obj)] = obj
        if ch.allocations is not None:
            self.allocations = ch.allocations
        for s in ch.stop:
            self.running.pop(s.uid, None)
            self.launched.discard(s.uid)
            if s.key is not None and (self.live.get(s.key) or {}).get("metadata", {}).get("uid") == s.uid:
                del self.live[s.key]
        self.failures = {}
        failed_at: dict[str, int] = {}
        tried: dict[str, list[int]] = {}
        for s in ch.start:
            ss = s.slow_start
            if ss is not None and ss.batch > failed_at.get(ss.owner_uid, ss.batch):
                f = self.failures[ss.owner_uid]
                self.failures[ss.owner_uid] = dataclasses.replace(f, skipped=f.skipped + 1)
                del self.live[s.key]
                continue
            if ss is not None:
                sizes = tried.setdefault(ss.owner[2], [])
                sizes += [0] * (ss.batch + 1 - len(sizes))
                sizes[ss.batch] += 1
            if len(self.running) >= self.capacity:
                assert ss is not None, "only controllers' pods here"
                f = self.failures.get(ss.owner_uid) or CreateFailure(ss.owner, ())
                self.failures[ss.owner_uid] = dataclasses.replace(f, errors=(*f.errors, REFUSED))
                failed_at[ss.owner_uid] = ss.batch
                del self.live[s.key]
                continue
            self.launched.add(s.uid)
            self.running[s.uid] = ready_status(f"127.244.0.{next(self._ips)}", self.now)
            if s.created_event is not None:
                self.created_events.append(s.created_event)
        self.tried.append(tried)
        self.now += 1
        return ch


def _cond(obj: dict, ctype: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def test_new_pods_start_in_slow_start_batches_per_replicaset() -> None:
    w = World(deployment("a", replicas=6), deployment("b", replicas=3), pod("bare"))
    ch = w.step()
    assert [s.slow_start for s in ch.start if s.key[2] == "bare"] == [None]
    by_owner: dict[str, list[int]] = {}
    for s in ch.start:
        if s.slow_start is not None:
            by_owner.setdefault(s.slow_start.owner[2].split("-")[0], []).append(s.slow_start.batch)
    assert by_owner == {"a": [0, 1, 1, 2, 2, 2], "b": [0, 1, 1]}
    # the SuccessfulCreate event comes with the start (written once the runtime has the pod)
    assert not [e for e in ch.events if e["reason"] == "SuccessfulCreate"]
    for s in ch.start:
        if s.slow_start is None:
            assert s.created_event is None
            continue
        ev = s.created_event
        assert ev is not None and (ev["type"], ev["reason"], ev["kind"], ev["name"]) == (
            "Normal",
            "SuccessfulCreate",
            "ReplicaSet",
            s.slow_start.owner[2],
        )
        assert ev["message"] == f"Created pod: {s.key[2]}"


def test_refused_creations_slow_start_and_set_replica_failure() -> None:
    w = Capacity(deployment("web", replicas=10), capacity=5)
    # one pass: the Deployment, its ReplicaSet and the pods, in batches of 1, 2, 4: two of the 4
    # are refused, so the last batch (3 pods) is skipped
    w.step()
    (rs,) = w.of_kind("ReplicaSet")
    assert w.tried[-1] == {rs["metadata"]["name"]: [1, 2, 4]}
    assert len(w.of_kind("Pod")) == 5 and len(w.running) == 5
    (failure,) = w.failures.values()
    assert failure.errors == (REFUSED, REFUSED) and failure.skipped == 3
    assert len(w.created_events) == 5

    ch = w.step()  # the failure reaches the ReplicaSet and the Deployment; one more try, of 1
    (rs,) = w.of_kind("ReplicaSet")
    cond = _cond(rs, "ReplicaFailure")
    assert cond is not None and (cond["status"], cond["reason"], cond["message"]) == ("True", "FailedCreate", REFUSED)
    dcond = _cond(w.live[("Deployment", "default", "web")], "ReplicaFailure")
    assert dcond is not None and (dcond["status"], dcond["reason"], dcond["message"]) == (
        "True",
        "FailedCreate",
        REFUSED,
    )
    failed = [e for e in ch.events if e["reason"] == "FailedCreate"]
    assert [(e["type"], e["kind"], e["name"], e["message"]) for e in failed] == [
        ("Warning", "ReplicaSet", rs["metadata"]["name"], f"Error creating: {REFUSED}")
    ] * 2
    assert w.tried[-1] == {rs["metadata"]["name"]: [1]}
    for _ in range(3):  # never more than one try a pass while the runtime refuses
        w.step()
        assert w.tried[-1] == {rs["metadata"]["name"]: [1]}
        assert _cond(w.of_kind("ReplicaSet")[0], "ReplicaFailure") == cond  # kept as it was set

    w.desired[("Deployment", "default", "web")] = deployment("web", replicas=5)  # what fits
    for _ in range(4):
        w.step()
    (rs,) = w.of_kind("ReplicaSet")
    assert _cond(rs, "ReplicaFailure") is None
    assert _cond(w.live[("Deployment", "default", "web")], "ReplicaFailure") is None
    assert w.tried[-1] == {} and w.failures == {}


def test_failure_of_a_gone_controller_is_ignored() -> None:
    w = Capacity(deployment("web", replicas=1), capacity=5)
    w.failures = {"no-such-uid": CreateFailure(("ReplicaSet", "default", "gone"), (REFUSED,))}
    ch = w.step()
    assert not [e for e in ch.events if e["reason"] == "FailedCreate"]
