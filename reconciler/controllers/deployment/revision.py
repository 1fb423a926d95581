"""The new ReplicaSet, revisions and history (docs/kubernetes.md §1.3, §1.8).

Kubernetes: ``getAllReplicaSetsAndSyncRevision``, ``getNewReplicaSet`` and ``cleanupDeployment``
in kubernetes/kubernetes pkg/controller/deployment/sync.go; ``SetNewReplicaSetAnnotations``,
``SetReplicasAnnotations`` and ``FindNewReplicaSet`` in pkg/controller/deployment/util/
deployment_util.go. Also the read-only ``find_new_rs`` / ``revisions`` the CLI uses
(``kubectl rollout history``).
"""

from __future__ import annotations

import copy

from reconciler import rollout
from reconciler.controllers.deployment.state import SyncState
from reconciler.controllers.deployment.template import equal_ignore_hash, pod_template_hash
from reconciler.controllers.deployment.util import (
    COND_PROGRESSING,
    DESIRED_REPLICAS_ANNOTATION,
    HASH_LABEL,
    KIND_DEPLOYMENT,
    KIND_REPLICASET,
    MAX_INT32,
    MAX_REPLICAS_ANNOTATION,
    MAX_REV_HISTORY_CHARS,
    REASON_FOUND_NEW_RS,
    REASON_NEW_RS_CREATED,
    REASON_SCALING,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    SKIPPED_ANNOTATIONS,
    by_creation,
    created,
    get_condition,
    has_progress_deadline,
    is_rolling,
    meta,
    new_condition,
    revision_of,
    set_condition,
    spec_replicas,
    status_count,
)
from reconciler.controllers.podutil import EVENT_NORMAL, controller_ref, is_terminating, owner_ref, to_rfc3339
from reconciler.types import Obj

# --- annotations ------------------------------------------------------------------------


def append_history(history: str, old_revision: str) -> str:
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


def copy_annotations(s: SyncState, rs: Obj) -> bool:
    """``copyDeploymentAnnotationsToReplicaSet``: the Deployment's annotations, minus the skipped ones."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in s.annotations.items():
        if key in SKIPPED_ANNOTATIONS or annotations.get(key) == value:
            continue
        annotations[key] = value
        changed = True
    return changed


def set_replicas_annotations(s: SyncState, rs: Obj) -> bool:
    """``SetReplicasAnnotations``: desired-replicas and max-replicas; True if they changed."""
    annotations = rs["metadata"].setdefault("annotations", {})
    wanted = {
        DESIRED_REPLICAS_ANNOTATION: str(s.replicas),
        MAX_REPLICAS_ANNOTATION: str(s.replicas + s.max_surge),
    }
    if all(annotations.get(k) == v for k, v in wanted.items()):
        return False
    annotations.update(wanted)
    return True


def set_new_rs_annotations(s: SyncState, rs: Obj, new_revision: int, exists: bool) -> bool:
    """``SetNewReplicaSetAnnotations``: copy annotations, bump revision, keep history."""
    changed = copy_annotations(s, rs)
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
            annotations[REVISION_HISTORY_ANNOTATION] = append_history(
                annotations.get(REVISION_HISTORY_ANNOTATION, ""), old_raw
            )
    if not exists and set_replicas_annotations(s, rs):
        changed = True
    return changed


def set_deployment_revision(s: SyncState, revision: str) -> None:
    if s.annotations.get(REVISION_ANNOTATION) != revision:
        s.annotations[REVISION_ANNOTATION] = revision


# --- the new ReplicaSet -----------------------------------------------------------------


def find_new(s: SyncState) -> Obj | None:
    """``FindNewReplicaSet`` among the RSs this sync owns."""
    template = s.d["spec"].get("template") or {}
    for rs in by_creation(s.owned):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def get_new_rs(s: SyncState, create: bool) -> tuple[Obj | None, list[Obj]]:
    """``getAllReplicaSetsAndSyncRevision``: the new RS (synced or created) and the old ones."""
    existing = find_new(s)
    old = [rs for rs in s.owned if rs is not existing]
    new_revision = max((revision_of(rs) for rs in old), default=0) + 1
    if existing is not None:
        _sync_existing(s, existing, new_revision)
        return existing, old
    if not create:
        return None, old
    rs = create_new_rs(s, old, new_revision)
    return rs, old


def _sync_existing(s: SyncState, existing: Obj, new_revision: int) -> None:
    """The existing new RS: annotations, minReadySeconds, the Deployment's revision, FoundNewReplicaSet."""
    annotations_changed = set_new_rs_annotations(s, existing, new_revision, exists=True)
    mrs = s.d["spec"].get("minReadySeconds", 0)
    if annotations_changed or (existing["spec"].get("minReadySeconds", 0) != mrs):
        existing["spec"]["minReadySeconds"] = mrs
        s.touch(existing)
    set_deployment_revision(s, existing["metadata"]["annotations"].get(REVISION_ANNOTATION, ""))
    if has_progress_deadline(s.d) and get_condition(s.status, COND_PROGRESSING) is None:
        msg = f'Found new replica set "{existing["metadata"]["name"]}"'
        set_condition(s.status, new_condition(COND_PROGRESSING, "True", REASON_FOUND_NEW_RS, msg, s.now))


def _free_name(s: SyncState, template: Obj) -> tuple[str, str]:
    """(name, hash) of the new RS; a hash collision bumps ``status.collisionCount`` (docs/kubernetes.md §1.3)."""
    collisions = s.status.get("collisionCount")
    while True:
        rs_hash = pod_template_hash(template, collisions)
        name = f"{s.name}-{rs_hash}"
        if name not in s.all_names:
            return name, rs_hash
        # An RS by that name exists but is not our new RS.
        collisions = (collisions or 0) + 1
        s.status["collisionCount"] = collisions


def _new_rs_object(s: SyncState, name: str, rs_hash: str) -> Obj:
    new_template = copy.deepcopy(s.d["spec"].get("template") or {})
    tmeta = new_template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: rs_hash}
    selector = copy.deepcopy(s.d["spec"].get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: rs_hash}
    return {
        "apiVersion": "apps/v1",
        "kind": KIND_REPLICASET,
        "metadata": {
            "name": name,
            "namespace": s.namespace,
            "uid": s.new_uid(),
            "labels": dict(tmeta["labels"]),
            "annotations": {},
            "ownerReferences": [owner_ref({"apiVersion": "apps/v1", "kind": KIND_DEPLOYMENT, **s.d})],
            "creationTimestamp": to_rfc3339(s.now),
            "generation": 1,
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": s.d["spec"].get("minReadySeconds", 0),
            "selector": selector,
            "template": new_template,
        },
        "status": {"replicas": 0, "fullyLabeledReplicas": 0, "readyReplicas": 0, "availableReplicas": 0},
    }


def create_new_rs(s: SyncState, old: list[Obj], new_revision: int) -> Obj:
    """``getNewReplicaSet`` with createIfNotExisted: name, size, annotations, event, condition."""
    name, rs_hash = _free_name(s, s.d["spec"].get("template") or {})
    rs = _new_rs_object(s, name, rs_hash)
    if is_rolling(s.d):
        total = sum(spec_replicas(r) for r in old)
        size = rollout.new_rs_new_replicas(s.replicas, s.max_surge, s.max_unavailable, total, 0)
    else:
        size = s.replicas
    rs["spec"]["replicas"] = size
    set_new_rs_annotations(s, rs, new_revision, exists=False)
    s.created.append(rs)
    s.owned.append(rs)
    s.all_names.add(name)
    if size > 0:
        s.event(EVENT_NORMAL, REASON_SCALING, f"Scaled up replica set {name} to {size}")
    set_deployment_revision(s, str(new_revision))
    if has_progress_deadline(s.d):
        msg = f'Created new replica set "{name}"'
        set_condition(s.status, new_condition(COND_PROGRESSING, "True", REASON_NEW_RS_CREATED, msg, s.now))
    return rs


# --- history ----------------------------------------------------------------------------


def cleanup(s: SyncState, old: list[Obj]) -> None:
    """``cleanupDeployment``: delete the oldest scaled-down RSs past revisionHistoryLimit (docs/kubernetes.md §1.8)."""
    limit = s.d["spec"].get("revisionHistoryLimit")
    if limit is None or limit == MAX_INT32:
        return
    cleanable = [rs for rs in old if not is_terminating(rs) and not s.is_created(rs)]
    diff = len(cleanable) - int(limit)
    if diff <= 0:
        return
    cleanable.sort(key=lambda rs: (revision_of(rs), created(rs), meta(rs).get("name", "")))
    for rs in cleanable[:diff]:
        if (
            status_count(rs, "replicas") != 0
            or spec_replicas(rs) != 0
            or meta(rs).get("generation", 0) > status_count(rs, "observedGeneration")
        ):
            continue
        s.delete.append(rs["metadata"]["name"])
        s.changed.pop(rs["metadata"]["name"], None)


# --- read-only helpers for the CLI ------------------------------------------------------


def _owned(deploy: Obj, rss: list[Obj]) -> list[Obj]:
    uid = meta(deploy).get("uid")
    ns = meta(deploy).get("namespace", "default")
    return [
        rs for rs in rss if meta(rs).get("namespace", "default") == ns and (controller_ref(rs) or {}).get("uid") == uid
    ]


def find_new_rs(deploy: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest owned RS whose template equals the Deployment's (ignoring the hash label)."""
    template = deploy["spec"].get("template") or {}
    for rs in by_creation(_owned(deploy, rss)):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def revisions(deploy: Obj, rss: list[Obj]) -> list[tuple[int, Obj]]:
    """Owned RSs as (revision, rs), revision ascending (``kubectl rollout history``)."""
    owned = _owned(deploy, rss)
    return sorted(((revision_of(rs), rs) for rs in owned), key=lambda item: (item[0], created(item[1])))
