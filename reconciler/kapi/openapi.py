"""OpenAPI v3 documents for the kinds gitship serves: /openapi/v3 (the index) and one document per
group version, built from reconciler/manifests/k8s-schema.json (Kubernetes v1.37's definitions:
field names and shapes, no descriptions).

What kubectl reads in them: ``kubectl explain`` looks up the schema whose
``x-kubernetes-group-version-kind`` names the kind; ``kubectl create/apply`` (validation strict by
default) asks whether the server validates fields itself: a PATCH operation of the kind with a
``fieldValidation`` query parameter says yes, and kubectl then leaves validation to the server
(k8s.io/cli-runtime pkg/resource/query_param_verifier_v3.go). Pure.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
from typing import Any

from .resources import RESOURCES, Resource, group_versions

_SCALARS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer", "format": "int64"},
    "number": {"type": "number", "format": "double"},
    "boolean": {"type": "boolean"},
    "time": {"type": "string", "format": "date-time"},
    "quantity": {"x-kubernetes-int-or-string": True},
    "int-or-string": {"x-kubernetes-int-or-string": True},
    "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


@functools.cache
def _schema() -> dict[str, Any]:
    text = importlib.resources.files("reconciler.manifests").joinpath("k8s-schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _node(node: Any, refs: set[str]) -> dict[str, Any]:
    if isinstance(node, str):
        return dict(_SCALARS.get(node, {"type": "string"}))
    tag = node[0]
    if tag == "ref":
        refs.add(node[1])
        return {"allOf": [_ref(node[1])], "default": {}}
    if tag == "array":
        return {"type": "array", "items": _node(node[1], refs)}
    if tag == "map":
        return {"type": "object", "additionalProperties": _node(node[1], refs)}
    props = node[1] if len(node) > 1 and isinstance(node[1], dict) else {}
    return {"type": "object", "properties": {k: _node(v, refs) for k, v in props.items()}}


def _schemas(roots: dict[str, Resource]) -> dict[str, Any]:
    """The definitions reachable from ``roots`` (definition name -> resource), as OpenAPI v3 schemas."""
    defs: dict[str, Any] = _schema()["definitions"]
    out: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out or name not in defs:
            continue
        refs: set[str] = set()
        out[name] = _node(defs[name], refs)
        r = roots.get(name)
        if r is not None:
            out[name]["x-kubernetes-group-version-kind"] = [{"group": r.group, "version": r.version, "kind": r.kind}]
        todo.extend(refs - out.keys())
    return out


def _path(r: Resource) -> str:
    prefix = f"/apis/{r.group}/{r.version}" if r.group else "/api/v1"
    return f"{prefix}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced else f"{prefix}/{r.plural}/{{name}}"


def _operations(r: Resource, name: str) -> dict[str, Any]:
    gvk = {"group": r.group, "version": r.version, "kind": r.kind}
    params = [{"name": q, "in": "query", "schema": {"type": "string"}} for q in _QUERY]
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(name)}}}}
    ops: dict[str, Any] = {}
    for verb, action in (("get", "get"), ("put", "put"), ("patch", "patch"), ("delete", "delete")):
        if action in ("put", "patch", "delete") and "patch" not in r.verbs:
            continue
        ops[verb] = {
            "operationId": f"{action}{r.kind}",
            "parameters": params if verb != "get" else [],
            "responses": ok,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
    return ops


def document(group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group version; None when gitship serves no such group version."""
    kinds: dict[str, str] = _schema()["kinds"]
    gv = f"{group}/{version}" if group else version
    mine = [r for r in RESOURCES if r.group == group and r.version == version]
    if not mine:
        return None
    roots = {kinds[f"{gv}/{r.kind}"]: r for r in mine if f"{gv}/{r.kind}" in kinds}
    paths = {_path(r): _operations(r, name) for name, r in roots.items()}
    return {
        "openapi": "3.0.0",
        "info": {"title": "gitship", "version": "v1.37"},
        "paths": paths,
        "components": {"schemas": _schemas(roots)},
    }


def _key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def _hashes() -> dict[str, str]:
    out = {}
    for group, versions in group_versions().items():
        for v in versions:
            doc = document(group, v)
            out[_key(group, v)] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
    return out


def index() -> dict[str, Any]:
    """GET /openapi/v3"""
    return {"paths": {k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={h}"} for k, h in _hashes().items()}}


@functools.cache
def document_bytes(path: str) -> bytes | None:
    """The document at /openapi/v3/<path> (``api/v1``, ``apis/apps/v1``) as JSON bytes."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        doc = document("", parts[1])
    elif parts[:1] == ["apis"] and len(parts) == 3:
        doc = document(parts[1], parts[2])
    else:
        return None
    return json.dumps(doc).encode() if doc is not None else None
