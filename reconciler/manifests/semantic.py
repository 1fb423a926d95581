"""Semantic equality: empty and absent are the same value, as Kubernetes compares objects.

Kubernetes decodes a manifest into typed Go structs before anything compares it, so a field
spelled out empty (``resources: {}``, ``env: []``, ``creationTimestamp: null``, ``status: {}``)
decodes to the same value as the field left out, and ``apiequality.Semantic.DeepEqual`` treats a
nil and an empty slice or map as equal (k8s.io/apimachinery/third_party/forked/golang/reflect/
deep_equal.go). So adding ``resources: {}`` to a Deployment's template starts no rollout there.

gitship keeps objects as plain dicts, so it gets the same answer by dropping empty values before
it compares or hashes: ``None``, ``[]`` and ``{}`` anywhere in the tree. One exception: a volume's
source (``volumes[i].emptyDir: {}``, ``downwardAPI: {}``, ``secret: {}``) is a pointer in Go, and an
empty source is a choice, not an absence: those are kept.
"""

from __future__ import annotations

from typing import Any

# Lists whose items are Volumes (PodSpec.volumes): their source keys stay even when empty.
_VOLUME_LISTS = frozenset({"volumes"})


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list)) and not value)


def semantic(obj: Any) -> Any:
    """``obj`` as Kubernetes would compare it: empty values dropped, volume sources kept."""
    return _semantic(obj, parent_key=None)


def _semantic(value: Any, parent_key: Any) -> Any:
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, sub in value.items():
            pruned = _semantic(sub, key)
            if not _empty(pruned):
                out[key] = pruned
        return out
    if isinstance(value, list):
        if parent_key in _VOLUME_LISTS:
            return [_volume(item) for item in value]
        return [_semantic(item, None) for item in value]
    return value


def _volume(item: Any) -> Any:
    """A Volume: its source keeps its place even when it is ``{}``."""
    if not isinstance(item, dict):
        return _semantic(item, None)
    out: dict[Any, Any] = {}
    for key, sub in item.items():
        pruned = _semantic(sub, key)
        if isinstance(sub, dict) or not _empty(pruned):
            out[key] = pruned
    return out
