"""Claims, volumes and classes through the pure pass (controllers/volume.py, sync/storage.py).

The runtime is a FAKE (tests/unit/test_reconcile_pass.py World): its provision_volume answer is a
hostPath under a made-up storage dir, handed back as the executor does (storage_exec.py builds
the PersistentVolume with volctl.provisioned_pv). The real runtimes are exercised end to end by
tests/integration/test_storage_e2e.py.
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.controllers import volume as volctl
from reconciler.sync import Changes, PassInput, Settings, decide
from tests.unit.test_reconcile_pass import World, deployment, pod, ready_status

PROV = "gitship.io/local-path"


def pvc(name: str = "data", size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "labels": {}, "annotations": {}},
        "spec": {
            "accessModes": list(modes),
            "resources": {"requests": {"storage": size}},
            "volumeMode": "Filesystem",
            **spec,
        },
    }


def pv(
    name: str, size: str = "5Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), labels: dict | None = None, **spec: Any
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels or {}, "annotations": {}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": list(modes),
            "hostPath": {"path": f"/srv/{name}"},
            "persistentVolumeReclaimPolicy": "Retain",
            "volumeMode": "Filesystem",
            **spec,
        },
    }


def storage_class(name: str, mode: str = "Immediate", policy: str = "Delete", provisioner: str = PROV) -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "labels": {}, "annotations": {}},
        "provisioner": provisioner,
        "reclaimPolicy": policy,
        "volumeBindingMode": mode,
    }


def with_claim(p: dict, claim: str = "data") -> dict:
    p = copy.deepcopy(p)
    p["spec"]["volumes"] = [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/data"}]
    return p


def okey(obj: dict) -> tuple[str, str, str]:
    kind = obj["kind"]
    ns = "" if kind in ("PersistentVolume", "StorageClass") else obj["metadata"].get("namespace", "default")
    return (kind, ns, obj["metadata"]["name"])


class StorageWorld(World):
    """World with the storage step's runtime part: provisioning and deleting volumes at once."""

    def __init__(self, *desired: dict, **kw: Any) -> None:
        super().__init__(**kw)
        self.desired = {okey(d): d for d in desired}
        self.provisioned: list[str] = []
        self.deleted: list[str] = []
        self.fail_provision: str | None = None

    def input(self, **kw: Any) -> PassInput:
        inp = super().input(**kw)
        return PassInput(
            desired=inp.desired,
            live=inp.live,
            observed=inp.observed,
            memory=inp.memory,
            settings=Settings(service_cidr="127.96.0.0/16", reserved_ips=("127.96.0.10",), provisioner=PROV),
            ids=inp.ids,
            now=inp.now,
            **kw,
        )

    def step(self, **kw: Any) -> Changes:
        """World.step with cluster-scoped keys (namespace "")."""
        before = copy.deepcopy(self.live)
        ch = decide(self.input(**kw))
        assert self.live == before, "the pass must not change its input"
        for k in ch.delete:
            self.live.pop(k, None)
        for obj in ch.put:
            self.live[okey(obj)] = obj
        for s in ch.stop:
            self.running.pop(s.uid, None)
            self.launched.discard(s.uid)
            if s.key is not None and (self.live.get(s.key) or {}).get("metadata", {}).get("uid") == s.uid:
                del self.live[s.key]
        for s in ch.start:
            self.launched.add(s.uid)
            self.running[s.uid] = ready_status("127.244.0.10", self.now)
        for req in ch.provision:
            if self.fail_provision:
                continue
            self.provisioned.append(req.pv_name)
            src = {"hostPath": {"path": f"/state/storage/{req.pv_name}", "type": "DirectoryOrCreate"}}
            obj = volctl.provisioned_pv(req.claim, req.storage_class, src, f"pv-uid-{req.pv_name}", self.now)
            self.live[okey(obj)] = obj
        for obj in ch.reclaim:
            self.deleted.append(obj["metadata"]["name"])
            self.live.pop(okey(obj), None)
        return ch

    def settle(self, n: int = 4) -> list[Changes]:
        return [self.step() for _ in range(n)]

    def get(self, kind: str, name: str, ns: str = "default") -> dict | None:
        return self.live.get((kind, "" if kind in ("PersistentVolume", "StorageClass") else ns, name))


def events(chs: list[Changes]) -> list[tuple[str, str, str]]:
    return [(e["reason"], e["kind"], e["name"]) for ch in chs for e in ch.events]


# -- the built-in class and the default class ----------------------------------------------------


def test_builtin_local_path_class_is_the_default_and_fills_the_claim() -> None:
    w = StorageWorld(pvc())
    w.step()
    sc = w.get("StorageClass", "local-path")
    assert sc is not None and sc["provisioner"] == PROV
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer" and sc["reclaimPolicy"] == "Delete"
    assert sc["metadata"]["annotations"][volctl.ANN_DEFAULT_CLASS] == "true"
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None and claim["spec"]["storageClassName"] == "local-path"
    assert volctl.PVC_PROTECTION in claim["metadata"]["finalizers"]


def test_git_class_of_the_same_name_replaces_the_builtin() -> None:
    w = StorageWorld(storage_class("local-path", mode="Immediate", policy="Retain"))
    w.settle(2)
    sc = w.get("StorageClass", "local-path")
    assert sc is not None and sc["reclaimPolicy"] == "Retain" and sc["volumeBindingMode"] == "Immediate"
    del w.desired[("StorageClass", "", "local-path")]
    w.settle(2)
    sc = w.get("StorageClass", "local-path")
    assert sc is not None and sc["volumeBindingMode"] == "WaitForFirstConsumer"


def test_empty_class_name_means_no_provisioning() -> None:
    w = StorageWorld(pvc(storageClassName=""))
    chs = w.settle(3)
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None and claim["spec"]["storageClassName"] == "" and claim["status"]["phase"] == "Pending"
    assert w.provisioned == []
    assert ("FailedBinding", "PersistentVolumeClaim", "data") in events(chs)


# -- dynamic provisioning --------------------------------------------------------------------


def test_wait_for_first_consumer_then_provision_and_bind_then_pod_starts() -> None:
    w = StorageWorld(pvc())
    chs = w.settle(3)
    assert w.provisioned == []
    assert ("WaitForFirstConsumer", "PersistentVolumeClaim", "data") in events(chs)
    assert [e for ch in chs for e in ch.events if e["reason"] == "WaitForFirstConsumer"][0]["message"] == (
        "waiting for first consumer to be created before binding"
    )
    w.desired[("Pod", "default", "app")] = with_claim(pod("app"))
    ch = w.step()
    assert ch.start == []  # not scheduled: its claim is unbound
    p = w.get("Pod", "app")
    assert p is not None and p["status"]["phase"] == "Pending"
    cond = p["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("PodScheduled", "False", "Unschedulable")
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None
    uid = claim["metadata"]["uid"]
    assert w.provisioned == [f"pvc-{uid}"]
    chs = w.settle(2)
    claim = w.get("PersistentVolumeClaim", "data")
    vol = w.get("PersistentVolume", f"pvc-{uid}")
    assert claim is not None and vol is not None
    assert claim["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    assert claim["spec"]["volumeName"] == f"pvc-{uid}"
    assert claim["metadata"]["annotations"][volctl.ANN_BIND_COMPLETED] == "yes"
    assert vol["status"]["phase"] == "Bound"
    assert vol["spec"]["claimRef"]["uid"] == uid
    assert vol["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert vol["spec"]["storageClassName"] == "local-path"
    assert vol["metadata"]["annotations"][volctl.ANN_PROVISIONED_BY] == PROV
    assert vol["spec"]["hostPath"]["path"] == f"/state/storage/pvc-{uid}"
    assert any(s.key == ("Pod", "default", "app") for ch in chs for s in ch.start)
    assert w.provisioned == [f"pvc-{uid}"]  # once


def test_immediate_class_provisions_at_once() -> None:
    w = StorageWorld(storage_class("fast"), pvc(storageClassName="fast"))
    w.step()
    assert len(w.provisioned) == 1
    w.step()
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None and claim["status"]["phase"] == "Bound"


def test_provisioning_is_asked_again_until_it_works() -> None:
    w = StorageWorld(storage_class("fast"), pvc(storageClassName="fast"))
    w.fail_provision = "disk full"
    chs = w.settle(3)
    assert sum(len(ch.provision) for ch in chs) == 3  # level-triggered: asked in every pass
    w.fail_provision = None
    w.settle(2)
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None and claim["status"]["phase"] == "Bound"


def test_restart_converges_from_the_stored_objects() -> None:
    """The live objects are all there is after a restart: a bound pair stays bound, nothing is
    provisioned twice."""
    w = StorageWorld(storage_class("fast"), pvc(storageClassName="fast"))
    w.settle(3)
    live = copy.deepcopy(w.live)
    w2 = StorageWorld(storage_class("fast"), pvc(storageClassName="fast"))
    w2.live = live
    chs = w2.settle(2)
    assert w2.provisioned == [] and all(ch.put == [] for ch in chs[1:])
    assert w2.live == w.live


# -- static volumes ------------------------------------------------------------------------------


def test_smallest_matching_static_volume_is_bound() -> None:
    w = StorageWorld(
        pvc(storageClassName="", size="2Gi"),
        pv("big", "10Gi"),
        pv("small", "3Gi"),
        pv("tiny", "1Gi"),
        pv("rox", "3Gi", modes=("ReadOnlyMany",)),
    )
    w.settle(2)
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None and claim["spec"]["volumeName"] == "small"
    assert claim["metadata"]["annotations"][volctl.ANN_BOUND_BY_CONTROLLER] == "yes"
    small = w.get("PersistentVolume", "small")
    assert small is not None and small["status"]["phase"] == "Bound"
    assert small["metadata"]["annotations"][volctl.ANN_BOUND_BY_CONTROLLER] == "yes"
    for name in ("big", "tiny", "rox"):
        v = w.get("PersistentVolume", name)
        assert v is not None and v["status"]["phase"] == "Available"


def test_selector_and_prebinding() -> None:
    w = StorageWorld(
        pvc("a", storageClassName="", selector={"matchLabels": {"disk": "ssd"}}),
        pvc("b", storageClassName="", volumeName="named"),
        pvc("c", storageClassName=""),
        pv("hdd", "1Gi", labels={"disk": "hdd"}),
        pv("ssd", "8Gi", labels={"disk": "ssd"}),
        pv("named", "8Gi"),
        pv("reserved", "1Gi", claimRef={"namespace": "default", "name": "c"}),
    )
    w.settle(2)
    got = {n: w.get("PersistentVolumeClaim", n)["spec"]["volumeName"] for n in "abc"}  # type: ignore[index]
    assert got == {"a": "ssd", "b": "named", "c": "reserved"}
    hdd = w.get("PersistentVolume", "hdd")
    assert hdd is not None and hdd["status"]["phase"] == "Available"
    # git's volume keeps the claimRef the controller filled in (git does not own it)
    reserved = w.get("PersistentVolume", "reserved")
    assert reserved is not None and reserved["spec"]["claimRef"]["uid"]


def test_pod_with_a_missing_claim_is_not_scheduled() -> None:
    w = StorageWorld(with_claim(pod("app"), "nope"))
    chs = w.settle(2)
    assert all(ch.start == [] for ch in chs)
    p = w.get("Pod", "app")
    assert p is not None and p["status"]["conditions"][0]["message"] == 'persistentvolumeclaim "nope" not found'
    assert events(chs).count(("FailedScheduling", "Pod", "app")) == 1


def test_deployment_pods_wait_for_an_immediate_claim() -> None:
    d = deployment("web", replicas=1)
    d["spec"]["template"] = with_claim(
        {"spec": d["spec"]["template"]["spec"]} | {"metadata": d["spec"]["template"]["metadata"]}
    )
    w = StorageWorld(storage_class("slow", provisioner="example.com/other"), pvc(storageClassName="slow"), d)
    chs = w.settle(3)
    assert all(ch.start == [] for ch in chs)
    pods = w.of_kind("Pod")
    assert len(pods) == 1
    msg = pods[0]["status"]["conditions"][0]["message"]
    assert msg == "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    assert ("ExternalProvisioning", "PersistentVolumeClaim", "data") in events(chs)


# -- protection and reclaim ------------------------------------------------------------------


def bound_world(policy: str) -> tuple[StorageWorld, str]:
    w = StorageWorld(storage_class("fast", policy=policy), pvc(storageClassName="fast"), with_claim(pod("app")))
    w.settle(4)
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None and claim["status"]["phase"] == "Bound"
    assert w.running
    return w, claim["spec"]["volumeName"]


def test_claim_in_use_waits_then_goes_and_delete_reclaims() -> None:
    w, name = bound_world("Delete")
    del w.desired[("PersistentVolumeClaim", "default", "data")]
    chs = w.settle(2)
    claim = w.get("PersistentVolumeClaim", "data")
    assert claim is not None and claim["metadata"]["deletionTimestamp"]  # Terminating: the pod uses it
    assert ("Pruned", "PersistentVolumeClaim", "data") in events(chs)
    assert w.deleted == []
    del w.desired[("Pod", "default", "app")]
    w.settle(3)
    assert w.get("PersistentVolumeClaim", "data") is None
    assert w.deleted == [name]
    assert w.get("PersistentVolume", name) is None


def test_retain_keeps_the_volume_released() -> None:
    w, name = bound_world("Retain")
    del w.desired[("Pod", "default", "app")]
    w.settle(2)
    del w.desired[("PersistentVolumeClaim", "default", "data")]
    w.settle(2)
    assert w.get("PersistentVolumeClaim", "data") is None
    vol = w.get("PersistentVolume", name)
    assert vol is not None and vol["status"]["phase"] == "Released" and w.deleted == []


def test_finished_pods_do_not_hold_the_claim() -> None:
    w, _ = bound_world("Delete")
    uid = w.get("Pod", "app")["metadata"]["uid"]  # type: ignore[index]
    w.running[uid] = {**w.running[uid], "phase": "Succeeded"}
    del w.desired[("PersistentVolumeClaim", "default", "data")]
    w.settle(2)
    assert w.get("PersistentVolumeClaim", "data") is None


def test_static_volume_removed_from_git_waits_while_bound() -> None:
    w = StorageWorld(pvc(storageClassName=""), pv("disk", "1Gi"))
    w.settle(2)
    del w.desired[("PersistentVolume", "", "disk")]
    w.settle(2)
    vol = w.get("PersistentVolume", "disk")
    assert vol is not None and vol["metadata"]["deletionTimestamp"]
    del w.desired[("PersistentVolumeClaim", "default", "data")]
    w.settle(3)
    assert w.get("PersistentVolume", "disk") is None and w.deleted == []


def test_static_delete_policy_fails_without_a_provisioner() -> None:
    w = StorageWorld(pvc(storageClassName=""), pv("disk", "1Gi", persistentVolumeReclaimPolicy="Delete"))
    w.settle(2)
    del w.desired[("PersistentVolumeClaim", "default", "data")]
    chs = w.settle(2)
    vol = w.get("PersistentVolume", "disk")
    assert vol is not None and vol["status"]["phase"] == "Failed"
    assert ("VolumeFailedDelete", "PersistentVolume", "disk") in events(chs)


def test_git_objects_settle_after_binding() -> None:
    """What the controller fills in (class, volumeName, claimRef uid, annotations, finalizers) is
    not undone by git's copy: once bound, a pass changes nothing."""
    w = StorageWorld(
        pvc(storageClassName=""),
        pv("reserved", "1Gi", claimRef={"namespace": "default", "name": "data"}),
        pvc("dyn"),
        with_claim(pod("app"), "dyn"),
    )
    w.settle(4)
    assert all(w.get("PersistentVolumeClaim", n)["status"]["phase"] == "Bound" for n in ("data", "dyn"))  # type: ignore[index]
    ch = w.step()
    assert ch.put == [] and ch.delete == [] and ch.provision == [] and ch.events == []
