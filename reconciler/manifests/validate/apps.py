"""StatefulSets and DaemonSets: defaults and validation (kubernetes/kubernetes pkg/apis/apps/v1/defaults.go
SetDefaults_StatefulSet, SetDefaults_DaemonSet; pkg/apis/apps/validation/validation.go ValidateStatefulSetSpec,
ValidateDaemonSetSpec, ValidateRollingUpdateDaemonSet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler import selectors
from reconciler.manifests.validate.common import Ctx, is_dict, is_list, supported, type_name
from reconciler.manifests.validate.names import dns1123_label_error, int_or_percent
from reconciler.manifests.validate.storage import default_storage, validate_pvc
from reconciler.manifests.validate.workloads import validate_template
from reconciler.types import Obj

POD_MANAGEMENT = ("OrderedReady", "Parallel")
STS_STRATEGIES = ("RollingUpdate", "OnDelete")
RETENTION = ("Retain", "Delete")


# -- defaults ---------------------------------------------------------------------------------


def _default_update_strategy(spec: Obj, rolling: Obj) -> None:
    st = spec.get("updateStrategy")
    if st is None:
        st = spec["updateStrategy"] = {}
    if not is_dict(st):
        return
    if not st.get("type"):
        st["type"] = "RollingUpdate"
    if st["type"] != "RollingUpdate":
        return
    ru = st.get("rollingUpdate")
    if ru is None:
        ru = st["rollingUpdate"] = {}
    if is_dict(ru):
        for k, v in rolling.items():
            if ru.get(k) is None:
                ru[k] = v


def default_statefulset(obj: Obj) -> None:
    """SetDefaults_StatefulSet, in place (robust against wrong types)."""
    spec = obj.get("spec")
    if not is_dict(spec):
        return
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    _default_update_strategy(spec, {"partition": 0, "maxUnavailable": 1})
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    if policy is None:
        policy = spec["persistentVolumeClaimRetentionPolicy"] = {}
    if is_dict(policy):
        for k in ("whenDeleted", "whenScaled"):
            if not policy.get(k):
                policy[k] = "Retain"
    vcts = spec.get("volumeClaimTemplates")
    if is_list(vcts):
        for t in vcts:
            if is_dict(t):
                default_storage({"kind": "PersistentVolumeClaim", **t})  # its spec, in place


def default_daemonset(obj: Obj) -> None:
    """SetDefaults_DaemonSet, in place."""
    spec = obj.get("spec")
    if not is_dict(spec):
        return
    _default_update_strategy(spec, {"maxUnavailable": 1, "maxSurge": 0})
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10


def default_apps(obj: Obj, default_pod_spec: Callable[[Any], None]) -> None:
    """A StatefulSet's or DaemonSet's defaults, its pod template's with ``default_pod_spec``."""
    (default_statefulset if obj.get("kind") == "StatefulSet" else default_daemonset)(obj)
    spec = obj.get("spec")
    tmpl = spec.get("template") if is_dict(spec) else None
    if is_dict(tmpl):
        default_pod_spec(tmpl.get("spec"))


# -- validation -------------------------------------------------------------------------------


def _spec(ctx: Ctx, obj: Obj) -> Obj | None:
    spec = obj.get("spec")
    if spec is None:
        ctx.err("spec", "Required value")
        return None
    if not is_dict(spec):
        ctx.err("spec", f"must be an object, not {type_name(spec)}")
        return None
    return spec


def _selector(ctx: Ctx, sel: Any, what: str) -> Obj | None:
    """A valid, non-empty selector (then matched against the template's labels), else None."""
    if sel is None:
        ctx.err("spec.selector", "Required value")
        return None
    if not is_dict(sel):
        ctx.err("spec.selector", f"must be an object with matchLabels and/or matchExpressions, not {type_name(sel)}")
        return None
    errs = selectors.validate_label_selector(sel, "spec.selector")
    for f, m in errs:
        ctx.err(f, m)
    if errs:
        return None
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        ctx.err("spec.selector", f"Invalid value: {{}}: empty selector is invalid for {what}")
        return None
    return sel


def _template(ctx: Ctx, spec: Obj, what: str) -> None:
    sel = _selector(ctx, spec.get("selector"), what)
    tmpl = spec.get("template")
    validate_template(ctx, tmpl, sel)
    pspec = tmpl.get("spec") if is_dict(tmpl) else None
    if is_dict(pspec) and pspec.get("activeDeadlineSeconds") is not None:
        ctx.err(
            "spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
        )


def _claim_templates(ctx: Ctx, spec: Obj) -> None:
    vcts = ctx.list_field(spec, "volumeClaimTemplates", "spec")
    seen: set[str] = set()
    for i, t in enumerate(vcts or []):
        path = f"spec.volumeClaimTemplates[{i}]"
        if not is_dict(t):
            ctx.err(path, f"must be an object, not {type_name(t)}")
            continue
        name = (t.get("metadata") or {}).get("name") if is_dict(t.get("metadata")) else None
        if not isinstance(name, str) or not name:
            ctx.err(f"{path}.metadata.name", "Required value: name or generateName is required")
        elif name in seen:
            ctx.err(f"{path}.metadata.name", f"Duplicate value: {name!r}")
        else:
            seen.add(name)
        sub = Ctx(ctx.file, ctx.document)
        validate_pvc(sub, {"kind": "PersistentVolumeClaim", **t})
        for e in sub.errors:
            ctx.err(f"{path}.{e.field}" if e.field else path, e.message)


def _sts_strategy(ctx: Ctx, spec: Obj) -> None:
    st = spec.get("updateStrategy")
    if not is_dict(st):
        ctx.err("spec.updateStrategy", f"must be an object, not {type_name(st)}")
        return
    stype, ru = st.get("type"), st.get("rollingUpdate")
    if stype not in STS_STRATEGIES:
        ctx.err("spec.updateStrategy.type", supported(stype, STS_STRATEGIES))
    elif stype == "OnDelete" and ru is not None:
        ctx.err("spec.updateStrategy.rollingUpdate", "Invalid value: only allowed for updateStrategy 'RollingUpdate'")
    elif is_dict(ru):
        p = "spec.updateStrategy.rollingUpdate"
        ctx.int_field(ru, "partition", p, minimum=0)
        mu = ru.get("maxUnavailable")
        value = int_or_percent(ctx, mu, f"{p}.maxUnavailable")
        if value is not None and value <= 0:
            ctx.err(f"{p}.maxUnavailable", f"Invalid value: {mu!r}: must be greater than 0")
        elif value is not None and isinstance(mu, str) and value > 100:
            ctx.err(f"{p}.maxUnavailable", f"Invalid value: {mu!r}: must not be greater than 100%")
    elif ru is not None:
        ctx.err("spec.updateStrategy.rollingUpdate", f"must be an object, not {type_name(ru)}")


def _retention(ctx: Ctx, spec: Obj) -> None:
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    if not is_dict(policy):
        ctx.err("spec.persistentVolumeClaimRetentionPolicy", f"must be an object, not {type_name(policy)}")
        return
    for k in ("whenDeleted", "whenScaled"):
        if policy.get(k) not in RETENTION:
            ctx.err(f"spec.persistentVolumeClaimRetentionPolicy.{k}", supported(policy.get(k), RETENTION))


def validate_statefulset(ctx: Ctx, obj: Obj) -> None:
    spec = _spec(ctx, obj)
    if spec is None:
        return
    ctx.int_field(spec, "replicas", "spec", minimum=0)
    ctx.int_field(spec, "minReadySeconds", "spec", minimum=0)
    ctx.int_field(spec, "revisionHistoryLimit", "spec", minimum=0)
    ordinals = ctx.dict_field(spec, "ordinals", "spec")
    if ordinals:
        ctx.int_field(ordinals, "start", "spec.ordinals", minimum=0)
    service = ctx.str_field(spec, "serviceName", "spec")
    if service:
        e = dns1123_label_error(service)
        if e:
            ctx.err("spec.serviceName", f"Invalid value: {service!r}: {e}")
    if spec.get("podManagementPolicy") not in POD_MANAGEMENT:
        ctx.err("spec.podManagementPolicy", supported(spec.get("podManagementPolicy"), POD_MANAGEMENT))
    _sts_strategy(ctx, spec)
    _retention(ctx, spec)
    _claim_templates(ctx, spec)
    _template(ctx, spec, "statefulset")


def _ds_strategy(ctx: Ctx, spec: Obj) -> None:
    st = spec.get("updateStrategy")
    if not is_dict(st):
        ctx.err("spec.updateStrategy", f"must be an object, not {type_name(st)}")
        return
    stype, ru = st.get("type"), st.get("rollingUpdate")
    if stype not in STS_STRATEGIES:
        ctx.err("spec.updateStrategy.type", supported(stype, STS_STRATEGIES))
        return
    if stype != "RollingUpdate" or ru is None:
        return
    if not is_dict(ru):
        ctx.err("spec.updateStrategy.rollingUpdate", f"must be an object, not {type_name(ru)}")
        return
    p = "spec.updateStrategy.rollingUpdate"
    unavail = int_or_percent(ctx, ru.get("maxUnavailable"), f"{p}.maxUnavailable")
    surge = int_or_percent(ctx, ru.get("maxSurge"), f"{p}.maxSurge")
    for key, value in (("maxUnavailable", unavail), ("maxSurge", surge)):
        if value is not None and isinstance(ru.get(key), str) and value > 100:
            ctx.err(f"{p}.{key}", f"Invalid value: {ru[key]!r}: must not be greater than 100%")
    if not unavail and not surge:
        ctx.err(
            f"{p}.maxUnavailable", f"Invalid value: {ru.get('maxUnavailable')!r}: may not be 0 when `maxSurge` is 0"
        )


def validate_daemonset(ctx: Ctx, obj: Obj) -> None:
    spec = _spec(ctx, obj)
    if spec is None:
        return
    ctx.int_field(spec, "minReadySeconds", "spec", minimum=0)
    ctx.int_field(spec, "revisionHistoryLimit", "spec", minimum=0)
    _ds_strategy(ctx, spec)
    _template(ctx, spec, "daemonset")
