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

A ``hostPath`` volume is not written: it is the host's own path, checked against the operator's
``--allow-host-path`` prefixes with its symlinks resolved (``host_path_source``; refused:
CreateContainerConfigError), its ``type`` checked or created (DirectoryOrCreate, FileOrCreate),
and the resolved path is what the runtime binds. It is never removed with the pod. A subPath of
any volume must stay inside the volume once its symlinks are resolved.

A ``persistentVolumeClaim`` volume is not written either: it is its PersistentVolume's folder,
bound as a hostPath is. A folder under the runtime's storage dir (runtime/storage.py, where the
built-in provisioner makes them) needs no ``--allow-host-path``; any other path of a
PersistentVolume obeys it, as a pod's own hostPath does (the repository writes PersistentVolumes
too). The data outlives the pod. A Docker volume of the provisioner (a "csi" plan) is for the
Docker runtime alone (``prepare_pod(..., docker_volumes=True)``).

Secrets are written to disk under the state dir (Kubernetes keeps them on a tmpfs): the
``volumes`` directory is readable by its owner only, and each file has its volume's mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from .kernel import ConfigError
from .kernel.env import ConfigObjects
from .kernel.volumes import CSI_DRIVER, Files, HostPathTypeError, Mount, VolumeError, VolumePlan, container_mounts
from .kernel.volumes import host_path_action, host_path_allowed, under_prefix, volume_kind, volume_plan
from .storage import trusted

_log = structlog.get_logger("runtime.volumes")

DATA = "..data"


def pod_dir(state_dir: str, uid: str) -> str:
    return os.path.join(state_dir, "volumes", uid)


def volume_dir(state_dir: str, uid: str, name: str) -> str:
    return os.path.join(pod_dir(state_dir, uid), name)


def _payload_dir(path: str) -> str | None:
    """The name ``..data`` points at, if it is one of this volume's own payload directories: a
    ``..``-named real directory directly in ``path``. Anything else (a link planted by whoever could
    write the volume, to ``/`` or ``../..``) is not followed, not read and never removed."""
    try:
        target = os.readlink(os.path.join(path, DATA))
    except OSError:
        return None
    if "/" in target or not target.startswith("..") or target in ("..", DATA, "..data_tmp"):
        return None
    try:
        st = os.lstat(os.path.join(path, target))
    except OSError:
        return None
    return target if stat.S_ISDIR(st.st_mode) else None


def _read_current(path: str) -> Files | None:
    """The payload under ``..data`` now ({relative path: (bytes, mode)}), or None if there is none
    (or it is not this writer's: see ``_payload_dir``). Symlinks inside it are not followed."""
    name = _payload_dir(path)
    if name is None:
        return None
    base = os.path.join(path, name)
    out: Files = {}
    for root, _dirs, names in os.walk(base):
        for n in names:
            full = os.path.join(root, n)
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                out[os.path.relpath(full, base)] = (f.read(), st.st_mode & 0o7777)
    return out


def write_atomic(path: str, files: Files) -> bool:
    """Make ``path`` hold exactly ``files`` (the ``..data`` swap). False when it already did.

    The containers mount the volume read-only (kernel READ_ONLY_KINDS); still, nothing found in
    ``path`` is trusted: an old ``..data`` that is not one of its own directories is replaced
    without being followed or removed through (CVE-2017-1002102)."""
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
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)
    old = _payload_dir(path)
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


def resolve_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    """The operator's ``--allow-host-path`` values as absolute paths with their symlinks resolved."""
    return tuple(os.path.realpath(os.path.abspath(p)) for p in prefixes if p)


def _file_type(path: str) -> str | None:
    """What is at ``path`` (symlinks followed), as host_path_action takes it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISREG, "file"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "char"),
        (stat.S_ISBLK, "block"),
    ):
        if test(mode):
            return name
    return "other"


def host_path_source(plan: VolumePlan, allow_host_paths: Sequence[str], state_dir: str = "") -> str:
    """The hostPath volume's path with its symlinks resolved, if an allowed prefix holds it (or, for
    a PersistentVolume's path, the runtime's storage dir under ``state_dir``).

    Raises ConfigError (CreateContainerConfigError) otherwise."""
    resolved = os.path.realpath(plan.host_path)
    if plan.claim and state_dir and trusted(state_dir, resolved):
        return resolved
    host_path_allowed(plan.name, plan.host_path, resolved, resolve_prefixes(allow_host_paths))
    return resolved


def setup_host_path(plan: VolumePlan, allow_host_paths: Sequence[str], state_dir: str = "") -> str:
    """Check (or create, for DirectoryOrCreate / FileOrCreate) what the hostPath ``type`` asks for;
    the resolved path. Raises ConfigError when not allowed, HostPathTypeError when the check fails."""
    source = host_path_source(plan, allow_host_paths, state_dir)
    action = host_path_action(plan.name, plan.host_path, plan.host_type, _file_type(source))
    try:
        if action == "mkdir":
            os.makedirs(source, mode=0o755, exist_ok=True)
        elif action == "create":
            fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            os.close(fd)
    except OSError as e:
        raise HostPathTypeError(plan.name, f"{action} {plan.host_path}: {(e.strerror or str(e)).lower()}") from None
    if action is not None:  # made now: check it again (as the kubelet does after MakeDir / MakeFile)
        host_path_action(plan.name, plan.host_path, plan.host_type, _file_type(source))
    return source


def prepare_pod(
    state_dir: str,
    pod: Mapping[str, Any],
    objects: ConfigObjects | None,
    node_name: str = "",
    allow_host_paths: Sequence[str] = (),
    *,
    docker_volumes: bool = True,
) -> dict[str, VolumePlan]:
    """Write every volume of the pod under its directory (hostPath, a claim's folder: check it).
    {volume name: its plan}.

    Raises VolumeError (a ConfigError, reason ContainerCreating) when a source is missing (a
    ConfigMap, an unbound claim ...), a hostPath type check fails, or a claim is a Docker volume
    and not ``docker_volumes``; ConfigError (CreateContainerConfigError) for a hostPath outside
    ``allow_host_paths``."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    plans = {
        str(v.get("name")): volume_plan(pod, v, objects, node_name=node_name)
        for v in (pod.get("spec") or {}).get("volumes") or []
    }
    _root(state_dir)
    os.makedirs(pod_dir(state_dir, uid), mode=0o755, exist_ok=True)
    for plan in plans.values():
        if plan.kind == "hostPath":
            setup_host_path(plan, allow_host_paths, state_dir)
        elif plan.kind == "csi" and not docker_volumes:
            raise VolumeError(
                plan.name,
                f'persistentvolume "{plan.pv_name}" is a Docker volume (csi driver {CSI_DRIVER}):'
                " this runtime cannot mount it",
            )
    for name, plan in plans.items():
        path = volume_dir(state_dir, uid, name)
        if plan.kind in ("hostPath", "csi"):
            continue
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


async def refresh_pod(
    state_dir: str, pod: Mapping[str, Any], objects: ConfigObjects | None, node_name: str = ""
) -> None:
    """``update_pod`` off the event loop, logged: what both runtimes do when a running pod's
    ConfigMaps or Secrets changed (a failure is logged; the next change tries again)."""
    md = pod.get("metadata") or {}
    update = functools.partial(update_pod, state_dir, pod, objects, node_name)
    try:
        names = await asyncio.to_thread(update)
    except OSError as e:
        _log.warning("volume_update_failed", uid=md.get("uid"), pod=md.get("name"), error=str(e))
        return
    if names:
        _log.info("volumes_updated", uid=md.get("uid"), pod=md.get("name"), volumes=names)


def claim_plans(pod: Mapping[str, Any], objects: ConfigObjects | None) -> dict[str, VolumePlan]:
    """{persistentVolumeClaim volume name: its plan}. Raises VolumeError (unbound claim ...)."""
    return {
        str(v.get("name")): volume_plan(pod, v, objects)
        for v in (pod.get("spec") or {}).get("volumes") or []
        if volume_kind(v) == "persistentVolumeClaim"
    }


def _host_path_roots(
    state_dir: str, pod: Mapping[str, Any], allow_host_paths: Sequence[str], claims: Mapping[str, VolumePlan]
) -> dict[str, str]:
    """{hostPath volume or claim name: its resolved, allowed path}. Raises ConfigError."""
    out = {}
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if volume_kind(v) == "hostPath":
            out[str(v.get("name"))] = host_path_source(volume_plan(pod, v, None), allow_host_paths)
    for name, plan in claims.items():
        if plan.kind == "hostPath":
            out[name] = host_path_source(plan, allow_host_paths, state_dir)
    return out


def host_mounts(
    state_dir: str,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    allow_host_paths: Sequence[str] = (),
    objects: ConfigObjects | None = None,
) -> list[tuple[str, str, bool, Mount]]:
    """The container's mounts as (host source, path in the container, read-only, the mount):
    ``mount_sources`` without the volumes' roots."""
    found = mount_sources(state_dir, pod, container, env, allow_host_paths, objects)
    return [(source, target, ro, m) for source, target, ro, m, _root in found]


def mount_sources(
    state_dir: str,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    allow_host_paths: Sequence[str] = (),
    objects: ConfigObjects | None = None,
) -> list[tuple[str, str, bool, Mount, str]]:
    """The container's mounts as (host source, path in the container, read-only, the mount, the
    volume's root for a subPath, else "").

    A hostPath volume's source is its resolved host path (checked against ``allow_host_paths``
    again), a claim's its PersistentVolume's folder (from ``objects``; read-only where the claim
    volume is). A claim that is a Docker volume ("csi") gives its volume name as the source, and
    its subPath is left to the caller. A subPath of a volume that does not exist yet is made as a
    directory (the kubelet does); its source is the path with its symlinks resolved, which must be
    inside the volume (the kubelet's check, CVE-2017-1002101: ConfigError naming the volume, the
    subPath and where it leads). The runtime mounts it without following a symlink again
    (runtime/safepath.py) where it can: a container may swap one in meanwhile."""
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    claims = claim_plans(pod, objects)
    hosts = _host_path_roots(state_dir, pod, allow_host_paths, claims)
    out = []
    for m in container_mounts(pod, container, env):
        plan = claims.get(m.volume)
        read_only = m.read_only or (plan is not None and plan.read_only)
        if plan is not None and plan.kind == "csi":
            out.append((plan.volume_handle, m.mount_path, read_only, m, ""))
            continue
        root = hosts.get(m.volume) or volume_dir(state_dir, uid, m.volume)
        if not m.sub_path:
            out.append((root, m.mount_path, read_only, m, ""))
            continue
        real_root = os.path.realpath(root)
        source = subpath_source(real_root, m.volume, m.sub_path)
        if not os.path.lexists(source):
            os.makedirs(source, mode=0o755 if m.volume in hosts else 0o777, exist_ok=True)
            source = subpath_source(real_root, m.volume, m.sub_path)  # made: check it again
        out.append((source, m.mount_path, read_only, m, real_root))
    return out


def subpath_source(real_root: str, volume: str, sub_path: str) -> str:
    """``sub_path`` of the volume at ``real_root`` (its symlinks resolved) with its own symlinks
    resolved. Raises ConfigError when that is outside the volume (the kubelet: "is not within the
    volume path"); the message names the volume, the subPath and where it leads."""
    source = os.path.realpath(os.path.join(real_root, sub_path))
    if not under_prefix(source, real_root):
        raise ConfigError(
            f"subPath {sub_path!r} of volume {volume!r} leads out of the volume (to {source}):"
            " a symlink out of a volume is not followed"
        )
    return source


def remove_pod(state_dir: str, uid: str) -> None:
    """The pod's volume directories go (with the pod)."""
    shutil.rmtree(pod_dir(state_dir, uid), ignore_errors=True)
