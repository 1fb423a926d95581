"""kubectl's `get` columns of the kinds stored without effect (manifests/inert.py) and of custom resources.

Where it sits: pure, beside printers.py, which adds these tables to its own. A row function takes
the object and its AGE text (printers.py computes it: one rule for every kind) and places it
where kubectl's column list has it. The columns are those of kubernetes/kubernetes
pkg/printers/internalversion/printers.go (AddHandlers); a kind whose table kubectl fills from
live data gitship does not have (an HPA's current metrics) shows what kubectl shows without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .types import Obj

Row = Callable[[Obj, str], list[Any]]


class KindColumns(NamedTuple):
    headers: list[str]
    row: Row
    wide_headers: list[str]
    wide: Callable[[Obj], list[Any]]


def _name(o: Obj) -> str:
    return str(o["metadata"]["name"])


def _no_wide(o: Obj) -> list[Any]:
    return []


def _created_at(o: Obj, age: str) -> list[Any]:
    return [_name(o), o["metadata"].get("creationTimestamp") or "<unknown>"]


def _name_age(o: Obj, age: str) -> list[Any]:
    return [_name(o), age]


def _sa_row(o: Obj, age: str) -> list[Any]:
    return [_name(o), len(o.get("secrets") or []), age]


def _binding_row(o: Obj, age: str) -> list[Any]:
    ref = o.get("roleRef") or {}
    return [_name(o), f"{ref.get('kind', '')}/{ref.get('name', '')}", age]


def _binding_wide(o: Obj) -> list[Any]:
    def of(kind: str) -> str:
        subjects = [s for s in o.get("subjects") or [] if s.get("kind") == kind]
        if kind == "ServiceAccount":
            return ", ".join(f"{s.get('namespace', '')}/{s.get('name', '')}" for s in subjects)
        return ", ".join(str(s.get("name", "")) for s in subjects)

    return [of("User"), of("Group"), of("ServiceAccount")]


def _pdb_row(o: Obj, age: str) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    none = "N/A"
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    return [
        _name(o),
        none if min_available is None else min_available,
        none if max_unavailable is None else max_unavailable,
        st.get("disruptionsAllowed", 0),
        age,
    ]


def selector_string(sel: Obj | None) -> str:
    """A LabelSelector as kubectl prints it (``app=web,tier in (a,b)``); ``<none>`` when empty."""
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op, values = e.get("operator"), ",".join(e.get("values") or [])
        parts.append(
            {
                "In": f"{e['key']} in ({values})",
                "NotIn": f"{e['key']} notin ({values})",
                "DoesNotExist": f"!{e['key']}",
            }.get(op, e["key"])
        )
    return ",".join(parts)


def _netpol_row(o: Obj, age: str) -> list[Any]:
    return [_name(o), selector_string((o.get("spec") or {}).get("podSelector")), age]


def _quota_row(o: Obj, age: str) -> list[Any]:
    hard = (o.get("spec") or {}).get("hard") or {}
    used = (o.get("status") or {}).get("used") or {}
    requests = [k for k in hard if not k.startswith("limits.")]
    limits = [k for k in hard if k.startswith("limits.")]

    def text(keys: list[str]) -> str:
        return ", ".join(f"{k}: {used.get(k, 0)}/{hard[k]}" for k in sorted(keys))

    return [_name(o), age, text(requests), text(limits)]


def _priority_row(o: Obj, age: str) -> list[Any]:
    return [
        _name(o),
        o.get("value", 0),
        str(bool(o.get("globalDefault"))).lower(),
        age,
        o.get("preemptionPolicy") or "PreemptLowerPriority",
    ]


def _hpa_targets(o: Obj) -> str:
    spec = o.get("spec") or {}
    if o.get("apiVersion") == "autoscaling/v1":
        target = spec.get("targetCPUUtilizationPercentage")
        return "<unknown>" if target is None else f"cpu: <unknown>/{target}%"
    out = []
    for m in spec.get("metrics") or []:
        mtype = m.get("type", "")
        src = m.get({"Resource": "resource", "ContainerResource": "containerResource"}.get(mtype, "")) or {}
        target = src.get("target") or {}
        if "averageUtilization" in target:
            out.append(f"{src.get('name', '')}: <unknown>/{target['averageUtilization']}%")
        else:
            value = target.get("averageValue", target.get("value", ""))
            out.append(f"<unknown>/{value}")
    return ", ".join(out) or "<none>"


def _hpa_row(o: Obj, age: str) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        _name(o),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(o),
        spec.get("minReplicas", 1),
        spec.get("maxReplicas", 0),
        st.get("currentReplicas", 0),
        age,
    ]


_CREATED = ["NAME", "CREATED AT"]
KIND_COLUMNS: dict[str, KindColumns] = {
    "ServiceAccount": KindColumns(["NAME", "SECRETS", "AGE"], _sa_row, [], _no_wide),
    "Role": KindColumns(_CREATED, _created_at, [], _no_wide),
    "ClusterRole": KindColumns(_CREATED, _created_at, [], _no_wide),
    "RoleBinding": KindColumns(
        ["NAME", "ROLE", "AGE"], _binding_row, ["USERS", "GROUPS", "SERVICEACCOUNTS"], _binding_wide
    ),
    "ClusterRoleBinding": KindColumns(
        ["NAME", "ROLE", "AGE"], _binding_row, ["USERS", "GROUPS", "SERVICEACCOUNTS"], _binding_wide
    ),
    "PodDisruptionBudget": KindColumns(
        ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"], _pdb_row, [], _no_wide
    ),
    "NetworkPolicy": KindColumns(["NAME", "POD-SELECTOR", "AGE"], _netpol_row, [], _no_wide),
    "ResourceQuota": KindColumns(["NAME", "AGE", "REQUEST", "LIMIT"], _quota_row, [], _no_wide),
    "LimitRange": KindColumns(_CREATED, _created_at, [], _no_wide),
    "PriorityClass": KindColumns(
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"], _priority_row, [], _no_wide
    ),
    "HorizontalPodAutoscaler": KindColumns(
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"], _hpa_row, [], _no_wide
    ),
    "CustomResourceDefinition": KindColumns(_CREATED, _created_at, [], _no_wide),
}

# a custom resource: kubectl's default columns when its CRD names no additionalPrinterColumns
CUSTOM_COLUMNS = KindColumns(["NAME", "AGE"], _name_age, [], _no_wide)


# --------------------------------------------------------------------------- describe


def _binding_describe(o: Obj) -> list[str]:
    ref = o.get("roleRef") or {}
    lines = ["Role:", f"  Kind:  {ref.get('kind', '')}", f"  Name:  {ref.get('name', '')}", "Subjects:"]
    subjects = o.get("subjects") or []
    rows = [["Kind", "Name", "Namespace"], ["----", "----", "---------"]]
    rows += [[str(s.get("kind", "")), str(s.get("name", "")), str(s.get("namespace", ""))] for s in subjects]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _role_describe(o: Obj) -> list[str]:
    lines = ["PolicyRule:", "  Resources  Non-Resource URLs  Resource Names  Verbs"]
    for r in o.get("rules") or []:
        groups = r.get("apiGroups") or [""]
        resources = [f"{res}.{g}" if g else res for res in r.get("resources") or [] for g in groups]
        lines.append(
            f"  {', '.join(resources) or '[]'}  [{' '.join(r.get('nonResourceURLs') or [])}]  "
            f"[{' '.join(r.get('resourceNames') or [])}]  [{' '.join(r.get('verbs') or [])}]"
        )
    return lines


def _pdb_describe(o: Obj) -> list[str]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    lines = []
    if spec.get("minAvailable") is not None:
        lines.append(f"Min available:  {spec['minAvailable']}")
    if spec.get("maxUnavailable") is not None:
        lines.append(f"Max unavailable:  {spec['maxUnavailable']}")
    lines.append(f"Selector:       {selector_string(spec.get('selector'))}")
    lines.append("Status:")
    lines.append(f"    Allowed disruptions:  {st.get('disruptionsAllowed', 0)}")
    lines.append(f"    Current:              {st.get('currentHealthy', 0)}")
    lines.append(f"    Desired:              {st.get('desiredHealthy', 0)}")
    lines.append(f"    Total:                {st.get('expectedPods', 0)}")
    return lines


def _hpa_describe(o: Obj) -> list[str]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        f"Reference:      {ref.get('kind', '')}/{ref.get('name', '')}",
        f"Metrics:        ( current / target ) {_hpa_targets(o)}",
        f"Min replicas:   {spec.get('minReplicas', 1)}",
        f"Max replicas:   {spec.get('maxReplicas', 0)}",
        f"{ref.get('kind', '')} pods:  {st.get('currentReplicas', 0)} current / {st.get('desiredReplicas', 0)} desired",
    ]


def _sa_describe(o: Obj) -> list[str]:
    def names(field: str) -> str:
        return ", ".join(str(s.get("name", "")) for s in o.get(field) or []) or "<none>"

    return [f"Image pull secrets:  {names('imagePullSecrets')}", f"Mountable secrets:   {names('secrets')}"]


KIND_DESCRIBE: dict[str, Callable[[Obj], list[str]]] = {
    "RoleBinding": _binding_describe,
    "ClusterRoleBinding": _binding_describe,
    "Role": _role_describe,
    "ClusterRole": _role_describe,
    "PodDisruptionBudget": _pdb_describe,
    "HorizontalPodAutoscaler": _hpa_describe,
    "ServiceAccount": _sa_describe,
}
