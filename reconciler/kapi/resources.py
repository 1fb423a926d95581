"""The API's resources: each kind gitship supports as a REST resource, and the discovery documents.

Pure. Kinds come from reconciler/manifests/model.py KINDS (cluster-scoped ones in CLUSTER_SCOPED),
plus the live kinds controllers make that git does not declare (Event, EndpointSlice: read only).
Short names and categories as ``kubectl api-resources`` shows them on Kubernetes v1.37.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.manifests.model import CLUSTER_SCOPED, KINDS

READ_VERBS = ["get", "list", "watch"]
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

_SHORT: dict[str, list[str]] = {
    "Pod": ["po"],
    "Service": ["svc"],
    "Endpoints": ["ep"],
    "ConfigMap": ["cm"],
    "ReplicaSet": ["rs"],
    "Deployment": ["deploy"],
    "PersistentVolumeClaim": ["pvc"],
    "PersistentVolume": ["pv"],
    "StorageClass": ["sc"],
    "ReplicationController": ["rc"],
    "StatefulSet": ["sts"],
    "DaemonSet": ["ds"],
    "Namespace": ["ns"],
    "CronJob": ["cj"],
    "Ingress": ["ing"],
    "ServiceAccount": ["sa"],
    "PodDisruptionBudget": ["pdb"],
    "NetworkPolicy": ["netpol"],
    "ResourceQuota": ["quota"],
    "LimitRange": ["limits"],
    "PriorityClass": ["pc"],
    "HorizontalPodAutoscaler": ["hpa"],
    "CustomResourceDefinition": ["crd", "crds"],
    "Event": ["ev"],
    "Node": ["no"],
}
# `kubectl get all`: the kinds in category "all"
_ALL = {"Pod", "Service", "ReplicaSet", "Deployment", "ReplicationController", "StatefulSet", "DaemonSet", "Job"}
_ALL |= {"CronJob", "HorizontalPodAutoscaler"}
_IRREGULAR = {"Endpoints": "endpoints", "Ingress": "ingresses", "IngressClass": "ingressclasses"}
# read-only kinds made by controllers (no manifest declares them here)
_EXTRA: dict[str, str] = {"Event": "v1", "EndpointSlice": "discovery.k8s.io/v1", "Node": "v1"}
_EXTRA_CLUSTER = frozenset({"Node"})
_EXTRA_EVENTS = ("events.k8s.io/v1",)
# subresources served: (kind, subresource) -> the verbs
_SUB: dict[tuple[str, str], list[str]] = {
    ("Pod", "log"): ["get"],
    ("Pod", "status"): ["get"],
    ("Pod", "exec"): ["create", "get"],
    ("Pod", "attach"): ["create", "get"],
    ("Pod", "portforward"): ["create", "get"],
    ("Deployment", "scale"): ["get", "patch", "update"],
    ("ReplicaSet", "scale"): ["get", "patch", "update"],
    ("StatefulSet", "scale"): ["get", "patch", "update"],
    ("Deployment", "status"): ["get"],
}


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...]
    categories: tuple[str, ...]

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


def plural_of(kind: str) -> str:
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    low = kind.lower()
    if low.endswith(("s", "x", "ch")):
        return low + "es"
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def _split(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _resources() -> list[Resource]:
    out: list[Resource] = []
    entries = [(k, v, False) for k, v in KINDS.items()] + [(k, v, True) for k, v in _EXTRA.items()]
    entries += [("Event", gv, True) for gv in _EXTRA_EVENTS]
    for kind, api_version, read_only in entries:
        group, version = _split(api_version)
        out.append(
            Resource(
                kind,
                group,
                version,
                plural_of(kind),
                kind not in CLUSTER_SCOPED and kind not in _EXTRA_CLUSTER,
                tuple(READ_VERBS if read_only else ALL_VERBS),
                tuple(_SHORT.get(kind, []) if group in ("", "apps", "batch") or kind != "Event" else []),
                ("all",) if kind in _ALL else (),
            )
        )
    return out


RESOURCES: list[Resource] = _resources()
BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}


def group_versions() -> dict[str, list[str]]:
    """group -> its versions (the core group is "")."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def find(group: str, version: str, plural: str) -> Resource | None:
    return BY_PATH.get((group, version, plural))


def api_versions_doc() -> dict[str, Any]:
    """GET /api"""
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group_list() -> dict[str, Any]:
    """GET /apis (legacy form)."""
    groups = []
    for group, versions in group_versions().items():
        if not group:
            continue
        gvs = [_gv(group, v) for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entry(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    return entry


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """GET /api/v1 or /apis/<group>/<version> (legacy APIResourceList); None: no such group version."""
    mine = [r for r in RESOURCES if r.group == group and r.version == version]
    if not mine:
        return None
    entries = []
    for r in mine:
        entries.append(_resource_entry(r))
        for (kind, sub), verbs in _SUB.items():
            if kind == r.kind:
                entries.append(
                    {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "kind": r.kind,
                     "verbs": verbs}
                )  # fmt: skip
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}


def _v2_resource(r: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    subs = [
        {
            "subresource": sub,
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}
            if sub == "scale"
            else {"group": r.group, "version": r.version, "kind": r.kind if sub != "log" else "Pod"},
            "verbs": verbs,
        }
        for (kind, sub), verbs in _SUB.items()
        if kind == r.kind
    ]
    if subs:
        out["subresources"] = subs
    return out


def aggregated(core: bool) -> dict[str, Any]:
    """Aggregated discovery v2 (APIGroupDiscoveryList) of /api (core) or /apis (the named groups)."""
    items = []
    for group, versions in group_versions().items():
        if (group == "") != core:
            continue
        vs = [
            {
                "version": v,
                "resources": [_v2_resource(r) for r in RESOURCES if r.group == group and r.version == v],
                "freshness": "Current",
            }
            for v in versions
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
