"""persistentVolumeClaim volumes in the pod kernel (runtime/kernel/volumes.py) and the provisioner's
folders (runtime/storage.py, runtime/volumes.py): claim -> volumeName -> PV -> source."""

from __future__ import annotations

import os
from typing import Any

import pytest

from runtime import storage, volumes
from runtime.kernel import ConfigError
from runtime.kernel.volumes import (
    CSI_DRIVER,
    VolumeError,
    claim_plan,
    pv_path,
    pv_volume_handle,
    volume_plan,
    volume_sources,
)


def pvc(name: str = "data", pv: str | None = "pv-1", *, ns: str = "default", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], **extra}
    if pv:
        spec["volumeName"] = pv
    return {"kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns, "uid": "u1"}, "spec": spec}


def pv(name: str = "pv-1", source: dict[str, Any] | None = None, claim_ref: dict[str, Any] | None = None) -> Any:
    spec: dict[str, Any] = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}
    spec.update(source if source is not None else {"hostPath": {"path": "/srv/pv-1", "type": "DirectoryOrCreate"}})
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    return {"kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def objs(*items: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in items}


def plan(objects: Any, read_only: bool = False, ns: str = "default") -> Any:
    return claim_plan("vol", {"claimName": "data", "readOnly": read_only}, ns, objects)


def test_the_contract_constants() -> None:
    from runtime import base

    assert base.PROVISIONER == "gitship.io/local-path"
    assert base.CSI_DRIVER == CSI_DRIVER == "local-path.gitship.io"


def test_a_bound_claim_with_a_host_path_volume() -> None:
    p = plan(objs(pvc(), pv()))
    assert (p.kind, p.host_path, p.host_type, p.claim, p.pv_name, p.read_only) == (
        "hostPath",
        "/srv/pv-1",
        "DirectoryOrCreate",
        "data",
        "pv-1",
        False,
    )
    local = plan(objs(pvc(), pv(source={"local": {"path": "/mnt/disks/ssd1/"}})))
    assert (local.kind, local.host_path, local.host_type) == ("hostPath", "/mnt/disks/ssd1", "Directory")


def test_the_provisioners_docker_volume_is_a_csi_plan() -> None:
    p = plan(objs(pvc(), pv(source={"csi": {"driver": CSI_DRIVER, "volumeHandle": "gitship-x-pv-1"}})))
    assert (p.kind, p.volume_handle, p.pv_name) == ("csi", "gitship-x-pv-1", "pv-1")


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        (objs(), 'persistentvolumeclaim "data" not found'),
        (objs(pvc(pv=None)), 'persistentvolumeclaim "data" is not bound'),
        (objs({**pvc(), "status": {"phase": "Pending"}}, pv()), 'persistentvolumeclaim "data" is not bound'),
        (objs(pvc()), 'persistentvolume "pv-1" not found'),
        (
            objs({**pvc(), "metadata": {"name": "data", "namespace": "default", "deletionTimestamp": "x"}}, pv()),
            'persistentvolumeclaim "data" is being deleted',
        ),
        (
            objs(pvc(), pv(claim_ref={"namespace": "other", "name": "data"})),
            'persistentvolume "pv-1" is bound to another claim (other/data)',
        ),
        (
            objs(pvc(), pv(claim_ref={"namespace": "default", "name": "data", "uid": "not-u1"})),
            'persistentvolume "pv-1" is bound to another claim (default/data)',
        ),
        (
            objs(pvc(), pv(source={"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "v"}})),
            'persistentvolume "pv-1": csi driver "ebs.csi.aws.com" is not supported by gitship',
        ),
        (
            objs(pvc(), pv(source={"nfs": {"server": "s", "path": "/"}})),
            'persistentvolume "pv-1" has volume source nfs: gitship supports hostPath, local and its own',
        ),
        (
            objs(pvc(), pv(source={"hostPath": {"path": "relative"}})),
            "persistentvolume \"pv-1\": hostPath path 'relative' must be an absolute path",
        ),
    ],
)
def test_a_claim_that_cannot_be_used_keeps_the_pod_creating(objects: Any, message: str) -> None:
    with pytest.raises(VolumeError) as e:
        plan(objects)
    assert e.value.message == f'MountVolume.SetUp failed for volume "vol" : {message}'
    assert e.value.reason == "ContainerCreating"


def test_the_claim_is_looked_up_in_the_pods_namespace() -> None:
    objects = objs(pvc(ns="team"), pv(claim_ref={"namespace": "team", "name": "data"}))
    assert plan(objects, ns="team").pv_name == "pv-1"
    with pytest.raises(VolumeError, match="not found"):
        plan(objects, ns="default")


def test_read_only_from_the_volume_the_claim_or_the_csi_source() -> None:
    assert plan(objs(pvc(), pv()), read_only=True).read_only
    assert plan(objs(pvc(accessModes=["ReadOnlyMany"]), pv())).read_only
    assert not plan(objs(pvc(accessModes=["ReadOnlyMany", "ReadWriteOnce"]), pv())).read_only
    csi = {"csi": {"driver": CSI_DRIVER, "volumeHandle": "h", "readOnly": True}}
    assert plan(objs(pvc(), pv(source=csi))).read_only


def test_volume_plan_and_volume_sources_know_claims() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "default", "uid": "1"},
        "spec": {"volumes": [{"name": "vol", "persistentVolumeClaim": {"claimName": "data"}}]},
    }
    assert volume_plan(pod, pod["spec"]["volumes"][0], objs(pvc(), pv())).kind == "hostPath"
    assert volume_sources(pod) == {("PersistentVolumeClaim", "default", "data")}
    assert volume_sources(pod, objs(pvc(), pv())) == {
        ("PersistentVolumeClaim", "default", "data"),
        ("PersistentVolume", "", "pv-1"),
    }


def test_pv_path_and_handle() -> None:
    assert pv_path(pv()) == "/srv/pv-1"
    assert pv_path(pv(source={"local": {"path": "/mnt/x"}})) == "/mnt/x"
    assert pv_path(pv(source={"csi": {"driver": CSI_DRIVER, "volumeHandle": "h"}})) is None
    assert pv_volume_handle(pv(source={"csi": {"driver": CSI_DRIVER, "volumeHandle": "h"}})) == "h"
    assert pv_volume_handle(pv(source={"csi": {"driver": "other", "volumeHandle": "h"}})) is None


# ----------------------------------------------------------------------------- folders (I/O)


def test_provision_is_idempotent_and_keeps_the_data(tmp_path: Any) -> None:
    state = str(tmp_path / "state")
    frag = storage.provision_folder(state, "pv-a")
    path = os.path.join(state, "storage", "pv-a")
    assert frag == {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}
    assert os.stat(path).st_mode & 0o777 == 0o777
    with open(os.path.join(path, "f"), "w") as f:
        f.write("x")
    assert storage.provision_folder(state, "pv-a") == frag
    assert os.path.isfile(os.path.join(path, "f"))
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(storage.StorageError):
            storage.provision_folder(state, bad)


def test_remove_folder_only_under_the_storage_dir(tmp_path: Any) -> None:
    state = str(tmp_path / "state")
    frag = storage.provision_folder(state, "pv-a")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, os.path.join(state, "storage", "escape"))
    for path in (str(outside), os.path.join(state, "storage", "escape"), os.path.join(state, "storage")):
        with pytest.raises(storage.StorageError, match="did not provision it"):
            storage.remove_folder(state, pv("x", {"hostPath": {"path": path}}))
    assert outside.is_dir()
    assert storage.remove_folder(state, pv("pv-a", frag)) is True
    assert not os.path.exists(frag["hostPath"]["path"])
    assert storage.remove_folder(state, pv("pv-a", frag)) is True  # gone already
    assert storage.remove_folder(state, pv("c", {"csi": {"driver": CSI_DRIVER, "volumeHandle": "h"}})) is False


def _pod(mounts: list[dict[str, Any]], read_only: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
        "spec": {
            "containers": [{"name": "main", "volumeMounts": mounts}],
            "volumes": [{"name": "vol", "persistentVolumeClaim": {"claimName": "data", "readOnly": read_only}}],
        },
    }


def test_a_provisioned_folder_needs_no_allow_host_path_and_others_do(tmp_path: Any) -> None:
    state = str(tmp_path / "state")
    frag = storage.provision_folder(state, "pv-1")
    objects = objs(pvc(), pv(source=frag))
    p = _pod([{"name": "vol", "mountPath": "/data"}, {"name": "vol", "mountPath": "/sub", "subPath": "a/b"}])
    plans = volumes.prepare_pod(state, p, objects)
    assert plans["vol"].kind == "hostPath"
    assert not os.path.exists(volumes.volume_dir(state, "uid-1", "vol"))  # nothing written for a claim
    got = volumes.host_mounts(state, p, p["spec"]["containers"][0], {}, (), objects=objects)
    path = frag["hostPath"]["path"]
    assert [(s, t, ro) for s, t, ro, _m in got] == [(path, "/data", False), (os.path.join(path, "a/b"), "/sub", False)]
    ro = _pod([{"name": "vol", "mountPath": "/data"}], read_only=True)
    assert volumes.host_mounts(state, ro, ro["spec"]["containers"][0], {}, (), objects=objects)[0][2] is True
    volumes.remove_pod(state, "uid-1")
    assert os.path.isdir(path)  # the pod went, the data stays

    elsewhere = tmp_path / "elsewhere"
    static = objs(pvc(), pv(source={"hostPath": {"path": str(elsewhere), "type": "DirectoryOrCreate"}}))
    with pytest.raises(ConfigError, match="is not under an --allow-host-path prefix"):
        volumes.prepare_pod(state, p, static)
    assert not elsewhere.exists()
    volumes.prepare_pod(state, p, static, "", [str(tmp_path)])
    assert elsewhere.is_dir()


def test_a_docker_volume_claim_is_refused_where_there_is_no_docker(tmp_path: Any) -> None:
    objects = objs(pvc(), pv(source={"csi": {"driver": CSI_DRIVER, "volumeHandle": "gitship-x-pv-1"}}))
    p = _pod([{"name": "vol", "mountPath": "/data"}])
    with pytest.raises(VolumeError, match="is a Docker volume"):
        volumes.prepare_pod(str(tmp_path), p, objects, docker_volumes=False)
    assert volumes.prepare_pod(str(tmp_path), p, objects)["vol"].kind == "csi"
    got = volumes.host_mounts(str(tmp_path), p, p["spec"]["containers"][0], {}, (), objects=objects)
    assert [(s, t) for s, t, _ro, _m in got] == [("gitship-x-pv-1", "/data")]


def test_docker_storage_mounts_carry_the_instance_prefix(tmp_path: Any) -> None:
    from runtime.docker import mounts

    name = mounts.storage_volume_name("abc", "pvc-1")
    assert name == "gitship-abc-pvc-1"
    mine = objs(pvc(), pv(source={"csi": {"driver": CSI_DRIVER, "volumeHandle": name}}))
    p = _pod([{"name": "vol", "mountPath": "/data"}])
    c = p["spec"]["containers"][0]
    [m] = mounts.container_mounts(str(tmp_path), "abc", p, c, {}, objects=mine)
    assert (m["Type"], m["Source"], m["Target"]) == ("volume", name, "/data")
    assert m["VolumeOptions"]["Labels"]["gitship.instance"] == "abc"
    foreign = objs(pvc(), pv(source={"csi": {"driver": CSI_DRIVER, "volumeHandle": "postgres_data"}}))
    with pytest.raises(ConfigError, match="was not made by this gitship"):
        mounts.container_mounts(str(tmp_path), "abc", p, c, {}, objects=foreign)
    sub = _pod([{"name": "vol", "mountPath": "/data", "subPath": "db"}])
    [m] = mounts.container_mounts(str(tmp_path), "abc", sub, sub["spec"]["containers"][0], {}, objects=mine,
                                  api_version="1.45")  # fmt: skip
    assert m["VolumeOptions"]["Subpath"] == "db"
    root = tmp_path / "mountpoint"
    root.mkdir()
    [m] = mounts.container_mounts(
        str(tmp_path), "abc", sub, sub["spec"]["containers"][0], {}, objects=mine, api_version="1.41",
        volume_path=lambda _n: str(root),
    )  # fmt: skip
    assert (m["Type"], m["Source"]) == ("bind", str(root / "db")) and (root / "db").is_dir()


class FakeVolumesAPI:
    """The few Docker API calls of the storage volumes, over a dict {name: labels}."""

    def __init__(self, volumes: dict[str, dict[str, str]], in_use: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.volumes, self.in_use = volumes, set(in_use)

    def create_volume(self, name: str, driver: str, labels: dict[str, str]) -> dict[str, Any]:
        self.volumes.setdefault(name, labels)  # the engine keeps an existing volume as it is
        return {"Name": name, "Labels": self.volumes[name]}

    def inspect_volume(self, name: str) -> dict[str, Any]:
        import docker.errors

        if name not in self.volumes:
            raise docker.errors.NotFound("no such volume")
        return {"Name": name, "Labels": self.volumes[name], "Mountpoint": f"/var/lib/docker/volumes/{name}/_data"}

    def remove_volume(self, name: str) -> None:
        import docker.errors

        if name in self.in_use:
            raise docker.errors.APIError("volume is in use")
        self.volumes.pop(name, None)


def test_docker_storage_volumes_are_this_instances_only() -> None:
    from runtime.base import RuntimeError_
    from runtime.docker import mounts

    api = FakeVolumesAPI({"gitship-abc-taken": {"owner": "someone else"}})
    frag = mounts.provision_storage_volume(api, "abc", "pv-1", pvc())
    assert frag == {"csi": {"driver": CSI_DRIVER, "volumeHandle": "gitship-abc-pv-1"}}
    assert api.volumes["gitship-abc-pv-1"] == {
        "gitship.instance": "abc",
        "gitship.storage.pv": "pv-1",
        "gitship.storage.claim": "default/data",
    }
    assert mounts.provision_storage_volume(api, "abc", "pv-1", pvc()) == frag  # idempotent
    with pytest.raises(RuntimeError_, match="not this gitship's"):
        mounts.provision_storage_volume(api, "abc", "taken", pvc())
    with pytest.raises(RuntimeError_, match="not this gitship's"):  # another instance's volume
        mounts.delete_storage_volume(api, "other", pv("pv-1", frag))
    with pytest.raises(RuntimeError_, match="not one this runtime provisioned"):
        mounts.delete_storage_volume(api, "abc", pv("pv-1", {"csi": {"driver": "x", "volumeHandle": "v"}}))
    api.in_use.add("gitship-abc-pv-1")
    with pytest.raises(RuntimeError_, match="retried later"):
        mounts.delete_storage_volume(api, "abc", pv("pv-1", frag))
    api.in_use.clear()
    mounts.delete_storage_volume(api, "abc", pv("pv-1", frag))
    assert "gitship-abc-pv-1" not in api.volumes
    mounts.delete_storage_volume(api, "abc", pv("pv-1", frag))  # gone already: fine
