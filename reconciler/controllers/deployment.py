"""The Deployment controller as a pure function (spec 1.3-1.11).

Where it sits: the daemon calls ``sync_deployment`` with one Deployment, every
ReplicaSet and pod of its namespace and the clock, then carries out the returned
``DeploymentResult`` (create / update / delete ReplicaSets, write the status and the
Deployment's revision annotation, record the events, re-run after ``requeue_after``).
The ReplicaSet controller (``replicaset.py``) then creates and deletes the pods. The
rollout arithmetic lives in ``reconciler/rollout.py``.

One sync follows ``syncDeployment`` (spec 1.4): claim ReplicaSets; paused -> scale only;
a changed ``spec.replicas`` -> proportional scaling; otherwise one step of the
``RollingUpdate`` (spec 1.5) or ``Recreate`` (spec 1.6) strategy; history cleanup once
complete (spec 1.8); status and conditions (spec 1.10). ``rollout_status`` is
``kubectl rollout status`` (spec 1.11).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from reconciler import rollout
from reconciler.controllers.podutil import (
    ALPHABET,
    EVENT_NORMAL,
    EVENT_WARNING,
    PHASE_FAILED,
    PHASE_SUCCEEDED,
    Event,
    controller_ref,
    from_rfc3339,
    is_terminating,
    owner_ref,
    seconds_until_available,
    to_rfc3339,
)
from reconciler.errors import SelectorError
from reconciler.selectors import Selector, from_label_selector

Obj = dict[str, Any]

MAX_INT32 = 2147483647
HASH_LABEL = "pod-template-hash"
KIND_DEPLOYMENT = "Deployment"
KIND_REPLICASET = "ReplicaSet"

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
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


@dataclass
class DeploymentResult:
    """What one Deployment sync decided.

    ``update_rs`` holds complete ReplicaSet dicts (spec.replicas, annotations, labels or
    ownerReferences changed); ``delete_rs`` holds names. ``deployment_annotations`` is the
    Deployment's full ``metadata.annotations`` when the sync changed them (the
    ``deployment.kubernetes.io/revision`` copy of the new RS's revision), else None.
    """

    create_rs: list[Obj] = field(default_factory=list)
    update_rs: list[Obj] = field(default_factory=list)
    delete_rs: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    deployment_annotations: dict[str, str] | None = None


# --- template hashing and equality (spec 1.3) -------------------------------------------


def normalize_template(template: Obj) -> Obj:
    """A copy of a pod template without the hash label and without empty label/annotation maps."""
    tpl = copy.deepcopy(template or {})
    meta = tpl.get("metadata")
    if isinstance(meta, dict):
        labels = dict(meta.get("labels") or {})
        labels.pop(HASH_LABEL, None)
        for key, value in (("labels", labels), ("annotations", meta.get("annotations"))):
            if value:
                meta[key] = value
            else:
                meta.pop(key, None)
        if not meta:
            tpl.pop("metadata")
    return tpl


def equal_ignore_hash(t1: Obj, t2: Obj) -> bool:
    """Semantic equality of two pod templates ignoring the pod-template-hash label."""
    return normalize_template(t1) == normalize_template(t2)


def _fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each character -> ALPHABET[ord(c) % 27]."""
    return "".join(ALPHABET[ord(c) % len(ALPHABET)] for c in text)


def pod_template_hash(template: Obj, collision_count: int | None = None) -> str:
    """FNV-1a 32 of the normalized template's canonical JSON (+ collision count), encoded."""
    canonical = json.dumps(normalize_template(template), sort_keys=True, separators=(",", ":"))
    data = canonical.encode()
    if collision_count is not None:
        data += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(_fnv1a32(data)))


# --- small accessors --------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec_replicas(rs: Obj) -> int:
    value = (rs.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _st(rs: Obj, key: str) -> int:
    return int((rs.get("status") or {}).get(key) or 0)


def _int_annotation(rs: Obj, key: str) -> int | None:
    raw = (_meta(rs).get("annotations") or {}).get(key)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def revision_of(rs: Obj) -> int:
    """The RS's ``deployment.kubernetes.io/revision`` (0 when absent or invalid)."""
    return _int_annotation(rs, REVISION_ANNOTATION) or 0


def _created(rs: Obj) -> float:
    ts = _meta(rs).get("creationTimestamp")
    return from_rfc3339(ts) if ts else 0.0


def _by_creation(rss: list[Obj]) -> list[Obj]:
    """``ReplicaSetsByCreationTimestamp``: oldest first, then by name."""
    return sorted(rss, key=lambda rs: (_created(rs), _meta(rs).get("name", "")))


def _selector(deploy: Obj) -> Selector | None:
    try:
        return from_label_selector((deploy.get("spec") or {}).get("selector"))
    except SelectorError:
        return None


def _has_progress_deadline(deploy: Obj) -> bool:
    pds = deploy["spec"].get("progressDeadlineSeconds")
    return pds is not None and pds != MAX_INT32


def _is_rolling(deploy: Obj) -> bool:
    return ((deploy["spec"].get("strategy") or {}).get("type") or ROLLING_UPDATE) == ROLLING_UPDATE


def fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved for the Deployment; (0, 0) for Recreate."""
    if not _is_rolling(deploy):
        return 0, 0
    ru = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return rollout.resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), _replicas(deploy))


def _replicas(deploy: Obj) -> int:
    value = deploy["spec"].get("replicas")
    return 1 if value is None else int(value)


def _conditions(status: Obj) -> list[Obj]:
    return cast(list[Obj], status.setdefault("conditions", []))


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cast(Obj, cond)
    return None


def _new_condition(ctype: str, status: str, reason: str, message: str, now: float) -> Obj:
    ts = to_rfc3339(now)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def _set_condition(status: Obj, cond: Obj) -> None:
    """``SetDeploymentCondition``: no-op on same status+reason; keep transition time on same status."""
    current = get_condition(status, cond["type"])
    if current is not None and current["status"] == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current["status"] == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime", cond["lastTransitionTime"])}
    status["conditions"] = [c for c in _conditions(status) if c.get("type") != cond["type"]] + [cond]


def _remove_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in _conditions(status) if c.get("type") != ctype]


# --- the sync ---------------------------------------------------------------------------


class _Sync:
    """Working state of one sync: copies of the owned RSs and what changed."""

    def __init__(self, deploy: Obj, now: float, new_uid: Callable[[], str]) -> None:
        self.d = deploy
        self.name = _meta(deploy)["name"]
        self.namespace = _meta(deploy).get("namespace", "default")
        self.now = now
        self.new_uid = new_uid
        self.replicas = _replicas(deploy)
        self.max_surge, self.max_unavailable = fenceposts(deploy)
        self.status: Obj = copy.deepcopy(deploy.get("status") or {})  # "d.Status", mutated in place
        self.prev_status: Obj = self.status  # replaced before progress estimation
        self.annotations: dict[str, str] = dict(_meta(deploy).get("annotations") or {})
        self.owned: list[Obj] = []
        self.all_names: set[str] = set()
        self.created: list[Obj] = []
        self.changed: dict[str, Obj] = {}
        self.events: list[Event] = []
        self.delete: list[str] = []
        self.requeue: list[float] = []

    # events / bookkeeping

    def event(self, etype: str, reason: str, message: str) -> None:
        self.events.append(Event(etype, reason, message, KIND_DEPLOYMENT, self.namespace, self.name))

    def touch(self, rs: Obj) -> None:
        if not any(rs is c for c in self.created):
            self.changed[_meta(rs)["name"]] = rs

    # claiming (spec 3.1)

    def claim(self, rss: list[Obj]) -> None:
        uid = _meta(self.d).get("uid")
        selector = _selector(self.d)
        deleting = is_terminating(self.d)
        for original in rss:
            meta = _meta(original)
            if meta.get("namespace", "default") != self.namespace:
                continue
            self.all_names.add(meta["name"])
            matches = selector is not None and selector.matches(meta.get("labels") or {})
            ref = controller_ref(original)
            if ref is not None and ref.get("uid") != uid:
                continue
            rs = copy.deepcopy(original)
            if ref is not None:
                if matches:
                    self.owned.append(rs)
                elif not deleting:
                    refs = [r for r in rs["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                    rs["metadata"]["ownerReferences"] = refs
                    self.touch(rs)
            elif matches and not deleting and not is_terminating(rs):
                rs["metadata"]["ownerReferences"] = list(rs["metadata"].get("ownerReferences") or []) + [
                    owner_ref({"apiVersion": "apps/v1", "kind": KIND_DEPLOYMENT, **self.d})
                ]
                self.touch(rs)
                self.owned.append(rs)

    # new / old RS

    def find_new(self) -> Obj | None:
        template = self.d["spec"].get("template") or {}
        for rs in _by_creation(self.owned):
            if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
                return rs
        return None

    def old_of(self, new_rs: Obj | None) -> list[Obj]:
        return [rs for rs in self.owned if rs is not new_rs]

    def copy_annotations(self, rs: Obj) -> bool:
        annotations = rs["metadata"].setdefault("annotations", {})
        changed = False
        for key, value in self.annotations.items():
            if key in SKIPPED_ANNOTATIONS or annotations.get(key) == value:
                continue
            annotations[key] = value
            changed = True
        return changed

    def set_replicas_annotations(self, rs: Obj) -> bool:
        annotations = rs["metadata"].setdefault("annotations", {})
        wanted = {
            DESIRED_REPLICAS_ANNOTATION: str(self.replicas),
            MAX_REPLICAS_ANNOTATION: str(self.replicas + self.max_surge),
        }
        if all(annotations.get(k) == v for k, v in wanted.items()):
            return False
        annotations.update(wanted)
        return True

    def set_new_rs_annotations(self, rs: Obj, new_revision: int, exists: bool) -> bool:
        """``SetNewReplicaSetAnnotations``: copy annotations, bump revision, keep history."""
        changed = self.copy_annotations(rs)
        annotations = rs["metadata"]["annotations"]
        had_revision = REVISION_ANNOTATION in annotations
        old_raw = annotations.get(REVISION_ANNOTATION, "")
        try:
            old_revision = int(old_raw) if old_raw else 0
        except ValueError:
            return changed
        if old_revision < new_revision:
            annotations[REVISION_ANNOTATION] = str(new_revision)
            changed = True
            if had_revision:
                annotations[REVISION_HISTORY_ANNOTATION] = _append_history(
                    annotations.get(REVISION_HISTORY_ANNOTATION, ""), old_raw
                )
        if not exists and self.set_replicas_annotations(rs):
            changed = True
        return changed

    def set_deployment_revision(self, revision: str) -> None:
        if self.annotations.get(REVISION_ANNOTATION) != revision:
            self.annotations[REVISION_ANNOTATION] = revision

    def get_new_rs(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """``getAllReplicaSetsAndSyncRevision``: the new RS (synced or created) and the old ones."""
        existing = self.find_new()
        old = self.old_of(existing)
        new_revision = max((revision_of(rs) for rs in old), default=0) + 1
        if existing is not None:
            annotations_changed = self.set_new_rs_annotations(existing, new_revision, exists=True)
            mrs = self.d["spec"].get("minReadySeconds", 0)
            if annotations_changed or (existing["spec"].get("minReadySeconds", 0) != mrs):
                existing["spec"]["minReadySeconds"] = mrs
                self.touch(existing)
            self.set_deployment_revision(existing["metadata"]["annotations"].get(REVISION_ANNOTATION, ""))
            if _has_progress_deadline(self.d) and get_condition(self.status, COND_PROGRESSING) is None:
                msg = f'Found new replica set "{existing["metadata"]["name"]}"'
                _set_condition(
                    self.status, _new_condition(COND_PROGRESSING, "True", REASON_FOUND_NEW_RS, msg, self.now)
                )
            return existing, old
        if not create:
            return None, old
        rs = self.create_new_rs(old, new_revision)
        return rs, old

    def create_new_rs(self, old: list[Obj], new_revision: int) -> Obj:
        template = self.d["spec"].get("template") or {}
        collisions = self.status.get("collisionCount")
        while True:
            rs_hash = pod_template_hash(template, collisions)
            name = f"{self.name}-{rs_hash}"
            if name not in self.all_names:
                break
            # Hash collision (spec 1.3): an RS by that name exists but is not our new RS.
            collisions = (collisions or 0) + 1
            self.status["collisionCount"] = collisions
        new_template = copy.deepcopy(template)
        tmeta = new_template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: rs_hash}
        selector = copy.deepcopy(self.d["spec"].get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: rs_hash}
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": KIND_REPLICASET,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "uid": self.new_uid(),
                "labels": dict(tmeta["labels"]),
                "annotations": {},
                "ownerReferences": [owner_ref({"apiVersion": "apps/v1", "kind": KIND_DEPLOYMENT, **self.d})],
                "creationTimestamp": to_rfc3339(self.now),
                "generation": 1,
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": self.d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": new_template,
            },
            "status": {"replicas": 0, "fullyLabeledReplicas": 0, "readyReplicas": 0, "availableReplicas": 0},
        }
        if _is_rolling(self.d):
            total = sum(_spec_replicas(r) for r in old)
            size = rollout.new_rs_new_replicas(self.replicas, self.max_surge, self.max_unavailable, total, 0)
        else:
            size = self.replicas
        rs["spec"]["replicas"] = size
        self.set_new_rs_annotations(rs, new_revision, exists=False)
        self.created.append(rs)
        self.owned.append(rs)
        self.all_names.add(name)
        if size > 0:
            self.event(EVENT_NORMAL, REASON_SCALING, f"Scaled up replica set {name} to {size}")
        self.set_deployment_revision(str(new_revision))
        if _has_progress_deadline(self.d):
            msg = f'Created new replica set "{name}"'
            _set_condition(self.status, _new_condition(COND_PROGRESSING, "True", REASON_NEW_RS_CREATED, msg, self.now))
        return rs

    # scaling

    def scale(self, rs: Obj, new_scale: int, operation: str | None = None) -> bool:
        """``scaleReplicaSet``: write size and desired/max annotations; True if the size changed."""
        old_scale = _spec_replicas(rs)
        size_changed = old_scale != new_scale
        annotations_changed = self.set_replicas_annotations(rs)
        if size_changed or annotations_changed:
            rs["spec"]["replicas"] = new_scale
            self.touch(rs)
        if size_changed:
            op = operation or ("down" if old_scale > new_scale else "up")
            name = rs["metadata"]["name"]
            self.event(EVENT_NORMAL, REASON_SCALING, f"Scaled {op} replica set {name} to {new_scale} from {old_scale}")
        return size_changed

    def scale_and_record(self, rs: Obj, new_scale: int) -> bool:
        if _spec_replicas(rs) == new_scale:
            return False
        return self.scale(rs, new_scale)

    def proportional_scale(self, new_rs: Obj | None, old: list[Obj]) -> None:
        """``scale()`` (spec 1.7)."""
        target = _find_active_or_latest(new_rs, old)
        if target is not None:
            if _spec_replicas(target) != self.replicas:
                self.scale_and_record(target, self.replicas)
            return
        if self._is_saturated(new_rs):
            for rs in _active(old):
                self.scale_and_record(rs, 0)
            return
        if not _is_rolling(self.d):
            return
        active = _active(old + ([new_rs] if new_rs is not None else []))
        allowed = self.replicas + self.max_surge if self.replicas > 0 else 0
        to_add = rollout.replicas_to_add(allowed, [_spec_replicas(rs) for rs in active])
        operation = ""
        if to_add > 0:
            active = _by_size(active, newer_first=True)
            operation = "up"
        elif to_add < 0:
            active = _by_size(active, newer_first=False)
            operation = "down"
        entries = [(_spec_replicas(rs), _int_annotation(rs, MAX_REPLICAS_ANNOTATION)) for rs in active]
        sizes = rollout.proportional_sizes(entries, self.replicas, self.max_surge, _st(self.d, "replicas"))
        for rs, size in zip(active, sizes):
            self.scale(rs, size, operation)

    def _is_saturated(self, rs: Obj | None) -> bool:
        if rs is None:
            return False
        desired = _int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
        return (
            desired is not None
            and _spec_replicas(rs) == self.replicas
            and desired == self.replicas
            and _st(rs, "availableReplicas") == self.replicas
        )

    def is_scaling_event(self, new_rs: Obj | None, old: list[Obj]) -> bool:
        for rs in _active(old + ([new_rs] if new_rs is not None else [])):
            desired = _int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
            if desired is not None and desired != self.replicas:
                return True
        return False

    # strategies

    def rolling(self) -> None:
        new_rs, old = self.get_new_rs(create=True)
        assert new_rs is not None
        if self.reconcile_new_rs(new_rs, old):
            return
        if self.reconcile_old_rss(new_rs, old):
            return
        if deployment_complete(self.d, self.status_for_completion()):
            self.cleanup(old)

    def reconcile_new_rs(self, new_rs: Obj, old: list[Obj]) -> bool:
        spec = _spec_replicas(new_rs)
        if spec == self.replicas:
            return False
        if spec > self.replicas:
            return self.scale_and_record(new_rs, self.replicas)
        total = sum(_spec_replicas(rs) for rs in old) + spec
        size = rollout.new_rs_new_replicas(self.replicas, self.max_surge, self.max_unavailable, total, spec)
        return self.scale_and_record(new_rs, size)

    def reconcile_old_rss(self, new_rs: Obj, old: list[Obj]) -> bool:
        active_old = _by_creation(_active(old))
        if sum(_spec_replicas(rs) for rs in active_old) == 0:
            return False
        all_rss = old + [new_rs]
        min_available = self.replicas - self.max_unavailable
        budget = rollout.scale_down_budget(
            sum(_spec_replicas(rs) for rs in all_rss),
            min_available,
            _spec_replicas(new_rs),
            _st(new_rs, "availableReplicas"),
        )
        if budget <= 0:
            return False
        scaled = False
        sizes = rollout.cleanup_unhealthy(
            [(_spec_replicas(rs), _st(rs, "availableReplicas")) for rs in active_old], budget
        )
        for rs, size in zip(active_old, sizes):
            scaled |= self.scale_and_record(rs, size)
        total_available = sum(_st(rs, "availableReplicas") for rs in all_rss)
        sizes = rollout.scale_down_healthy([_spec_replicas(rs) for rs in active_old], total_available, min_available)
        for rs, size in zip(active_old, sizes):
            scaled |= self.scale_and_record(rs, size)
        return scaled

    def recreate(self, pods: list[Obj]) -> None:
        new_rs, old = self.get_new_rs(create=False)
        scaled = False
        for rs in _active(old):
            scaled |= self.scale_and_record(rs, 0)
        if scaled or _old_pods_running(new_rs, old, pods):
            return
        if new_rs is None:
            new_rs, old = self.get_new_rs(create=True)
            assert new_rs is not None
        self.scale_and_record(new_rs, self.replicas)
        if deployment_complete(self.d, self.status_for_completion()):
            self.cleanup(old)

    def status_for_completion(self) -> Obj:
        """k8s checks ``DeploymentComplete(d, &d.Status)`` here: the status as read."""
        return self.d.get("status") or {}

    def cleanup(self, old: list[Obj]) -> None:
        """History cleanup (spec 1.8)."""
        limit = self.d["spec"].get("revisionHistoryLimit")
        if limit is None or limit == MAX_INT32:
            return
        cleanable = [rs for rs in old if not is_terminating(rs) and not any(rs is c for c in self.created)]
        diff = len(cleanable) - int(limit)
        if diff <= 0:
            return
        cleanable.sort(key=lambda rs: (revision_of(rs), _created(rs), _meta(rs).get("name", "")))
        for rs in cleanable[:diff]:
            if (
                _st(rs, "replicas") != 0
                or _spec_replicas(rs) != 0
                or _meta(rs).get("generation", 0) > _st(rs, "observedGeneration")
            ):
                continue
            self.delete.append(rs["metadata"]["name"])
            self.changed.pop(rs["metadata"]["name"], None)

    # status

    def calculate_status(self, new_rs: Obj | None) -> Obj:
        rss = self.owned
        available = sum(_st(rs, "availableReplicas") for rs in rss)
        total_spec = sum(_spec_replicas(rs) for rs in rss)
        status: Obj = {
            "observedGeneration": _meta(self.d).get("generation", 0),
            "replicas": sum(_st(rs, "replicas") for rs in rss),
            "updatedReplicas": _st(new_rs, "replicas") if new_rs is not None else 0,
            "readyReplicas": sum(_st(rs, "readyReplicas") for rs in rss),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total_spec - available),
        }
        if self.status.get("collisionCount") is not None:
            status["collisionCount"] = self.status["collisionCount"]
        status["conditions"] = copy.deepcopy(self.status.get("conditions") or [])
        if available >= self.replicas - self.max_unavailable:
            cond = _new_condition(
                COND_AVAILABLE, "True", REASON_MIN_AVAILABLE, "Deployment has minimum availability.", self.now
            )
        else:
            cond = _new_condition(
                COND_AVAILABLE,
                "False",
                REASON_MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
                self.now,
            )
        _set_condition(status, cond)
        return status

    def rollout_status(self, new_rs: Obj | None) -> Obj:
        """``syncRolloutStatus``: status plus the Progressing condition (spec 1.10)."""
        new_status = self.calculate_status(new_rs)
        if not _has_progress_deadline(self.d):
            _remove_condition(new_status, COND_PROGRESSING)
            return new_status
        current = get_condition(self.status, COND_PROGRESSING)
        complete_before = (
            new_status["replicas"] == new_status["updatedReplicas"]
            and current is not None
            and current.get("reason") == REASON_NEW_RS_AVAILABLE
        )
        if complete_before:
            return new_status
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None else f'Deployment "{self.name}"'
        if deployment_complete(self.d, new_status):
            cond = _new_condition(
                COND_PROGRESSING, "True", REASON_NEW_RS_AVAILABLE, f"{subject} has successfully progressed.", self.now
            )
            _set_condition(new_status, cond)
        elif _progressed(self.status, new_status):
            cond = _new_condition(COND_PROGRESSING, "True", REASON_RS_UPDATED, f"{subject} is progressing.", self.now)
            if current is not None:
                if current["status"] == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
                _remove_condition(new_status, COND_PROGRESSING)
            _set_condition(new_status, cond)
        elif self.timed_out(new_status):
            cond = _new_condition(
                COND_PROGRESSING, "False", REASON_TIMED_OUT, f"{subject} has timed out progressing.", self.now
            )
            _set_condition(new_status, cond)
        self.requeue_stuck(new_status)
        return new_status

    def timed_out(self, status: Obj) -> bool:
        cond = get_condition(status, COND_PROGRESSING)
        if cond is None or cond.get("reason") == REASON_NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == REASON_TIMED_OUT:
            return True
        since = from_rfc3339(cond["lastUpdateTime"])
        return since + int(self.d["spec"]["progressDeadlineSeconds"]) < self.now

    def requeue_stuck(self, new_status: Obj) -> None:
        cond = get_condition(new_status, COND_PROGRESSING)
        if cond is None or deployment_complete(self.d, new_status):
            return
        if cond.get("reason") in (REASON_TIMED_OUT, REASON_NEW_RS_AVAILABLE):
            return
        after = from_rfc3339(cond["lastUpdateTime"]) + int(self.d["spec"]["progressDeadlineSeconds"]) - self.now
        self.requeue.append(max(after, 0.0) + 1.0)

    def check_paused_conditions(self) -> None:
        """Progressing Unknown/DeploymentPaused while paused, Unknown/DeploymentResumed on resume."""
        if not _has_progress_deadline(self.d):
            return
        cond = get_condition(self.status, COND_PROGRESSING)
        if cond is not None and cond.get("reason") == REASON_TIMED_OUT:
            return
        paused_exists = cond is not None and cond.get("reason") == REASON_PAUSED
        if self.d["spec"].get("paused") and not paused_exists:
            _set_condition(
                self.status,
                _new_condition(COND_PROGRESSING, "Unknown", REASON_PAUSED, "Deployment is paused", self.now),
            )
        elif not self.d["spec"].get("paused") and paused_exists:
            _set_condition(
                self.status,
                _new_condition(COND_PROGRESSING, "Unknown", REASON_RESUMED, "Deployment is resumed", self.now),
            )

    def min_ready_requeue(self, pods: list[Obj]) -> None:
        uids = {_meta(rs).get("uid") for rs in self.owned}
        mrs = int(self.d["spec"].get("minReadySeconds") or 0)
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") not in uids:
                continue
            wait = seconds_until_available(pod, mrs, self.now)
            if wait is not None:
                self.requeue.append(wait)

    def result(self, status: Obj) -> DeploymentResult:
        original_annotations = dict(_meta(self.d).get("annotations") or {})
        deleted = set(self.delete)
        return DeploymentResult(
            create_rs=list(self.created),
            update_rs=[rs for name, rs in self.changed.items() if name not in deleted],
            delete_rs=list(self.delete),
            status=status,
            events=list(self.events),
            requeue_after=min(self.requeue) if self.requeue else None,
            deployment_annotations=self.annotations if self.annotations != original_annotations else None,
        )


def _append_history(history: str, old_revision: str) -> str:
    """Append to the comma-separated revision history, dropping the oldest past 2000 chars."""
    if not history:
        return old_revision
    entries = history.split(",")
    total = len(history) + len(old_revision) + 1
    start = 0
    while total > MAX_REV_HISTORY_CHARS and start < len(entries):
        total -= len(entries[start]) + 1
        start += 1
    if total > MAX_REV_HISTORY_CHARS:
        return history
    return ",".join(entries[start:] + [old_revision])


def _active(rss: list[Obj]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and _spec_replicas(rs) > 0]


def _by_size(rss: list[Obj], newer_first: bool) -> list[Obj]:
    """``ReplicaSetsBySizeNewer`` / ``BySizeOlder``: largest first, ties by creation."""

    def cmp(a: Obj, b: Obj) -> int:
        sa, sb = _spec_replicas(a), _spec_replicas(b)
        if sa != sb:
            return -1 if sa > sb else 1
        ka = (_created(a), _meta(a).get("name", ""))
        kb = (_created(b), _meta(b).get("name", ""))
        if ka == kb:
            return 0
        older_first = -1 if ka < kb else 1
        return -older_first if newer_first else older_first

    return sorted(rss, key=functools.cmp_to_key(cmp))


def _find_active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    if new_rs is None and not old:
        return None
    old_sorted = list(reversed(_by_creation(old)))
    active = _active(old_sorted + ([new_rs] if new_rs is not None else []))
    if len(active) == 0:
        return new_rs if new_rs is not None else old_sorted[0]
    if len(active) == 1:
        return active[0]
    return None


def _old_pods_running(new_rs: Obj | None, old: list[Obj], pods: list[Obj]) -> bool:
    """Recreate waits while any old RS reports pods or any old pod is not terminal."""
    if sum(_st(rs, "replicas") for rs in old) > 0:
        return True
    old_uids = {_meta(rs).get("uid") for rs in old}
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None or ref.get("uid") not in old_uids:
            continue
        if (pod.get("status") or {}).get("phase") not in (PHASE_FAILED, PHASE_SUCCEEDED):
            return True
    return False


def _progressed(old: Obj, new: Obj) -> bool:
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
    replicas = _replicas(deploy)
    return (
        int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
        and int(status.get("observedGeneration") or 0) >= int(_meta(deploy).get("generation") or 0)
    )


def sync_deployment(
    deploy: Obj,
    rss: list[Obj],
    pods: list[Obj],
    now: float,
    new_uid: Callable[[], str],
) -> DeploymentResult:
    """One Deployment sync (spec 1.4). ``rss``/``pods`` = all of the namespace."""
    sync = _Sync(deploy, now, new_uid)
    selector = deploy["spec"].get("selector")
    if selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions"):
        sync.event(
            EVENT_WARNING,
            REASON_SELECTING_ALL,
            "This deployment is selecting all pods. A non-empty selector is required.",
        )
        status = copy.deepcopy(deploy.get("status") or {})
        status["observedGeneration"] = _meta(deploy).get("generation", 0)
        return sync.result(status)

    sync.claim(rss)
    if is_terminating(deploy):
        new_rs, _ = sync.get_new_rs(create=False)
        return sync.result(sync.calculate_status(new_rs))

    sync.check_paused_conditions()
    if deploy["spec"].get("paused"):
        new_rs, old = sync.get_new_rs(create=False)
        sync.proportional_scale(new_rs, old)
        sync.cleanup(old)
        return sync.result(sync.calculate_status(new_rs))

    new_rs, old = sync.get_new_rs(create=False)
    if sync.is_scaling_event(new_rs, old):
        sync.proportional_scale(new_rs, old)
        return sync.result(sync.calculate_status(new_rs))

    if _is_rolling(deploy):
        sync.rolling()
    else:
        sync.recreate(pods)
    new_rs = sync.find_new()
    status = sync.rollout_status(new_rs)
    sync.min_ready_requeue(pods)
    return sync.result(status)


# --- read-only helpers for the CLI ------------------------------------------------------


def _owned(deploy: Obj, rss: list[Obj]) -> list[Obj]:
    uid = _meta(deploy).get("uid")
    ns = _meta(deploy).get("namespace", "default")
    return [
        rs for rs in rss if _meta(rs).get("namespace", "default") == ns and (controller_ref(rs) or {}).get("uid") == uid
    ]


def find_new_rs(deploy: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest owned RS whose template equals the Deployment's (ignoring the hash label)."""
    template = deploy["spec"].get("template") or {}
    for rs in _by_creation(_owned(deploy, rss)):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def revisions(deploy: Obj, rss: list[Obj]) -> list[tuple[int, Obj]]:
    """Owned RSs as (revision, rs), revision ascending (``kubectl rollout history``)."""
    owned = _owned(deploy, rss)
    return sorted(((revision_of(rs), rs) for rs in owned), key=lambda item: (item[0], _created(item[1])))


def rollout_status(deploy: Obj) -> tuple[str, bool, bool]:
    """``kubectl rollout status`` (spec 1.11): (message, done, failed).

    Messages carry no trailing newline; on failure kubectl prints them after ``error: ``.
    """
    name = _meta(deploy)["name"]
    status = deploy.get("status") or {}
    if int(_meta(deploy).get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False, False
    cond = get_condition(status, COND_PROGRESSING)
    if cond is not None and cond.get("reason") == REASON_TIMED_OUT:
        return f'deployment "{name}" exceeded its progress deadline', False, True
    replicas = _replicas(deploy)
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{updated} out of {replicas} new replicas have been updated...",
            False,
            False,
        )
    if current > updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{current - updated} old replicas are pending termination...",
            False,
            False,
        )
    if available < updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{available} of {updated} updated replicas are available...",
            False,
            False,
        )
    return f'deployment "{name}" successfully rolled out', True, False
