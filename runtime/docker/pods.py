"""The Docker runtime's pod model: labels and names, status (from the pod kernel), the sandbox,
images under imagePullPolicy, and a container's configuration (env and argv from the pod kernel)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.base import Pod, PodStatus, RuntimeError_
from runtime.kernel import (
    Backoff,
    container_argv,
    container_env,
    container_status,
    pod_conditions,
    pod_status,
    pull_policy,
    rfc3339,
)
from runtime.kernel import initc
from runtime import volumes
from runtime.kernel.env import ConfigError, implicit_env
from runtime.kernel.resources import container_limits, not_enforced_condition, qos_class

from .common import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER,
    LABEL_INSTANCE,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_OWNER,
    LABEL_SPEC,
    LABEL_UID,
    SANDBOX,
    DContainer,
    DPod,
    split_ref,
)
from . import inits
from .engine import DockerEngine
from .mounts import container_mounts, volume_mountpoint

log = structlog.get_logger("runtime.docker")


class DockerPods(DockerEngine):
    """Pods and their containers as the engine should run them."""

    node_name = socket.gethostname()
    # resources: {controller: why} the engine cannot enforce (docker info), learnt at the first sandbox
    _resource_gaps: dict[str, str] | None = None

    # ------------------------------------------------------------------ pod model

    def _new_pod(self, pod: Pod) -> DPod:
        meta = pod.get("metadata", {})
        pod = {k: v for k, v in pod.items() if k != "status"}
        containers = {}
        pod_spec = pod.get("spec", {})
        # the init containers first, in order (inits.py), then the app containers
        for spec in [*initc.init_specs(pod_spec), *pod_spec.get("containers", [])]:
            containers[spec["name"]] = DContainer(
                spec=spec,
                name=spec["name"],
                image=spec.get("image", ""),
                crash=Backoff(self.backoff_base, self.backoff_max),
                pull=Backoff(self.backoff_base, self.backoff_max),
            )
        p = DPod(
            pod=pod,
            uid=str(meta["uid"]),
            name=meta.get("name", ""),
            namespace=meta.get("namespace", "default"),
            containers=containers,
            start_time=rfc3339(time.time()),
            initialized=not initc.init_specs(pod_spec),
        )
        inits.mark_waiting(p)
        self._update_conditions(p, p.start_time)
        return p

    def _labels(self, p: DPod, container: str, attempt: int) -> dict[str, str]:
        owner = ""
        for ref in p.pod.get("metadata", {}).get("ownerReferences") or []:
            if ref.get("controller"):
                owner = f"{ref.get('kind')}/{ref.get('name')}"
                break
        return {
            LABEL_INSTANCE: self.instance,
            LABEL_UID: p.uid,
            LABEL_NAME: p.name,
            LABEL_NAMESPACE: p.namespace,
            LABEL_CONTAINER: container,
            LABEL_OWNER: owner,
            LABEL_ATTEMPT: str(attempt),
            LABEL_SPEC: json.dumps(p.pod, sort_keys=True, separators=(",", ":")),
        }

    def _cname(self, p: DPod, container: str, attempt: int) -> str:
        base = f"gs_{p.namespace}_{p.name}_{container}_{p.uid[:8]}_{attempt}"
        return re.sub(r"[^a-zA-Z0-9_.-]", "-", base)

    def _cid(self, uid: str, container: str, previous: bool = False, must_run: bool = True) -> str:
        p = self._pods.get(uid)
        if p is None:
            raise RuntimeError_(f"unknown pod {uid}")
        c = p.containers.get(container)
        if c is None:
            raise RuntimeError_(f"pod {p.name} has no container {container!r}")
        cid = c.previous_cid if previous else c.cid
        if cid is None or (must_run and not c.running):
            raise RuntimeError_(f"container {container} of pod {p.name} is not running")
        return cid

    # ------------------------------------------------------------------ status

    def _phase(self, p: DPod) -> str:
        names = inits.init_names(p)
        apps = ((c.state, c.last_state) for c in p.containers.values() if c.name not in names)
        return initc.phase(p.restart_policy, inits.views(p), apps, p.initialized)

    def _update_conditions(self, p: DPod, now: str) -> None:
        names = inits.init_names(p)
        p.conditions, _ = pod_conditions(
            p.conditions,
            ready=[(c.name, c.ready) for c in p.containers.values() if c.name not in names or inits.is_sidecar(p, c)],
            phase=self._phase(p),
            now=now,
            start_time=p.start_time,
            initialized=initc.initialized_condition(inits.views(p), p.initialized),
        )

    def _status(self, p: DPod) -> PodStatus:
        names = inits.init_names(p)
        statuses = _container_statuses(p)
        return pod_status(
            phase=self._phase(p),
            pod_ip=p.pod_ip,
            host_ip=self._gateway or "127.0.0.1",
            start_time=p.start_time,
            conditions=p.conditions,
            container_statuses=[s for s in statuses if s["name"] not in names],
            message=p.error,
            qos_class=qos_class(p.pod),
            extra_conditions=[c for c in [not_enforced_condition(p.pod, self._resource_gaps or {}, p.start_time)] if c],
            init_container_statuses=[s for s in statuses if s["name"] in names],
        )

    def _notify(self, p: DPod) -> None:
        """Recompute conditions; call on_change if anything in the status changed."""
        if p.uid not in self._pods:
            return
        self._update_conditions(p, rfc3339(time.time()))
        snap = json.dumps(self._status(p), sort_keys=True, default=str)
        if snap != p.last_status:
            p.last_status = snap
            try:
                self._on_change(p.uid)
            except Exception:
                log.exception("on_change_failed", uid=p.uid)

    def _kick(self, p: DPod) -> None:
        """Schedule a sync of the pod (coalesced); containers.py."""
        raise NotImplementedError

    async def _create_sandbox(self, p: DPod) -> None:
        api = self._api
        await self._ensure_network()
        if self._resource_gaps is None:  # resources: what this engine cannot enforce
            self._resource_gaps = engine_resource_gaps(await self._call(api.info))
        image, cmd = await self._pause_image(p)
        spec = p.pod.get("spec", {})
        dns_kw: dict[str, Any] = {}
        if spec.get("dnsPolicy", "ClusterFirst") in ("ClusterFirst", "ClusterFirstWithHostNet"):
            if self.dns_servers:
                dns_kw["dns"] = self.dns_servers
            if self.dns_search:
                dns_kw["dns_search"] = [s.replace("{namespace}", p.namespace) for s in self.dns_search]
            dns_kw["dns_opt"] = ["ndots:5"]
        dns_cfg = spec.get("dnsConfig") or {}
        if dns_cfg.get("nameservers"):
            dns_kw["dns"] = (dns_kw.get("dns") or []) + list(dns_cfg["nameservers"])
        if dns_cfg.get("searches"):
            dns_kw["dns_search"] = (dns_kw.get("dns_search") or []) + list(dns_cfg["searches"])
        if dns_cfg.get("options"):
            opts = [o["name"] + (f":{o['value']}" if o.get("value") is not None else "") for o in dns_cfg["options"]]
            dns_kw["dns_opt"] = [
                o for o in dns_kw.get("dns_opt", []) if o.split(":")[0] not in {x.split(":")[0] for x in opts}
            ] + opts
        hostname = (spec.get("hostname") or p.name)[:63].rstrip("-.") or "pod"
        host_config = api.create_host_config(network_mode=self.network, ipc_mode="shareable", init=False, **dns_kw)
        attempt = p.sandbox_attempt
        cid = await self._create_named(
            self._cname(p, SANDBOX, attempt),
            dict(
                image=image,
                command=cmd,
                hostname=hostname,
                labels=self._labels(p, SANDBOX, attempt),
                host_config=host_config,
                detach=True,
                stop_signal="SIGTERM",
            ),
        )
        p.sandbox_id = cid
        await self._call(api.start, cid)
        info = await self._call(api.inspect_container, cid)
        nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
        p.pod_ip = (nets.get(self.network) or {}).get("IPAddress") or None
        if not p.pod_ip:
            p.pod_ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)

    def _set_waiting(self, p: DPod, c: DContainer, reason: str, message: str | None = None) -> None:
        w: dict[str, Any] = {"reason": reason}
        if message:
            w["message"] = message
        c.state = {"waiting": w}
        c.running = c.ready = c.started = False
        self._notify(p)

    def _retry_later(self, p: DPod, c: DContainer, delay: float, fn: Callable[[], None] | None = None) -> None:
        assert self._loop is not None

        def fire() -> None:
            c.timers = [t for t in c.timers if t is not handle]
            if fn is not None:
                fn()
            else:
                c.want_start = True
                self._kick(p)

        handle = self._loop.call_later(max(0.0, delay), fire)
        c.timers.append(handle)

    async def _ensure_image(self, p: DPod, c: DContainer) -> bool:
        api = self._api
        image = c.image
        policy = pull_policy(c.spec)
        present = None
        try:
            present = await self._call(api.inspect_image, image)
        except docker.errors.ImageNotFound:
            present = None
        if policy == "Never" or (policy == "IfNotPresent" and present is not None):
            if present is None:
                self._set_waiting(
                    p, c, "ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never'
                )
                self._retry_later(p, c, self.resync_seconds)
                return False
            c.image_id = present.get("Id")
            return True
        wait = c.pull.remaining(time.monotonic())
        if wait > 0:
            self._set_waiting(p, c, "ImagePullBackOff", f'Back-off pulling image "{image}"')
            self._retry_later(p, c, wait)
            return False
        repo, tag = split_ref(image)
        try:
            await self._call(api.pull, repo, tag=tag)
            info = await self._call(api.inspect_image, image)
            c.image_id = info.get("Id")
            c.pull.reset()
            return True
        except docker.errors.APIError as exc:
            c.pull.next(time.monotonic())
            msg = f'Failed to pull image "{image}": {exc.explanation or exc}'
            self._set_waiting(p, c, "ErrImagePull", msg)
            delay = c.pull.delay or self.backoff_base

            def flip() -> None:
                if "waiting" in c.state and c.state["waiting"].get("reason") == "ErrImagePull":
                    self._set_waiting(p, c, "ImagePullBackOff", f'Back-off pulling image "{image}"')

            self._retry_later(p, c, min(1.0, delay / 2), flip)
            self._retry_later(p, c, delay)
            return False

    def _env(self, p: DPod, c: DContainer) -> dict[str, str]:
        """The container's variables (runtime/kernel/env.py); raises ConfigError (a ValueError)."""
        warnings: list[str] = []
        env = container_env(
            p.pod,
            c.spec,
            pod_ip=p.pod_ip or "",
            host_ip=self._gateway or "",
            node_name=self.node_name,
            implicit=implicit_env(p.pod, c.spec, p.pod_ip or ""),
            objects=self.config_objects,
            warnings=warnings,
        )
        for msg in warnings:  # the kubelet's InvalidEnvironmentVariableNames event
            log.warning("InvalidEnvironmentVariableNames", uid=p.uid, pod=p.name, container=c.name, message=msg)
        return env

    def _container_config(self, p: DPod, c: DContainer) -> dict[str, Any]:
        """Raises ConfigError (a ValueError; its ``reason``: CreateContainerConfigError, or
        ContainerCreating for a volume whose ConfigMap or Secret is missing)."""
        api = self._api
        env = self._env(p, c)
        if p.pod.get("spec", {}).get("volumes"):  # every volume of the pod, before any container
            volumes.prepare_pod(self.state_dir, p.pod, self.config_objects, self.node_name, self.allow_host_paths)
        mounts = container_mounts(
            self.state_dir,
            self.instance,
            p.pod,
            c.spec,
            env,
            self.allow_host_paths,
            objects=self.config_objects,
            api_version=str(self._version.get("ApiVersion") or ""),
            volume_path=lambda name: volume_mountpoint(api, name),
        )
        command, args = container_argv(c.spec, env)
        hc: dict[str, Any] = {"network_mode": f"container:{p.sandbox_id}", "ipc_mode": f"container:{p.sandbox_id}"}
        if mounts:
            hc["mounts"] = mounts
        hc.update(_resource_config(c.spec))
        sc = c.spec.get("securityContext") or {}
        user = None
        if sc.get("runAsUser") is not None:
            user = str(sc["runAsUser"]) + (f":{sc['runAsGroup']}" if sc.get("runAsGroup") is not None else "")
        if sc.get("privileged"):
            hc["privileged"] = True
        if sc.get("readOnlyRootFilesystem"):
            hc["read_only"] = True
        return dict(
            image=c.image,
            command=args or None,
            entrypoint=command or None,
            environment=env,
            working_dir=c.spec.get("workingDir") or None,
            user=user,
            tty=bool(c.spec.get("tty")),
            stdin_open=bool(c.spec.get("stdin")),
            detach=True,
            labels=self._labels(p, c.name, c.attempt),
            host_config=api.create_host_config(**hc),
        )


def _container_statuses(p: DPod) -> list[dict[str, Any]]:
    return [
        container_status(
            c.name,
            c.image,
            ready=c.ready,
            started=c.started,
            restart_count=c.attempt,
            state=c.state,
            last_state=c.last_state,
            container_id=f"docker://{c.cid}" if c.cid else None,
            image_id=c.image_id,
        )
        for c in p.containers.values()
    ]


def _resource_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The container's limits as HostConfig options, with the kubelet's numbers (the pod kernel's
    runtime/kernel/resources.py): memory in bytes and no swap beyond it (MemorySwap = Memory), the
    CFS quota per a 100000 µs period (not NanoCpus: 1m must give the kernel's 1000 µs minimum),
    cpu shares from the request (the limit without one). Raises ConfigError for a bad quantity."""
    try:
        lim = container_limits(spec)
    except ValueError as e:
        raise ConfigError(f"invalid resources: {e}") from None
    out: dict[str, Any] = {}
    if lim.memory_bytes is not None:
        out["mem_limit"] = lim.memory_bytes
        out["memswap_limit"] = lim.memory_bytes
    if lim.cpu_quota is not None:
        out["cpu_period"] = lim.cpu_period
        out["cpu_quota"] = lim.cpu_quota
    if lim.cpu_shares is not None:
        out["cpu_shares"] = lim.cpu_shares
    return out


def engine_resource_gaps(info: dict[str, Any]) -> dict[str, str]:
    """{controller: why} for the limits a Docker Engine cannot enforce, from ``docker info``
    (MemoryLimit, CpuCfsQuota, CPUShares: false where the kernel lacks the cgroup controller;
    Docker then drops the limit with a warning)."""
    out: dict[str, str] = {}
    if info.get("MemoryLimit") is False:
        out["memory"] = "the Docker Engine has no memory limit support (docker info: MemoryLimit false)"
    missing = [k for k in ("CpuCfsQuota", "CPUShares") if info.get(k) is False]
    if missing:
        out["cpu"] = f"the Docker Engine has no cpu limit support (docker info: {', '.join(missing)} false)"
    return out
