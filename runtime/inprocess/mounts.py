"""A pod's volumes on the in-process runtime: written under the state dir, mounted in its sandbox.

Where it sits: ``InProcessRuntime`` is built on this class (after isolation.py). The pod kernel
(runtime/kernel/volumes.py) says what each volume holds and where a container mounts it;
runtime/volumes.py writes the directories (``{state_dir}/volumes/{uid}/{volume}/``). This module
mounts them, as the kubelet's order has it: the sandbox first, then the volumes, then the
containers (they wait as ``ContainerCreating`` meanwhile, with the FailedMount message when a
ConfigMap or Secret is missing, until ``set_config_objects`` brings it).

Mounts
    From a thread of gitship's (podnet.run_configure) that enters the holder's mount namespace:
    each ``emptyDir`` with ``medium: Memory`` becomes a tmpfs (``size`` = sizeLimit) mounted on
    its directory, then every volumeMount of every container is a bind mount of the volume's
    directory (or its subPath) at ``mountPath``, remounted read-only where asked. Everything
    happens in the pod's own mount namespace (``/`` is a slave there), so mounting over a
    directory of the host such as /etc/app never affects the host; a ``mountPath`` that does not
    exist is created on the host's filesystem (a container sees the host's files otherwise), as an
    empty directory (or an empty file for a file subPath), and left there. The containers of a
    pod share its mount namespace, so they all see every container's mounts (Kubernetes gives
    each container only its own); two containers mounting different volumes at one path get
    the later one. A ``persistentVolumeClaim`` volume is bound from its PersistentVolume's folder
    (runtime/volumes.py; the built-in provisioner's are ``{state_dir}/storage/{pv}/``,
    runtime/storage.py), subPath included, read-only where the volume or the claim says so; the
    folder stays when the pod goes. A claim that is unbound (or whose objects have not arrived)
    keeps the containers ``ContainerCreating`` with its message until ``set_config_objects``
    brings them.

Updates
    ``set_config_objects``: the files of running pods whose ConfigMaps or Secrets changed are
    rewritten in place with the ``..data`` swap (runtime/volumes.py); the bind mount is of the
    directory, so the containers see the new files at once. subPath mounts keep the old file.

Without sandboxes (not root, a loopback pod CIDR, ``hostNetwork``) a pod has no mount namespace
of its own: a container with volumeMounts waits with CreateContainerConfigError and a message
that says mounts need pod sandboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
from collections.abc import Mapping
from typing import Any

import structlog

from .. import safepath, storage, volumes
from ..kernel import ConfigError, container_env
from ..kernel.env import CONFIG_ERROR, implicit_env
from ..kernel.volumes import CONTAINER_CREATING, HostPathTypeError, pod_has_mounts, volume_sources
from . import podnet
from .isolation import SandboxSupervisor
from .state import PodState

log = structlog.get_logger("runtime.inprocess")

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
RETRY_FIRST, RETRY_MAX = 1.0, 30.0

Bind = tuple[str, str, bool, str]  # host source, mountPath, read-only, the volume's root for a subPath ("")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [x.encode() if x is not None else None for x in (source, target, fstype, data)]
    libc = podnet._c()
    rc = libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3])
    if rc != 0:
        err = ctypes.get_errno()
        raise podnet.SetupError(f"mount {source or fstype} on {target}: {os.strerror(err)}")


def _make_target(source: str, target: str) -> None:
    """The mount point, made when missing: a directory for a directory, an empty file for a file."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
        return
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
        with open(target, "ab"):
            pass


def _bind(source: str, target: str, root: str) -> None:
    """Bind ``source`` at ``target``; a subPath (``root`` set) through a descriptor opened below its
    volume without following a symlink (runtime/safepath.py), so a link swapped in after the check
    is refused, not followed."""
    if not root:
        _make_target(source, target)
        _mount(source, target, None, podnet.MS_BIND | podnet.MS_REC)
        return
    fd = safepath.open_beneath(root, source)
    try:
        _make_target(safepath.fd_path(fd), target)
        _mount(safepath.fd_path(fd), target, None, podnet.MS_BIND | podnet.MS_REC)
    finally:
        os.close(fd)


def mount_in(pid: int, tmpfs: list[tuple[str, int | None]], binds: list[Bind]) -> None:
    """In the mount namespace of holder ``pid``: the tmpfs volumes, then the bind mounts. Changes the
    calling thread's namespaces: run it only through podnet.run_configure."""
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        podnet.unshare(podnet.CLONE_FS, "fs")
        podnet.setns(fd, podnet.CLONE_NEWNS, "mnt")
    finally:
        os.close(fd)
    for path, size in tmpfs:
        opts = "mode=0777" + (f",size={size}" if size else "")
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for source, target, read_only, root in binds:
        _bind(source, target, root)
        if read_only:
            _mount(None, target, None, podnet.MS_BIND | MS_REMOUNT | MS_RDONLY)


class MountSupervisor(SandboxSupervisor):
    """Each pod's volumes: written, mounted in its sandbox before its containers, kept up to date."""

    allow_host_paths: tuple[str, ...] = ()  # the operator's --allow-host-path prefixes (hostPath volumes)

    # -- hooks of the container lifecycle ---------------------------------------------------

    def _needs_volumes(self, p: PodState) -> bool:
        return bool(p.spec.get("volumes")) and (self._isolated(p) or pod_has_mounts(p.pod))

    def _sandbox_usable(self, p: PodState) -> bool:
        if not super()._sandbox_usable(p):
            return False
        return p.volumes_ready or not self._needs_volumes(p)

    def _ensure_sandbox(self, p: PodState) -> None:
        if not super()._sandbox_usable(p):
            super()._ensure_sandbox(p)
            return
        if p.volumes_ready or not self._needs_volumes(p) or not self._alive(p):
            return
        if not self._isolated(p):
            why = self.isolation_reason if self.isolation != "sandbox" else "the pod uses hostNetwork"
            p.volume_error = (
                CONFIG_ERROR,
                f"volume mounts need pod sandboxes (gitship as root with a routable pod CIDR): {why}",
            )
            for c in p.containers:
                if c.awaiting_sandbox:
                    self._wait(p, c, *p.volume_error)
            return
        if p.volume_task is None or p.volume_task.done():
            p.volume_task = self._spawn(self._mount_volumes(p))

    def _creating_status(self, p: PodState) -> tuple[str, str | None]:
        if p.sandbox_error is None and p.volume_error is not None:
            return p.volume_error
        return super()._creating_status(p)

    def _on_holder_exit(self, p: PodState, pidfd: int) -> None:
        if p.holder_pidfd == pidfd:
            p.volumes_ready = False  # the mounts died with the sandbox's mount namespace
        super()._on_holder_exit(p, pidfd)

    # -- mounting ------------------------------------------------------------------------------

    def _binds(self, p: PodState) -> list[Bind]:
        """Every container's mounts (host source, mountPath, read-only), parents first."""
        out: list[Bind] = []
        for c in p.containers:
            try:  # subPathExpr: $(VAR) of the container's variables
                env = container_env(
                    p.pod,
                    c.spec,
                    pod_ip=p.ip,
                    host_ip=self.host_ip,
                    node_name=self.node_name,
                    implicit=implicit_env(p.pod, c.spec, p.ip),
                    objects=self.config_objects,
                )
            except ConfigError:
                env = {}
            mounts = volumes.mount_sources(
                self.state_dir, p.pod, c.spec, env, self.allow_host_paths, objects=self.config_objects
            )
            out.extend((src, dst, ro, root) for src, dst, ro, _m, root in mounts)
        return sorted(out, key=lambda b: b[1].rstrip("/").count("/"))

    async def _mount_volumes(self, p: PodState) -> None:
        """Write the pod's volumes and mount them in its sandbox; then start its waiting containers.

        A missing ConfigMap or Secret waits for ``set_config_objects``; a failed mount is retried."""
        delay = RETRY_FIRST
        while self._alive(p) and not p.volumes_ready:
            sb = p.sandbox
            if sb is None or p.holder_pidfd is None:
                return  # the sandbox went; making the new one starts over
            try:
                prepare = functools.partial(
                    volumes.prepare_pod,
                    self.state_dir,
                    p.pod,
                    self.config_objects,
                    self.node_name,
                    self.allow_host_paths,
                    docker_volumes=False,
                )
                plans = await asyncio.to_thread(prepare)
                binds = self._binds(p)
                tmpfs = [
                    (volumes.volume_dir(self.state_dir, p.uid, n), pl.size_limit)
                    for n, pl in plans.items()
                    if pl.kind == "emptyDir" and pl.memory
                ]
                await podnet.run_configure(functools.partial(mount_in, sb.holder.pid, tmpfs, binds))
            except asyncio.CancelledError:
                raise
            except HostPathTypeError as e:  # what is at the host's path may change: try again later
                self._volumes_failed(p, (e.reason, e.message))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except ConfigError as e:
                self._volumes_failed(p, (e.reason, e.message))
                return  # set_config_objects tries again
            except (podnet.SetupError, OSError) as e:
                self._volumes_failed(p, (CONTAINER_CREATING, f"MountVolume.SetUp failed: {e}"))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if p.sandbox is not sb:
                continue  # the sandbox died meanwhile
            p.volumes_ready, p.volume_error = True, None
            self._save(p)
            log.info("volumes_mounted", uid=p.uid, pod=p.name, mounts=len(binds))
        p.volume_task = None
        for c in p.containers:
            if c.awaiting_sandbox and self._alive(p):
                self._launch(p, c)

    def _volumes_failed(self, p: PodState, error: tuple[str, str]) -> None:
        p.volume_error = error
        log.warning("FailedMount", uid=p.uid, pod=p.name, reason=error[0], message=error[1])
        for c in p.containers:
            if c.awaiting_sandbox:
                self._wait(p, c, *error)

    # -- ConfigMaps, Secrets, claims ------------------------------------------------------------

    def _config_changed(self, old: Mapping[tuple[str, str, str], Any], new: Mapping[tuple[str, str, str], Any]) -> None:
        """New objects: rewrite the volumes that read changed ConfigMaps and Secrets, retry the waiting
        (a missing object, an unbound claim)."""
        changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
        for p in list(self._pods.values()):
            if not self._alive(p):
                continue
            if p.volumes_ready and changed & volume_sources(p.pod, new):
                self._spawn(volumes.refresh_pod(self.state_dir, p.pod, self.config_objects, self.node_name))
            for c in p.containers:
                reason = c.state.get("waiting", {}).get("reason")
                if reason == CONFIG_ERROR or (c.awaiting_sandbox and p.volume_error is not None):
                    self._launch(p, c)

    # -- the built-in provisioner's folders (Runtime.provision_volume / delete_volume) --------------

    async def provision_volume(self, pv_name: str, claim: Mapping[str, Any]) -> dict[str, Any]:
        """The folder ``{state_dir}/storage/{pv_name}`` (runtime/storage.py); its hostPath fragment."""
        return await storage.provision(self.state_dir, pv_name)

    async def delete_volume(self, pv: Mapping[str, Any]) -> None:
        """Removes the PV's folder if it lies under ``{state_dir}/storage``; refuses any other source."""
        await storage.delete(self.state_dir, pv)

    # -- the end -------------------------------------------------------------------------------------

    def _remove_volumes(self, p: PodState) -> None:
        task, p.volume_task = p.volume_task, None
        if task is not None and not task.done():
            task.cancel()
        volumes.remove_pod(self.state_dir, p.uid)

    def _remove_stale_volume_dirs(self, keep: set[str]) -> None:
        """start(): the volumes of pods that have no state file any more (a crash mid-delete)."""
        root = os.path.join(self.state_dir, "volumes")
        with contextlib.suppress(OSError):
            for uid in os.listdir(root):
                if uid not in keep:
                    shutil.rmtree(os.path.join(root, uid), ignore_errors=True)
