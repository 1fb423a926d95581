"""The ``scale`` subresource (autoscaling/v1 Scale) of the kinds that have one (pure).

Kubernetes: staging/src/k8s.io/api/autoscaling/v1 Scale; the selector in ``status.selector`` is the
label selector as a string (``app=web,tier in (a,b)``), as kubectl and the HPA read it.
"""

from __future__ import annotations

from typing import Any

from reconciler.types import Obj

SCALABLE = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"})


def selector_string(selector: Any, kind: str) -> str:
    """A label selector (or a ReplicationController's plain map) as its string form."""
    if not isinstance(selector, dict):
        return ""
    if kind == "ReplicationController":
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def scale_object(obj: Obj, group: str = "apps") -> Obj:
    """The Scale of a Deployment, ReplicaSet, StatefulSet or ReplicationController."""
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    out_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": out_meta,
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": selector_string(spec.get("selector"), str(obj.get("kind"))),
        },
    }
