"""A pod's volumes on the Docker runtime: the same directories as in-process, as bind mounts.

Where it sits: pods.py asks ``container_mounts`` for the ``mounts`` of a container's
HostConfig. The volume directories are written by runtime/volumes.py under
``{state_dir}/volumes/{uid}/{volume}/`` on this machine, so the engine must run here (a
remote ``docker_host`` would not see them). configMap, secret, downwardAPI and projected
volumes and disk ``emptyDir`` volumes are bind mounts of those directories (``readOnly``
honoured); an update of a ConfigMap or Secret rewrites the files in place (the ``..data``
swap) and the bind mount shows the new ones. A ``hostPath`` volume (allowed by the operator's
``--allow-host-path``) is a bind mount of the host's path itself. An ``emptyDir`` with ``medium: Memory`` is a
Docker named volume of the local driver with ``type=tmpfs`` (``size`` = sizeLimit), one per pod
and volume, so every container of the pod shares it; it carries the pod's labels and goes
with the pod (``remove_volumes``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import docker.types  # type: ignore[import-untyped]

from runtime import volumes
from runtime.kernel import ConfigError, parse_quantity

from .common import LABEL_INSTANCE, LABEL_UID


def tmpfs_volume_name(instance: str, uid: str, volume: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"gs_{instance}_{uid}_{volume}")


def container_mounts(
    state_dir: str,
    instance: str,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    env: Mapping[str, str],
    allow_host_paths: Sequence[str] = (),
) -> list[Any]:
    """The container's volumeMounts as docker.types.Mount (bind mounts, or tmpfs volumes). The pod's
    volume directories must be written first (runtime/volumes.py prepare_pod). A hostPath volume is
    a bind mount of its resolved host path, if ``allow_host_paths`` holds it."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    memory = {
        str(v.get("name"))
        for v in (pod.get("spec") or {}).get("volumes") or []
        if (v.get("emptyDir") or {}).get("medium") == "Memory"
    }
    sizes = {
        str(v.get("name")): (v.get("emptyDir") or {}).get("sizeLimit")
        for v in (pod.get("spec") or {}).get("volumes") or []
    }
    out = []
    for source, target, read_only, m in volumes.host_mounts(state_dir, pod, container, env, allow_host_paths):
        if m.volume not in memory:
            out.append(docker.types.Mount(target, source, type="bind", read_only=read_only))
            continue
        if m.sub_path:
            raise ConfigError(f"subPath {m.sub_path!r} of a medium: Memory emptyDir is not supported on Docker")
        opts = {"type": "tmpfs", "device": "tmpfs"}
        if sizes.get(m.volume) is not None:
            opts["o"] = f"size={int(parse_quantity(sizes[m.volume]))}"
        out.append(
            docker.types.Mount(
                target,
                tmpfs_volume_name(instance, uid, m.volume),
                type="volume",
                read_only=read_only,
                driver_config=docker.types.DriverConfig("local", opts),
                labels={LABEL_INSTANCE: instance, LABEL_UID: uid},
            )
        )
    return out


def remove_volumes(api: Any, state_dir: str, instance: str, uid: str) -> None:
    """Blocking: the pod's tmpfs volumes (its containers are gone) and its volume directories."""
    found = api.volumes(filters={"label": [f"{LABEL_INSTANCE}={instance}", f"{LABEL_UID}={uid}"]}) or {}
    for v in found.get("Volumes") or []:
        try:
            api.remove_volume(v["Name"], force=True)
        except Exception:  # in use by a container still being removed: the next delete retries
            pass
    volumes.remove_pod(state_dir, uid)
