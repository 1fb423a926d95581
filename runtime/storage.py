"""The built-in ``local-path`` provisioner's folders, shared by every runtime.

Where it sits: the reconciler binds a PersistentVolumeClaim of the ``local-path`` StorageClass
to a new PersistentVolume and asks the runtime to make its backing store
(``Runtime.provision_volume``); at reclaimPolicy Delete it asks it to remove it
(``Runtime.delete_volume``). The in-process runtime keeps each volume as a folder
``{state_dir}/storage/{pv name}/`` (as k3s' local-path provisioner keeps one under
/var/lib/rancher/k3s/storage), mode 0777 so any user of a pod may write it. The folder is
nobody's but the PersistentVolume's: deleting a pod, stopping gitship cleanly, a ``kill -9``, a
restart or an upgrade leave it; only ``remove_folder`` (reclaimPolicy Delete) removes it, and
only a folder under the storage dir.

The claim's requested capacity is recorded in the PersistentVolume, not enforced: the folder
grows as long as the filesystem under the state dir has room (k3s' local-path does the same).

A PersistentVolume whose hostPath (or local path) lies under the storage dir needs no
``--allow-host-path`` (the runtime made it); ``trusted`` says whether a resolved path does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping
from typing import Any

from .base import RuntimeError_
from .kernel.volumes import pv_path, under_prefix

STORAGE = "storage"


class StorageError(Exception):
    """A folder cannot be made or removed (the runtime raises it as RuntimeError_)."""


def storage_dir(state_dir: str) -> str:
    return os.path.join(os.path.abspath(state_dir), STORAGE)


def check_pv_name(pv_name: str) -> None:
    """A PersistentVolume name usable as one path element (the API server's DNS subdomain rule)."""
    if not pv_name or pv_name in (".", "..") or "/" in pv_name or "\0" in pv_name or len(pv_name) > 253:
        raise StorageError(f"invalid PersistentVolume name {pv_name!r}")


def folder(state_dir: str, pv_name: str) -> str:
    check_pv_name(pv_name)
    return os.path.join(storage_dir(state_dir), pv_name)


def trusted(state_dir: str, resolved: str) -> bool:
    """``resolved`` (a path with its symlinks resolved) lies inside the storage dir (not the dir itself)."""
    root = os.path.realpath(storage_dir(state_dir))
    return resolved != root and under_prefix(resolved, root)


def provision_folder(state_dir: str, pv_name: str) -> dict[str, Any]:
    """Blocking: make ``{state_dir}/storage/{pv_name}`` (0777) if missing; the PV's hostPath fragment."""
    path = folder(state_dir, pv_name)
    try:
        os.makedirs(storage_dir(state_dir), mode=0o711, exist_ok=True)
        try:
            os.mkdir(path, 0o777)
            os.chmod(path, 0o777)  # not the umask's: every user of a pod may write (the kubelet's 0777)
        except FileExistsError:
            if not os.path.isdir(path) or os.path.islink(path):
                raise StorageError(f"{path} exists and is not a directory") from None
    except OSError as e:
        raise StorageError(f"cannot make {path}: {e.strerror or e}") from None
    return {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}


def remove_folder(state_dir: str, pv: Mapping[str, Any]) -> bool:
    """Blocking: remove the folder of a PV whose hostPath / local path is under the storage dir.

    False if the PV has no such path source (the caller decides); raises StorageError for a path
    outside the storage dir (not the runtime's to remove). Already gone is fine."""
    path = pv_path(pv)
    if path is None:
        return False
    name = (pv.get("metadata") or {}).get("name")
    resolved = os.path.realpath(path)
    if not trusted(state_dir, resolved):
        raise StorageError(
            f'persistentvolume "{name}": {path} is not under {storage_dir(state_dir)}: gitship did not provision it'
        )
    try:
        if os.path.isdir(resolved):
            shutil.rmtree(resolved)
        else:
            os.unlink(resolved)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StorageError(f"cannot remove {resolved}: {e.strerror or e}") from None
    return True


async def provision(state_dir: str, pv_name: str) -> dict[str, Any]:
    """``provision_folder`` off the event loop; RuntimeError_ on failure (Runtime.provision_volume)."""
    try:
        return await asyncio.to_thread(provision_folder, state_dir, pv_name)
    except StorageError as e:
        raise RuntimeError_(str(e)) from None


async def delete(state_dir: str, pv: Mapping[str, Any], *, other: str = "") -> bool:
    """``remove_folder`` off the event loop (Runtime.delete_volume). False when the PV has no path
    source; then, unless ``other`` names the source the caller handles itself, RuntimeError_."""
    try:
        done = await asyncio.to_thread(remove_folder, state_dir, pv)
    except StorageError as e:
        raise RuntimeError_(str(e)) from None
    if done:
        return True
    spec = pv.get("spec") or {}
    if other and other in spec:
        return False
    name = (pv.get("metadata") or {}).get("name")
    raise RuntimeError_(f'persistentvolume "{name}": its source is not one this runtime provisioned')
