"""The executor's storage step (reconciler/storage_exec.py) against a FAKE runtime: what it asks
the runtime, what it writes, its events and its back-off. The real runtimes are exercised by
tests/conformance/test_storage.py and end to end by tests/integration/test_storage_e2e.py."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.cluster import Cluster
from reconciler.controllers import volume as volctl
from reconciler.controllers.podutil import from_rfc3339
from runtime.base import RuntimeError_

T0 = from_rfc3339("2026-11-25T20:00:00Z")


class FakeRuntime:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail: str | None = None

    async def provision_volume(self, pv_name: str, claim: Any) -> dict[str, Any]:
        self.calls.append(("provision", pv_name))
        if self.fail:
            raise RuntimeError_(self.fail)
        return {"hostPath": {"path": f"/state/storage/{pv_name}", "type": "DirectoryOrCreate"}}

    async def delete_volume(self, pv: Any) -> None:
        self.calls.append(("delete", pv["metadata"]["name"]))
        if self.fail:
            raise RuntimeError_(self.fail)


class Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


CLAIM = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "data", "namespace": "default", "uid": "c1", "annotations": {}},
    "spec": {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "local-path",
    },
    "status": {"phase": "Pending"},
}
SC = volctl.builtin_class("gitship.io/local-path", "sc1", T0)


def make() -> tuple[Any, FakeRuntime, Cluster, Clock]:
    from reconciler.storage_exec import VolumeRequests

    rt, cluster, clock = FakeRuntime(), Cluster([CLAIM, SC]), Clock()
    return VolumeRequests(rt, cluster, Log(), clock), rt, cluster, clock  # type: ignore[arg-type]


def test_provisioning_writes_the_prebound_volume_and_an_event() -> None:
    vr, rt, cluster, _ = make()
    req = volctl.Provision("pvc-c1", CLAIM, SC)
    events = asyncio.run(vr.run([req], [], lambda: "pv-uid"))
    pv = cluster.get(("PersistentVolume", "", "pvc-c1"))
    assert pv is not None and pv["spec"]["claimRef"]["uid"] == "c1"
    assert pv["spec"]["hostPath"]["path"] == "/state/storage/pvc-c1"
    assert [(e["type"], e["reason"], e["kind"], e["name"]) for e in events] == [
        ("Normal", "ProvisioningSucceeded", "PersistentVolumeClaim", "data")
    ]
    # asked again (a crash before the store write, or a pass that saw no volume yet): same answer, one volume
    asyncio.run(vr.run([req], [], lambda: "pv-uid-2"))
    pv2 = cluster.get(("PersistentVolume", "", "pvc-c1"))
    assert pv2 is not None and pv2["metadata"]["uid"] == "pv-uid"
    assert rt.calls == [("provision", "pvc-c1"), ("provision", "pvc-c1")]


def test_failures_are_events_and_retried_after_a_back_off() -> None:
    vr, rt, cluster, clock = make()
    rt.fail = "no space left"
    req = volctl.Provision("pvc-c1", CLAIM, SC)
    events = asyncio.run(vr.run([req], [], lambda: "u"))
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "ProvisioningFailed")]
    assert "no space left" in events[0]["message"] and 'StorageClass "local-path"' in events[0]["message"]
    assert asyncio.run(vr.run([req], [], lambda: "u")) == []  # within the back-off: not asked
    assert vr.retry_after() == 1.0
    clock.now += 1.0
    asyncio.run(vr.run([req], [], lambda: "u"))
    assert vr.retry_after() == 2.0  # doubled
    rt.fail = None
    clock.now += 2.0
    asyncio.run(vr.run([req], [], lambda: "u"))
    assert cluster.get(("PersistentVolume", "", "pvc-c1")) is not None and vr.retry_after() is None
    assert len(rt.calls) == 3


def test_reclaim_deletes_the_data_then_the_volume() -> None:
    vr, rt, cluster, _ = make()
    pv = volctl.provisioned_pv(CLAIM, SC, {"hostPath": {"path": "/state/storage/pvc-c1"}}, "pvu", T0)
    cluster.put(pv)
    rt.fail = "busy"
    events = asyncio.run(vr.run([], [pv], lambda: "u"))
    assert [e["reason"] for e in events] == ["VolumeFailedDelete"] and cluster.get(("PersistentVolume", "", "pvc-c1"))
    rt.fail = None
    vr._retry_at.clear()
    events = asyncio.run(vr.run([], [pv], lambda: "u"))
    assert [(e["reason"], e["kind"], e["namespace"]) for e in events] == [("VolumeDelete", "PersistentVolume", "")]
    assert cluster.get(("PersistentVolume", "", "pvc-c1")) is None
