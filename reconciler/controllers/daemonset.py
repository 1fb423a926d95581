"""The DaemonSet controller as a pure function (kubernetes/kubernetes pkg/controller/daemon:
daemon_controller.go ``manage`` / ``podsShouldBeOnNode`` / ``updateDaemonSetStatus``, update.go
``rollingUpdate``, util/daemonset_util.go).

``sync_daemonset(ds, nodes, pods, revisions, now, new_uid, new_pod_name, commit)`` runs one
DaemonSet over a list of nodes (this runtime has one: ``node_object``; a multi-node runtime passes
more): a pod on every node whose labels match ``spec.template.spec.nodeSelector``, none on the
others; ``RollingUpdate`` replaces old pods (``controller-revision-hash`` not the update
revision's hash) at most ``maxUnavailable`` (default 1) unavailable at once, or, with ``maxSurge``,
starts the new pod beside the old one and deletes the old one once the new one is available;
``OnDelete`` replaces a pod only when it is deleted. Revisions: controllers/history.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.controllers import history
from reconciler.controllers.podutil import (
    EVENT_NORMAL,
    PHASE_FAILED,
    Event,
    controller_ref,
    generated_name,
    is_pod_available,
    is_pod_ready,
    is_terminating,
    owner_ref,
    seconds_until_available,
    to_rfc3339,
)
from reconciler.controllers.statefulset import scaled_value
from reconciler.types import Obj

KIND = "DaemonSet"
ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
# the tolerations the DaemonSet controller adds to its pods (util.AddOrUpdateDaemonPodTolerations)
TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def node_object(name: str, machine: str = "x86_64") -> Obj:
    """A Node as the kubelet registers it: the well-known labels (hostname, os, arch)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                HOSTNAME_LABEL: name,
                OS_LABEL: "linux",
                ARCH_LABEL: _ARCH.get(machine, machine),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": _ARCH.get(machine, machine),
            },
        },
    }


@dataclass
class DSResult:
    create_pods: list[Obj] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    put_revisions: list[Obj] = field(default_factory=list)
    delete_revisions: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


def spec_of(ds: Obj) -> Obj:
    return ds.get("spec") or {}


def strategy(ds: Obj) -> Obj:
    return spec_of(ds).get("updateStrategy") or {"type": ROLLING_UPDATE}


def should_run(ds: Obj, node: Obj) -> bool:
    """``NodeShouldRunDaemonPod`` for a node without taints: the nodeSelector matches its labels."""
    selector = ((spec_of(ds).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def pod_hash(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(history.HASH_LABEL) or "")


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    """``updatedDesiredNodeCounts``: maxSurge and maxUnavailable over the nodes that should run a
    pod (rounded up); both 0 would stall the update, so maxUnavailable becomes 1."""
    ru = strategy(ds).get("rollingUpdate") or {}
    surge = scaled_value(ru.get("maxSurge") or 0, desired, True)
    unavailable = scaled_value(1 if ru.get("maxUnavailable") is None else ru["maxUnavailable"], desired, True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _by_age(pods: list[Obj]) -> list[Obj]:
    """``podByCreationTimestampAndPhase``: oldest first, Running before others at the same time."""
    return sorted(
        pods,
        key=lambda p: (
            p["metadata"].get("creationTimestamp") or "",
            0 if (p.get("status") or {}).get("phase") == "Running" else 1,
            p["metadata"]["name"],
        ),
    )


def new_pod(ds: Obj, node: str, hash_: str, suffix: str, uid: str, now: float) -> Obj:
    """A daemon pod for ``node`` from the template, labelled with the revision's hash."""
    m = ds["metadata"]
    template = spec_of(ds).get("template") or {}
    tmeta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec["nodeName"] = node
    tolerations = list(spec.get("tolerations") or [])
    for key, effect in TOLERATIONS:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tolerations
    prefix = m["name"] + "-"
    labels = {
        **(tmeta.get("labels") or {}),
        history.HASH_LABEL: hash_,
        TEMPLATE_GENERATION_LABEL: str(m.get("generation", 1)),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": generated_name(prefix, suffix),
            "generateName": prefix,
            "namespace": m["namespace"],
            "uid": uid,
            "labels": labels,
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner_ref({"apiVersion": "apps/v1", **ds, "kind": KIND})],
            "creationTimestamp": to_rfc3339(now),
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def updated_on_node(pods: list[Obj], hash_: str) -> tuple[Obj | None, Obj | None, bool]:
    """``findUpdatedPodsOnNode``: the node's one new and one old pod (not terminating); False
    when there are more (the manage step cleans up first)."""
    new: Obj | None = None
    old: Obj | None = None
    for pod in pods:
        if is_terminating(pod):
            continue
        if pod_hash(pod) == hash_:
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


class _Sync:
    def __init__(self, ds: Obj, nodes: list[Obj], pods: list[Obj], now: float):
        self.ds, self.nodes, self.now = ds, nodes, now
        self.res = DSResult()
        self.min_ready = int(spec_of(ds).get("minReadySeconds") or 0)
        uid = ds["metadata"]["uid"]
        self.owned = [p for p in pods if (ref := controller_ref(p)) is not None and ref.get("uid") == uid]
        self.by_node: dict[str, list[Obj]] = {}
        for pod in self.owned:
            self.by_node.setdefault(str((pod.get("spec") or {}).get("nodeName") or ""), []).append(pod)
        self.create_on: list[str] = []

    def event(self, reason: str, message: str) -> None:
        m = self.ds["metadata"]
        self.res.events.append(Event(EVENT_NORMAL, reason, message, KIND, m["namespace"], m["name"]))

    def delete(self, pod: Obj) -> None:
        if pod["metadata"]["uid"] in self.res.delete_pods:
            return
        self.res.delete_pods.append(pod["metadata"]["uid"])
        self.event("SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def available(self, pod: Obj) -> bool:
        after = seconds_until_available(pod, self.min_ready, self.now)
        if after is not None and (self.res.requeue_after is None or after < self.res.requeue_after):
            self.res.requeue_after = after
        return is_pod_available(pod, self.min_ready, self.now)

    def manage(self, hash_: str) -> None:
        """``podsShouldBeOnNode`` for each node: create where missing, delete failed pods, extra
        pods, and pods on nodes that should not run one."""
        surge = surge_and_unavailable(self.ds, 1)[0] > 0 and strategy(self.ds).get("type") == ROLLING_UPDATE
        names = {str(n["metadata"]["name"]) for n in self.nodes}
        for node in self.nodes:
            name = str(node["metadata"]["name"])
            pods = self.by_node.get(name, [])
            if not should_run(self.ds, node):
                for pod in pods:
                    if not is_terminating(pod):
                        self.delete(pod)
                continue
            if not pods:
                self.create_on.append(name)
                continue
            running = []
            for pod in pods:
                if is_terminating(pod):
                    continue
                if (pod.get("status") or {}).get("phase") == PHASE_FAILED:
                    self.delete(pod)
                    continue
                running.append(pod)
            self.extras(_by_age(running), surge, hash_)
        for name, pods in self.by_node.items():  # pods on nodes that are gone
            if name not in names:
                for pod in pods:
                    if not is_terminating(pod):
                        self.delete(pod)

    def extras(self, running: list[Obj], surge: bool, hash_: str) -> None:
        """More than one pod on a node: without surge keep the oldest; with surge keep the oldest
        new and the oldest old pod, the old one only while it is ready and the new one is not yet
        available (podsShouldBeOnNode)."""
        if len(running) <= 1:
            return
        if not surge:
            for pod in running[1:]:
                self.delete(pod)
            return
        newest: Obj | None = None
        oldest: Obj | None = None
        for pod in running:
            if pod_hash(pod) == hash_ and newest is None:
                newest = pod
            elif pod_hash(pod) != hash_ and oldest is None:
                oldest = pod
            else:
                self.delete(pod)
        if newest is not None and oldest is not None:
            if not is_pod_ready(oldest) or is_pod_available(newest, self.min_ready, self.now):
                self.delete(oldest)

    def rolling_update(self, hash_: str) -> None:
        desired = sum(1 for n in self.nodes if should_run(self.ds, n))
        max_surge, max_unavailable = surge_and_unavailable(self.ds, desired)
        if max_surge == 0:
            self._replace(hash_, max_unavailable)
        else:
            self._surge(hash_, max_surge)

    def _replace(self, hash_: str, max_unavailable: int) -> None:
        """Delete old pods (then made new by the next manage) while fewer than maxUnavailable are
        unavailable; an unavailable old pod is always replaced."""
        unavailable = 0
        allowed: list[Obj] = []
        candidates: list[Obj] = []
        for node in self.nodes:
            if not should_run(self.ds, node):
                continue
            new, old, ok = updated_on_node(self.by_node.get(node["metadata"]["name"], []), hash_)
            if not ok:
                continue
            if (old is None) == (new is None):
                unavailable += 1
            elif new is not None:
                unavailable += not self.available(new)
            elif old is not None and not self.available(old):
                allowed.append(old)
            elif unavailable < max_unavailable and old is not None:
                candidates.append(old)
        remaining = min(max(0, max_unavailable - unavailable), len(candidates))
        for pod in [*allowed, *candidates[:remaining]]:
            self.delete(pod)

    def _surge(self, hash_: str, max_surge: int) -> None:
        """Start new pods beside old ones (at most maxSurge at once); delete an old pod once the
        new one on its node is available."""
        surged = 0
        allowed: list[str] = []
        candidates: list[str] = []
        for node in self.nodes:
            name = str(node["metadata"]["name"])
            new, old, ok = updated_on_node(self.by_node.get(name, []), hash_)
            if not ok:
                surged += 1
                continue
            if not should_run(self.ds, node) or old is None:
                continue
            if new is None:
                if not self.available(old):
                    allowed.append(name)
                elif surged < max_surge:
                    candidates.append(name)
            elif not self.available(new):
                surged += 1
            else:
                self.delete(old)
        remaining = min(max(0, max_surge - surged), len(candidates))
        self.create_on.extend([*allowed, *candidates[:remaining]])

    def status(self, hash_: str) -> Obj:
        """``updateDaemonSetStatus`` over the pods observed."""
        desired = current = ready = available = updated = misscheduled = 0
        for node in self.nodes:
            pods = _by_age(self.by_node.get(node["metadata"]["name"], []))
            if not should_run(self.ds, node):
                misscheduled += bool(pods)
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            if is_pod_ready(pods[0]):
                ready += 1
                available += is_pod_available(pods[0], self.min_ready, self.now)
            updated += pod_hash(pods[0]) == hash_
        return {
            "observedGeneration": self.ds["metadata"].get("generation", 0),
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "numberAvailable": available,
            "numberUnavailable": desired - available,
            "updatedNumberScheduled": updated,
        }


def sync_daemonset(
    ds: Obj,
    nodes: list[Obj],
    pods: list[Obj],
    revisions: list[Obj],
    now: float,
    new_uid: Callable[[], str],
    new_pod_name: Callable[[], tuple[str, str]],
    commit: Obj | None = None,
) -> DSResult:
    """One DaemonSet sync: revisions, pods per node, rolling update, status."""
    sync = _Sync(ds, nodes, pods, now)
    owned_revs = history.owned_revisions(ds, revisions)
    revs = history.resolve(ds, owned_revs, None, now, new_uid, commit)
    update = revs.update
    hash_ = str(update["metadata"]["labels"].get(history.CR_HASH_LABEL) or "")
    sync.res.put_revisions = revs.put
    sync.res.status = {**sync.status(hash_), "collisionCount": revs.collision_count}
    if not is_terminating(ds):
        sync.manage(hash_)
        if strategy(ds).get("type", ROLLING_UPDATE) == ROLLING_UPDATE:
            sync.rolling_update(hash_)
        for name in sync.create_on:
            suffix, uid = new_pod_name()
            pod = new_pod(ds, name, hash_, suffix, uid, now)
            sync.res.create_pods.append(pod)
            sync.event("SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
    all_revs = {r["metadata"]["name"]: r for r in owned_revs}
    all_revs.update({r["metadata"]["name"]: r for r in revs.put})
    ordered = sorted(all_revs.values(), key=history.number)
    prefix = ds["metadata"]["name"]
    live = {update["metadata"]["name"], *(history.revision_name(prefix, pod_hash(p)) for p in sync.owned)}
    limit = int(spec_of(ds).get("revisionHistoryLimit", 10))
    sync.res.delete_revisions = [r["metadata"]["name"] for r in history.to_truncate(ordered, live, limit)]
    return sync.res
