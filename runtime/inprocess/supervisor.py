"""The in-process runtime: each container of a pod is a local OS process.

Where it sits: the daemon hands pods (Kubernetes-shaped dicts) to
``InProcessRuntime.create_pod`` and takes them away with ``delete_pod``
(runtime/base.py has the interface and the PodStatus shape). Everything runs
on the daemon's one asyncio loop; nothing here blocks for long (``Popen`` is a
fork+exec, state files are small atomic writes).

The modules: lifecycle.py (processes: launch, exits, restarts with back-off,
stop), probing.py (startup, readiness, liveness), isolation.py (host mode or
pod sandboxes; each pod's sandbox), mounts.py (its volumes), sandbox.py (the sandbox's holder process,
nsenter, sweep), podnet.py (setting a sandbox up: rtnetlink, setns, mount),
adoption.py (taking pods over after a restart), hooks.py (postStart, preStop),
initc.py (init containers and sidecars, in order, before the app containers), resolve.py
(argv, environment, working directory, image rules), state.py (per pod and
container), procid.py (process identity, state files), network.py (pod IPs),
probes.py (exec). What Kubernetes defines is the pod kernel's (runtime/kernel);
the host's side of the pods' network is runtime/net/bridge.py.

Isolation (isolation.py)
    As root with a routable pod CIDR, each pod gets a sandbox: its own network,
    UTS, IPC and mount namespaces (its IP on eth0 behind gitship's bridge, its
    hostname, its resolv.conf and hosts), which its containers enter. Otherwise
    (or with ``isolation="host"``) pods share the host's network on 127.x
    addresses, and ``info()`` says why.

Adoption (procid.py)
    ``{state_dir}/pods/{uid}.json`` holds the pod dict, its IP, its sandbox
    (holder identity, veth) and per container the process identity (pid, start
    time, boot id) and the status counters. ``start()`` adopts processes whose
    identity still matches (and sandboxes whose holder does: adoption.py),
    restarts (per policy) those that vanished, and returns every pod it found.
    A container that was running when gitship stopped and is gone on restart is
    reported as ``exitCode: 137, reason: "ContainerStatusUnknown"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from ..base import ExecResult, OnChange, Pod, PodStatus, Runtime, RuntimeError_
from ..kernel import container_status, pod_conditions, pod_status, rfc3339
from ..kernel import initc
from ..kernel.jsoncopy import copy_json
from ..net import bridge as br
from . import procid
from .execstream import ExecStreams, exec_target
from .adoption import Todo
from .cgroups import ContainerCgroups
from .initc import InitSupervisor, init_views, stop_order
from .network import IPAllocationError, IPAllocator
from .probes import run_exec
from .resolve import to_rules
from .state import Container, PodState

log = structlog.get_logger("runtime.inprocess")

# Popen objects of processes left running by close(stop_pods=False): keeping a
# reference stops subprocess' own _cleanup() from reaping them behind the back
# of a runtime that adopts them in the same interpreter (tests).
_abandoned: list[subprocess.Popen[bytes]] = []


class InProcessRuntime(InitSupervisor, ExecStreams, Runtime):
    name = "inprocess"

    def __init__(
        self,
        state_dir: str,
        image_rules: Iterable[Mapping[str, Any]] = (),
        repo_dir: str | None = None,
        pod_cidr: str = "127.244.0.0/16",
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        host_ip: str = "127.0.0.1",
        *,
        isolation: str = "auto",
        bridge: str = "gitship0",
        service_cidr: str | None = None,
        dns_servers: Sequence[str] = (),
        cluster_domain: str = "cluster.local",
        service_route: str = "bridge",
        allow_host_paths: Sequence[str] = (),
    ):
        """``isolation``: "auto" (sandboxes when possible), "sandbox" (start() fails if impossible)
        or "host"; ``bridge``: the host bridge of sandbox mode (at most 15 characters);
        ``service_cidr``: routed to the bridge in sandbox mode; ``dns_servers``: the pods'
        nameservers (the cluster DNS first) for dnsPolicy ClusterFirst; ``cluster_domain``: the
        DNS zone of the pods' search path; ``service_route``: how the Service CIDR is routed in
        sandbox mode, "bridge" or "local" (runtime/net/bridge.py ensure_host_network). In
        sandbox mode ``host_ip`` is the bridge's address. ``allow_host_paths``: the prefixes under
        which pods may mount hostPath volumes (the operator's --allow-host-path; none by default)."""
        super().__init__()
        self.state_dir = os.path.abspath(state_dir)
        self.image_rules = to_rules(image_rules)
        self.repo_dir = os.path.abspath(repo_dir) if repo_dir else None
        self.pod_cidr = pod_cidr
        self.allow_host_paths = tuple(allow_host_paths)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._init_isolation(isolation, pod_cidr, bridge, service_cidr, dns_servers, cluster_domain, service_route)
        self.host_ip = self.gateway if self.isolation == "sandbox" else host_ip
        os.makedirs(procid.pods_dir(self.state_dir), exist_ok=True)
        os.makedirs(os.path.join(self.state_dir, "logs"), exist_ok=True)
        self._ipam = IPAllocator(pod_cidr, self.state_dir, self.host_ip)

    # -- public API ----------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "podCIDR": self.pod_cidr,
            "hostIP": self.host_ip,
            "pods": len(self._pods),
            **self.isolation_info(),
            "resources": self.cgroups.info(),
        }

    def set_image_rules(self, rules: Sequence[Mapping[str, Any]], repo_dir: str | None) -> None:
        """New image map (a commit changed gitship.yaml). Applies to containers started from now on;
        containers waiting with ImageNotResolved are retried at once."""
        self.image_rules = to_rules(rules)
        self.repo_dir = os.path.abspath(repo_dir) if repo_dir else None
        if self._loop is None or self._closed:
            return
        for p in list(self._pods.values()):
            for c in p.containers:
                if not p.deleting and c.state.get("waiting", {}).get("reason") == "ImageNotResolved":
                    self._launch(p, c)

    def set_config_objects(self, objects: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> None:
        """Every live ConfigMap and Secret. Containers started from now on see them in their env;
        mounted volumes of running pods that read a changed one are rewritten in place (mounts.py);
        containers waiting for a missing one are retried at once."""
        old, self.config_objects = self.config_objects, dict(objects)
        if self._loop is None or self._closed:
            return
        self._config_changed(old, self.config_objects)

    async def expose_service_ip(self, ip: str) -> None:
        """Host mode: nothing to do (Linux routes all of 127.0.0.0/8 to the loopback device, so a
        ClusterIP is local). Sandbox mode: the address goes on the bridge (ip/32), so a server of
        the host can listen on it (the cluster DNS, the proxy) and every pod reaches it."""
        if self.isolation != "sandbox":
            return
        try:
            await asyncio.to_thread(br.add_address, self.bridge, ip)
        except (br.NetworkSetupError, ValueError, OSError) as e:
            raise RuntimeError_(f"cannot put {ip} on bridge {self.bridge}: {e}") from None

    async def start(self, on_change: OnChange) -> dict[str, Pod]:
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        self._closed = False
        await self._start_isolation()
        states = procid.read_states(self.state_dir)
        self._ipam.retain_only(set(states) | set(self._pods))
        self._remove_stale_sandbox_dirs(set(states) | set(self._pods))
        self._remove_stale_volume_dirs(set(states) | set(self._pods))
        await asyncio.to_thread(self.cgroups.start, set(states) | set(self._pods))  # resources: sweep leftovers
        adopted: dict[str, Pod] = {}
        todo: Todo = []
        for uid, st in states.items():
            if uid in self._pods:
                continue
            try:
                p = self._adopt(uid, st, todo)
            except Exception:  # a corrupt state file must not stop the daemon
                log.exception("adopt_failed", uid=uid)
                continue
            self._pods[uid] = p
            adopted[uid] = p.pod
        for p, c, term in todo:
            if not self._alive(p):
                continue
            if term is not None:
                self._on_terminated(p, c, term)
            else:
                self._launch(p, c)
        for p in self._pods.values():
            self._save(p)
            self._notify(p)
        if adopted:
            log.info("pods_adopted", count=len(adopted))
        return adopted

    async def create_pod(self, pod: Pod) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        uid = (pod.get("metadata") or {}).get("uid")
        if not uid:
            raise RuntimeError_("pod has no metadata.uid")
        if uid in self._pods:
            return
        if not (pod.get("spec") or {}).get("containers"):
            raise RuntimeError_(f"pod {uid} has no containers")
        p = PodState(copy_json(pod), "", time.time(), self.backoff_base, self.backoff_max)
        try:
            p.ip = self._pod_ip(p)
        except IPAllocationError as e:
            raise RuntimeError_(str(e)) from None
        self._pods[uid] = p
        os.makedirs(self._log_dir(uid), exist_ok=True)
        self._save(p)
        for c in p.containers:
            self._launch(p, c)
        self._notify(p)

    async def delete_pod(self, uid: str, grace_seconds: float | None = None) -> None:
        p = self._pods.get(uid)
        if p is None:
            return
        if p.delete_task is None:
            p.delete_task = asyncio.get_running_loop().create_task(self._delete(p, grace_seconds))
        await asyncio.shield(p.delete_task)

    def status(self, uid: str) -> PodStatus | None:
        p = self._pods.get(uid)
        if p is None:
            return None
        memo, key = p.status_memo, _status_key(p, self.host_ip, self.cgroups.unavailable)
        if memo is None or memo[0] != key:
            self._update_conditions(p)  # assigning the conditions moves the version: key it again
            memo = p.status_memo = (_status_key(p, self.host_ip, self.cgroups.unavailable), self._build_status(p))
        out: PodStatus = copy_json(memo[1])  # a copy: the memo must not share with the caller's objects
        return out

    def _build_status(self, p: PodState) -> PodStatus:
        return pod_status(
            phase=_pod_phase(p),
            pod_ip=p.ip,
            host_ip=self.host_ip,
            start_time=rfc3339(p.start_time),
            conditions=p.conditions,
            container_statuses=[_container_status(c) for c in p.containers if not c.init],
            init_container_statuses=[_container_status(c) for c in p.containers if c.init],
            **_resource_fields(p, self.cgroups),  # resources: qosClass, not enforced
        )

    def pods(self) -> dict[str, Pod]:
        return {uid: p.pod for uid, p in self._pods.items()}

    def log_path(self, uid: str, container: str) -> str | None:
        path = os.path.join(self._log_dir(uid), f"{container}.log")
        return path if os.path.exists(path) else None

    async def logs(
        self, uid: str, container: str, *, tail: int | None = None, previous: bool = False, timestamps: bool = False
    ) -> bytes:
        """The container's log file (every instance's output, appended across restarts).

        ``previous`` and ``timestamps`` are accepted for the interface; the file has one
        stream without timestamps, so they change nothing.
        """
        p = self._pods.get(uid)
        if p is None or p.container(container) is None:
            raise RuntimeError_(f"no container {container!r} in pod {uid}")
        path = self.log_path(uid, container)
        if path is None:
            return b""
        data = await asyncio.to_thread(_read_file, path)
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail > 0 else b""
        return data

    async def exec(self, uid: str, container: str, argv: list[str], timeout: float = 30.0) -> ExecResult:
        env, cwd, enter = exec_target(self, uid, container)
        try:
            return await run_exec(list(argv), env, cwd, timeout, enter)
        except asyncio.TimeoutError:
            raise RuntimeError_(f"exec {argv!r} in {uid}/{container} timed out after {timeout:g}s") from None
        except OSError as e:
            raise RuntimeError_(str(e)) from None

    async def close(self, stop_pods: bool) -> None:
        """Stop supervising. With stop_pods, every pod stops, then the host's network of sandbox mode
        goes too (the bridge, its routes and rules); without, sandboxes and all keep running."""
        if stop_pods:
            await asyncio.gather(*(self.delete_pod(uid) for uid in list(self._pods)), return_exceptions=True)
            if self.isolation == "sandbox" and not self._pods:
                with contextlib.suppress(br.NetworkSetupError, OSError):
                    await asyncio.to_thread(br.teardown_host_network, self.bridge, self.service_cidr)
        self._stop_watching_sandboxes()
        self._closed = True
        for p in list(self._pods.values()):
            for c in p.containers:
                c.stop_probes()
                c.cancel_timer()
                self._unwatch(c)
                if c.proc is not None and c.proc.returncode is None:
                    _abandoned.append(c.proc)
            if not p.deleting:
                self._save(p)
        for t in list(self._tasks):
            t.cancel()
        self._pods.clear()

    # -- deleting ------------------------------------------------------------------------------

    async def _delete(self, p: PodState, grace: float | None) -> None:
        p.deleting = True
        for c in p.containers:
            c.stop_probes()
            c.cancel_timer()
        g = p.grace() if grace is None else max(0.0, float(grace))
        for group in stop_order(p):  # the app containers (and a running init container), then the sidecars
            await asyncio.gather(*(self._stop_container(c, g) for c in group), return_exceptions=True)
        for c in p.containers:
            self._unwatch(c)
        await self._destroy_sandbox(p)
        self._remove_volumes(p)
        await self.cgroups.remove_pod(p.uid)
        self._ipam.release(p.uid)
        procid.remove_state(self.state_dir, p.uid)
        shutil.rmtree(self._log_dir(p.uid), ignore_errors=True)
        if self._pods.get(p.uid) is p:
            del self._pods[p.uid]
        log.info("pod_deleted", uid=p.uid, pod=p.name)
        self._call_on_change(p.uid)

    # -- status bookkeeping ----------------------------------------------------------------------

    def _save(self, p: PodState) -> None:
        if p.deleting or self._pods.get(p.uid) is not p:
            return
        try:
            procid.write_state(self.state_dir, p.uid, p.to_json())
        except OSError:
            log.exception("state_write_failed", uid=p.uid)

    def _update_conditions(self, p: PodState) -> bool:
        """Recompute conditions; lastTransitionTime moves only when a status flips. True if one flipped."""
        p.conditions, flipped = pod_conditions(
            p.conditions,
            ready=[(c.name, c.ready()) for c in p.containers if not c.init or c.sidecar],
            phase=_pod_phase(p),
            now=rfc3339(time.time()),
            start_time=rfc3339(p.start_time),
            initialized=initc.initialized_condition(init_views(p), p.initialized),
        )
        return flipped

    def _notify(self, p: PodState, save: bool = False) -> None:
        self._advance_init(p)  # a container's turn may have come, or the sidecars' end (initc.py)
        if self._update_conditions(p) or save:
            self._save(p)
        self._call_on_change(p.uid)

    def _call_on_change(self, uid: str) -> None:
        cb = self._on_change
        if cb is None or self._closed:
            return
        try:
            cb(uid)
        except Exception:
            log.exception("on_change_failed", uid=uid)


def _pod_phase(p: PodState) -> str:
    apps = ((c.shown_state(), c.last_state) for c in p.containers if not c.init)
    return initc.phase(p.restart_policy, init_views(p), apps, p.initialized)


def _status_key(p: PodState, host_ip: str, unavailable: Mapping[str, str]) -> tuple[Any, ...]:
    """What a pod's status is computed from: every attribute of it and its containers (state.py
    Versioned), the host's IP and the controllers cgroups cannot enforce. No input is time."""
    return (p.version, *(c.version for c in p.containers), host_ip, *unavailable.items())


def _resource_fields(p: PodState, cgroups: ContainerCgroups) -> dict[str, Any]:
    """cgroups.status_fields, memoized per pod: the pod's spec never changes, only its start
    time and the unavailable controllers could (the QoS class is most of a status' cost)."""
    key = (p.start_time, *cgroups.unavailable.items())
    memo = p.resource_fields
    if memo is None or memo[0] != key:
        memo = p.resource_fields = (key, cgroups.status_fields(p.pod, rfc3339(p.start_time)))
    fields: dict[str, Any] = memo[1]
    return fields


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _container_status(c: Container) -> dict[str, Any]:
    return container_status(
        c.name,
        c.image,
        ready=c.ready(),
        started=bool(c.running and c.started),
        restart_count=c.restart_count,
        state=copy_json(c.shown_state()),
        last_state=copy_json(c.last_state),
        container_id=f"pid://{c.pid}" if c.running and c.pid else None,
    )
