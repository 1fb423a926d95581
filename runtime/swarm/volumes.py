"""A pod's configuration and data on Swarm: configs and secrets for its files, node-local volumes for
its claims, pinned to their node (storage.py has the pure mapping; docs/swarm.md the design).

* ``_service_kwargs`` resolves the pod's env and volumes (the pod kernel's rules), makes the Swarm
  configs and secrets its files need (named by content, labelled with the instance) and returns
  the service's arguments; a claim whose volume already lives on a node pins the pod there.
* ``set_config_objects``: a ConfigMap or Secret a pod's volumes read changed: the pod's service is
  updated to the new files (Swarm replaces its task; the kubelet would rewrite them in place).
* ``_pin``: once Swarm has placed the first task of a pod with unpinned claims (WaitForFirstConsumer,
  as local-path does), the claims' volumes live on that node: recorded in the state dir
  (``swarm-volume-nodes.json``) and the service gets a ``node.id==`` constraint (Swarm does not
  restart a task that already satisfies a changed constraint).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.kernel import rfc3339

from runtime.base import RuntimeError_
from runtime.kernel.volumes import CSI_DRIVER, pv_volume_handle, volume_sources

from . import gateway
from .engine import SwarmEngine
from .mapping import LABEL_INSTANCE
from .pods import SPod, pod_env, service_spec, status
from .storage import FileRef, pinned_constraints, pod_storage, storage_volume_name

log = structlog.get_logger("runtime.swarm")

PINS_FILE = "swarm-volume-nodes.json"


def ensure_files(api: Any, instance: str, files: list[FileRef]) -> dict[str, str]:
    """Blocking: the Swarm configs and secrets of ``files`` (made if missing): {name: id}."""
    out: dict[str, str] = {}
    for secret in (False, True):
        want = {f.name: f for f in files if f.secret == secret}
        if not want:
            continue
        listed = (api.secrets if secret else api.configs)(filters={"label": f"{LABEL_INSTANCE}={instance}"})
        have = {str((x.get("Spec") or {}).get("Name")): str(x["ID"]) for x in listed or []}
        for name, f in want.items():
            if name not in have:
                create = api.create_secret if secret else api.create_config
                have[name] = str(create(name, f.data, labels={LABEL_INSTANCE: instance})["ID"])
            out[name] = have[name]
    return out


def prune_files(api: Any, instance: str) -> None:
    """Blocking: remove this instance's configs and secrets no service uses (Swarm refuses the others)."""
    for listing, remove in ((api.configs, api.remove_config), (api.secrets, api.remove_secret)):
        for x in listing(filters={"label": f"{LABEL_INSTANCE}={instance}"}) or []:
            with contextlib.suppress(docker.errors.APIError):
                remove(x["ID"])


def update_template(api: Any, service_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Blocking: the service's task template changed by ``change`` (the raw Engine spec)."""
    info = api.inspect_service(service_id)
    spec = info["Spec"]
    change(spec["TaskTemplate"])
    api.update_service(
        service_id,
        info["Version"]["Index"],
        task_template=spec["TaskTemplate"],
        name=spec["Name"],
        labels=spec.get("Labels"),
        mode=spec.get("Mode"),
        endpoint_spec=spec.get("EndpointSpec"),
        fetch_current_spec=False,
    )


def _file_key(kw: Mapping[str, Any]) -> tuple[str, ...]:
    cs = kw["task_template"]["ContainerSpec"]
    refs = [*(cs.get("Configs") or []), *(cs.get("Secrets") or [])]
    return tuple(sorted(json.dumps(r, sort_keys=True) for r in refs))


class SwarmVolumes(SwarmEngine):
    """Configuration and data of the Swarm runtime's pods (the module docstring)."""

    _pins: dict[str, str] | None = None  # PersistentVolume name -> Swarm node id

    def pins(self) -> dict[str, str]:
        if self._pins is None:
            try:
                with open(os.path.join(self.state_dir, PINS_FILE)) as f:
                    self._pins = {str(k): str(v) for k, v in json.load(f).items()}
            except (OSError, ValueError):
                self._pins = {}
        return self._pins

    def _save_pins(self) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = os.path.join(self.state_dir, PINS_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.pins(), f, sort_keys=True)
        os.replace(tmp, os.path.join(self.state_dir, PINS_FILE))

    async def _service_kwargs(self, p: SPod, nameserver: str | None) -> dict[str, Any]:
        """The pod's service (raises ValueError: the kernel's ConfigError / VolumeError)."""
        env = pod_env(p, self.config_objects)
        st = pod_storage(self.instance, p.pod, p.container, env, self.config_objects)
        ids = await self._call(ensure_files, self._api, self.instance, st.files) if st.files else {}
        pins = pinned_constraints(st.claims, self.pins())
        p.claims = dict(st.claims)
        storage = (st, ids, pins)
        return service_spec(
            self.instance, p, self.network_id, env, storage, nameserver, self.dns_search, self.restart_delay
        )

    def set_config_objects(self, objects: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> None:
        old, self.config_objects = self.config_objects, dict(objects)
        changed = {k for k in set(old) | set(objects) if old.get(k) != objects.get(k)}
        if not changed or self._loop is None:
            return
        for p in list(self._pods.values()):
            if p.service_id and not p.deleting and changed & volume_sources(p.pod, objects):
                self._loop.create_task(self._update_files(p))

    async def _update_files(self, p: SPod) -> None:
        """The pod's files from the changed objects: a new service spec when they differ."""
        try:
            old = await self._call(self._api.inspect_service, p.service_id)
            kw = await self._service_kwargs(p, self._nameserver())
            old_key = _file_key({"task_template": old["Spec"]["TaskTemplate"]})
            if _file_key(kw) == old_key:
                return

            def change(tt: dict[str, Any]) -> None:
                cs = kw["task_template"]["ContainerSpec"]
                tt["ContainerSpec"]["Configs"], tt["ContainerSpec"]["Secrets"] = cs.get("Configs"), cs.get("Secrets")
                tt["ContainerSpec"]["Env"] = cs.get("Env")

            if p.task_id:
                p.seen_tasks.add(p.task_id)  # replaced for new files: no restart of the container's own
            await self._call(update_template, self._api, p.service_id, change)
            log.info("pod_files_updated", namespace=p.namespace, pod=p.name, service=p.service_name)
        except ValueError as exc:
            log.warning("pod_files_not_updated", namespace=p.namespace, pod=p.name, error=str(exc))
        except docker.errors.APIError as exc:
            log.warning("pod_files_not_updated", namespace=p.namespace, pod=p.name, error=str(exc))

    def _nameserver(self) -> str | None:
        """The pods' DNS: the cluster DNS's own address when it is port 53 in the overlay's Service half
        (stable, reached like a ClusterIP), else the hub's address (it forwards port 53 to it)."""
        if self.dns is None:
            return None
        host, port = self.dns
        inside = gateway.pod_range(self.pod_cidr, self.service_cidr) is not None
        if port == 53 and inside and ipaddress.ip_address(host) in ipaddress.ip_network(self.service_cidr):
            return host
        return self.gateway_ip

    async def _pin(self, p: SPod, task: Mapping[str, Any] | None) -> None:
        """The pod's unpinned claims live on the node of its first placed task (module docstring)."""
        node = str((task or {}).get("NodeID") or "")
        pins = self.pins()
        todo = [pv for pv in p.claims if pv not in pins]
        if not todo or not node or p.service_id is None:
            return
        for pv in todo:
            pins[pv] = node
        self._save_pins()
        log.info("volume_pinned", pvs=todo, node=node, pod=p.name)
        constraint = f"node.id=={node}"

        def change(tt: dict[str, Any]) -> None:
            placement = tt.setdefault("Placement", {})
            placement["Constraints"] = sorted({*(placement.get("Constraints") or []), constraint})

        try:
            await self._call(update_template, self._api, p.service_id, change)
        except docker.errors.APIError as exc:
            log.warning("volume_pin_failed", pod=p.name, error=str(exc))

    async def provision_volume(self, pv_name: str, claim: Mapping[str, Any]) -> dict[str, Any]:
        """A node-local volume, made by the engine of the node the first pod using it lands on."""
        return {"csi": {"driver": CSI_DRIVER, "volumeHandle": storage_volume_name(self.instance, pv_name)}}

    async def delete_volume(self, pv: Mapping[str, Any]) -> None:
        """Remove the volume on its node (its engine's API: ``node_api``); without it the data stays."""
        name = str((pv.get("metadata") or {}).get("name") or "")
        handle = pv_volume_handle(pv)
        if handle is None or not handle.startswith(storage_volume_name(self.instance, "")):
            raise RuntimeError_(f'persistentvolume "{name}": its source is not one this runtime provisioned')
        node = self.pins().get(name)
        if node is not None:
            api = await self.node_api(node)
            if api is None:
                log.warning("volume_left_on_node", pv=name, volume=handle, node=node)
            else:
                try:
                    await self._call(api.remove_volume, handle)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    raise RuntimeError_(f"cannot remove volume {handle} on node {node}: {exc}") from None
            self.pins().pop(name, None)
            self._save_pins()

    async def node_api(self, node_id: str) -> Any:
        """The Engine API client of a node (nodeexec.py), None when gitship has none for it."""
        return None

    def _notify(self, p: SPod) -> None:
        if p.uid not in self._pods:
            return
        snap = json.dumps(status(p, rfc3339(time.time())), sort_keys=True, default=str)
        if snap != p.last_status:
            p.last_status = snap
            try:
                self._on_change(p.uid)
            except Exception:
                log.exception("on_change_failed", uid=p.uid)
