"""Custom resources: the kinds a revision's CustomResourceDefinitions define.

Where it sits: pure, called by ``revision.py`` once every file of a revision is loaded (a custom
resource and its CRD may sit in different files, and a file is cached alone). ``load.py`` lets a
document through whose apiVersion names a group a CRD may define (``monitoring.coreos.com/v1``)
and whose kind is not built in, checking only its metadata; here each such document must be
defined by a CRD of the same revision: ``spec.group`` + a served ``spec.versions[].name`` as its
apiVersion and ``spec.names.kind`` as its kind. A document no CRD defines rejects the revision,
naming its kind, apiVersion and file. A custom resource of a ``Cluster``-scoped CRD loses its
namespace (its key is ``(kind, "", name)``, as for other cluster-scoped kinds).

The CRD's ``openAPIV3Schema`` is checked where it speaks plainly: ``type``, ``properties`` (a
field it does not define is an unknown field, unless ``x-kubernetes-preserve-unknown-fields`` or
``additionalProperties`` allows it, as the API server's pruning and kubectl's strict validation
treat it), ``required``, ``enum``, ``items``. Formats, patterns and CEL rules are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from reconciler.errors import ManifestError
from reconciler.manifests.model import KINDS, Manifest
from reconciler.types import Obj

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


class CustomKind(NamedTuple):
    """A kind a CRD defines: its scope, the CRD's name, and the version's schema (None: none given)."""

    scope: str
    crd: str
    schema: Obj | None


def defined_kinds(manifests: Sequence[Manifest]) -> dict[tuple[str, str], CustomKind]:
    """``(apiVersion, kind) -> CustomKind`` for every served version of every CRD of the revision."""
    out: dict[tuple[str, str], CustomKind] = {}
    for m in manifests:
        if m.obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = m.obj.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for v in spec.get("versions") or []:
            if isinstance(v, dict) and v.get("served"):
                schema = (v.get("schema") or {}).get("openAPIV3Schema")
                out[(f"{group}/{v.get('name')}", str(kind))] = CustomKind(
                    str(spec.get("scope")), m.obj["metadata"]["name"], schema if isinstance(schema, dict) else None
                )
    return out


def is_custom(m: Manifest) -> bool:
    """Whether ``m`` is a custom resource (a kind no built-in table holds)."""
    return m.obj.get("kind") not in KINDS


def resolve(manifests: list[Manifest], supported: str) -> tuple[list[Manifest], list[ManifestError]]:
    """The revision's manifests with its custom resources checked against its CRDs.

    Returns the manifests (a cluster-scoped custom resource as a new Manifest without a namespace)
    and one error per custom resource no CRD defines or whose schema it breaks.
    """
    if not any(is_custom(m) for m in manifests):
        return manifests, []
    kinds = defined_kinds(manifests)
    out: list[Manifest] = []
    errors: list[ManifestError] = []
    for m in manifests:
        if not is_custom(m):
            out.append(m)
            continue
        api, kind = m.obj.get("apiVersion"), m.obj.get("kind")
        found = kinds.get((str(api), str(kind)))
        if found is None:
            errors.append(_undefined(m, supported, kinds))
            continue
        problems = schema_errors(m.obj, found.schema)
        if problems:
            s = m.source
            errors.extend(ManifestError(s.file, msg, s.line, s.document, path) for path, msg in problems)
            continue
        if found.scope == "Cluster" and "namespace" in m.obj["metadata"]:
            obj = {**m.obj, "metadata": {k: v for k, v in m.obj["metadata"].items() if k != "namespace"}}
            m = Manifest(obj, m.source, m.warnings)
        out.append(m)
    return out, errors


def _undefined(m: Manifest, supported: str, kinds: dict[tuple[str, str], CustomKind]) -> ManifestError:
    api, kind = m.obj.get("apiVersion"), m.obj.get("kind")
    custom = ", ".join(f"{k} ({a})" for a, k in sorted(kinds)) or "none"
    return ManifestError(
        m.source.file,
        f"Unsupported value: kind {kind!r} with apiVersion {api!r}: no CustomResourceDefinition in the repository "
        f"defines it; supported: {supported}; defined by the repository's CRDs: {custom}",
        m.source.line,
        m.source.document,
        "kind",
    )


# --------------------------------------------------------------------------- openAPIV3Schema

_META_FIELDS = ("apiVersion", "kind", "metadata")


def schema_errors(obj: Obj, schema: Obj | None) -> list[tuple[str, str]]:
    """``(field path, message)`` of every place ``obj`` breaks ``schema`` (apiVersion, kind and
    metadata are the API server's, not the schema's)."""
    if schema is None:
        return []
    out: list[tuple[str, str]] = []
    body = {k: v for k, v in obj.items() if k not in _META_FIELDS}
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k not in _META_FIELDS}
    required = [r for r in schema.get("required") or [] if r not in _META_FIELDS]
    top = {**schema, "properties": props, "required": required}
    _check(body, top, "", out)
    return out


def _check(value: Any, schema: Any, path: str, out: list[tuple[str, str]]) -> None:
    if not isinstance(schema, dict) or value is None:
        return
    if schema.get("x-kubernetes-int-or-string") and isinstance(value, (int, str)) and not isinstance(value, bool):
        return
    typ = schema.get("type")
    want = _JSON_TYPES.get(typ) if isinstance(typ, str) else None
    if want is not None and (not isinstance(value, want) or (typ != "boolean" and isinstance(value, bool))):
        out.append((path or ".", f"Invalid value: {value!r}: must be of type {typ}"))
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        allowed = ", ".join(f'"{e}"' for e in enum)
        out.append((path or ".", f"Unsupported value: {value!r}: supported values: {allowed}"))
    if isinstance(value, dict):
        _check_object(value, schema, path, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, schema.get("items"), f"{path}[{i}]", out)


def _check_object(value: Obj, schema: Obj, path: str, out: list[tuple[str, str]]) -> None:
    prefix = f"{path}." if path else ""
    for r in schema.get("required") or []:
        if r not in value:
            out.append((prefix + str(r), "Required value"))
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    for k, v in value.items():
        if isinstance(props, dict) and k in props:
            _check(v, props[k], prefix + str(k), out)
        elif isinstance(extra, dict):
            _check(v, extra, prefix + str(k), out)
        elif isinstance(props, dict) and not schema.get("x-kubernetes-preserve-unknown-fields") and extra is not True:
            out.append((prefix + str(k), f'unknown field "{prefix}{k}"'))
