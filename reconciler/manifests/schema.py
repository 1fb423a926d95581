"""Strict field validation: unknown fields, as kubectl's default ``--validate=strict`` reports them.

Where it sits: pure; ``load.py`` calls ``unknown_fields`` for every document as written, before
defaults and gitship's own per-kind rules. The schema (k8s-schema.json beside this module) is generated
from Kubernetes' published OpenAPI definitions by .ci/gen-k8s-schema.py; it holds field names and
shapes, nothing else, so this module only answers "is this field known here?".

A node of the schema is a type name ("string", "integer", "number", "boolean", "int-or-string",
"quantity", "time", "any"), ``["ref", name]``, ``["array", node]``, ``["map", node]`` (an object
with free keys) or ``["object", {field: node}]``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

_SCHEMA_FILE = "k8s-schema.json"


@functools.cache
def _schema() -> dict[str, Any]:
    text = importlib.resources.files(__package__ or "reconciler.manifests").joinpath(_SCHEMA_FILE).read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def kubernetes_version() -> str:
    """The Kubernetes version whose definitions the schema was generated from."""
    return str(_schema()["kubernetesVersion"])


def knows(api_version: str, kind: str) -> bool:
    """Whether the schema has a definition for this apiVersion and kind."""
    return f"{api_version}/{kind}" in _schema()["kinds"]


def unknown_fields(obj: dict[str, Any]) -> list[str]:
    """Field paths of ``obj`` that its kind's schema does not define (``spec.replica``,
    ``spec.template.spec.containers[0].imagee``), in document order. Empty for kinds the schema
    does not know (gitship's own validation rejects those)."""
    node = _kinds().get(f"{obj.get('apiVersion')}/{obj.get('kind')}")
    out: list[str] = []
    if node is not None:
        _walk(obj, node, "", out)
    return out


# The schema compiled for walking: a node is None (a scalar, or anything: nothing below it to
# check), (_OBJECT, {field: node}), (_ARRAY, node) or (_MAP, node). References are resolved to
# the shared node of their definition (the graph may be cyclic: JSONSchemaProps holds itself).
_OBJECT, _ARRAY, _MAP = 0, 1, 2
_Node = tuple[int, Any] | None


@functools.cache
def _kinds() -> dict[str, _Node]:
    defs: dict[str, Any] = _schema()["definitions"]
    memo: dict[str, _Node] = {}

    def ref(name: str) -> _Node:
        if name in memo:
            return memo[name]
        d = defs[name]
        if isinstance(d, list) and d[0] == "object":
            fields: dict[str, _Node] = {}
            memo[name] = (_OBJECT, fields)  # before its fields: they may refer back to it
            fields.update((k, comp(v)) for k, v in d[1].items())
        else:
            memo[name] = None
            memo[name] = comp(d)
        return memo[name]

    def comp(node: Any) -> _Node:
        if not isinstance(node, list):
            return None
        shape, inner = node
        if shape == "ref":
            return ref(inner)
        if shape == "object":
            return (_OBJECT, {k: comp(v) for k, v in inner.items()})
        sub = comp(inner)
        if sub is None:
            return None  # a list or map of scalars
        return (_ARRAY if shape == "array" else _MAP, sub)

    return {kind: ref(name) for kind, name in _schema()["kinds"].items()}


def _walk(value: Any, node: tuple[int, Any], path: str, out: list[str]) -> None:
    shape, inner = node
    if shape == _OBJECT:
        if type(value) is not dict:
            return
        prefix = path + "." if path else ""
        for key, sub in value.items():
            if type(key) is not str or key not in inner:
                out.append(prefix + str(key))
                continue
            child = inner[key]
            if child is not None and sub:
                _walk(sub, child, prefix + key, out)
    elif shape == _ARRAY:
        if type(value) is list:
            for i, sub in enumerate(value):
                _walk(sub, inner, f"{path}[{i}]", out)
    elif type(value) is dict:
        prefix = path + "." if path else ""
        for key, sub in value.items():
            _walk(sub, inner, prefix + str(key), out)
