"""ConfigMaps and Secrets (v1): their keys, their size, base64 ``data`` and the Secret types.

Kubernetes' rules, from kubernetes/kubernetes pkg/apis/core/validation/validation.go
(``ValidateConfigMap``, ``ValidateSecret``) and staging/src/k8s.io/apimachinery/pkg/util/validation
(``IsConfigMapKey``):

- a key is ``[-._a-zA-Z0-9]+``, at most 253 characters, not ``.`` or ``..`` and not starting
  with ``..``;
- a ConfigMap's ``data`` (strings) and ``binaryData`` (base64) share no key, and together hold
  at most 1 MiB (``core.MaxSecretSize`` = 1048576 bytes; decoded bytes for ``binaryData``);
- a Secret's ``data`` holds base64 values (their decoded bytes count towards the same 1 MiB);
  ``stringData`` was merged into ``data`` by the defaulting step (as the API server's conversion
  does: a ``stringData`` entry wins over a ``data`` entry of the same key);
- each Secret ``type`` requires its keys (kubernetes.io/tls: tls.crt and tls.key; basic-auth: at
  least one of username and password; ssh-auth: a non-empty ssh-privatekey; dockercfg and
  dockerconfigjson: their key holding a JSON object; service-account-token: the annotation
  kubernetes.io/service-account.name).

A message about a Secret never shows a value: it names the key (field path ``data[password]``),
as the API server writes ``<secret contents redacted>`` in place of the value.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from reconciler.manifests.validate.common import Ctx, is_dict, type_name
from reconciler.types import Obj

MAX_SIZE = 1048576  # core.MaxSecretSize: the total of a ConfigMap's or a Secret's data
KEY_MAX_LENGTH = 253
_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
    "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
REDACTED = "<secret contents redacted>"

SECRET_TYPE_OPAQUE = "Opaque"
SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"
# Secret type -> the keys it requires (all of them), as ValidateSecret checks them
_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
_JSON_KEYS = {"kubernetes.io/dockercfg": ".dockercfg", "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}


def config_key_errors(key: str) -> list[str]:
    """IsConfigMapKey: what is wrong with a key of a ConfigMap or a Secret (empty when valid)."""
    errs: list[str] = []
    if len(key) > KEY_MAX_LENGTH:
        errs.append(f"must be no more than {KEY_MAX_LENGTH} characters")
    if not _KEY_RE.fullmatch(key):
        errs.append(KEY_MSG)
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def decode_base64(value: str) -> bytes | None:
    """The bytes of a base64 value as Go's encoding/json decodes a []byte (standard alphabet,
    padded; line breaks ignored), or None when it is not valid base64."""
    try:
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_key(ctx: Ctx, key: Any, path: str) -> bool:
    if not isinstance(key, str):
        ctx.err(path, f"Invalid value: key must be a string, not {type_name(key)}")
        return False
    for msg in config_key_errors(key):
        ctx.err(f"{path}[{key}]", f"Invalid value: {key!r}: {msg}")
    return True


def _too_long(ctx: Ctx, path: str, total: int) -> None:
    if total > MAX_SIZE:
        ctx.err(path, f"Too long: must have at most {MAX_SIZE} bytes (has {total})")


def _immutable(ctx: Ctx, obj: Obj) -> None:
    v = obj.get("immutable")
    if v is not None and type(v) is not bool:
        ctx.err("immutable", f"must be a boolean, not {type_name(v)} {v!r}")


def _map_field(ctx: Ctx, obj: Obj, key: str) -> Obj | None:
    v = obj.get(key)
    if v is None:
        return None
    if not is_dict(v):
        ctx.err(key, f"must be an object, not {type_name(v)}")
        return None
    return v


# --------------------------------------------------------------------------- ConfigMap


def validate_configmap(ctx: Ctx, obj: Obj) -> None:
    _immutable(ctx, obj)
    data = _map_field(ctx, obj, "data") or {}
    binary = _map_field(ctx, obj, "binaryData") or {}
    total = 0
    for key, value in data.items():
        if not _check_key(ctx, key, "data"):
            continue
        if key in binary:
            ctx.err(f"data[{key}]", f"Invalid value: {key!r}: duplicate of key present in binaryData")
        if not isinstance(value, str):
            ctx.err(f"data[{key}]", f"must be a string, not {type_name(value)}")
            continue
        total += len(value.encode("utf-8", "surrogatepass"))
    for key, value in binary.items():
        if not _check_key(ctx, key, "binaryData"):
            continue
        raw = decode_base64(value) if isinstance(value, str) else None
        if raw is None:
            ctx.err(f"binaryData[{key}]", "Invalid value: must be base64-encoded bytes")
            continue
        total += len(raw)
    _too_long(ctx, "data", total)  # Kubernetes names the whole object here


# --------------------------------------------------------------------------- Secret


def _secret_data(ctx: Ctx, obj: Obj) -> dict[str, bytes]:
    """The decoded ``data`` of a Secret (keys checked); errors name keys, never values."""
    out: dict[str, bytes] = {}
    left = obj.get("stringData")
    if left is not None:  # what defaulting could not merge: values that are not strings
        if not is_dict(left):
            ctx.err("stringData", f"must be an object, not {type_name(left)}")
        else:
            for key, value in left.items():
                ctx.err(f"stringData[{key}]", f"must be a string, not {type_name(value)}")
    data = _map_field(ctx, obj, "data") or {}
    for key, value in data.items():
        if not _check_key(ctx, key, "data"):
            continue
        if value is None:
            out[key] = b""
            continue
        raw = decode_base64(value) if isinstance(value, str) else None
        if raw is None:
            ctx.err(f"data[{key}]", f"Invalid value: {REDACTED}: must be base64-encoded bytes")
            continue
        out[key] = raw
    return out


def _check_type_keys(ctx: Ctx, obj: Obj, stype: str, data: dict[str, bytes]) -> None:
    if stype == "kubernetes.io/service-account-token":
        meta = obj.get("metadata")
        ann = (meta.get("annotations") if is_dict(meta) else None) or {}
        if not is_dict(ann) or not ann.get(SERVICE_ACCOUNT_NAME):
            ctx.err(f"metadata.annotations[{SERVICE_ACCOUNT_NAME}]", "Required value")
    elif stype in _JSON_KEYS:
        key = _JSON_KEYS[stype]
        if key not in data:
            ctx.err(f"data[{key}]", "Required value")
            return
        try:
            parsed = json.loads(data[key])
        except ValueError:
            parsed = None
        if not is_dict(parsed):
            ctx.err(f"data[{key}]", f"Invalid value: {REDACTED}: must be a JSON object")
    elif stype == "kubernetes.io/basic-auth":
        # username or password may be empty, but one of them must be present
        if "username" not in data and "password" not in data:
            ctx.err("data[username]", "Required value")
            ctx.err("data[password]", "Required value")
    elif stype == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            ctx.err("data[ssh-privatekey]", "Required value")
    for key in _REQUIRED_KEYS.get(stype, ()):
        if key not in data:
            ctx.err(f"data[{key}]", "Required value")


def validate_secret(ctx: Ctx, obj: Obj) -> None:
    _immutable(ctx, obj)
    stype = obj.get("type")
    if not isinstance(stype, str):
        ctx.err("type", f"must be a string, not {type_name(stype)}")
        stype = ""
    data = _secret_data(ctx, obj)
    _too_long(ctx, "data", sum(len(v) for v in data.values()))
    _check_type_keys(ctx, obj, stype, data)
