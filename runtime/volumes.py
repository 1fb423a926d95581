"""A pod's volume directories on the host, shared by every runtime.

Where it sits: the pod kernel (runtime/kernel/volumes.py) says what each volume holds; this
module writes it under ``{state_dir}/volumes/{pod uid}/{volume name}/`` and the runtime mounts
those directories into the pod (in-process: bind mounts in the sandbox's mount namespace;
Docker: bind mounts of the containers). The directory goes with the pod (``remove_pod``).

Files of configMap, secret, downwardAPI and projected volumes are written as the kubelet's
AtomicWriter (pkg/volume/util/atomic_writer.go) does, so a reader never sees half an update::

    ..2026_11_30_03_55_01.1234567/   the payload of one version (files with their modes)
    ..data -> ..2026_11_30_03_55_01.1234567
    app.conf -> ..data/app.conf      one symlink per top-level name

An update writes a new timestamped directory, points a new symlink at it and renames it over
``..data`` (one atomic rename: every file changes at once), then fixes the top-level links and
removes the old directory. A process that holds an old file open keeps reading the old version.
A subPath mount of such a file binds the file itself, so it does not see updates (as in
Kubernetes).

Secrets are written to disk under the state dir (Kubernetes keeps them on a tmpfs): the
``volumes`` directory is readable by its owner only, and each file has its volume's mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any

from .kernel import ConfigError
from .kernel.env import ConfigObjects
from .kernel.volumes import Files, Mount, VolumePlan, container_mounts, volume_plan

DATA = "..data"


def pod_dir(state_dir: str, uid: str) -> str:
    return os.path.join(state_dir, "volumes", uid)


def volume_dir(state_dir: str, uid: str, name: str) -> str:
    return os.path.join(pod_dir(state_dir, uid), name)


def _read_current(path: str) -> Files | None:
    """The payload under ``..data`` now ({relative path: (bytes, mode)}), or None if there is none."""
    base = os.path.join(path, DATA)
    if not os.path.islink(base):
        return None
    out: Files = {}
    for root, _dirs, names in os.walk(base, followlinks=True):
        for n in names:
            full = os.path.join(root, n)
            with open(full, "rb") as f:
                out[os.path.relpath(full, base)] = (f.read(), os.stat(full).st_mode & 0o7777)
    return out


def write_atomic(path: str, files: Files) -> bool:
    """Make ``path`` hold exactly ``files`` (the ``..data`` swap). False when it already did."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    try:
        if _read_current(path) == files:
            return False
    except OSError:
        pass
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
    new = os.path.join(path, stamp)
    os.mkdir(new, 0o755)
    for rel, (data, mode) in files.items():
        full = os.path.join(new, rel)
        os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(full, mode)
    old = os.readlink(os.path.join(path, DATA)) if os.path.islink(os.path.join(path, DATA)) else None
    tmp = os.path.join(path, "..data_tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(stamp, tmp)
    os.rename(tmp, os.path.join(path, DATA))
    top = {rel.split("/", 1)[0] for rel in files}
    for name in top:
        link = os.path.join(path, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA, name), link)
    for name in os.listdir(path):
        if name.startswith(".."):
            continue
        if name not in top and os.path.islink(os.path.join(path, name)):
            os.unlink(os.path.join(path, name))
    if old and old != stamp:
        shutil.rmtree(os.path.join(path, old), ignore_errors=True)
    return True


def _root(state_dir: str) -> None:
    root = os.path.join(state_dir, "volumes")
    os.makedirs(root, mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(root, 0o700)


def prepare_pod(
    state_dir: str, pod: Mapping[str, Any], objects: ConfigObjects | None, node_name: str = ""
) -> dict[str, VolumePlan]:
    """Write every volume of the pod under its directory. {volume name: its plan}.

    Raises VolumeError (a ConfigError, reason ContainerCreating) when a source is missing."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    plans = {
        str(v.get("name")): volume_plan(pod, v, objects, node_name=node_name)
        for v in (pod.get("spec") or {}).get("volumes") or []
    }
    _root(state_dir)
    os.makedirs(pod_dir(state_dir, uid), mode=0o755, exist_ok=True)
    for name, plan in plans.items():
        path = volume_dir(state_dir, uid, name)
        if plan.kind == "files":
            write_atomic(path, plan.files)
        else:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o777)  # emptyDir: writable by every user of the pod (the kubelet's 0777)
    return plans


def update_pod(state_dir: str, pod: Mapping[str, Any], objects: ConfigObjects | None, node_name: str = "") -> list[str]:
    """Rewrite the file volumes of a running pod from ``objects``; the names of those that changed.

    A source that went missing leaves the volume as it was (the kubelet keeps the last content)."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    changed = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        try:
            plan = volume_plan(pod, v, objects, node_name=node_name)
        except ConfigError:
            continue
        path = volume_dir(state_dir, uid, plan.name)
        if plan.kind == "files" and os.path.isdir(path) and write_atomic(path, plan.files):
            changed.append(plan.name)
    return changed


def host_mounts(
    state_dir: str, pod: Mapping[str, Any], container: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> list[tuple[str, str, bool, Mount]]:
    """The container's mounts as (host source, path in the container, read-only, the mount).

    A subPath of a volume that does not exist yet is made as a directory (the kubelet does)."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    out = []
    for m in container_mounts(pod, container, env):
        source = volume_dir(state_dir, uid, m.volume)
        if m.sub_path:
            source = os.path.join(source, m.sub_path)
            if not os.path.lexists(source):
                os.makedirs(source, mode=0o777, exist_ok=True)
        out.append((source, m.mount_path, m.read_only, m))
    return out


def remove_pod(state_dir: str, uid: str) -> None:
    """The pod's volume directories go (with the pod)."""
    shutil.rmtree(pod_dir(state_dir, uid), ignore_errors=True)
