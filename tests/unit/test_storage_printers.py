"""`get` tables and describe pages of PersistentVolumes, PersistentVolumeClaims and StorageClasses."""

from __future__ import annotations

from reconciler import getprint, printers
from reconciler.controllers.podutil import from_rfc3339
from reconciler.printers import TableOptions
from reconciler.printers_storage import access_modes, pods_using

NOW = from_rfc3339("2026-11-25T20:05:00Z")
T = "2026-11-25T20:00:00Z"

PV = {
    "apiVersion": "v1",
    "kind": "PersistentVolume",
    "metadata": {"name": "pvc-1", "creationTimestamp": T, "finalizers": ["kubernetes.io/pv-protection"]},
    "spec": {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Delete",
        "storageClassName": "local-path",
        "claimRef": {"namespace": "default", "name": "data", "uid": "u"},
        "hostPath": {"path": "/state/storage/pvc-1", "type": "DirectoryOrCreate"},
        "volumeMode": "Filesystem",
    },
    "status": {"phase": "Bound"},
}
PVC = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "data", "namespace": "default", "creationTimestamp": T},
    "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pvc-1", "storageClassName": "local-path"},
    "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]},
}
SC = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "local-path",
        "creationTimestamp": T,
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "gitship.io/local-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}


def lines(kind: str, obj: dict, opts: TableOptions | None = None) -> list[str]:
    return getprint.get_tables([(kind, obj)], NOW, opts or TableOptions()).splitlines()


def test_access_modes_abbreviated_in_kubectl_order() -> None:
    assert access_modes(["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"]) == "RWO,ROX,RWX"
    assert access_modes(["ReadWriteOncePod"]) == "RWOP"


def test_pv_table() -> None:
    head, row = lines("PersistentVolume", PV)
    assert head.split() == [
        "NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "REASON", "AGE",
    ]  # fmt: skip
    assert row.split() == ["pvc-1", "1Gi", "RWO", "Delete", "Bound", "default/data", "local-path", "<unset>", "5m"]
    # -A adds no NAMESPACE column to a cluster-scoped kind
    assert lines("PersistentVolume", PV, TableOptions(all_namespaces=True))[0].startswith("NAME")


def test_pvc_table_pending_and_bound() -> None:
    head, row = lines("PersistentVolumeClaim", PVC)
    assert head.split() == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE",
    ]  # fmt: skip
    assert row.split() == ["data", "Bound", "pvc-1", "1Gi", "RWO", "local-path", "<unset>", "5m"]
    pending = {**PVC, "spec": {"storageClassName": "local-path"}, "status": {"phase": "Pending"}}
    assert lines("PersistentVolumeClaim", pending)[1].split() == ["data", "Pending", "local-path", "<unset>", "5m"]
    wide = lines("PersistentVolumeClaim", PVC, TableOptions(wide=True))
    assert wide[0].split()[-1] == "VOLUMEMODE" and wide[1].split()[-1] == "Filesystem"


def test_storageclass_table_marks_the_default() -> None:
    head, row = lines("StorageClass", SC)
    assert head.split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert row.split() == [
        "local-path",
        "(default)",
        "gitship.io/local-path",
        "Delete",
        "WaitForFirstConsumer",
        "false",
        "5m",
    ]


def test_describe_pages_say_capacity_is_not_enforced() -> None:
    page = printers.describe(PV, [], NOW)
    assert "Namespace:" not in page
    assert "Claim:          default/data" in page and "Reclaim Policy: Delete" in page
    assert "not enforced" in page and "Path:          /state/storage/pvc-1" in page
    page = printers.describe(PVC, [], NOW, [("Used By", pods_using(PVC, [pod("a"), pod("b", "other")]))])
    assert "Namespace:      default" in page and "Volume:         pvc-1" in page and "not enforced" in page
    assert "Used By:        a" in page
    page = printers.describe(SC, [], NOW)
    assert "IsDefaultClass:        Yes" in page and "VolumeBindingMode:     WaitForFirstConsumer" in page


def pod(name: str, claim: str = "data") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
    }


def test_resource_names() -> None:
    assert getprint.resource_name(SC) == "storageclass.storage.k8s.io/local-path"
    assert getprint.resource_name(PV) == "persistentvolume/pvc-1"
