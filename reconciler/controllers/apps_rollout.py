"""`rollout status|history|undo` of StatefulSets and DaemonSets, the pure part (kubernetes/kubernetes
staging/src/k8s.io/kubectl/pkg/polymorphichelpers: rollout_status.go StatefulSetStatusViewer and
DaemonSetStatusViewer, history.go, rollback.go StatefulSetRollbacker / DaemonSetRollbacker).

Their revisions are ControllerRevisions (controllers/history.py), oldest first; a revision reads
as ``(number, view)`` where the view is shaped like a Deployment's ReplicaSet (``spec.template``,
the revision's annotations) so that reconciler/undo.py makes the rollback commit for all three.
"""

from __future__ import annotations

from reconciler.controllers import history
from reconciler.types import Obj

KINDS = ("StatefulSet", "DaemonSet")


class RolloutError(Exception):
    """kubectl's error for a rollout it cannot watch (not RollingUpdate)."""


def _strategy(obj: Obj) -> Obj:
    return (obj.get("spec") or {}).get("updateStrategy") or {"type": "RollingUpdate"}


def statefulset_status(sts: Obj) -> tuple[str, bool]:
    """StatefulSetStatusViewer.Status: (message, done)."""
    spec, st = sts.get("spec") or {}, sts.get("status") or {}
    strategy = _strategy(sts)
    if strategy.get("type") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    observed = int(st.get("observedGeneration") or 0)
    if observed == 0 or int(sts["metadata"].get("generation") or 0) > observed:
        return "Waiting for statefulset spec update to be observed...", False
    replicas = int(spec.get("replicas", 1))
    ready = int(st.get("readyReplicas") or 0)
    if ready < replicas:
        return f"Waiting for {replicas - ready} pods to be ready...", False
    ru = strategy.get("rollingUpdate")
    updated = int(st.get("updatedReplicas") or 0)
    if ru is not None:
        partition = ru.get("partition")
        if partition is not None and updated < replicas - int(partition):
            return (
                f"Waiting for partitioned roll out to finish: {updated} out of {replicas - int(partition)} "
                "new pods have been updated...",
                False,
            )
        return f"partitioned roll out complete: {updated} new pods have been updated...", True
    if st.get("updateRevision") != st.get("currentRevision"):
        return (
            f"waiting for statefulset rolling update to complete {updated} pods at revision "
            f"{st.get('updateRevision')}...",
            False,
        )
    return (
        f"statefulset rolling update complete {st.get('currentReplicas', 0)} pods at revision "
        f"{st.get('currentRevision')}...",
        True,
    )


def daemonset_status(ds: Obj) -> tuple[str, bool]:
    """DaemonSetStatusViewer.Status: (message, done)."""
    if _strategy(ds).get("type") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    st = ds.get("status") or {}
    name = ds["metadata"]["name"]
    if int(ds["metadata"].get("generation") or 0) <= int(st.get("observedGeneration") or 0):
        desired = int(st.get("desiredNumberScheduled") or 0)
        updated = int(st.get("updatedNumberScheduled") or 0)
        available = int(st.get("numberAvailable") or 0)
        if updated < desired:
            return (
                f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} '
                "new pods have been updated...",
                False,
            )
        if available < desired:
            return (
                f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} '
                "updated pods are available...",
                False,
            )
        return f'daemon set "{name}" successfully rolled out', True
    return "Waiting for daemon set spec update to be observed...", False


def rollout_status(obj: Obj) -> tuple[str, bool]:
    return statefulset_status(obj) if obj.get("kind") == "StatefulSet" else daemonset_status(obj)


def revision_view(revision: Obj) -> Obj:
    """A revision shaped as undo reads a ReplicaSet: its template and annotations."""
    return {
        "metadata": {
            "name": revision["metadata"]["name"],
            "annotations": dict(revision["metadata"].get("annotations") or {}),
        },
        "spec": {"template": history.template_of(revision)},
    }


def revisions(owner: Obj, objects: list[Obj]) -> list[tuple[int, Obj]]:
    """The owner's revisions, oldest first, as (number, view)."""
    return [(history.number(r), revision_view(r)) for r in history.owned_revisions(owner, objects)]
