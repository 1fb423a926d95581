"""Paths inside a pod's volumes that must stay inside them, checked as the API server does
(kubernetes/kubernetes pkg/apis/core/validation/validation.go: validateLocalDescendingPath,
validatePathNoBacksteps, validateLocalNonReservedPath):

- a container's ``volumeMounts[].subPath``: relative, no ``..`` element;
- the ``items[].path`` of a configMap, secret, downwardAPI or projected source: the same, and not
  starting with ``..`` (the kubelet's ``..data`` is reserved);
- ``hostPath.path``: no ``..`` element.

The runtimes refuse such paths too when they make the mounts; this rejects the commit at once.
"""

from __future__ import annotations

from typing import Any

from reconciler.manifests.validate.common import Ctx, is_dict, is_list

_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _backsteps(ctx: Ctx, value: str, field: str) -> bool:
    if ".." in value.split("/"):
        ctx.err(field, f"Invalid value: {value!r}: must not contain '..'")
        return True
    return False


def _descending(ctx: Ctx, value: Any, field: str, reserved: bool = False) -> None:
    if not isinstance(value, str) or not value:
        return  # types and required values are checked elsewhere
    if value.startswith("/"):
        ctx.err(field, f"Invalid value: {value!r}: must be a relative path")
    if not _backsteps(ctx, value, field) and reserved and value.startswith(".."):
        ctx.err(field, f"Invalid value: {value!r}: must not start with '..'")


def _items(ctx: Ctx, source: Any, field: str) -> None:
    items = source.get("items") if is_dict(source) else None
    for n, item in enumerate(items if is_list(items) else ()):
        if is_dict(item):
            _descending(ctx, item.get("path"), f"{field}.items[{n}].path", reserved=True)


def _volume(ctx: Ctx, v: Any, field: str) -> None:
    if not is_dict(v):
        return
    for kind in ("configMap", "secret", "downwardAPI"):
        _items(ctx, v.get(kind), f"{field}.{kind}")
    projected = v.get("projected")
    sources = projected.get("sources") if is_dict(projected) else None
    for n, src in enumerate(sources if is_list(sources) else ()):
        for kind in ("configMap", "secret", "downwardAPI"):
            if is_dict(src):
                _items(ctx, src.get(kind), f"{field}.projected.sources[{n}].{kind}")
    host = v.get("hostPath")
    if is_dict(host) and isinstance(host.get("path"), str):
        _backsteps(ctx, host["path"], f"{field}.hostPath.path")


def validate_volume_paths(ctx: Ctx, spec: dict[str, Any], path: str) -> None:
    """The paths of ``spec``'s volumes and of its containers' mounts that must not leave the volume."""
    volumes = spec.get("volumes")
    for i, v in enumerate(volumes if is_list(volumes) else ()):
        _volume(ctx, v, f"{path}.volumes[{i}]")
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        for i, c in enumerate(containers if is_list(containers) else ()):
            mounts = c.get("volumeMounts") if is_dict(c) else None
            for m, vm in enumerate(mounts if is_list(mounts) else ()):
                if is_dict(vm):
                    _descending(ctx, vm.get("subPath"), f"{path}.{key}[{i}].volumeMounts[{m}].subPath")
