"""The Docker runtime: each pod is a sandbox container plus one container per app container.

Layout of a pod on the engine (mirrors dockershim / the kubelet):

* a **sandbox** container (label ``gitship.container=POD``) on the user-defined bridge
  network ``network`` (created if missing), hostname = pod name, with the pod's DNS
  settings; it holds the network (and IPC) namespace. Its image is ``gitship/pause:1``,
  built locally once from ``/usr/bin/busybox`` (``docker import``, no registry needed);
  if busybox is not on the host, the first app container's image is used and must have
  ``sh`` and ``sleep``. A ``sandbox_image`` argument overrides both (its own CMD is used).
* every app container runs with ``network_mode=container:<sandbox>`` (and the sandbox's IPC
  namespace): one IP and one port space per pod; containers reach each other on localhost.
  The pod IP is the sandbox's IP on ``network``; the host reaches it directly (probes).
* every container carries labels ``gitship.instance``, ``gitship.pod.uid``,
  ``gitship.pod.name``, ``gitship.pod.namespace``, ``gitship.container``,
  ``gitship.owner`` ("Kind/name" of the controller ownerReference, or ""),
  ``gitship.attempt`` (restartCount of that container instance) and ``gitship.pod.spec``
  (the pod dict as JSON, without status). A restarted gitship rebuilds everything from
  the engine alone (``start``). Every list / event filter includes the instance label,
  so two instances never touch each other's containers.

Supervision is ours, not Docker's (no Docker restart policy): exits arrive through the
engine's event stream (a thread, results posted to the loop with call_soon_threadsafe);
restarts follow the pod's restartPolicy with the kubelet's back-off (first restart
immediately, then ``backoff_base`` doubling up to ``backoff_max``, reset after a clean run
of 2 x max; the waiting reason is CrashLoopBackOff). Image pulls follow imagePullPolicy
with the same back-off (ErrImagePull, then ImagePullBackOff). A periodic resync (5 s) is
a safety net for missed events and for the engine going away and coming back. Every rule
Kubernetes defines (phase, conditions, env, argv, back-off, probe thresholds, pull policy)
is the pod kernel's (runtime/kernel), shared with the in-process runtime.

The modules, each layer a subclass of the one before: common.py (labels, state),
engine.py (client, network, sandbox image, service addresses), pods.py (model, status,
sandbox, images, container config), containers.py (start, exit, restart, probes, delete),
adoption.py, supervision.py (events, resync), runtime.py (the Runtime interface).

imagePullPolicy follows Kubernetes strictly: ``Always`` (the default for ``:latest`` or
untagged references, runtime/kernel/image.py) pulls every time a container is created and a failed pull fails the
container with ErrImagePull even if an older copy exists locally. On an offline host use
explicit tags (default IfNotPresent) or ``imagePullPolicy: IfNotPresent``/``Never``.

Services (see docs/docker.md): the daemon's proxy and DNS run on the host. A ClusterIP is
made reachable from containers by ``expose_service_ip``: the address is added as a /32 to
the host's loopback device (label ``lo:gitship``); a container's packets to it follow its
default route to the bridge gateway, i.e. to the host, which owns the address. This needs
no engine (the DNS address is exposed before the engine answers) and survives the network
being recreated. ``close(stop_pods=True)`` removes the addresses again.

Storage (mounts.py): the built-in ``local-path`` provisioner's PersistentVolumes are Docker
named volumes ``gitship-{instance}-{pv}`` labelled as this instance's; ``provision_volume``
makes one, ``delete_volume`` removes it (reclaimPolicy Delete; refused while a container uses
it: the reconciler retries). Neither a deleted pod nor ``close(stop_pods=True)`` removes them.

Logs: Docker keeps them (json-file); ``log_path`` returns None. Use
``await runtime.logs(uid, container, tail=None, previous=False) -> bytes`` or
``async for chunk in runtime.read_logs(uid, container, follow=True)``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime import storage, volumes
from runtime.base import ExecResult, ExecSession, OnChange, Pod, PodStatus, Runtime, RuntimeError_
from runtime.kernel.volumes import volume_sources

from . import execstream
from .common import engine_down
from .mounts import delete_storage_volume, provision_storage_volume
from .supervision import DockerSupervision

log = structlog.get_logger("runtime.docker")


def _waits_for_config(state: Mapping[str, Any]) -> bool:
    """The container waits for a ConfigMap or Secret (its env, or a volume's FailedMount)."""
    w = state.get("waiting") or {}
    reason, message = w.get("reason"), str(w.get("message") or "")
    return reason == "CreateContainerConfigError" or (
        reason == "ContainerCreating" and message.startswith("MountVolume.SetUp failed")
    )


class DockerRuntime(DockerSupervision, Runtime):
    """Runs pods as Docker containers. See the module docstring for the layout."""

    name = "docker"

    async def start(self, on_change: OnChange) -> dict[str, Pod]:
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        self._start_events_thread()
        try:
            await self._connect()
            await self._converge()
        except Exception as exc:
            if not engine_down(exc):
                raise
            self._set_engine_down(exc)
        self._resync_task = self._spawn(self._resync_loop())
        return {uid: p.pod for uid, p in self._pods.items()}

    async def create_pod(self, pod: Pod) -> None:
        meta = pod.get("metadata", {})
        uid = str(meta["uid"])
        if uid in self._pods:
            return
        self._pending_deletes.discard(uid)
        p = self._new_pod(pod)
        self._pods[uid] = p
        self._notify(p)
        try:
            await self._sync_pod(p)
        except Exception as exc:
            if not engine_down(exc):
                raise
            p.error = f"docker engine unreachable: {exc}"
            self._notify(p)

    async def delete_pod(self, uid: str, grace_seconds: float | None = None) -> None:
        p = self._pods.get(uid)
        if p is None:
            if self._client is not None and self._engine_error is None:
                with contextlib.suppress(Exception):
                    await self._remove_leftovers(uid)
            return
        if p.delete_task is None:
            p.deleting = True
            p.delete_task = self._spawn(self._delete(p, grace_seconds))
        await asyncio.shield(p.delete_task)

    def status(self, uid: str) -> PodStatus | None:
        p = self._pods.get(uid)
        return None if p is None else self._status(p)

    def pods(self) -> dict[str, Pod]:
        return {uid: p.pod for uid, p in self._pods.items()}

    def log_path(self, uid: str, container: str) -> str | None:
        return None  # Docker owns the logs: use logs() / read_logs()

    def set_image_rules(self, rules: Sequence[Mapping[str, Any]], repo_dir: str | None) -> None:
        """Nothing to do: images are real on Docker, gitship.yaml ``images:`` is for the in-process runtime."""

    def set_config_objects(self, objects: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> None:
        """Every live ConfigMap, Secret, PersistentVolumeClaim and PersistentVolume: env of
        containers created from now on, the volumes of running pods that read a changed one
        rewritten in place (runtime/volumes.py), containers waiting for a missing one (or an
        unbound claim) retried at once."""
        old, self.config_objects = self.config_objects, dict(objects)
        if self._loop is None or self._closed:
            return
        changed = {k for k in set(old) | set(self.config_objects) if old.get(k) != self.config_objects.get(k)}
        for p in list(self._pods.values()):
            if p.deleting:
                continue
            if changed & volume_sources(p.pod, self.config_objects):
                self._spawn(volumes.refresh_pod(self.state_dir, p.pod, self.config_objects, self.node_name))
            waiting = [c for c in p.containers.values() if _waits_for_config(c.state)]
            for c in waiting:
                c.cancel()  # the retry timer: try now
                c.want_start = True
            if waiting:
                self._kick(p)

    async def provision_volume(self, pv_name: str, claim: Mapping[str, Any]) -> dict[str, Any]:
        """A Docker named volume ``gitship-{instance}-{pv_name}`` (mounts.py); its csi fragment."""
        try:
            storage.check_pv_name(pv_name)
            await self._ready_engine()
            fragment: dict[str, Any] = await self._call(
                provision_storage_volume, self._api, self.instance, pv_name, claim
            )
        except storage.StorageError as exc:
            raise RuntimeError_(str(exc)) from None
        except Exception as exc:
            if not engine_down(exc):
                raise
            raise RuntimeError_(f"docker engine unreachable: {exc}") from None
        log.info("volume_provisioned", pv=pv_name, volume=fragment["csi"]["volumeHandle"])
        return fragment

    async def delete_volume(self, pv: Mapping[str, Any]) -> None:
        """The PV's Docker volume (if this instance's) or its folder under ``{state_dir}/storage``."""
        if not await storage.delete(self.state_dir, pv, other="csi"):
            try:
                await self._ready_engine()
                await self._call(delete_storage_volume, self._api, self.instance, pv)
            except Exception as exc:
                if not engine_down(exc):
                    raise
                raise RuntimeError_(f"docker engine unreachable: {exc}") from None
        log.info("volume_deleted", pv=(pv.get("metadata") or {}).get("name"))

    async def _ready_engine(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._client is None:
            await self._connect()

    async def exec(self, uid: str, container: str, argv: list[str], timeout: float = 30.0) -> ExecResult:
        cid = self._cid(uid, container)

        def run() -> ExecResult:
            ex = self._api.exec_create(cid, list(argv), stdout=True, stderr=True)
            out, err = self._api.exec_start(ex["Id"], demux=True)
            code = self._api.exec_inspect(ex["Id"]).get("ExitCode")
            return ExecResult(exit_code=-1 if code is None else int(code), stdout=out or b"", stderr=err or b"")

        try:
            return await asyncio.wait_for(self._call(run), timeout)
        except docker.errors.APIError as exc:
            raise RuntimeError_(f"exec in {container} of pod {uid}: {exc.explanation or exc}") from exc

    async def exec_stream(self, uid: str, container: str, argv: list[str], stdin: bool, tty: bool) -> ExecSession:
        return await execstream.exec_stream(self._api, self._cid(uid, container), argv, stdin, tty)

    async def logs(
        self, uid: str, container: str, *, tail: int | None = None, previous: bool = False, timestamps: bool = False
    ) -> bytes:
        """stdout and stderr of a container (``previous``: the instance before the last restart)."""
        cid = self._cid(uid, container, previous=previous, must_run=False)
        data: bytes = await self._call(
            self._api.logs,
            cid,
            stdout=True,
            stderr=True,
            timestamps=timestamps,
            tail="all" if tail is None else int(tail),
        )
        return data

    async def read_logs(
        self, uid: str, container: str, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[bytes]:
        """Chunks of a container's output; with ``follow`` until the container stops."""
        cid = self._cid(uid, container, must_run=False)
        if not follow:
            yield await self.logs(uid, container, tail=tail)
            return
        assert self._loop is not None
        loop = self._loop
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)
        stream_box: list[Any] = []

        def pump() -> None:
            try:
                stream = self._api.logs(
                    cid, stdout=True, stderr=True, stream=True, follow=True, tail="all" if tail is None else int(tail)
                )
                stream_box.append(stream)
                for chunk in stream:
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except Exception:
                pass
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop)

        fut = loop.run_in_executor(self._pool, pump)
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            for s in stream_box:
                with contextlib.suppress(Exception):
                    s.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(fut), 2)

    async def close(self, stop_pods: bool) -> None:
        if stop_pods and self._loop is not None:
            await asyncio.gather(*(self.delete_pod(uid) for uid in list(self._pods)), return_exceptions=True)
        if stop_pods:
            for ip in list(self._exposed):
                await self.unexpose_service_ip(ip)
        self._closed = True
        self._wake.set()
        for p in self._pods.values():
            for c in p.containers.values():
                c.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._events_stop.set()
        stream = self._events_stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        if self._events_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._events_thread.join, 5)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def info(self) -> dict[str, Any]:
        base = {"name": self.name, "instance": self.instance, "network": self.network, "pods": len(self._pods)}
        if self._engine_error is not None:
            return {**base, "engine": "unreachable", "error": self._engine_error}
        return {
            **base,
            "engine": "up",
            "version": self._version.get("Version"),
            "engineVersion": self._version.get("Version"),
            "apiVersion": self._version.get("ApiVersion"),
            "os": self._version.get("Os"),
            "arch": self._version.get("Arch"),
        }
