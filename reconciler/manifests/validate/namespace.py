"""Namespaces (v1, cluster-scoped): their defaults and validation.

Kubernetes' rules, from kubernetes/kubernetes pkg/apis/core/validation/validation.go
(``ValidateNamespace``, ``validateFinalizerName``) and pkg/registry/core/namespace/strategy.go
(``PrepareForCreate``):

- the name is a DNS-1123 label (at most 63 characters: it is a part of every DNS name of a Service
  in it, ``svc.NAMESPACE.svc.cluster.local``), not merely a subdomain;
- ``spec.finalizers`` always holds ``kubernetes`` (the namespace controller's finalizer, appended when
  missing); each entry is
  a qualified name, and one without a ``/`` must be a standard finalizer (``kubernetes``, ``orphan``,
  ``foregroundDeletion``);
- the label ``kubernetes.io/metadata.name`` is always the namespace's name (the API server sets it,
  overwriting what the manifest wrote);
- ``status`` belongs to the namespace controller (``phase`` Active, Terminating): dropped on load.
"""

from __future__ import annotations

from reconciler.manifests.validate.common import Ctx, is_dict, is_list, type_name
from reconciler.manifests.validate.names import dns1123_label_error, dns1123_subdomain_error
from reconciler.selectors import validate_label_key
from reconciler.types import Obj

FINALIZER_KUBERNETES = "kubernetes"
STANDARD_FINALIZERS = (FINALIZER_KUBERNETES, "orphan", "foregroundDeletion")
NAME_LABEL = "kubernetes.io/metadata.name"


def default_namespace(obj: Obj) -> None:
    """The API server's defaults of a Namespace, in place: the name label and the ``kubernetes`` finalizer."""
    meta = obj.get("metadata")
    if is_dict(meta) and isinstance(meta.get("name"), str):
        labels = meta.get("labels")
        if is_dict(labels):
            labels[NAME_LABEL] = meta["name"]
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    if not is_dict(spec):
        return
    finalizers = spec.get("finalizers")
    if not finalizers:
        spec["finalizers"] = [FINALIZER_KUBERNETES]
    elif is_list(finalizers) and FINALIZER_KUBERNETES not in finalizers:
        spec["finalizers"] = [*finalizers, FINALIZER_KUBERNETES]  # strategy.go: always the controller's


def finalizer_error(name: str) -> str | None:
    """Why ``name`` is no valid finalizer name, or None."""
    e = validate_label_key(name)
    if e:
        return e
    if "/" not in name and name not in STANDARD_FINALIZERS:
        return "name is neither a standard finalizer name nor is it fully qualified"
    return None


def validate_namespace(ctx: Ctx, obj: Obj) -> None:
    """Default, then validate a Namespace (metadata's general rules ran before)."""
    default_namespace(obj)
    name = (obj.get("metadata") or {}).get("name") if is_dict(obj.get("metadata")) else None
    # a name that is no subdomain was reported by validate_metadata already
    if isinstance(name, str) and name and dns1123_subdomain_error(name) is None:
        e = dns1123_label_error(name)
        if e:
            ctx.err("metadata.name", f"Invalid value: {name!r}: {e}")
    spec = obj.get("spec")
    if not is_dict(spec):
        ctx.err("spec", f"must be an object, not {type_name(spec)}")
        return
    finalizers = spec.get("finalizers")
    if not is_list(finalizers):
        ctx.err("spec.finalizers", f"must be a list, not {type_name(finalizers)}")
        return
    for i, f in enumerate(finalizers):
        path = f"spec.finalizers[{i}]"
        if not isinstance(f, str):
            ctx.err(path, f"must be a string, not {type_name(f)}")
            continue
        e = finalizer_error(f)
        if e:
            ctx.err(path, f"Invalid value: {f!r}: {e}")
