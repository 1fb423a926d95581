"""Defaults and validation of PersistentVolumeClaim, PersistentVolume and StorageClass, and the
fields that may not change once they exist (reconciler/manifests/validate/storage.py,
reconciler/sync/immutable.py)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reconciler.errors import RevisionRejected
from reconciler.manifests.load import load_file
from reconciler.manifests.model import Manifest, Source
from reconciler.manifests.validate.storage import parse_quantity
from reconciler.sync.immutable import immutable_field_errors


def load(text: str) -> list[Manifest]:
    return load_file("storage.yaml", text.encode(), {})


def errors(text: str) -> list[tuple[str, str]]:
    with pytest.raises(RevisionRejected) as e:
        load(text)
    return [(err.field, err.message) for err in e.value.errors]


PVC = """apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""

PV = """apiVersion: v1
kind: PersistentVolume
metadata: {name: disk, namespace: ignored}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /srv/disk}
"""

SC = """apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: gitship.io/local-path
"""


def test_defaults_and_cluster_scoped_keys() -> None:
    claim, vol, sc = (load(t)[0] for t in (PVC, PV, SC))
    assert claim.key == ("PersistentVolumeClaim", "default", "data")
    assert claim.obj["spec"]["volumeMode"] == "Filesystem"
    assert "storageClassName" not in claim.obj["spec"]  # the default class is filled in when first seen
    assert vol.key == ("PersistentVolume", "", "disk")
    assert "namespace" not in vol.obj["metadata"]  # ignored, as the API server does
    assert vol.obj["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert vol.obj["spec"]["volumeMode"] == "Filesystem"
    assert sc.key == ("StorageClass", "", "fast")
    assert (sc.obj["reclaimPolicy"], sc.obj["volumeBindingMode"]) == ("Delete", "Immediate")


def test_claim_errors_name_the_field() -> None:
    bad = PVC.replace("accessModes: [ReadWriteOnce]", "accessModes: []").replace("1Gi", "0")
    got = errors(bad)
    assert ("spec.accessModes", "Required value: at least 1 access mode is required") in got
    assert any(f == "spec.resources.requests[storage]" and "greater than zero" in m for f, m in got)
    got = errors(PVC.replace("[ReadWriteOnce]", "[ReadWriteSometimes]") + "  volumeMode: Raw\n")
    assert [f for f, _ in got] == ["spec.accessModes[0]", "spec.volumeMode"]
    got = errors(PVC.replace("resources: {requests: {storage: 1Gi}}", "resources: {}"))
    assert got == [("spec.resources.requests[storage]", "Required value")]
    got = errors(PVC.replace("[ReadWriteOnce]", "[ReadWriteOncePod, ReadOnlyMany]"))
    assert [f for f, _ in got] == ["spec.accessModes"]
    got = errors(PVC + "  selector: {matchLabels: {'bad key!': x}}\n")
    assert got and got[0][0].startswith("spec.selector")
    got = errors(PVC + "  storageClassName: Not_A_Name\n")
    assert [f for f, _ in got] == ["spec.storageClassName"]


def test_volume_errors() -> None:
    got = errors(PV.replace("  hostPath: {path: /srv/disk}\n", ""))
    assert got == [("spec", "Required value: must specify a volume type")]
    got = errors(PV + "  nfs: {server: a, path: /b}\n")
    assert got == [("spec.nfs", "Forbidden: may not specify more than 1 volume type")]
    got = errors(PV.replace("capacity: {storage: 5Gi}", "capacity: {}"))
    assert got == [("spec.capacity", "Required value")]
    got = errors(PV + "  persistentVolumeReclaimPolicy: Keep\n")
    assert [f for f, _ in got] == ["spec.persistentVolumeReclaimPolicy"]
    got = errors(PV.replace("hostPath: {path: /srv/disk}", "local: {path: /srv/disk}"))
    assert got == [("spec.nodeAffinity", "Required value: Local volume requires node affinity")]


def test_class_errors() -> None:
    assert errors(SC.replace("provisioner: gitship.io/local-path\n", "")) == [("provisioner", "Required value")]
    got = errors(SC + "reclaimPolicy: Recycle\nvolumeBindingMode: Later\n")
    assert [f for f, _ in got] == ["reclaimPolicy", "volumeBindingMode"]
    got = errors(SC + "parameters: {a: 1}\n")
    assert [f for f, _ in got] == ["parameters[a]"]
    assert errors(SC.replace("gitship.io/local-path", "-bad-")) and load(SC + "allowVolumeExpansion: true\n")


@pytest.mark.parametrize(
    ("text", "amount"),
    [("1Gi", Fraction(2**30)), ("500M", Fraction(5 * 10**8)), ("1e3", Fraction(1000)), ("100m", Fraction(1, 10))],
)
def test_quantities(text: str, amount: Fraction) -> None:
    assert parse_quantity(text) == amount


def test_quantities_rejected() -> None:
    assert parse_quantity("1Gb") is None and parse_quantity("big") is None and parse_quantity(True) is None


# -- what may change -------------------------------------------------------------------------------


def manifest(text: str) -> Manifest:
    m = load(text)[0]
    return Manifest(m.obj, Source("storage.yaml", 1, 0))


def live_of(m: Manifest, **spec: object) -> dict:
    obj = {**m.obj, "spec": {**m.obj.get("spec", {}), **spec}} if "spec" in m.obj else dict(m.obj)
    return obj


def test_claim_spec_is_immutable_but_requests_may_grow() -> None:
    m = manifest(PVC)
    live = {m.key: live_of(m, storageClassName="local-path", volumeName="pvc-1")}
    assert immutable_field_errors([m], live) == []  # git leaves class and volume to the controller
    grown = manifest(PVC.replace("1Gi", "2Gi"))
    assert immutable_field_errors([grown], live) == []
    shrunk = manifest(PVC.replace("1Gi", "512Mi"))
    assert [e.field for e in immutable_field_errors([shrunk], live)] == ["spec.resources.requests.storage"]
    modes = manifest(PVC.replace("[ReadWriteOnce]", "[ReadWriteMany]"))
    assert [e.field for e in immutable_field_errors([modes], live)] == ["spec"]
    other_class = manifest(PVC + "  storageClassName: fast\n")
    assert [e.field for e in immutable_field_errors([other_class], live)] == ["spec"]


def test_claim_volume_name_may_be_set_once() -> None:
    m = manifest(PVC + "  volumeName: disk\n")
    unbound = {m.key: live_of(manifest(PVC), storageClassName="")}
    assert immutable_field_errors([manifest(PVC + "  volumeName: disk\n  storageClassName: ''\n")], unbound) == []
    bound = {m.key: live_of(m, volumeName="other")}
    assert [e.field for e in immutable_field_errors([m], bound)] == ["spec"]


def test_volume_source_is_immutable_and_git_class_fields_too() -> None:
    m = manifest(PV.replace("/srv/disk", "/srv/other"))
    live = {m.key: live_of(manifest(PV))}
    assert [e.field for e in immutable_field_errors([m], live)] == ["spec.persistentvolumesource"]
    grown = manifest(PV.replace("5Gi", "10Gi"))
    assert immutable_field_errors([grown], live) == []
    sc = manifest(SC.replace("gitship.io/local-path", "example.com/x"))
    builtin = {sc.key: dict(manifest(SC).obj)}
    assert immutable_field_errors([sc], builtin) == []  # the built-in (no git mark) may be replaced
    declared = {sc.key: {**manifest(SC).obj, "metadata": {"name": "fast", "managedFields": [{"manager": "gitship"}]}}}
    assert [e.field for e in immutable_field_errors([sc], declared)] == ["provisioner"]
