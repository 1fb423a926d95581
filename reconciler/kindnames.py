"""The CLI's names of the kinds stored without effect, of ReplicationControllers and of custom resources.

Where it sits: pure, below the CLI: cli/common.py merges ``NAMES`` and ``PLURALS`` into its tables. kubectl's
resource names: the kind lower-cased, its plural, its short names (``kubectl api-resources``).
Custom resources take theirs from the CRDs in the store (``spec.names``: plural, singular, kind,
shortNames, and ``plural.group``), looked up when a word is not a built-in name.
"""

from __future__ import annotations

from typing import NamedTuple

from reconciler.manifests.model import CLUSTER_SCOPED, without_effect
from reconciler.types import Obj

# kind -> (plural as kubectl names it in messages, short names)
_RESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ReplicationController": ("replicationcontrollers", ("rc",)),
    "StatefulSet": ("statefulsets.apps", ("sts",)),
    "DaemonSet": ("daemonsets.apps", ("ds",)),
    "Ingress": ("ingresses.networking.k8s.io", ("ing",)),
    "IngressClass": ("ingressclasses.networking.k8s.io", ()),
    "ControllerRevision": ("controllerrevisions.apps", ()),
    "Namespace": ("namespaces", ("ns",)),
    **{"Job": ("jobs.batch", ()), "CronJob": ("cronjobs.batch", ("cj",))},
    "ServiceAccount": ("serviceaccounts", ("sa",)),
    "Role": ("roles.rbac.authorization.k8s.io", ()),
    "ClusterRole": ("clusterroles.rbac.authorization.k8s.io", ()),
    "RoleBinding": ("rolebindings.rbac.authorization.k8s.io", ()),
    "ClusterRoleBinding": ("clusterrolebindings.rbac.authorization.k8s.io", ()),
    "PodDisruptionBudget": ("poddisruptionbudgets.policy", ("pdb",)),
    "NetworkPolicy": ("networkpolicies.networking.k8s.io", ("netpol",)),
    "ResourceQuota": ("resourcequotas", ("quota",)),
    "LimitRange": ("limitranges", ("limits",)),
    "PriorityClass": ("priorityclasses.scheduling.k8s.io", ("pc",)),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers.autoscaling", ("hpa",)),
    "CustomResourceDefinition": ("customresourcedefinitions.apiextensions.k8s.io", ("crd", "crds")),
}

NAMES: dict[str, str] = {}
PLURALS: dict[str, str] = {}
for _kind, (_plural, _short) in _RESOURCES.items():
    PLURALS[_kind] = _plural
    for _word in (_kind.lower(), _plural.split(".")[0], *_short):
        NAMES[_word] = _kind


class CustomKinds(NamedTuple):
    """What the store's CRDs define: CLI words -> kind, kind -> plural.group, cluster-scoped kinds."""

    names: dict[str, str]
    plurals: dict[str, str]
    cluster: frozenset[str]


def custom_kinds(crds: list[Obj]) -> CustomKinds:
    """The names of the kinds the live CRDs define."""
    names: dict[str, str] = {}
    plurals: dict[str, str] = {}
    cluster: set[str] = set()
    for crd in crds:
        spec = crd.get("spec") or {}
        n = spec.get("names") or {}
        kind, plural = n.get("kind"), n.get("plural")
        if not isinstance(kind, str) or not isinstance(plural, str):
            continue
        plurals[kind] = f"{plural}.{spec.get('group', '')}"
        for word in (kind.lower(), plural, n.get("singular"), *(n.get("shortNames") or [])):
            if isinstance(word, str) and word:
                names[word.lower()] = kind
        if spec.get("scope") == "Cluster":
            cluster.add(kind)
    return CustomKinds(names, plurals, frozenset(cluster))


_CUSTOM_CLUSTER: set[str] = set()


def learn_cluster_scoped(kinds: frozenset[str]) -> None:
    _CUSTOM_CLUSTER.update(kinds)


def cluster_scoped(kind: str) -> bool:
    """Whether ``kind`` has no namespace: a built-in cluster-scoped kind or a Cluster-scoped CRD's."""
    return kind in CLUSTER_SCOPED or kind in _CUSTOM_CLUSTER


def without_effect_summary(counts: dict[str, int]) -> Obj:
    """``gitship status``'s count of the live objects stored without effect (each carries a NoEffect
    Warning event): ``{"count": N, "kinds": [...]}``."""
    kinds = sorted(k for k, n in counts.items() if n and without_effect(k) and k != "JobTombstone")  # sync/jobs.py
    return {"count": sum(counts[k] for k in kinds), "kinds": kinds}


def without_effect_line(summary: Obj) -> list[str]:
    """The status line, when there is anything to say."""
    if not summary.get("count"):
        return []
    n = summary["count"]
    return [
        f"No effect:     {n} object{'s' if n != 1 else ''} stored without effect (kinds {', '.join(summary['kinds'])})"
    ]
