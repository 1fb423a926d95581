"""The three patch formats of the Kubernetes API, applied to plain JSON values (pure: no I/O).

- ``merge_patch``: JSON merge patch, RFC 7386 (``application/merge-patch+json``).
- ``json_patch``: JSON patch, RFC 6902 (``application/json-patch+json``): add, remove, replace,
  move, copy, test, with RFC 6901 pointers.
- ``strategic_merge_patch``: Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``, apimachinery pkg/util/strategicpatch): lists of
  objects merged by their merge key, ``$patch: delete|replace|merge``, ``$setElementOrder/<field>``,
  ``$deleteFromPrimitiveList/<field>``, ``$retainKeys``.
- ``diff_merge_patch``: the merge patch that turns one value into another (tests, and callers that
  want to show a change).

The merge keys and strategies are those of Kubernetes' OpenAPI (``x-kubernetes-patch-merge-key`` /
``x-kubernetes-patch-strategy``) for the fields gitship's kinds use; reconciler/manifests/k8s-schema.json
does not keep those extensions, so they are listed here (``MERGE_KEYS``, ``MERGE_PRIMITIVE``;
tests/unit/test_kapi_patch.py checks them against kubernetes-validate 1.37's schema when installed).
A list without a strategy is replaced whole, as Kubernetes does.

Errors are ``PatchError(code, reason, message)`` with the status Kubernetes answers: a body that is
not a patch is 400 BadRequest; a patch that cannot be applied (a missing path, a failed test) is
422 Invalid, as the API server's ``interpretPatchError`` makes them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

# field name -> merge key (x-kubernetes-patch-strategy: merge). "ports" depends on where it is:
# a container's ports merge by containerPort, a Service's by port (see merge_key).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "secrets": "name",
    "webhooks": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
    "ports": "port",
}
# lists of scalars with x-kubernetes-patch-strategy: merge (a union)
MERGE_PRIMITIVE = frozenset({"finalizers", "podCIDRs"})

_DIRECTIVE = "$patch"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_RETAIN = "$retainKeys"


class PatchError(Exception):
    """A patch that is malformed (400 BadRequest) or cannot be applied (422 Invalid)."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def bad_request(message: str) -> PatchError:
    return PatchError(400, "BadRequest", message)


def invalid(message: str) -> PatchError:
    return PatchError(422, "Invalid", message)


# ---------------------------------------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces. ``target`` is not changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def diff_merge_patch(a: Any, b: Any) -> Any:
    """The merge patch p with merge_patch(a, p) == b (for b without nulls in objects)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return copy.deepcopy(b)
    p: dict[str, Any] = {}
    for k in a:
        if k not in b:
            p[k] = None
    for k, v in b.items():
        if k not in a:
            p[k] = copy.deepcopy(v)
        elif a[k] != v or type(a[k]) is not type(v):
            p[k] = diff_merge_patch(a[k], v)
    return p


# ---------------------------------------------------------------------------------------------- RFC 6902


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise bad_request(f"path must be a string, got {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise invalid(f'JSON pointer must be empty or start with a "/": {path}')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_equal(a: Any, b: Any) -> bool:
    """RFC 6902 §4.6 equality: numbers equal by value (1 == 1.0), booleans never equal numbers, at any depth."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _index(container: list[Any], token: str, path: str, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    # RFC 6901 §4: an index is ASCII digits ("\u0661".isdigit() is true, and int("\u00b2") fails)
    if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token.startswith("0")):
        raise invalid(f"unable to access invalid index: {token} (path {path})")
    i = int(token)
    if i > len(container) or (not adding and i == len(container)):
        raise invalid(f"unable to access invalid index: {i} (path {path})")
    return i


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise invalid(f'doc is missing path: "{path}": missing value')
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, path, adding=False)]
        else:
            raise invalid(f'doc is missing path: "{path}": missing value')
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise invalid(f'doc is missing path: "{path}": missing value')
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, adding=False)]
    raise invalid(f'doc is missing path: "{path}": missing value')


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, adding=True), value)
    else:
        raise invalid(f'doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        return None, doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise invalid(f'doc is missing path: "{path}": missing value')
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, adding=False))
    raise invalid(f'doc is missing path: "{path}": missing value')


def _field(op: dict[str, Any], name: str) -> Any:
    if name not in op:
        raise bad_request(f'operation missing "{name}" field: {json.dumps(op)}')
    return op[name]


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    path = _field(op, "path")
    if kind == "add":
        return _add(doc, path, copy.deepcopy(_field(op, "value")))
    if kind == "remove":
        return _remove(doc, path)[0]
    if kind == "replace":
        _get(doc, path)
        doc, _ = _remove(doc, path)
        return _add(doc, path, copy.deepcopy(_field(op, "value")))
    if kind == "move":
        src = _field(op, "from")
        if path != src and path.startswith(src + "/"):
            raise invalid(f"unable to move {src} into its own child {path}")
        doc, value = _remove(doc, src)
        return _add(doc, path, value)
    if kind == "copy":
        return _add(doc, path, copy.deepcopy(_get(doc, _field(op, "from"))))
    if kind == "test":
        want = _field(op, "value")
        got = _get(doc, path)
        if not json_equal(got, want):
            raise invalid(f"testing value {path} failed: test failed")
        return doc
    raise bad_request(f"Unexpected kind: {kind}")


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902: the operations in order, all or nothing. ``target`` is not changed."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        doc = _apply_op(doc, op)
    return doc


# ---------------------------------------------------------------------------------------------- strategic


def merge_key(field: str, items: list[Any]) -> str | None:
    """The merge key of a list field (None: replaced whole); a container's ports by containerPort."""
    key = MERGE_KEYS.get(field)
    if field == "ports" and any(isinstance(i, dict) and "containerPort" in i for i in items):
        return "containerPort"
    return key


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge patch of an object (a dict). ``target`` is not changed."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    out = _smp_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch)
    return {} if out is None else out


def _smp_map(orig: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    directive = patch.get(_DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != _DIRECTIVE}
    if directive not in (None, "merge"):
        raise bad_request(f"Unknown patch type: {directive!r}")
    retain = patch.get(_RETAIN)
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request(f"$retainKeys must be a list, got {retain!r}")
        orig = {k: v for k, v in orig.items() if k in retain}
    orders: dict[str, Any] = {}
    for k, v in patch.items():
        if k in (_DIRECTIVE, _RETAIN):
            continue
        if k.startswith(_ORDER):
            orders[k[len(_ORDER) :]] = v
        elif k.startswith(_DELETE_PRIMITIVE):
            field = k[len(_DELETE_PRIMITIVE) :]
            cur = orig.get(field)
            if isinstance(cur, list) and isinstance(v, list):
                orig[field] = [x for x in cur if x not in v]
        elif v is None:
            orig.pop(k, None)
        else:
            merged = _smp_value(k, orig.get(k), v)
            if merged is _DELETED:
                orig.pop(k, None)
            else:
                orig[k] = merged
    for field, order in orders.items():
        if isinstance(orig.get(field), list) and isinstance(order, list):
            orig[field] = _ordered(field, orig[field], order)
    return orig


_DELETED: Any = object()


def _smp_value(field: str, cur: Any, p: Any) -> Any:
    if isinstance(p, dict):
        if not isinstance(cur, dict):
            cur = {}
        out = _smp_map(cur, p)
        return _DELETED if out is None else out
    if isinstance(p, list):
        return _smp_list(field, cur if isinstance(cur, list) else [], p)
    return copy.deepcopy(p)


def _smp_list(field: str, cur: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(i, dict) and i.get(_DIRECTIVE) == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and _DIRECTIVE in i)]
    if field in MERGE_PRIMITIVE:
        out = list(cur)
        out += [copy.deepcopy(x) for x in patch if x not in out]
        return out
    key = merge_key(field, cur + patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [copy.deepcopy(i) for i in patch]
    out = list(cur)
    for item in patch:
        if key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        at = next((n for n, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item[key]), None)
        if item.get(_DIRECTIVE) == "delete":
            if at is not None:
                out.pop(at)
            continue
        if at is None:
            merged = _smp_map({}, item)
            if merged is not None:
                out.append(merged)
        else:
            merged = _smp_map(out[at], item)
            if merged is None:
                out.pop(at)
            else:
                out[at] = merged
    return out


def _ordered(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    """``$setElementOrder``: the items named in ``order`` first, in its order; the rest after, as they were."""
    key = merge_key(field, items)

    def ident(x: Any) -> Any:
        if key is not None and isinstance(x, dict):
            return x.get(key)
        return json.dumps(x, sort_keys=True)

    rank = {ident(o): n for n, o in enumerate(order)}
    named = sorted((i for i in items if ident(i) in rank), key=lambda i: rank[ident(i)])
    return named + [i for i in items if ident(i) not in rank]


# ---------------------------------------------------------------------------------------------- carrying a change


def carry_change(raw: Any, before: Any, after: Any) -> Any:
    """``raw`` (a manifest as written: no defaults) with the change from ``before`` to ``after`` (the
    object with defaults) made in it, and nothing else: keys removed, values changed, lists of the
    same length changed item by item (items added at the end appended), anything else replaced."""
    if before == after and type(before) is type(after):
        return copy.deepcopy(raw)
    if isinstance(before, dict) and isinstance(after, dict) and isinstance(raw, dict):
        out = copy.deepcopy(raw)
        for k in before:
            if k not in after:
                out.pop(k, None)
        for k, v in after.items():
            if k in before and before[k] == v and type(before[k]) is type(v):
                continue
            out[k] = carry_change(raw[k], before[k], v) if k in raw and k in before else copy.deepcopy(v)
        return out
    if isinstance(before, list) and isinstance(after, list) and isinstance(raw, list):
        if len(raw) == len(before) and len(after) >= len(before):
            kept = [carry_change(r, b, a) for r, b, a in zip(raw, before, after)]
            return kept + [copy.deepcopy(a) for a in after[len(before) :]]
    return copy.deepcopy(after)
