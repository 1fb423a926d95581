"""The executor's storage step: the volumes the pass asked for, made and deleted by the runtime.

Where it sits: called by reconciler/reconcile.py after the live objects of a pass are in the
store and before pods start. For each ``Provision`` (controllers/volume.py) it asks
``runtime.provision_volume(pv_name, claim)`` and puts the PersistentVolume built from the answer
live (pre-bound to its claim: the next pass binds them); for each Released volume under reclaim
policy Delete it asks ``runtime.delete_volume(pv)`` and then removes the volume.

Level-triggered: a crash between the runtime's answer and the store write is healed by the next
pass asking again (provision_volume is idempotent by volume name and keeps the data; delete_volume
is idempotent). A failure is an event (ProvisioningFailed, VolumeFailedDelete) and is tried again
on a later pass, after a back-off of 1, 2, 4, ... up to 60 seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from runtime.base import Runtime, RuntimeError_

from .cluster import Cluster, key_of
from .controllers import volume as volctl
from .log import Logger
from .types import Obj

MAX_BACKOFF = 60.0


class VolumeRequests:
    """Carries out a pass's provisioning and reclaim requests; remembers the back-off of failures."""

    def __init__(self, runtime: Runtime, cluster: Cluster, log: Logger, clock: Callable[[], float]):
        self.runtime = runtime
        self.cluster = cluster
        self.log = log
        self.clock = clock
        self._retry_at: dict[str, float] = {}  # pv name -> not before
        self._failures: dict[str, int] = {}

    def _due(self, name: str) -> bool:
        return self._retry_at.get(name, 0.0) <= self.clock()

    def _failed(self, name: str) -> None:
        n = self._failures.get(name, 0)
        self._failures[name] = n + 1
        self._retry_at[name] = self.clock() + min(MAX_BACKOFF, 2.0**n)

    def _succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
        self._retry_at.pop(name, None)

    def retry_after(self) -> float | None:
        """Seconds until the next failed request may be tried again (None: none waits)."""
        if not self._retry_at:
            return None
        return max(0.0, min(self._retry_at.values()) - self.clock())

    async def run(
        self, provision: Sequence[volctl.Provision], reclaim: Sequence[Obj], new_uid: Callable[[], str]
    ) -> list[Obj]:
        """The requests that are due; returns the events (records as the store keeps them, without
        reconcile id and revision: the caller adds them)."""
        events: list[Obj] = []
        for req in provision:
            if self._due(req.pv_name):
                events.extend(await self._provision(req, new_uid))
        for pv in reclaim:
            if self._due(pv["metadata"]["name"]):
                events.extend(await self._reclaim(pv))
        return events

    def _event(self, type_: str, reason: str, obj: Obj, message: str) -> Obj:
        m = obj["metadata"]
        return {
            "time": self.clock(),
            "type": type_,
            "reason": reason,
            "kind": obj["kind"],
            "namespace": m.get("namespace") or "",
            "name": m["name"],
            "message": message,
        }

    async def _provision(self, req: volctl.Provision, new_uid: Callable[[], str]) -> list[Obj]:
        claim, name = req.claim, req.pv_name
        who = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
        try:
            source = await self.runtime.provision_volume(name, claim)
        except Exception as e:
            log = self.log.warning if isinstance(e, RuntimeError_) else self.log.exception
            log("volume_provision_failed", pv=name, claim=who, error=str(e))
            self._failed(name)
            sc_name = req.storage_class["metadata"]["name"]
            message = f'failed to provision volume with StorageClass "{sc_name}": {e or type(e).__name__}'
            return [self._event("Warning", "ProvisioningFailed", claim, message)]
        self._succeeded(name)
        live = self.cluster.get(key_of(claim))
        if live is None or live["metadata"].get("uid") != claim["metadata"]["uid"]:
            return []  # the claim went meanwhile: nothing to bind (the data is kept)
        if self.cluster.get((volctl.PV, "", name)) is None:
            self.cluster.put(volctl.provisioned_pv(live, req.storage_class, source, new_uid(), self.clock()))
        self.log.info("volume_provisioned", pv=name, claim=who)
        message = f"Successfully provisioned volume {name} using {req.storage_class.get('provisioner')}"
        return [self._event("Normal", "ProvisioningSucceeded", claim, message)]

    async def _reclaim(self, pv: Obj) -> list[Obj]:
        name = pv["metadata"]["name"]
        try:
            await self.runtime.delete_volume(pv)
        except Exception as e:
            (self.log.warning if isinstance(e, RuntimeError_) else self.log.exception)(
                "volume_delete_failed", pv=name, error=str(e)
            )
            self._failed(name)
            return [self._event("Warning", "VolumeFailedDelete", pv, str(e) or type(e).__name__)]
        self._succeeded(name)
        live = self.cluster.get((volctl.PV, "", name))
        if live is not None and live["metadata"].get("uid") == pv["metadata"].get("uid"):
            self.cluster.delete((volctl.PV, "", name))
        self.log.info("volume_deleted", pv=name)
        return [
            self._event("Normal", "VolumeDelete", pv, f"volume {name} and its data deleted (reclaim policy Delete)")
        ]


CONFIG_KINDS = ("ConfigMap", "Secret", "PersistentVolumeClaim", "PersistentVolume")
"""The live kinds the runtime gets with set_config_objects (env, volumes, claims)."""


def config_objects_of(objects: dict[Any, Obj]) -> dict[Any, Obj]:
    return {k: o for k, o in objects.items() if k[0] in CONFIG_KINDS}
