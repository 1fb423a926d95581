"""Kubernetes defaulting and validation of one object dict.

Where it sits: a pure package called by ``load.py`` for every document after the
kind/apiVersion check. It applies the API server's defaults (docs/kubernetes.md §1.1,
§5.1-5.2, §7.4) and the validation rules of §8, §3.4 and §4, and reports problems as
``ManifestError`` with Kubernetes field paths (``spec.template.spec.containers[0].image``)
and Kubernetes-style messages. Lines are left 0; ``load.py`` finds them from the YAML
node tree only when there is an error, so the happy path stays cheap.

``default_and_validate`` returns a new dict; ``default_and_validate_in_place`` (used by
``load.py`` on dicts it just parsed) skips the copy.

The modules, one per job:

    common.py     the per-document error collector (``Ctx``) and JSON type checks
    names.py      DNS-1123/1035 names, IANA port names, labels, annotations, metadata,
                  port references, int-or-percent quantities
    defaults.py   the API server's defaults (``apply_defaults``, ``default_pull_policy``)
    pods.py       pod specs, containers, probes, lifecycle handlers
    workloads.py  ReplicaSets and Deployments
    services.py   Services and Endpoints
    config.py     ConfigMaps and Secrets
    storage.py    PersistentVolumeClaims, PersistentVolumes, StorageClasses
    replication.py  ReplicationControllers
    apps.py       StatefulSets and DaemonSets
    inert.py      kinds stored without effect (RBAC, PodDisruptionBudget, HPA, CRDs, ...)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.errors import ManifestError
from reconciler.manifests.validate.apps import validate_daemonset, validate_statefulset
from reconciler.manifests.validate.batch import BATCH_VALIDATORS
from reconciler.manifests.validate.common import Ctx
from reconciler.manifests.validate.config import validate_configmap, validate_secret
from reconciler.manifests.validate.defaults import apply_defaults
from reconciler.manifests.validate.names import (
    dns1035_label_error,
    dns1123_label_error,
    dns1123_subdomain_error,
    iana_svc_name_error,
    validate_metadata,
)
from reconciler.manifests.validate.ingress import validate_ingress, validate_ingressclass
from reconciler.manifests.validate.inert import INERT_VALIDATORS, default_service_account, validate_service_account
from reconciler.manifests.validate.namespace import validate_namespace
from reconciler.manifests.validate.pods import validate_pod
from reconciler.manifests.validate.replication import validate_replication_controller
from reconciler.manifests.validate.services import NODE_PORT_RANGE, validate_endpoints, validate_service
from reconciler.manifests.validate.storage import validate_pv, validate_pvc, validate_storageclass
from reconciler.manifests.validate.workloads import validate_deployment, validate_replicaset
from reconciler.types import Obj
from runtime.kernel.image import default_pull_policy

__all__ = [
    "NODE_PORT_RANGE",
    "apply_defaults",
    "deep_copy",
    "default_and_validate",
    "default_and_validate_in_place",
    "default_pull_policy",
    "dns1035_label_error",
    "dns1123_label_error",
    "dns1123_subdomain_error",
    "iana_svc_name_error",
]

_VALIDATORS: dict[str, Callable[[Ctx, Obj], None]] = {
    "Pod": validate_pod,
    "Deployment": validate_deployment,
    "ReplicaSet": validate_replicaset,
    "Service": validate_service,
    "Endpoints": validate_endpoints,
    "ConfigMap": validate_configmap,
    "Secret": validate_secret,
    "PersistentVolumeClaim": validate_pvc,
    "PersistentVolume": validate_pv,
    "StorageClass": validate_storageclass,
    "ReplicationController": validate_replication_controller,
    "StatefulSet": validate_statefulset,
    "DaemonSet": validate_daemonset,
    "Namespace": validate_namespace,
    "Ingress": validate_ingress,
    "IngressClass": validate_ingressclass,
}
_VALIDATORS.update(INERT_VALIDATORS)
_VALIDATORS.update(BATCH_VALIDATORS)  # Job, CronJob (batch.py)


def deep_copy(value: Any) -> Any:
    """A fast copy of a JSON-shaped value (dicts, lists, scalars)."""
    t = type(value)
    if t is dict:
        return {k: deep_copy(v) for k, v in value.items()}
    if t is list:
        return [deep_copy(v) for v in value]
    return value


def default_and_validate_in_place(obj: Obj, file: str, document: int) -> list[ManifestError]:
    """Default ``obj`` in place and return its validation errors (lines left 0).

    ``status`` is dropped: the API server ignores it on create, controllers own it.
    """
    obj.pop("status", None)
    apply_defaults(obj)
    ctx = Ctx(file, document)
    kind = obj.get("kind")
    validate_metadata(ctx, obj, kind if isinstance(kind, str) else "")
    validator = _VALIDATORS.get(kind) if isinstance(kind, str) else None
    if validator is not None:
        validator(ctx, obj)
    if kind in _POD_KINDS:  # a pod's service account: accepted and stored, without effect
        default_service_account(obj)
        validate_service_account(ctx, obj)
    return ctx.errors


_POD_KINDS = ("Pod", "ReplicaSet", "Deployment", "ReplicationController", "StatefulSet", "DaemonSet")


def default_and_validate(obj: Obj, file: str, document: int) -> tuple[Obj, list[ManifestError]]:
    """Return a NEW defaulted copy of ``obj`` and its validation errors (lines left 0)."""
    new: Obj = deep_copy(obj)
    return new, default_and_validate_in_place(new, file, document)
