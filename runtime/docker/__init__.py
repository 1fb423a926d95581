"""The Docker runtime: each pod is a sandbox container plus one container per app container (see runtime.py)."""

from .common import (
    BUSYBOX,
    LABEL_ATTEMPT,
    LABEL_CONTAINER,
    LABEL_INSTANCE,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_OWNER,
    LABEL_SPEC,
    LABEL_UID,
    PAUSE_IMAGE,
    SANDBOX,
    EngineUnreachable,
    busybox_rootfs_tar,
)
from .runtime import DockerRuntime

__all__ = [
    "BUSYBOX",
    "LABEL_ATTEMPT",
    "LABEL_CONTAINER",
    "LABEL_INSTANCE",
    "LABEL_NAME",
    "LABEL_NAMESPACE",
    "LABEL_OWNER",
    "LABEL_SPEC",
    "LABEL_UID",
    "PAUSE_IMAGE",
    "SANDBOX",
    "DockerRuntime",
    "EngineUnreachable",
    "busybox_rootfs_tar",
]
