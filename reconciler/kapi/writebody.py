"""A write request's body before it is an object: decoding with a depth limit, the Status a refused
write answers, unknown fields dropped or refused as ``fieldValidation`` says, and the names no object
may have. reconciler/kapi/writes.py uses these; they hold no state of a write.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from reconciler.kapi.contract import WriteRequest


class Refused(Exception):
    """A write answered with a Status (nothing committed)."""

    def __init__(self, code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.causes = code, reason, message, causes or []


MAX_DEPTH = 200  # nesting of a body; deeper is refused before anything recursive (patches, copies, YAML) sees it


def depth(v: Any) -> int:
    """How deep ``v`` nests (iteratively: the value may be deeper than Python's recursion limit)."""
    deepest, stack = 0, [(v, 1)]
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if d <= MAX_DEPTH:
            stack.extend((y, d + 1) for y in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else ()))
    return deepest


def decode(req: WriteRequest) -> Any:
    try:
        if req.content_type.endswith("yaml"):
            value = yaml.safe_load(req.body.decode("utf-8"))
        else:
            value = json.loads(req.body)
    except (ValueError, yaml.YAMLError) as e:
        raise Refused(400, "BadRequest", f"the body of the request was in an unknown format: {e}") from None
    except RecursionError:
        value = None
    else:
        if depth(value) <= MAX_DEPTH:
            return value
    raise Refused(400, "BadRequest", f"the body of the request nests deeper than {MAX_DEPTH} levels")


def drop_field(obj: Any, path: str) -> None:
    """Remove ``spec.template.spec.containers[0].imagee`` from ``obj`` (unknown fields in Warn mode)."""
    parts: list[Any] = []
    for seg in path.split("."):
        name, _, rest = seg.partition("[")
        parts.append(name)
        for idx in rest.split("[") if rest else []:
            parts.append(int(idx.rstrip("]")))
    cur = obj
    for p in parts[:-1]:
        try:
            cur = cur[p]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)


def strict_refusal(req: WriteRequest, err: str) -> Refused:
    """An unknown field under ``fieldValidation=Strict``, answered as the API server answers it:
    - a create or update fails to decode: 400 BadRequest, ``Deployment in version "v1" cannot be handled
      as a Deployment: strict decoding error: ...`` (kubernetes/kubernetes
      staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go ``transformDecodeError``);
    - a JSON, merge or strategic merge patch whose result fails to decode: 422 Invalid on the field
      ``patch`` (handlers/patch.go ``jsonPatcher.applyPatchToCurrentObject``, ``applyPatchToObject``:
      ``field.Invalid(field.NewPath("patch"), ..., strictDecodingError.Error())``). Kubernetes names
      no kind or name there (``The  "" is invalid``) and shows the whole patched object as the value;
      gitship names the object and shows the patch;
    - server-side apply: 400 BadRequest (handlers/patch.go ``applyPatcher``)."""
    if req.verb == "patch" and req.content_type != "application/apply-patch+yaml":
        value = json.dumps(req.body.decode("utf-8", "replace"))
        cause = {"reason": "FieldValueInvalid", "message": f"Invalid value: {value}: {err}", "field": "patch"}
        qualified = req.kind + (f".{req.group}" if req.group else "")
        return Refused(
            422, "Invalid", f'{qualified} "{req.name}" is invalid: patch: Invalid value: {value}: {err}', [cause]
        )
    if req.verb in ("create", "update"):
        return Refused(
            400, "BadRequest", f'{req.kind} in version "{req.version}" cannot be handled as a {req.kind}: {err}'
        )
    return Refused(400, "BadRequest", err)


def path_segment_error(name: str) -> str | None:
    """Why ``name`` cannot be an object's name in any kind, as Kubernetes says it (kubernetes/kubernetes
    staging/src/k8s.io/apimachinery/pkg/api/validation/path/name.go ``IsValidPathSegmentName``); None
    when it can. A new object's file is named after it: no name may lead outside its folder."""
    if name in (".", ".."):
        return f"may not be '{name}'"
    for c in ("/", "%"):
        if c in name:
            return f"may not contain '{c}'"
    return None
