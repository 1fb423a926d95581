"""Kinds that mean nothing on one machine: accepted, validated, stored and shown, without effect.

Where it sits: pure, at the bottom of the manifests package (it imports nothing of gitship's), so
``model.py`` can add these kinds to its tables. A Kubernetes cluster acts on each of them through a
component gitship does not have (the API server's authorizer for RBAC, the eviction API for a
PodDisruptionBudget, a CNI plugin for a NetworkPolicy, admission for a ResourceQuota or a
LimitRange, the scheduler for a PriorityClass, the HPA controller and a metrics server for a
HorizontalPodAutoscaler, the API server itself for a CustomResourceDefinition). A repository that
holds them is applied: each object is stored as a live object, shown by ``gitship get`` and marked
with one Warning event ``NoEffect`` (``gitship status`` counts them). A custom resource, of a kind a
CustomResourceDefinition of the same revision defines, is one of them too (``manifests/crd.py``).
"""

from __future__ import annotations

# kind -> the apiVersion it is written with (the one model.KINDS names)
INERT_KINDS: dict[str, str] = {
    "ServiceAccount": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "ResourceQuota": "v1",
    "LimitRange": "v1",
    "PriorityClass": "scheduling.k8s.io/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}

# other apiVersions a kind is still served as (Kubernetes v1.37 serves autoscaling/v1 beside v2)
OTHER_API_VERSIONS: dict[str, tuple[str, ...]] = {
    "HorizontalPodAutoscaler": ("autoscaling/v1",),
}

INERT_CLUSTER_SCOPED: frozenset[str] = frozenset(
    {"ClusterRole", "ClusterRoleBinding", "PriorityClass", "CustomResourceDefinition"}
)

# the Warning event every such object carries once
NO_EFFECT_REASON = "NoEffect"
NO_EFFECT_MESSAGE = "stored; has no effect on this runtime"

# top-level fields that are not what git declares (the rest is, for kinds without a spec)
OBJECT_FIELDS: frozenset[str] = frozenset({"apiVersion", "kind", "metadata", "status"})


def api_versions(kind: str, main: str) -> tuple[str, ...]:
    """Every apiVersion ``kind`` is accepted with (``main`` first)."""
    return (main, *OTHER_API_VERSIONS.get(kind, ()))
