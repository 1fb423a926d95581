"""ControllerRevisions: the revision history of StatefulSets and DaemonSets, as pure functions.

Kubernetes: kubernetes/kubernetes pkg/controller/history/controller_history.go (``NewControllerRevision``,
``HashControllerRevision``, ``ControllerRevisionName``, ``FindEqualRevisions``, ``SortControllerRevisions``)
and the per-kind ``getPatch`` / ``newRevision`` / ``truncateHistory`` of pkg/controller/statefulset and
pkg/controller/daemon. A revision (``apps/v1`` ``ControllerRevision``) holds, in ``data``, the part of
its owner that a rollout changes: ``{"spec": {"template": {..., "$patch": "replace"}}}``, and a
``revision`` number that grows with every new (or re-used) revision. Its name is
``<owner>-<hash>``, the hash an FNV-1a 32 of the data's canonical JSON (plus the owner's
``collisionCount``) in Kubernetes' safe alphabet; pods carry that name in their
``controller-revision-hash`` label. gitship hashes canonical JSON rather than Go's encoding, so the
values differ from a real cluster's; their role is the same.

``rollout undo`` takes a revision's template back (reconciler/undo.py commits it to git).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reconciler import annotation_keys as keys
from reconciler.controllers.deployment.template import normalize_template, safe_encode
from reconciler.controllers.podutil import controller_ref, owner_ref, to_rfc3339
from reconciler.types import Obj

KIND = "ControllerRevision"
API_VERSION = "apps/v1"
HASH_LABEL = "controller-revision-hash"
"""The pod label naming the revision a pod was made from (apps.ControllerRevisionHashLabelKey)."""
CR_HASH_LABEL = "controller.kubernetes.io/hash"
"""The revision's own label with its hash (history.ControllerRevisionHashLabel)."""
NAME_PREFIX_MAX = 223
PATCH_KEY = "$patch"


def _fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def template_of_data(data: Obj | None) -> Obj:
    """The pod template a revision's ``data`` holds (without the ``$patch`` directive)."""
    spec = (data or {}).get("spec") or {}
    tpl = dict(spec.get("template") or {})
    tpl.pop(PATCH_KEY, None)
    return tpl


def template_of(revision: Obj) -> Obj:
    return template_of_data(revision.get("data"))


def patch_of(owner: Obj) -> Obj:
    """``getPatch``: the owner's pod template as a strategic-merge patch that replaces it whole.
    The hash label of old pods never enters it (pods get it, templates do not)."""
    tpl = normalize_template(copy.deepcopy((owner.get("spec") or {}).get("template") or {}))
    meta = tpl.get("metadata")
    if isinstance(meta, dict) and HASH_LABEL in (meta.get("labels") or {}):
        meta["labels"] = {k: v for k, v in meta["labels"].items() if k != HASH_LABEL}
    return {"spec": {"template": {**tpl, PATCH_KEY: "replace"}}}


def hash_data(data: Obj, collision_count: int | None) -> str:
    """``HashControllerRevision``: FNV-1a 32 of the data (and the collision count), safely encoded."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        raw += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(_fnv1a32(raw)))


def revision_name(prefix: str, hash_: str) -> str:
    """``ControllerRevisionName``: ``<prefix>-<hash>``, the prefix cut to 223 characters."""
    return f"{prefix[:NAME_PREFIX_MAX]}-{hash_}"


def number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def owned_revisions(owner: Obj, objects: Iterable[Obj]) -> list[Obj]:
    """The owner's revisions (controller reference by uid), oldest first (``SortControllerRevisions``:
    by revision number, then creation time, then name)."""
    uid = owner["metadata"]["uid"]
    mine = [
        r for r in objects if r.get("kind") == KIND and (ref := controller_ref(r)) is not None and ref.get("uid") == uid
    ]
    return sorted(mine, key=lambda r: (number(r), r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]))


def next_number(revisions: list[Obj]) -> int:
    """``nextRevision``: one more than the highest revision number (1 for none)."""
    return max((number(r) for r in revisions), default=0) + 1


def new_revision(owner: Obj, revision: int, collision_count: int, now: float, uid: str, commit: Obj | None) -> Obj:
    """``NewControllerRevision`` for ``owner``'s current template: labels from the template, the
    owner's annotations (and the commit that brought the template, gitship's CHANGE-CAUSE)."""
    m = owner["metadata"]
    data = patch_of(owner)
    hash_ = hash_data(data, collision_count)
    tpl_labels = (((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    annotations = {k: v for k, v in (m.get("annotations") or {}).items() if not k.startswith("gitship.io/")}
    if commit and commit.get("sha"):
        annotations[keys.COMMIT] = str(commit["sha"])
        subject = f"{str(commit['sha'])[:7]} {commit.get('author', '')}: {commit.get('subject', '')}"
        annotations[keys.CHANGE_CAUSE] = subject
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": revision_name(m["name"], hash_),
            "namespace": m["namespace"],
            "uid": uid,
            "labels": {**tpl_labels, CR_HASH_LABEL: hash_},
            "annotations": annotations,
            "ownerReferences": [owner_ref({"apiVersion": API_VERSION, **owner})],
            "creationTimestamp": to_rfc3339(now),
        },
        "data": data,
        "revision": revision,
    }


def equal_revisions(revisions: list[Obj], want: Obj) -> list[Obj]:
    """``FindEqualRevisions``: the revisions whose data equals ``want``'s."""
    return [r for r in revisions if r.get("data") == want.get("data")]


@dataclass
class Revisions:
    """``getStatefulSetRevisions`` / ``constructHistory``: the current and update revisions, the
    collision count, and the revision objects to create or update (whole objects)."""

    current: Obj
    update: Obj
    collision_count: int
    put: list[Obj] = field(default_factory=list)


def resolve(
    owner: Obj,
    revisions: list[Obj],
    current_name: str | None,
    now: float,
    new_uid: Callable[[], str],
    commit: Obj | None,
) -> Revisions:
    """Find or make the update revision (the owner's template now) and find the current one.

    The latest revision equal to the template is kept; an older equal one (a rollback) is given
    the next revision number (and the commit that brought its template back); otherwise a new
    revision, its name made unique by bumping the collision count when another revision already
    has it with other data."""
    collision = int((owner.get("status") or {}).get("collisionCount") or 0)
    nxt = next_number(revisions)
    put: list[Obj] = []
    while True:
        want = new_revision(owner, nxt, collision, now, "", commit)
        equal = equal_revisions(revisions, want)
        clash = [r for r in revisions if r["metadata"]["name"] == want["metadata"]["name"] and r not in equal]
        if not clash:
            break
        collision += 1
    if equal and equal[-1]["metadata"]["name"] == revisions[-1]["metadata"]["name"]:
        update = equal[-1]
    elif equal:
        update = {**copy.deepcopy(equal[-1]), "revision": nxt}
        ann = update["metadata"].setdefault("annotations", {})
        for k in (keys.COMMIT, keys.CHANGE_CAUSE):
            if k in want["metadata"]["annotations"]:
                ann[k] = want["metadata"]["annotations"][k]
        put.append(update)
    else:
        update = want
        update["metadata"]["uid"] = new_uid()
        put.append(update)
    by_name = {r["metadata"]["name"]: r for r in revisions}
    by_name.update({r["metadata"]["name"]: r for r in put})
    current = by_name.get(current_name or "") or update
    return Revisions(current, update, collision, put)


def to_truncate(revisions: list[Obj], live: set[str], limit: int) -> list[Obj]:
    """``truncateHistory``: the oldest revisions no pod runs and that are neither current nor
    update (``live``: names in use), beyond ``revisionHistoryLimit``."""
    idle = [r for r in revisions if r["metadata"]["name"] not in live]
    excess = len(idle) - max(0, limit)
    return idle[:excess] if excess > 0 else []
