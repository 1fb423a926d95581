"""Image references and the imagePullPolicy default.

Kubernetes: pkg/apis/core/v1/defaults.go SetDefaults_Container sets ``Always`` when the tag
that pkg/util/parsers.ParseImageName returns is ``latest``, else ``IfNotPresent``.
ParseImageName gives the tag written in the reference, or ``latest`` when the reference has
neither a tag nor a digest. So:

=============================  ============
``nginx``                      Always
``nginx:latest``               Always
``nginx:1.25``                 IfNotPresent
``nginx@sha256:...``           IfNotPresent (a digest, no tag)
``nginx:latest@sha256:...``    Always (the tag is ``latest``; the digest does not matter)
``host:5000/nginx``            Always (``:5000`` is a port, not a tag)
=============================  ============
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def parse_image_ref(image: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of an image reference; tag and digest are "" when absent.

    >>> parse_image_ref("registry:5000/app:1.0@sha256:ab")
    ('registry:5000/app', '1.0', 'sha256:ab')
    """
    ref, _, digest = image.partition("@")
    head, slash, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return head + slash + name, tag, digest
    return ref, "", digest


def default_pull_policy(image: str) -> str:
    """``Always`` when the effective tag is ``latest`` (written, or no tag and no digest), else ``IfNotPresent``."""
    _repo, tag, digest = parse_image_ref(image)
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def pull_policy(container: Mapping[str, Any]) -> str:
    """The container's imagePullPolicy, defaulted from its image when unset."""
    return str(container.get("imagePullPolicy") or default_pull_policy(str(container.get("image") or "")))
