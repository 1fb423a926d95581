"""The StatefulSet and DaemonSet steps of a pass (controllers/statefulset.py, daemonset.py).

Pure: every function works on a ``Work``. It runs after the ReplicaSets and before the garbage
collection (which also takes the claims whose owners the retention policy named: sync/objects.py)
and the storage step, so a claim made here binds in the same pass, and the pods made
here start in the runtime step when their claims are Bound.
"""

from __future__ import annotations

from collections.abc import Callable

from ..controllers import daemonset as dsctl
from ..controllers import history
from ..controllers import statefulset as stsctl
from ..types import Obj
from .work import Work

DEFAULT_NODE = "node"
"""The node's name when the settings name none (the unit tests' fake runtime)."""


def nodes(w: Work) -> list[Obj]:
    return list(w.inp.settings.nodes) or [dsctl.node_object(DEFAULT_NODE)]


def _commit(w: Work) -> Obj | None:
    info = w.inp.memory.revision_info
    return dict(info) if info else None


def _revisions(w: Work, owner: Obj, put: list[Obj], delete: list[str]) -> None:
    ns = owner["metadata"]["namespace"]
    for r in put:
        w.cluster.put(r)
    for name in delete:
        w.cluster.delete((history.KIND, ns, name))


def _pods(w: Work, create: list[Obj], delete: list[str], by_uid: dict[str, Obj]) -> None:
    for pod in create:
        w.cluster.put(pod)
    for uid in delete:
        if uid in by_uid:
            w.terminate(by_uid[uid])


def _guarded(w: Work, what: str, obj: Obj, fn: Callable[[Work, Obj], None]) -> None:
    try:
        fn(w, obj)
    except Exception as e:  # one broken object never stops the others
        w.problem("error", what, e, name=obj["metadata"]["name"], error=str(e))


def sync_apps(w: Work) -> None:
    """StatefulSets, then DaemonSets."""
    sync_statefulsets(w)
    sync_daemonsets(w)


def sync_statefulsets(w: Work) -> None:
    for sts in w.cluster.of_kind(stsctl.KIND):
        _guarded(w, "statefulset_sync_failed", sts, _sync_one)


def _sync_one(w: Work, sts: Obj) -> None:
    c = w.cluster
    ns = sts["metadata"]["namespace"]
    pods = c.of_kind("Pod", ns)
    res = stsctl.sync_statefulset(
        sts,
        pods,
        c.of_kind("PersistentVolumeClaim", ns),
        c.of_kind(history.KIND, ns),
        w.now,
        w.inp.ids.new_uid,
        _commit(w),
    )
    _revisions(w, sts, res.put_revisions, res.delete_revisions)
    for claim in res.put_claims:
        c.put(claim)
    _pods(w, res.create_pods, res.delete_pods, {p["metadata"]["uid"]: p for p in pods})
    if res.status != sts.get("status"):
        c.put({**sts, "status": res.status})
    for ev in res.events:
        w.controller_event(ev)
    w.requeue(res.requeue_after)


def sync_daemonsets(w: Work) -> None:
    for ds in w.cluster.of_kind(dsctl.KIND):
        _guarded(w, "daemonset_sync_failed", ds, _sync_ds)


def _sync_ds(w: Work, ds: Obj) -> None:
    c = w.cluster
    ns = ds["metadata"]["namespace"]
    pods = c.of_kind("Pod", ns)
    res = dsctl.sync_daemonset(
        ds,
        nodes(w),
        pods,
        c.of_kind(history.KIND, ns),
        w.now,
        w.inp.ids.new_uid,
        w.inp.ids.new_pod_name,
        _commit(w),
    )
    _revisions(w, ds, res.put_revisions, res.delete_revisions)
    _pods(w, res.create_pods, res.delete_pods, {p["metadata"]["uid"]: p for p in pods})
    if res.status != ds.get("status"):
        c.put({**ds, "status": res.status})
    for ev in res.events:
        w.controller_event(ev)
    w.requeue(res.requeue_after)
