"""Fields that may not change once an object exists: a revision that changes one is rejected whole.

Kubernetes rejects an update of ``spec.selector`` of a Deployment, ReplicaSet, StatefulSet,
DaemonSet or Job (kubernetes/kubernetes pkg/apis/apps/validation/validation.go
``ValidateDeploymentUpdate``, ``ValidateReplicaSetUpdate``, ``ValidateStatefulSetUpdate``,
``ValidateDaemonSetUpdate``; pkg/apis/batch/validation ``ValidateJobUpdate``, each through
``apivalidation.ValidateImmutableField``) with::

    spec.selector: Invalid value: {...}: field is immutable

Without the rule a selector change released the running ReplicaSet and started a new one at
full size: the whole service went down at once. As in Kubernetes, deleting the object in one
commit and declaring it again with another selector in a later one is allowed (the check is
against the live object, and a deleted object is no longer live).

ConfigMaps and Secrets (kubernetes/kubernetes pkg/apis/core/validation/validation.go
``ValidateConfigMapUpdate``, ``ValidateSecretUpdate``): a Secret's ``type`` never changes; once
one of them is live with ``immutable: true``, its ``data`` (and a ConfigMap's ``binaryData``)
may not change and ``immutable`` may not be unset::

    data: Forbidden: field is immutable when `immutable` is set

The same way out: delete it in one commit, declare it again in a later one. The messages name
the field, never a value of a Secret.

Pure: desired manifests and live objects in, ``ManifestError``s out. The error's line is the
document's; the applier, which can read the file, moves it to the field's own line
(``manifests.yamlsafe.field_line``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ManifestError
from ..manifests.model import Manifest
from ..manifests.semantic import semantic
from ..manifests.validate.storage import PV_SOURCES, parse_quantity
from ..manifests.yamlsafe import compose, field_line
from ..types import Key, Obj
from .jobs import job_update_errors

# kind -> the field paths that are immutable after creation. Only kinds gitship loads are
# checked; the others are listed so the rule is in one place when they arrive.
IMMUTABLE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",),
    "ReplicaSet": ("spec.selector",),
    # ValidateStatefulSetUpdate: only replicas, ordinals, template, updateStrategy, revisionHistoryLimit,
    # persistentVolumeClaimRetentionPolicy and minReadySeconds may change
    "StatefulSet": ("spec.selector", "spec.serviceName", "spec.podManagementPolicy", "spec.volumeClaimTemplates"),
    "DaemonSet": ("spec.selector",),
    "Job": ("spec.selector",),
}

# how to compare a field's two values (default: semantic equality, empty == absent)
_SELECTOR_FIELDS = frozenset({"spec.selector"})

IMMUTABLE_MESSAGE = "field is immutable"
IMMUTABLE_SET_MESSAGE = "Forbidden: field is immutable when `immutable` is set"
# kinds with an ``immutable`` flag -> the fields it freezes
FROZEN_BY_FLAG: Mapping[str, tuple[str, ...]] = {"ConfigMap": ("data", "binaryData"), "Secret": ("data",)}


def field_value(obj: Obj, path: str) -> Any:
    """The value at a dotted field path (``spec.selector``), or None when a step is missing."""
    value: Any = obj
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def selector_identity(selector: Any) -> Any:
    """A LabelSelector as a value that compares by meaning: ``matchLabels`` as a set of pairs,
    ``matchExpressions`` as a set of (key, operator, set of values); empty equals absent."""
    sel = semantic(selector)
    if not isinstance(sel, dict):
        return sel
    labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    rest = {k: v for k, v in sel.items() if k not in ("matchLabels", "matchExpressions")}
    return (
        frozenset(labels.items()) if isinstance(labels, dict) else json.dumps(labels, sort_keys=True),
        frozenset(_expression_identity(e) for e in exprs) if isinstance(exprs, list) else json.dumps(exprs),
        json.dumps(rest, sort_keys=True),
    )


def _expression_identity(expr: Any) -> Any:
    if not isinstance(expr, dict):
        return json.dumps(expr, sort_keys=True)
    values = expr.get("values") or []
    return (
        expr.get("key"),
        expr.get("operator"),
        frozenset(str(v) for v in values) if isinstance(values, list) else json.dumps(values),
    )


def same_value(path: str, old: Any, new: Any) -> bool:
    if path in _SELECTOR_FIELDS:
        return bool(selector_identity(old) == selector_identity(new))
    return bool(semantic(old) == semantic(new))


def shown(value: Any) -> str:
    """The rejected value as the message shows it (JSON, keys in order)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def frozen_data_errors(new: Obj, current: Obj) -> list[tuple[str, str]]:
    """(field, message) for each change ValidateConfigMapUpdate / ValidateSecretUpdate forbid."""
    out: list[tuple[str, str]] = []
    if new.get("kind") == "Secret" and (current.get("type") or "Opaque") != (new.get("type") or "Opaque"):
        out.append(("type", f"Invalid value: {shown(new.get('type'))}: {IMMUTABLE_MESSAGE}"))
    if current.get("immutable") is not True:
        return out
    if new.get("immutable") is not True:
        out.append(("immutable", IMMUTABLE_SET_MESSAGE))
    for path in FROZEN_BY_FLAG.get(str(new.get("kind")), ()):
        if semantic(new.get(path)) != semantic(current.get(path)):
            out.append((path, IMMUTABLE_SET_MESSAGE))
    return out


PVC_SPEC_MESSAGE = (
    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName "
    "for bound claims"
)
PV_SOURCE_MESSAGE = "Forbidden: spec.persistentvolumesource is immutable after creation"
SC_FIELDS = ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode")


def claim_update_errors(new: Obj, current: Obj) -> list[tuple[str, str]]:
    """ValidatePersistentVolumeClaimUpdate: only resources.requests may change (growth only: the
    size is recorded, not enforced), volumeName only from empty; a storageClassName or volumeName
    git leaves unset keeps what the controller filled in."""
    spec, cur = dict(new.get("spec") or {}), dict(current.get("spec") or {})
    out: list[tuple[str, str]] = []
    old_size = parse_quantity(((cur.get("resources") or {}).get("requests") or {}).get("storage"))
    new_size = parse_quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
    if old_size is not None and new_size is not None and new_size < old_size:
        out.append(("spec.resources.requests.storage", "Forbidden: field can not be less than previous value"))
    for f in ("storageClassName", "volumeName"):
        if spec.get(f) is None or (f == "volumeName" and not cur.get(f)):
            spec.pop(f, None)
            cur.pop(f, None)
    for d in (spec, cur):
        d.pop("resources", None)
    if semantic(spec) != semantic(cur):
        out.append(("spec", PVC_SPEC_MESSAGE))
    return out


def volume_update_errors(new: Obj, current: Obj) -> list[tuple[str, str]]:
    """ValidatePersistentVolumeUpdate (the volume source); ValidateStorageClassUpdate for a class
    git declared before (the built-in ``local-path`` may be replaced by git's)."""
    if new.get("kind") == "StorageClass":
        if not current["metadata"].get("managedFields"):
            return []
        return [
            (f, f"Forbidden: updates to {f} are forbidden.")
            for f in SC_FIELDS
            if semantic(new.get(f)) != semantic(current.get(f))
        ]
    spec, cur = new.get("spec") or {}, current.get("spec") or {}
    if any(semantic(spec.get(s)) != semantic(cur.get(s)) for s in PV_SOURCES):
        return [("spec.persistentvolumesource", PV_SOURCE_MESSAGE)]
    return []


STORAGE_UPDATE_RULES: Mapping[str, Callable[[Obj, Obj], list[tuple[str, str]]]] = {
    "PersistentVolumeClaim": claim_update_errors,
    "PersistentVolume": volume_update_errors,
    "StorageClass": volume_update_errors,
    "Job": job_update_errors,  # sync/jobs.py
}


def immutable_field_errors(manifests: Sequence[Manifest], live: Mapping[Key, Obj]) -> list[ManifestError]:
    """An error for each immutable field a manifest changes on an object that exists live."""
    errors: list[ManifestError] = []
    for m in manifests:
        rule = STORAGE_UPDATE_RULES.get(m.key[0])
        if rule is not None and (current := live.get(m.key)) is not None:
            for path, message in rule(m.obj, current):
                errors.append(ManifestError(m.source.file, message, m.source.line, m.source.document, path))
            continue
        if m.key[0] in FROZEN_BY_FLAG and (current := live.get(m.key)) is not None:
            for path, message in frozen_data_errors(m.obj, current):
                errors.append(ManifestError(m.source.file, message, m.source.line, m.source.document, path))
            continue
        paths = IMMUTABLE_FIELDS.get(m.key[0])
        current = live.get(m.key) if paths else None
        if current is None or (current.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for path in paths or ():
            new = field_value(m.obj, path)
            if same_value(path, field_value(current, path), new):
                continue
            message = f"Invalid value: {shown(new)}: {IMMUTABLE_MESSAGE}"
            errors.append(ManifestError(m.source.file, message, m.source.line, m.source.document, path))
    return errors


def at_field_lines(errors: Sequence[ManifestError], read: Callable[[str], str | None]) -> list[ManifestError]:
    """The errors with the line of their field (``spec.selector``) in the file as written.

    ``read(file)`` gives a file's text (None: unreadable). A Jinja template keeps the document's
    line: its text as written is not the YAML that was loaded."""
    nodes: dict[str, list[Any]] = {}
    out: list[ManifestError] = []
    for e in errors:
        if e.file.endswith(".j2") or not e.field:
            out.append(e)
            continue
        if e.file not in nodes:
            text = read(e.file)
            nodes[e.file] = compose(text) if text is not None else []
        docs = nodes[e.file]
        out.append(replace(e, line=field_line(docs[e.document], e.field)) if e.document < len(docs) else e)
    return out
