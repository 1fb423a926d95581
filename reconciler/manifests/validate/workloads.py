"""ReplicaSets and Deployments: selector, pod template, rollout strategy (docs/kubernetes.md §3.4, §4, §8).

The rules and messages are those of kubernetes/kubernetes pkg/apis/apps/validation
(validation.go: ValidateReplicaSetSpec, ValidateDeploymentSpec, ValidateRollingUpdateDeployment).
"""

from __future__ import annotations

from typing import Any

from reconciler import selectors
from reconciler.manifests.validate.common import Ctx, is_dict, supported, type_name
from reconciler.manifests.validate.names import int_or_percent, validate_annotations, validate_labels
from reconciler.manifests.validate.pods import validate_pod_spec
from reconciler.types import Obj


def _validate_selector(ctx: Ctx, sel: Any, deployment: bool) -> bool:
    """True when the selector is valid and not empty (then it can be matched against the template)."""
    if sel is None:
        ctx.err("spec.selector", "Required value")
        return False
    if not is_dict(sel):
        ctx.err("spec.selector", f"must be an object with matchLabels and/or matchExpressions, not {type_name(sel)}")
        return False
    errs = selectors.validate_label_selector(sel, "spec.selector")
    for f, m in errs:
        ctx.err(f, m)
    if errs:
        return False
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        what = "deployment" if deployment else "replicaset"
        ctx.err("spec.selector", f"Invalid value: {{}}: empty selector is invalid for {what}")
        return False
    return True


def _validate_template(ctx: Ctx, tmpl: Any, sel: Obj | None) -> None:
    """The pod template; ``sel`` (a valid selector, or None) must match its labels."""
    if tmpl is None:
        ctx.err("spec.template", "Required value")
        return
    if not is_dict(tmpl):
        ctx.err("spec.template", f"must be an object, not {type_name(tmpl)}")
        return
    tmeta = tmpl.get("metadata")
    labels: Any = None
    if tmeta is not None and not is_dict(tmeta):
        ctx.err("spec.template.metadata", f"must be an object, not {type_name(tmeta)}")
    elif tmeta is not None:
        labels = tmeta.get("labels")
        validate_labels(ctx, labels, "spec.template.metadata.labels")
        validate_annotations(ctx, tmeta.get("annotations"), "spec.template.metadata.annotations")
    if sel is not None:
        lab = labels if is_dict(labels) else {}
        if not selectors.labels_match_selector(sel, lab):
            ctx.err(
                "spec.template.metadata.labels",
                f"Invalid value: {lab!r}: `selector` does not match template `labels`",
            )
    validate_pod_spec(ctx, tmpl.get("spec"), "spec.template.spec", template=True)


def _validate_rolling_update(ctx: Ctx, ru: Obj) -> None:
    p = "spec.strategy.rollingUpdate"
    surge = int_or_percent(ctx, ru.get("maxSurge"), f"{p}.maxSurge")
    unavail = int_or_percent(ctx, ru.get("maxUnavailable"), f"{p}.maxUnavailable")
    if unavail is not None and isinstance(ru.get("maxUnavailable"), str) and unavail > 100:
        ctx.err(f"{p}.maxUnavailable", f"Invalid value: {ru['maxUnavailable']!r}: must not be greater than 100%")
    if surge == 0 and unavail == 0:
        ctx.err(f"{p}.maxUnavailable", f"Invalid value: {ru['maxUnavailable']!r}: may not be 0 when `maxSurge` is 0")


def _validate_strategy(ctx: Ctx, strategy: Any) -> None:
    if not is_dict(strategy):
        ctx.err("spec.strategy", f"must be an object, not {type_name(strategy)}")
        return
    stype = strategy.get("type")
    ru = strategy.get("rollingUpdate")
    if stype not in ("Recreate", "RollingUpdate"):
        ctx.err("spec.strategy.type", supported(stype, ("Recreate", "RollingUpdate")))
    elif stype == "Recreate":
        if ru is not None:
            ctx.err("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'")
    elif not is_dict(ru):
        ctx.err("spec.strategy.rollingUpdate", f"must be an object, not {type_name(ru)}")
    else:
        _validate_rolling_update(ctx, ru)


def _validate_deployment_spec(ctx: Ctx, spec: Obj, min_ready: int | None) -> None:
    ctx.int_field(spec, "revisionHistoryLimit", "spec", minimum=0)
    pds = ctx.int_field(spec, "progressDeadlineSeconds", "spec", minimum=0)
    if pds is not None and min_ready is not None and pds <= min_ready:
        ctx.err("spec.progressDeadlineSeconds", "Invalid value: must be greater than minReadySeconds")
    ctx.bool_field(spec, "paused", "spec")
    _validate_strategy(ctx, spec.get("strategy"))


def validate_workload(ctx: Ctx, obj: Obj, deployment: bool) -> None:
    """A ReplicaSet, or (``deployment``) a Deployment."""
    spec = obj.get("spec")
    if spec is None:
        ctx.err("spec", "Required value")
        return
    if not is_dict(spec):
        ctx.err("spec", f"must be an object, not {type_name(spec)}")
        return
    ctx.int_field(spec, "replicas", "spec", minimum=0)
    min_ready = ctx.int_field(spec, "minReadySeconds", "spec", minimum=0)
    sel = spec.get("selector")
    selector_ok = _validate_selector(ctx, sel, deployment)
    _validate_template(ctx, spec.get("template"), sel if selector_ok else None)
    if deployment:
        _validate_deployment_spec(ctx, spec, min_ready)


def validate_deployment(ctx: Ctx, obj: Obj) -> None:
    validate_workload(ctx, obj, deployment=True)


def validate_replicaset(ctx: Ctx, obj: Obj) -> None:
    validate_workload(ctx, obj, deployment=False)


# the pod template's rules, shared with ReplicationControllers (replication.py)
validate_template = _validate_template
