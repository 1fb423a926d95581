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

Storage: the built-in ``local-path`` provisioner makes each PersistentVolume a Docker named
volume of the local driver, ``gitship-{instance}-{pv name}`` (the instance derives from the state
dir, so two gitships never share one), labelled ``gitship.instance`` and ``gitship.storage.pv``
(never ``gitship.pod.uid``: no pod's removal takes it). A ``persistentVolumeClaim`` volume whose
PersistentVolume is such a volume (csi driver ``local-path.gitship.io``) is a volume mount of it
(a subPath: the engine's own from API 1.45, Docker 26; on an older engine a bind mount of the
folder inside the volume's mountpoint, which must then be on this host, as the state dir must);
its name must carry this instance's prefix,
so a repository cannot mount another application's volume. A PersistentVolume with a hostPath or
local path is a bind mount (runtime/volumes.py: under the state dir's ``storage`` folder, or an
``--allow-host-path`` prefix). Only ``delete_storage_volume`` (reclaimPolicy Delete) removes a
volume, and only one labelled as this instance's; a clean stop or a deleted pod never does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker.types  # type: ignore[import-untyped]

import docker.errors  # type: ignore[import-untyped]

from runtime import volumes
from runtime.base import RuntimeError_
from runtime.kernel import ConfigError, parse_quantity
from runtime.kernel.env import ConfigObjects
from runtime.kernel.volumes import CSI_DRIVER, pv_volume_handle, under_prefix

from .common import LABEL_INSTANCE, LABEL_UID

LABEL_STORAGE_PV = "gitship.storage.pv"
LABEL_STORAGE_CLAIM = "gitship.storage.claim"
SUBPATH_API = (1, 45)  # the engine API that mounts a subpath of a volume (Docker 26)


def tmpfs_volume_name(instance: str, uid: str, volume: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"gs_{instance}_{uid}_{volume}")


def storage_prefix(instance: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"gitship-{instance}-")


def storage_volume_name(instance: str, pv_name: str) -> str:
    """The Docker volume of PersistentVolume ``pv_name`` of this gitship instance."""
    return storage_prefix(instance) + re.sub(r"[^a-zA-Z0-9_.-]", "-", pv_name)


def storage_labels(instance: str, pv_name: str, claim: Mapping[str, Any] | None = None) -> dict[str, str]:
    md = (claim or {}).get("metadata") or {}
    labels = {LABEL_INSTANCE: instance, LABEL_STORAGE_PV: pv_name}
    if md.get("name"):
        labels[LABEL_STORAGE_CLAIM] = f"{md.get('namespace') or 'default'}/{md['name']}"
    return labels


def _api_at_least(version: str, want: tuple[int, int]) -> bool:
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= want


def _storage_mount(
    instance: str,
    handle: str,
    pv_name: str,
    m: tuple[str, bool, str],
    api_version: str,
    volume_path: Callable[[str], str] | None,
) -> Any:
    """A claim's Docker volume as a volume mount (``m``: target, read-only, subPath). Its name must
    be this instance's; a missing one is made by the engine with the storage labels. A subPath is
    the engine's (API 1.45) or, on an older engine, a bind mount of the folder inside the volume's
    mountpoint on this host (``volume_path``: the volume's Mountpoint, from the engine)."""
    target, read_only, sub_path = m
    prefix = storage_prefix(instance)
    if not handle.startswith(prefix):
        raise ConfigError(
            f'persistentvolume "{pv_name}": Docker volume {handle!r} was not made by this gitship'
            f" (its volumes are named {prefix}*)"
        )
    labels = storage_labels(instance, pv_name)
    if not sub_path:
        return docker.types.Mount(target, handle, type="volume", read_only=read_only, labels=labels)
    if _api_at_least(api_version, SUBPATH_API):
        return docker.types.Mount(target, handle, type="volume", read_only=read_only, labels=labels, subpath=sub_path)
    if volume_path is None:
        raise ConfigError(f"subPath {sub_path!r} of a Docker volume: the engine's API {api_version} has no subpath")
    root = os.path.realpath(volume_path(handle))
    source = os.path.join(root, sub_path)
    if not under_prefix(os.path.realpath(source), root):
        raise ConfigError(f"subPath {sub_path!r} of persistentvolume {pv_name!r} leads out of the volume")
    os.makedirs(source, mode=0o755, exist_ok=True)
    return docker.types.Mount(target, os.path.realpath(source), type="bind", read_only=read_only)


def container_mounts(
    state_dir: str,
    instance: str,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    env: Mapping[str, str],
    allow_host_paths: Sequence[str] = (),
    objects: ConfigObjects | None = None,
    api_version: str = "",
    volume_path: Callable[[str], str] | None = None,
) -> list[Any]:
    """The container's volumeMounts as docker.types.Mount (bind mounts, tmpfs volumes, storage
    volumes). The pod's volume directories must be written first (runtime/volumes.py prepare_pod).
    A hostPath volume is a bind mount of its resolved host path, if ``allow_host_paths`` holds it;
    a claim's the mount of its PersistentVolume (``objects``) as the module docstring says."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    claims = {n: pl for n, pl in volumes.claim_plans(pod, objects).items() if pl.kind == "csi"}
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
    for source, target, read_only, m in volumes.host_mounts(
        state_dir, pod, container, env, allow_host_paths, objects=objects
    ):
        if m.volume in claims:
            pv = claims[m.volume].pv_name
            mount = (target, read_only, m.sub_path)
            out.append(_storage_mount(instance, source, pv, mount, api_version, volume_path))
            continue
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


def provision_storage_volume(api: Any, instance: str, pv_name: str, claim: Mapping[str, Any]) -> dict[str, Any]:
    """Blocking: the Docker volume of PersistentVolume ``pv_name`` (made if missing); its csi fragment.

    Raises RuntimeError_ when a volume of that name exists and is not this instance's."""
    name = storage_volume_name(instance, pv_name)
    try:
        info = api.create_volume(name, driver="local", labels=storage_labels(instance, pv_name, claim))
    except docker.errors.APIError as exc:
        raise RuntimeError_(f"cannot create Docker volume {name}: {exc.explanation or exc}") from None
    labels = (info or {}).get("Labels") or {}
    if labels.get(LABEL_INSTANCE) != instance:
        raise RuntimeError_(f"Docker volume {name} exists and is not this gitship's (label {LABEL_INSTANCE})")
    return {"csi": {"driver": CSI_DRIVER, "volumeHandle": name}}


def delete_storage_volume(api: Any, instance: str, pv: Mapping[str, Any]) -> None:
    """Blocking: remove the Docker volume of a PersistentVolume this instance provisioned.

    Gone already: nothing to do. Raises RuntimeError_ for a PV that is no csi volume of
    CSI_DRIVER, a volume not labelled as this instance's, or one still in use (retry later)."""
    pv_name = str((pv.get("metadata") or {}).get("name") or "")
    handle = pv_volume_handle(pv)
    if handle is None:
        raise RuntimeError_(f'persistentvolume "{pv_name}": its source is not one this runtime provisioned')
    try:
        info = api.inspect_volume(handle)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise RuntimeError_(f"cannot inspect Docker volume {handle}: {exc.explanation or exc}") from None
    if ((info or {}).get("Labels") or {}).get(LABEL_INSTANCE) != instance:
        raise RuntimeError_(f'persistentvolume "{pv_name}": Docker volume {handle} is not this gitship\'s')
    try:
        api.remove_volume(handle)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise RuntimeError_(f"cannot remove Docker volume {handle} (retried later): {exc.explanation or exc}") from None


def volume_mountpoint(api: Any, name: str) -> str:
    """Blocking: where the engine keeps a volume's data on this host. Raises VolumeError-like
    ConfigError when the volume does not exist (the container waits)."""
    try:
        info = api.inspect_volume(name)
    except docker.errors.NotFound:
        raise ConfigError(f'docker volume "{name}" not found', "ContainerCreating") from None
    return str(info.get("Mountpoint") or "")
