"""Secret values kept out of what gitship prints and logs.

Where it sits: a pure module (no I/O) used by ``gitship diff`` (plan.render_diff), the reconcile
log (log.py) and describe (printers.py). A Secret's values appear only where kubectl shows them:
``get secret -o yaml|json`` (base64 ``data``) and the store; everywhere else a value is replaced
by its size, as ``kubectl describe secret`` prints ``password:  7 bytes``
(kubernetes/kubectl pkg/describe/describe.go, SecretDescriber).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from .types import Obj

REDACTED = "(redacted)"
# the fields of a Secret that hold values
SECRET_VALUE_FIELDS = ("data", "stringData")


def decoded_size(value: Any) -> int:
    """The number of bytes a base64 value of a Secret's ``data`` stands for (0 when not base64)."""
    if not isinstance(value, str):
        return 0
    try:
        return len(base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True))
    except (binascii.Error, ValueError):
        return len(value)


def secret_sizes(obj: Mapping[str, Any]) -> dict[str, int]:
    """Each key of a Secret's ``data`` and the size of its value in bytes, keys sorted."""
    data = obj.get("data")
    if not isinstance(data, Mapping):
        return {}
    return {str(k): decoded_size(data[k]) for k in sorted(data, key=str)}


def is_secret(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("kind") == "Secret"


def _sized(value: Any, secret_data: bool) -> str:
    n = decoded_size(value) if secret_data else len(value.encode()) if isinstance(value, str) else 0
    return f"{REDACTED} {n} bytes"


def redact_secret(obj: Mapping[str, Any], other: Mapping[str, Any] | None = None) -> Obj:
    """A copy of a Secret with each value replaced by ``(redacted) N bytes``; with ``other`` (the
    same Secret before a change), a value that differs from other's is marked ``changed``, so
    that a diff still shows which keys a commit changes."""
    new: Obj = dict(obj)
    for field in SECRET_VALUE_FIELDS:
        values = obj.get(field)
        if not isinstance(values, Mapping):
            continue
        theirs = other.get(field) if other is not None else None
        out: dict[str, str] = {}
        for k, v in values.items():
            text = _sized(v, field == "data")
            if isinstance(theirs, Mapping) and k in theirs and theirs[k] != v:
                text += ", changed"
            out[str(k)] = text
        new[field] = out
    return new


def redact(value: Any) -> Any:
    """``value`` with every Secret inside it (a dict of kind Secret, at any depth) redacted."""
    if is_secret(value):
        return redact_secret(value)
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def redact_pair(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> tuple[Obj | None, Obj | None]:
    """The two sides of one object's diff, redacted when they are a Secret."""
    if not is_secret(before) and not is_secret(after):
        return (dict(before) if before is not None else None, dict(after) if after is not None else None)
    return (
        redact_secret(before) if before is not None else None,
        redact_secret(after, before) if after is not None else None,
    )
