"""Kinds stored without effect (manifests/inert.py): their own validation rules beyond the schema.

The field names and shapes are checked by the strict schema (``schema.py``) before these run; here
are the rules Kubernetes' API server adds, with its messages: kubernetes/kubernetes
pkg/apis/rbac/validation/validation.go (ValidatePolicyRule, ValidateRoleBindingSubject, roleRef),
pkg/apis/policy/validation/validation.go (ValidatePodDisruptionBudgetSpec),
pkg/apis/networking/validation/validation.go (policyTypes), pkg/apis/scheduling/validation
(ValidatePriorityClass), pkg/apis/autoscaling/validation/validation.go (ValidateHorizontalPodAutoscalerSpec),
pkg/apis/core/validation/validation.go (ValidateLimitRange) and
staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go (CRDs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler import selectors
from reconciler.manifests.validate.common import Ctx, is_dict, is_list, supported, type_name
from reconciler.manifests.validate.names import dns1035_label_error, dns1123_subdomain_error, int_or_percent
from reconciler.types import Obj

RBAC_GROUP = "rbac.authorization.k8s.io"


def _spec(ctx: Ctx, obj: Obj, required: bool = True) -> Obj | None:
    spec = obj.get("spec")
    if spec is None:
        if required:
            ctx.err("spec", "Required value")
        return None
    if not is_dict(spec):
        ctx.err("spec", f"must be an object, not {type_name(spec)}")
        return None
    return spec


def _selector(ctx: Ctx, sel: Any, path: str) -> None:
    if sel is None:
        return
    if not is_dict(sel):
        ctx.err(path, f"must be an object with matchLabels and/or matchExpressions, not {type_name(sel)}")
        return
    for f, m in selectors.validate_label_selector(sel, path):
        ctx.err(f, m)


# --------------------------------------------------------------------------- RBAC


def _policy_rule(ctx: Ctx, rule: Any, namespaced: bool, p: str) -> None:
    if not is_dict(rule):
        ctx.err(p, f"must be an object, not {type_name(rule)}")
        return
    if not rule.get("verbs"):
        ctx.err(f"{p}.verbs", "Required value: verbs must contain at least one value")
    if rule.get("nonResourceURLs"):
        if namespaced:
            ctx.err(f"{p}.nonResourceURLs", "Invalid value: namespaced rules cannot apply to non-resource URLs")
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            ctx.err(
                f"{p}.nonResourceURLs",
                "Invalid value: rules cannot apply to both regular resources and non-resource URLs",
            )
        return
    if not rule.get("apiGroups"):
        ctx.err(f"{p}.apiGroups", "Required value: resource rules must supply at least one api group")
    if not rule.get("resources"):
        ctx.err(f"{p}.resources", "Required value: resource rules must supply at least one resource")


def _rules(ctx: Ctx, obj: Obj, namespaced: bool) -> None:
    rules = ctx.list_field(obj, "rules", "")
    for i, rule in enumerate(rules or ()):
        _policy_rule(ctx, rule, namespaced, f"rules[{i}]")


def validate_role(ctx: Ctx, obj: Obj) -> None:
    _rules(ctx, obj, namespaced=True)


def validate_cluster_role(ctx: Ctx, obj: Obj) -> None:
    _rules(ctx, obj, namespaced=False)


def _role_ref(ctx: Ctx, ref: Any, kinds: tuple[str, ...]) -> None:
    if not is_dict(ref):
        ctx.err("roleRef", "Required value" if ref is None else f"must be an object, not {type_name(ref)}")
        return
    if ref.get("apiGroup") != RBAC_GROUP:
        ctx.err("roleRef.apiGroup", supported(ref.get("apiGroup"), (RBAC_GROUP,)))
    if ref.get("kind") not in kinds:
        ctx.err("roleRef.kind", supported(ref.get("kind"), kinds))
    if not ref.get("name"):
        ctx.err("roleRef.name", "Required value")


def _subject(ctx: Ctx, s: Any, cluster: bool, p: str) -> None:
    if not is_dict(s):
        ctx.err(p, f"must be an object, not {type_name(s)}")
        return
    kind = s.get("kind")
    if not s.get("name"):
        ctx.err(f"{p}.name", "Required value")
    if kind == "ServiceAccount":
        if s.get("apiGroup"):
            ctx.err(f"{p}.apiGroup", supported(s.get("apiGroup"), ("",)))
        if cluster and not s.get("namespace"):
            ctx.err(f"{p}.namespace", "Required value")
    elif kind in ("User", "Group"):
        if s.get("apiGroup") != RBAC_GROUP:
            ctx.err(f"{p}.apiGroup", supported(s.get("apiGroup"), (RBAC_GROUP,)))
    else:
        ctx.err(f"{p}.kind", supported(kind, ("ServiceAccount", "User", "Group")))


def _binding(ctx: Ctx, obj: Obj, cluster: bool) -> None:
    _role_ref(ctx, obj.get("roleRef"), ("ClusterRole",) if cluster else ("Role", "ClusterRole"))
    for i, s in enumerate(ctx.list_field(obj, "subjects", "") or ()):
        _subject(ctx, s, cluster, f"subjects[{i}]")


def validate_role_binding(ctx: Ctx, obj: Obj) -> None:
    _binding(ctx, obj, cluster=False)


def validate_cluster_role_binding(ctx: Ctx, obj: Obj) -> None:
    _binding(ctx, obj, cluster=True)


# --------------------------------------------------------------------------- policy, networking, quotas


def validate_pdb(ctx: Ctx, obj: Obj) -> None:
    spec = _spec(ctx, obj, required=False)
    if spec is None:
        return
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        ctx.err("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set")
    for f in ("minAvailable", "maxUnavailable"):
        v = spec.get(f)
        if v is not None:
            n = int_or_percent(ctx, v, f"spec.{f}")
            if n is not None and isinstance(v, str) and n > 100:
                ctx.err(f"spec.{f}", f"Invalid value: {v!r}: must be no greater than 100%")
    _selector(ctx, spec.get("selector"), "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("IfHealthyBudget", "AlwaysAllow"):
        ctx.err("spec.unhealthyPodEvictionPolicy", supported(policy, ("IfHealthyBudget", "AlwaysAllow")))


def validate_network_policy(ctx: Ctx, obj: Obj) -> None:
    spec = _spec(ctx, obj)
    if spec is None:
        return
    _selector(ctx, spec.get("podSelector"), "spec.podSelector")
    types = ctx.list_field(spec, "policyTypes", "spec") or []
    if len(types) > 2:
        ctx.err("spec.policyTypes", "Invalid value: may not specify more than two policyTypes")
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            ctx.err(f"spec.policyTypes[{i}]", supported(t, ("Ingress", "Egress")))


def validate_limit_range(ctx: Ctx, obj: Obj) -> None:
    spec = _spec(ctx, obj)
    if spec is None:
        return
    limits = ctx.list_field(spec, "limits", "spec")
    for i, item in enumerate(limits or ()):
        if is_dict(item) and not item.get("type"):
            ctx.err(f"spec.limits[{i}].type", "Required value")


def validate_priority_class(ctx: Ctx, obj: Obj) -> None:
    meta = obj.get("metadata")
    name = meta.get("name") if is_dict(meta) else None
    if isinstance(name, str) and name.startswith("system-"):
        ctx.err("metadata.name", "Forbidden: priority class names with 'system-' prefix are reserved")
    value = obj.get("value")
    if value is None:
        ctx.err("value", "Required value")
    else:
        ctx.int_field(obj, "value", "", maximum=1_000_000_000)
    ctx.bool_field(obj, "globalDefault", "")
    policy = obj.get("preemptionPolicy")
    if policy is not None and policy not in ("PreemptLowerPriority", "Never"):
        ctx.err("preemptionPolicy", supported(policy, ("PreemptLowerPriority", "Never")))


def validate_hpa(ctx: Ctx, obj: Obj) -> None:
    spec = _spec(ctx, obj)
    if spec is None:
        return
    ref = spec.get("scaleTargetRef")
    if not is_dict(ref):
        ctx.err("spec.scaleTargetRef", "Required value")
    else:
        for f in ("kind", "name"):
            if not ref.get(f):
                ctx.err(f"spec.scaleTargetRef.{f}", "Required value")
    low = ctx.int_field(spec, "minReplicas", "spec", minimum=1)
    high = spec.get("maxReplicas")
    if high is None:
        ctx.err("spec.maxReplicas", "Required value")
        return
    high = ctx.int_field(spec, "maxReplicas", "spec", minimum=1)
    if low is not None and high is not None and high < low:
        ctx.err("spec.maxReplicas", "Invalid value: must be greater than or equal to `minReplicas`")
    if obj.get("apiVersion") == "autoscaling/v1":
        ctx.int_field(spec, "targetCPUUtilizationPercentage", "spec", minimum=1)


# --------------------------------------------------------------------------- CustomResourceDefinition


def _crd_names(ctx: Ctx, names: Any) -> Obj:
    if not is_dict(names):
        ctx.err("spec.names", "Required value")
        return {}
    for f in ("plural", "kind"):
        v = names.get(f)
        if not v:
            ctx.err(f"spec.names.{f}", "Required value")
        elif not isinstance(v, str):
            ctx.err(f"spec.names.{f}", f"must be a string, not {type_name(v)}")
    plural = names.get("plural")
    if isinstance(plural, str) and plural and (e := dns1035_label_error(plural)):
        ctx.err("spec.names.plural", f"Invalid value: {plural!r}: {e}")
    return names


def _crd_versions(ctx: Ctx, versions: Any) -> None:
    if not is_list(versions) or not versions:
        ctx.err("spec.versions", "Invalid value: must have exactly one version marked as storage version")
        return
    storage = 0
    seen: set[str] = set()
    for i, v in enumerate(versions):
        p = f"spec.versions[{i}]"
        if not is_dict(v):
            ctx.err(p, f"must be an object, not {type_name(v)}")
            continue
        name = v.get("name")
        if not isinstance(name, str) or not name:
            ctx.err(f"{p}.name", "Required value")
        elif e := dns1035_label_error(name):
            ctx.err(f"{p}.name", f"Invalid value: {name!r}: {e}")
        elif name in seen:
            ctx.err(f"{p}.name", f"Duplicate value: {name!r}")
        else:
            seen.add(name)
        for f in ("served", "storage"):
            if type(v.get(f)) is not bool:
                ctx.err(f"{p}.{f}", "Required value: must be true or false")
        storage += v.get("storage") is True
    if storage != 1:
        ctx.err("spec.versions", "Invalid value: must have exactly one version marked as storage version")


def validate_crd(ctx: Ctx, obj: Obj) -> None:
    spec = _spec(ctx, obj)
    if spec is None:
        return
    group = spec.get("group")
    if not isinstance(group, str) or not group:
        ctx.err("spec.group", "Required value")
        group = None
    elif "." not in group:
        ctx.err("spec.group", f"Invalid value: {group!r}: should be a domain with at least one dot")
    elif e := dns1123_subdomain_error(group):
        ctx.err("spec.group", f"Invalid value: {group!r}: {e}")
    names = _crd_names(ctx, spec.get("names"))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        ctx.err("spec.scope", supported(scope, ("Cluster", "Namespaced")))
    _crd_versions(ctx, spec.get("versions"))
    meta = obj.get("metadata")
    name = meta.get("name") if is_dict(meta) else None
    plural = names.get("plural")
    if group and isinstance(plural, str) and name != f"{plural}.{group}":
        ctx.err("metadata.name", f'Invalid value: {name!r}: must be spec.names.plural+"."+spec.group')


INERT_VALIDATORS: dict[str, Callable[[Ctx, Obj], None]] = {
    "Role": validate_role,
    "ClusterRole": validate_cluster_role,
    "RoleBinding": validate_role_binding,
    "ClusterRoleBinding": validate_cluster_role_binding,
    "PodDisruptionBudget": validate_pdb,
    "NetworkPolicy": validate_network_policy,
    "LimitRange": validate_limit_range,
    "PriorityClass": validate_priority_class,
    "HorizontalPodAutoscaler": validate_hpa,
    "CustomResourceDefinition": validate_crd,
}


# --------------------------------------------------------------------------- a pod's service account


def _pod_spec_of(obj: Obj) -> tuple[Obj | None, str]:
    spec = obj.get("spec")
    if not is_dict(spec):
        return None, ""
    if obj.get("kind") == "Pod":
        return spec, "spec"
    tmpl = spec.get("template")
    pod = tmpl.get("spec") if is_dict(tmpl) else None
    return (pod, "spec.template.spec") if is_dict(pod) else (None, "")


def default_service_account(obj: Obj) -> None:
    """``serviceAccount`` (deprecated) and ``serviceAccountName`` name one account: the API server
    reads the first when the second is empty (kubernetes/kubernetes pkg/apis/core/v1/conversion.go).
    It also writes ``serviceAccount`` back equal to the name; gitship does not, so that a Deployment
    that names its account keeps its pod-template hash (no rollout when gitship is upgraded).
    The account is stored with the pod; no token is mounted."""
    spec, _ = _pod_spec_of(obj)
    if spec is None:
        return
    if not spec.get("serviceAccountName") and isinstance(spec.get("serviceAccount"), str) and spec["serviceAccount"]:
        spec["serviceAccountName"] = spec["serviceAccount"]


def validate_service_account(ctx: Ctx, obj: Obj) -> None:
    """ValidatePodSpec's rule: a service account name is a DNS-1123 subdomain."""
    spec, path = _pod_spec_of(obj)
    name = spec.get("serviceAccountName") if spec is not None else None
    if isinstance(name, str) and name and (e := dns1123_subdomain_error(name)):
        ctx.err(f"{path}.serviceAccountName", f"Invalid value: {name!r}: {e}")
