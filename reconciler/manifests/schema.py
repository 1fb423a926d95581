"""Strict field validation: unknown fields, as kubectl's default ``--validate=strict`` reports them.

Where it sits: called by manifests/validate.py for every document of a kind the schema knows,
before gitship's own per-kind rules. The schema (k8s-schema.json beside this module) is generated
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
from collections.abc import Iterator
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
    schema = _schema()
    name = schema["kinds"].get(f"{obj.get('apiVersion')}/{obj.get('kind')}")
    if name is None:
        return []
    return list(_walk(obj, ["ref", name], "", schema["definitions"]))


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    while isinstance(node, list) and node[0] == "ref":
        node = defs[node[1]]
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(value: Any, node: Any, path: str, defs: dict[str, Any]) -> Iterator[str]:
    node = _resolve(node, defs)
    if not isinstance(node, list):
        return  # a scalar type or "any": nothing below it to check
    shape, inner = node
    if shape == "object" and isinstance(value, dict):
        for key, sub in value.items():
            child = inner.get(key) if isinstance(key, str) else None
            if child is None:
                yield _join(path, str(key))
            else:
                yield from _walk(sub, child, _join(path, key), defs)
    elif shape == "map" and isinstance(value, dict):
        for key, sub in value.items():
            yield from _walk(sub, inner, _join(path, str(key)), defs)
    elif shape == "array" and isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _walk(sub, inner, f"{path}[{i}]", defs)
