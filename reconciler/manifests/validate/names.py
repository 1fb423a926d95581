"""Names, labels, annotations, ports and quantities, with Kubernetes' own messages.

The formats are those of kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/util/validation
(validation.go); the label key and value grammar is reconciler/selectors.py's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from reconciler import selectors
from reconciler.manifests.validate.common import Ctx, is_dict, is_int, type_name
from reconciler.types import Obj

_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?\Z")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?\Z")
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+\Z")
_HAS_LETTER = re.compile(r"[a-z]")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*\Z")
_PERCENT = re.compile(r"[0-9]+%\Z")
_ANNOTATIONS_MAX = 256 * 1024

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
    "'-', and must start and end with an alphanumeric character (e.g. 'my-name', or "
    "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character "
    "(e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
    "with an alphabetic character, and end with an alphanumeric character (e.g. "
    "'my-name', or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_ENV_VAR_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit"
)


def dns1123_label_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not a DNS-1123 label (<= 63), else None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _DNS1123_LABEL.match(value) else DNS1123_LABEL_MSG


def dns1123_subdomain_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not a DNS-1123 subdomain (<= 253), else None."""
    if len(value) > 253:
        return "must be no more than 253 characters"
    return None if selectors.is_dns1123_subdomain(value) else _DNS1123_SUBDOMAIN_MSG


def dns1035_label_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not a DNS-1035 label (Service names), else None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _DNS1035_LABEL.match(value) else _DNS1035_LABEL_MSG


def iana_svc_name_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not an IANA service (port) name, else None."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.match(value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not _HAS_LETTER.search(value):
        return "must contain at least one letter (a-z)"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def env_var_name_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not an environment variable name, else None."""
    return None if _ENV_VAR_NAME.match(value) else _ENV_VAR_MSG


def unique_name(ctx: Ctx, name: Any, path: str, seen: set[str], check: Callable[[str], str | None]) -> None:
    """A name that must be a string, pass ``check`` (an ``*_error`` function) and be unique in ``seen``."""
    if not isinstance(name, str):
        ctx.err(path, f"must be a string, not {type_name(name)} {name!r}")
        return
    e = check(name)
    if e:
        ctx.err(path, f"Invalid value: {name!r}: {e}")
    elif name in seen:
        ctx.err(path, f"Duplicate value: {name!r}")
    seen.add(name)


# --------------------------------------------------------------------------- metadata


def validate_labels(ctx: Ctx, labels: Any, path: str) -> None:
    if labels is None:
        return
    if not is_dict(labels):
        ctx.err(path, f"must be a map of label keys to string values, not {type_name(labels)}")
        return
    for k, v in labels.items():
        e = selectors.validate_label_key(k)
        if e:
            ctx.err(path, f"Invalid value: {k!r}: {e}")
        e = selectors.validate_label_value(v)
        if e:
            if isinstance(v, (int, float, bool)) or v is None:
                ctx.err(f"{path}.{k}", f"must be a string (quote it in YAML), not {type_name(v)} {v!r}")
            else:
                ctx.err(f"{path}.{k}", f"Invalid value: {v!r}: {e}")


def validate_annotations(ctx: Ctx, ann: Any, path: str) -> None:
    if ann is None:
        return
    if not is_dict(ann):
        ctx.err(path, f"must be a map of keys to string values, not {type_name(ann)}")
        return
    total = 0
    for k, v in ann.items():
        e = selectors.validate_label_key(k)
        if e:
            ctx.err(path, f"Invalid value: {k!r}: {e}")
        if not isinstance(v, str):
            ctx.err(f"{path}.{k}", f"must be a string (quote it in YAML), not {type_name(v)} {v!r}")
            continue
        total += len(str(k)) + len(v)
    if total > _ANNOTATIONS_MAX:
        ctx.err(path, f"Too long: may not be more than {_ANNOTATIONS_MAX} bytes")


def validate_metadata(ctx: Ctx, obj: Obj, kind: str) -> None:
    meta = obj.get("metadata")
    if meta is None:
        ctx.err("metadata", "Required value")
        return
    if not is_dict(meta):
        ctx.err("metadata", f"must be an object, not {type_name(meta)}")
        return
    name = meta.get("name")
    if name is None or name == "":
        ctx.err("metadata.name", "Required value: name is required")
    elif not isinstance(name, str):
        ctx.err("metadata.name", f"must be a string, not {type_name(name)} {name!r}")
    else:
        e = dns1035_label_error(name) if kind == "Service" else dns1123_subdomain_error(name)
        if e:
            ctx.err("metadata.name", f"Invalid value: {name!r}: {e}")
    ns = meta.get("namespace")
    if ns is not None:
        if not isinstance(ns, str):
            ctx.err("metadata.namespace", f"must be a string, not {type_name(ns)} {ns!r}")
        else:
            e = dns1123_label_error(ns)
            if e:
                ctx.err("metadata.namespace", f"Invalid value: {ns!r}: {e}")
    validate_labels(ctx, meta.get("labels"), "metadata.labels")
    validate_annotations(ctx, meta.get("annotations"), "metadata.annotations")


# --------------------------------------------------------------------------- ports and quantities


def validate_port_ref(ctx: Ctx, value: Any, path: str, required: bool = True) -> None:
    """An IntOrString port: 1-65535 or an IANA service name."""
    if value is None:
        if required:
            ctx.err(path, "Required value")
        return
    if is_int(value):
        if not 1 <= value <= 65535:
            ctx.err(path, f"Invalid value: {value}: must be between 1 and 65535, inclusive")
    elif isinstance(value, str):
        e = iana_svc_name_error(value)
        if e:
            ctx.err(path, f"Invalid value: {value!r}: {e}")
    else:
        ctx.err(path, f"must be an integer or a port name, not {type_name(value)} {value!r}")


def int_or_percent(ctx: Ctx, value: Any, path: str) -> int | None:
    """Validate an IntOrString ``maxSurge``/``maxUnavailable``; returns the number (percent or int)."""
    if is_int(value):
        if value < 0:
            ctx.err(path, f"Invalid value: {value}: must be greater than or equal to 0")
            return None
        return value
    if isinstance(value, str):
        if not _PERCENT.match(value):
            ctx.err(
                path,
                f"Invalid value: {value!r}: a valid percent string must be a numeric string "
                "followed by an ending '%' (e.g. '1%', or '93%', regex used for validation "
                "is '[0-9]+%')",
            )
            return None
        return int(value[:-1])
    ctx.err(path, f"must be an integer or a percentage string, not {type_name(value)} {value!r}")
    return None
