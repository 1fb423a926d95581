"""The StatefulSet controller as a pure function (kubernetes/kubernetes pkg/controller/statefulset:
stateful_set_control.go ``updateStatefulSet``, stateful_set_utils.go).

``sync_statefulset(set, pods, claims, revisions, now, new_uid, commit)`` takes one StatefulSet,
the pods, claims and ControllerRevisions of its namespace and the clock, and returns what to do:

* pods ``<set>-<ordinal>`` for ordinals ``start .. start+replicas-1``: hostname = the pod's name,
  subdomain = ``serviceName``; labels ``statefulset.kubernetes.io/pod-name``,
  ``apps.kubernetes.io/pod-index`` and ``controller-revision-hash``;
* one claim per volumeClaimTemplate and ordinal, ``<template>-<set>-<ordinal>``, made before the
  pod, the pod's volume of that name pointing at it; its owner references follow
  ``persistentVolumeClaimRetentionPolicy`` (``whenDeleted: Delete``: owned by the set;
  ``whenScaled: Delete``: owned by its pod once the pod is condemned), so the garbage collector
  removes it with its owners; ``Retain`` keeps it, and a pod made again uses it again;
* ``OrderedReady``: one pod at a time, each Running and Ready (and available for
  minReadySeconds) before the next; scale down from the highest ordinal, one at a time, only
  while the others are healthy. ``Parallel``: all at once;
* ``RollingUpdate``: pods with ordinal >= ``partition`` whose revision is not the update revision
  are deleted (then made again from it), highest ordinal first, at most ``maxUnavailable``
  (default 1) unhealthy at once; ``OnDelete``: a pod takes the new template only when deleted;
* the revision history (controllers/history.py) and the status.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.controllers import history
from reconciler.controllers.podutil import (
    EVENT_NORMAL,
    Event,
    PHASE_FAILED,
    PHASE_RUNNING,
    PHASE_SUCCEEDED,
    controller_ref,
    is_pod_available,
    is_pod_ready,
    is_terminating,
    owner_ref,
    seconds_until_available,
    to_rfc3339,
)
from reconciler.types import Obj

KIND = "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
ORDERED_READY = "OrderedReady"
PARALLEL = "Parallel"
ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"
RETAIN = "Retain"
DELETE = "Delete"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


@dataclass
class STSResult:
    """What one sync decided: whole objects to create or update, pod uids to delete, claims to
    delete (marked terminating: the claim protection waits for its pod), revisions to drop."""

    create_pods: list[Obj] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    put_claims: list[Obj] = field(default_factory=list)
    put_revisions: list[Obj] = field(default_factory=list)
    delete_revisions: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


# -- identity ---------------------------------------------------------------------------------


def parent_and_ordinal(name: str) -> tuple[str, int] | None:
    """``getParentNameAndOrdinal``: ``web-12`` -> ("web", 12)."""
    m = _ORDINAL.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def ordinal_of(pod: Obj) -> int:
    po = parent_and_ordinal(pod["metadata"]["name"])
    return po[1] if po else -1


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template_name: str, sts: Obj, ordinal: int) -> str:
    """``getPersistentVolumeClaimName``: ``<template>-<set>-<ordinal>``."""
    return f"{template_name}-{pod_name(sts, ordinal)}"


def spec_of(sts: Obj) -> Obj:
    return sts.get("spec") or {}


def replicas_of(sts: Obj) -> int:
    r = spec_of(sts).get("replicas")
    return 1 if r is None else int(r)


def start_of(sts: Obj) -> int:
    return int((spec_of(sts).get("ordinals") or {}).get("start") or 0)


def strategy(sts: Obj) -> Obj:
    return spec_of(sts).get("updateStrategy") or {"type": ROLLING_UPDATE}


def partition_of(sts: Obj) -> int:
    return int((strategy(sts).get("rollingUpdate") or {}).get("partition") or 0)


def retention(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled), Retain by default."""
    p = spec_of(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(p.get("whenDeleted") or RETAIN), str(p.get("whenScaled") or RETAIN)


def scaled_value(value: object, total: int, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int, or a percentage of ``total``."""
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1]) * total / 100
        return math.ceil(pct) if round_up else math.floor(pct)
    return int(value) if isinstance(value, (int, str)) else 0


def max_unavailable(sts: Obj) -> int:
    """``getStatefulSetMaxUnavailable``: rounded up, at least 1."""
    value = (strategy(sts).get("rollingUpdate") or {}).get("maxUnavailable")
    return max(1, scaled_value(1 if value is None else value, replicas_of(sts), True))


def pod_revision(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(history.HASH_LABEL) or "")


def claims_of_pod(sts: Obj, ordinal: int) -> list[tuple[str, Obj]]:
    """(claim name, volumeClaimTemplate) for each template."""
    return [
        (claim_name(t["metadata"]["name"], sts, ordinal), t) for t in spec_of(sts).get("volumeClaimTemplates") or []
    ]


def new_pod(sts: Obj, template: Obj, revision: str, ordinal: int, uid: str, now: float) -> Obj:
    """``newVersionedStatefulSetPod``: the pod of ``ordinal`` from ``template`` at ``revision``,
    its identity (name, hostname, subdomain, labels) and storage (the claims' volumes) set."""
    m = sts["metadata"]
    name = pod_name(sts, ordinal)
    tmeta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if spec_of(sts).get("serviceName"):
        spec["subdomain"] = spec_of(sts)["serviceName"]
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in _template_names(sts)]
    for claim, t in claims_of_pod(sts, ordinal):
        volumes.append({"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
    if volumes:
        spec["volumes"] = volumes
    labels = {
        **(tmeta.get("labels") or {}),
        POD_NAME_LABEL: name,
        POD_INDEX_LABEL: str(ordinal),
        history.HASH_LABEL: revision,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": m["namespace"],
            "uid": uid,
            "labels": labels,
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner_ref({"apiVersion": "apps/v1", **sts, "kind": KIND})],
            "creationTimestamp": to_rfc3339(now),
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def _template_names(sts: Obj) -> set[str]:
    return {t["metadata"]["name"] for t in spec_of(sts).get("volumeClaimTemplates") or []}


def new_claim(sts: Obj, name: str, template: Obj, uid: str, now: float) -> Obj:
    """``getPersistentVolumeClaims``: the template's claim, labelled with the selector's labels."""
    tmeta = template.get("metadata") or {}
    labels = {**(tmeta.get("labels") or {}), **((spec_of(sts).get("selector") or {}).get("matchLabels") or {})}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": sts["metadata"]["namespace"],
            "uid": uid,
            "labels": labels,
            "annotations": dict(tmeta.get("annotations") or {}),
            "creationTimestamp": to_rfc3339(now),
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
        "status": {"phase": "Pending"},
    }


def _ref(obj: Obj, kind: str, api_version: str) -> Obj:
    """The retention policy's controller reference (stateful_set_utils.go addControllerRef)."""
    return owner_ref({**obj, "kind": kind, "apiVersion": api_version})


def claim_refs(sts: Obj, claim: Obj, pod: Obj | None, condemned: bool) -> list[Obj]:
    """``updateClaimOwnerRefForSetAndPod``: the claim's owner references under the retention policy:
    Retain/Retain none; whenDeleted Delete the set; whenScaled Delete the pod once it is condemned
    (and then not the set). References to other owners are kept."""
    when_deleted, when_scaled = retention(sts)
    set_uid = sts["metadata"]["uid"]
    pod_name_ = pod["metadata"]["name"] if pod is not None else None
    others = [
        r
        for r in claim["metadata"].get("ownerReferences") or []
        if r.get("uid") != set_uid and not (r.get("kind") == "Pod" and r.get("name") == pod_name_)
    ]
    refs = list(others)
    if when_scaled == DELETE and condemned and pod is not None:
        refs.append(_ref(pod, "Pod", "v1"))  # only the pod: the claim goes with it
    elif when_deleted == DELETE:
        refs.append(_ref(sts, KIND, "apps/v1"))
    return refs


# -- pod states (stateful_set_utils.go) ----------------------------------------------------------


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def running_and_ready(pod: Obj) -> bool:
    return _phase(pod) == PHASE_RUNNING and is_pod_ready(pod)


def healthy(pod: Obj | None, min_ready: int, now: float) -> bool:
    """``isHealthy``: running, ready (and available for minReadySeconds), not terminating."""
    return (
        pod is not None and running_and_ready(pod) and not is_terminating(pod) and is_pod_available(pod, min_ready, now)
    )


def finished(pod: Obj) -> bool:
    return _phase(pod) in (PHASE_FAILED, PHASE_SUCCEEDED)


# -- the sync -----------------------------------------------------------------------------------


class _Sync:
    """One sync of one StatefulSet; ``run`` follows updateStatefulSet's order."""

    def __init__(self, sts: Obj, pods: list[Obj], claims: list[Obj], now: float, new_uid: Callable[[], str]):
        self.sts, self.now, self.new_uid = sts, now, new_uid
        self.uid = sts["metadata"]["uid"]
        self.res = STSResult()
        self.min_ready = int(spec_of(sts).get("minReadySeconds") or 0)
        self.monotonic = spec_of(sts).get("podManagementPolicy", ORDERED_READY) != PARALLEL
        self.claims = {c["metadata"]["name"]: c for c in claims}
        name = sts["metadata"]["name"]
        self.owned = [
            p
            for p in pods
            if (ref := controller_ref(p)) is not None
            and ref.get("uid") == self.uid
            and (po := parent_and_ordinal(p["metadata"]["name"])) is not None
            and po[0] == name
        ]

    def event(self, reason: str, message: str, type_: str = EVENT_NORMAL) -> None:
        m = self.sts["metadata"]
        self.res.events.append(Event(type_, reason, message, KIND, m["namespace"], m["name"]))

    def delete(self, pod: Obj) -> None:
        self.res.delete_pods.append(pod["metadata"]["uid"])
        self.event(
            "SuccessfulDelete",
            f"delete Pod {pod['metadata']['name']} in StatefulSet {self.sts['metadata']['name']} successful",
        )

    def wait(self, pod: Obj) -> None:
        """A pod not yet available: be woken when minReadySeconds pass."""
        after = seconds_until_available(pod, self.min_ready, self.now)
        if after is not None and (self.res.requeue_after is None or after < self.res.requeue_after):
            self.res.requeue_after = after

    def ensure_claims(self, ordinal: int, pod: Obj | None, condemned: bool) -> bool:
        """Make the ordinal's missing claims; set the owner references of its claims. False when
        a claim is being deleted (the pod waits for it to go, then a new claim is made)."""
        ok = True
        for name, template in claims_of_pod(self.sts, ordinal):
            claim = self.claims.get(name)
            if claim is None:
                if condemned:
                    continue
                claim = new_claim(self.sts, name, template, self.new_uid(), self.now)
                self.claims[name] = claim
                self.res.put_claims.append(claim)
                pname = pod_name(self.sts, ordinal)
                self.event(
                    "SuccessfulCreate",
                    f"create Claim {name} Pod {pname} in StatefulSet {self.sts['metadata']['name']} success",
                )
            if is_terminating(claim):
                ok = False
                continue
            refs = claim_refs(self.sts, claim, pod, condemned)
            if refs != (claim["metadata"].get("ownerReferences") or []):
                new = copy.deepcopy(claim)
                new["metadata"]["ownerReferences"] = refs
                if not refs:
                    del new["metadata"]["ownerReferences"]
                self.claims[name] = new
                self.res.put_claims = [c for c in self.res.put_claims if c["metadata"]["name"] != name] + [new]
        return ok

    def create(self, ordinal: int, revs: history.Revisions) -> bool:
        """Claims, then the pod (from the current revision below the partition under RollingUpdate)."""
        if not self.ensure_claims(ordinal, None, False):
            return False
        st = strategy(self.sts)
        rev = revs.update
        if st.get("type", ROLLING_UPDATE) == ROLLING_UPDATE and ordinal < start_of(self.sts) + partition_of(self.sts):
            rev = revs.current
        pod = new_pod(self.sts, history.template_of(rev), rev["metadata"]["name"], ordinal, self.new_uid(), self.now)
        self.res.create_pods.append(pod)
        self.event(
            "SuccessfulCreate",
            f"create Pod {pod['metadata']['name']} in StatefulSet {self.sts['metadata']['name']} successful",
        )
        return True

    def replicas(self, revs: history.Revisions) -> bool:
        """Each ordinal in the range, lowest first: replace finished pods, create missing ones,
        wait for each (OrderedReady). False: stop here (the monotonic rule holds the rest)."""
        start, n = start_of(self.sts), replicas_of(self.sts)
        by_ord = {ordinal_of(p): p for p in self.owned}
        for ordinal in range(start, start + n):
            pod = by_ord.get(ordinal)
            if pod is not None and finished(pod) and not is_terminating(pod):
                self.delete(pod)  # made again once it is gone
                if self.monotonic:
                    return False
                continue
            if pod is None:
                self.create(ordinal, revs)
                if self.monotonic:
                    return False
                continue
            if is_terminating(pod) or not running_and_ready(pod):
                if self.monotonic:
                    return False
                continue
            if not is_pod_available(pod, self.min_ready, self.now):
                self.wait(pod)
                if self.monotonic:
                    return False
                continue
            self.ensure_claims(ordinal, pod, False)
        return True

    def condemned(self) -> list[Obj]:
        start, n = start_of(self.sts), replicas_of(self.sts)
        out = [p for p in self.owned if not start <= ordinal_of(p) < start + n]
        return sorted(out, key=ordinal_of, reverse=True)

    def scale_down(self, first_unhealthy: Obj | None) -> bool:
        """Condemned pods, highest ordinal first; OrderedReady: one at a time, and only an unhealthy
        pod when it is the first unhealthy one."""
        for pod in self.condemned():
            if is_terminating(pod):
                if self.monotonic:
                    return False
                continue
            if not running_and_ready(pod) and self.monotonic and pod is not first_unhealthy:
                return False
            self.ensure_claims(ordinal_of(pod), pod, True)
            self.delete(pod)
            if self.monotonic:
                return False
        return True

    def rolling_update(self, revs: history.Revisions) -> None:
        """Delete pods not at the update revision, highest ordinal first down to the partition,
        while fewer than maxUnavailable pods are unavailable. Parallel: old pods that are already
        unavailable go first and cost nothing of the budget (updateStatefulSetAfterInvariantEstablished)."""
        start, n = start_of(self.sts), replicas_of(self.sts)
        by_ord = {ordinal_of(p): p for p in self.owned}
        replicas = [by_ord.get(o) for o in range(start, start + n)]
        limit = max_unavailable(self.sts)
        update = revs.update["metadata"]["name"]

        def old(pod: Obj | None) -> bool:
            return pod is not None and not is_terminating(pod) and pod_revision(pod) != update

        unavailable = [p for p in replicas if not healthy(p, self.min_ready, self.now)]
        stuck = [p for p in unavailable if old(p)] if not self.monotonic else []
        if len(unavailable) >= limit and not stuck:
            return
        targets = [p for p in reversed(replicas[partition_of(self.sts) :]) if old(p)]
        budget = limit - len(unavailable)
        for pod in targets:
            assert pod is not None
            if pod in stuck:
                self.delete(pod)
            elif budget > 0:
                self.delete(pod)
                budget -= 1
            elif self.monotonic:
                return

    def first_unhealthy(self) -> Obj | None:
        start, n = start_of(self.sts), replicas_of(self.sts)
        in_range = sorted((p for p in self.owned if start <= ordinal_of(p) < start + n), key=ordinal_of)
        for pod in [*in_range, *self.condemned()]:
            if not healthy(pod, self.min_ready, self.now):
                return pod
        return None

    def run(self, revs: history.Revisions) -> None:
        if is_terminating(self.sts):
            return
        first_unhealthy = self.first_unhealthy()
        if not self.replicas(revs) or not self.scale_down(first_unhealthy):
            return
        if strategy(self.sts).get("type", ROLLING_UPDATE) == ROLLING_UPDATE:
            self.rolling_update(revs)


def status_of(sts: Obj, pods: list[Obj], revs: history.Revisions, now: float) -> Obj:
    """``computeReplicaStatus`` + ``completeRollingUpdate``: counts over the pods observed."""
    min_ready = int(spec_of(sts).get("minReadySeconds") or 0)
    current, update = revs.current["metadata"]["name"], revs.update["metadata"]["name"]
    st: Obj = {
        "observedGeneration": sts["metadata"].get("generation", 0),
        "replicas": 0,
        "readyReplicas": 0,
        "currentReplicas": 0,
        "updatedReplicas": 0,
        "availableReplicas": 0,
        "currentRevision": current,
        "updateRevision": update,
        "collisionCount": revs.collision_count,
    }
    for pod in pods:
        st["replicas"] += 1
        if running_and_ready(pod) and not is_terminating(pod):
            st["readyReplicas"] += 1
            if is_pod_available(pod, min_ready, now):
                st["availableReplicas"] += 1
        if not is_terminating(pod):
            st["currentReplicas"] += pod_revision(pod) == current
            st["updatedReplicas"] += pod_revision(pod) == update
    rolling = strategy(sts).get("type", ROLLING_UPDATE) == ROLLING_UPDATE
    if rolling and st["updatedReplicas"] == st["replicas"] and st["readyReplicas"] == st["replicas"]:
        st["currentReplicas"] = st["updatedReplicas"]
        st["currentRevision"] = update
    return st


def sync_statefulset(
    sts: Obj,
    pods: list[Obj],
    claims: list[Obj],
    revisions: list[Obj],
    now: float,
    new_uid: Callable[[], str],
    commit: Obj | None = None,
) -> STSResult:
    """One StatefulSet sync over the objects of its namespace (``commit``: the applied commit,
    recorded on a new revision as its CHANGE-CAUSE)."""
    sync = _Sync(sts, pods, claims, now, new_uid)
    owned_revs = history.owned_revisions(sts, revisions)
    current_name = (sts.get("status") or {}).get("currentRevision")
    revs = history.resolve(sts, owned_revs, current_name, now, new_uid, commit)
    sync.res.put_revisions = revs.put
    sync.run(revs)
    sync.res.status = status_of(sts, sync.owned, revs, now)
    st = sync.res.status
    all_revs = {r["metadata"]["name"]: r for r in owned_revs}
    all_revs.update({r["metadata"]["name"]: r for r in revs.put})
    ordered = sorted(all_revs.values(), key=history.number)
    live = {st["currentRevision"], st["updateRevision"], *(pod_revision(p) for p in sync.owned)}
    limit = int(spec_of(sts).get("revisionHistoryLimit", 10))
    sync.res.delete_revisions = [r["metadata"]["name"] for r in history.to_truncate(ordered, live, limit)]
    return sync.res
