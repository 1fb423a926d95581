"""ReplicationControllers: defaults and validation (kubernetes/kubernetes pkg/apis/core/v1/defaults.go
SetDefaults_ReplicationController; pkg/apis/core/validation/validation.go ValidateReplicationControllerSpec).

A ReplicationController is a ReplicaSet with an equality-based selector: ``spec.selector`` is a
plain map of labels. When unset (or empty) it defaults to the template's labels, and so do the
object's own labels; ``spec.replicas`` defaults to 1.
"""

from __future__ import annotations

from typing import Any

from reconciler.manifests.validate.common import Ctx, is_dict, type_name
from reconciler.manifests.validate.names import validate_labels
from reconciler.manifests.validate.workloads import validate_template
from reconciler.types import Obj


def default_replication_controller(obj: Obj) -> None:
    """SetDefaults_ReplicationController, in place (robust against wrong types)."""
    spec = obj.get("spec")
    if not is_dict(spec):
        return
    tmpl = spec.get("template")
    tmeta: Any = tmpl.get("metadata") if is_dict(tmpl) else None
    labels: Any = tmeta.get("labels") if is_dict(tmeta) else None
    if is_dict(labels) and labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = obj.get("metadata")
        if is_dict(meta) and not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    spec.setdefault("minReadySeconds", 0)


def validate_replication_controller(ctx: Ctx, obj: Obj) -> None:
    spec = obj.get("spec")
    if spec is None:
        ctx.err("spec", "Required value")
        return
    if not is_dict(spec):
        ctx.err("spec", f"must be an object, not {type_name(spec)}")
        return
    ctx.int_field(spec, "replicas", "spec", minimum=0)
    ctx.int_field(spec, "minReadySeconds", "spec", minimum=0)
    sel = spec.get("selector")
    match: Obj | None = None
    if not sel:
        ctx.err("spec.selector", "Required value")
    elif not is_dict(sel):
        ctx.err("spec.selector", f"must be a map of label keys to values, not {type_name(sel)}")
    else:
        before = len(ctx.errors)
        validate_labels(ctx, sel, "spec.selector")
        if len(ctx.errors) == before:
            match = {"matchLabels": sel}
    validate_template(ctx, spec.get("template"), match)
