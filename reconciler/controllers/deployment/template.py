"""Pod-template identity: equality ignoring the hash label, and the pod-template-hash.

Kubernetes: ``EqualIgnoreHash`` in pkg/controller/deployment/util/deployment_util.go and
``ComputeHash`` in pkg/controller/controller_utils.go (docs/kubernetes.md §1.3). gitship
hashes the template's canonical JSON rather than Go's object dump, so the hash values differ
from a real cluster's; their role (a stable name per template, bumped by collisionCount) is
the same.
"""

from __future__ import annotations

import json

from reconciler.controllers.deployment.util import HASH_LABEL
from reconciler.controllers.podutil import ALPHABET
from reconciler.manifests.semantic import semantic
from reconciler.types import Obj


def normalize_template(template: Obj) -> Obj:
    """A copy of a pod template as Kubernetes compares it: without the hash label, and with empty
    values (``resources: {}``, ``env: []``, ``creationTimestamp: null``) the same as absent ones
    (reconciler/manifests/semantic.py)."""
    tpl: Obj = semantic(template or {})  # a new tree: the caller's template is not touched
    meta = tpl.get("metadata")
    if isinstance(meta, dict):
        labels = dict(meta.get("labels") or {})
        labels.pop(HASH_LABEL, None)
        for key, value in (("labels", labels), ("annotations", meta.get("annotations"))):
            if value:
                meta[key] = value
            else:
                meta.pop(key, None)
        if not meta:
            tpl.pop("metadata")
    return tpl


def equal_ignore_hash(t1: Obj, t2: Obj) -> bool:
    """Semantic equality of two pod templates ignoring the pod-template-hash label."""
    return normalize_template(t1) == normalize_template(t2)


def _fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each character -> ALPHABET[ord(c) % 27]."""
    return "".join(ALPHABET[ord(c) % len(ALPHABET)] for c in text)


def pod_template_hash(template: Obj, collision_count: int | None = None) -> str:
    """FNV-1a 32 of the normalized template's canonical JSON (+ collision count), encoded."""
    canonical = json.dumps(normalize_template(template), sort_keys=True, separators=(",", ":"))
    data = canonical.encode()
    if collision_count is not None:
        data += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(_fnv1a32(data)))
