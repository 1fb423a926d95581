"""Every runtime: the built-in local-path provisioner's volumes and persistentVolumeClaim volumes.

``provision_volume`` makes a PersistentVolume's backing store (in-process: a folder under the state
dir; Docker: a named volume) and ``delete_volume`` removes it; a pod's ``persistentVolumeClaim``
volume is resolved from the objects ``set_config_objects`` pushes (claim -> volumeName -> PV).
The data outlives pods and runtime instances. Tests that run pods use the harnesses where pods
get volumes (test_config.py's ``mounting``: in-process sandboxes, which need root, and Docker);
the others run on every runtime as the conformance harness builds it.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.base import CSI_DRIVER, Runtime, RuntimeError_
from tests.conformance.crashchild import MARK
from tests.conformance.conftest import DockerHarness, Harness, cstatus, run, sh, wait_for, waiting_reason
from tests.conformance.test_config import MOUNTING, QUIET, poll, running, sh_out

Objects = dict[tuple[str, str, str], dict[str, Any]]


def _remove_storage(h: Harness) -> None:
    """Docker: the volumes this test's instance made (the in-process folders go with tmp_path)."""
    if isinstance(h, DockerHarness):
        import docker

        client = docker.from_env()
        try:
            for v in client.volumes.list(filters={"label": f"gitship.instance={h.instance}"}):
                try:
                    v.remove(force=True)
                except Exception:
                    pass
        finally:
            client.close()


@pytest.fixture(params=[pytest.param(n, marks=[pytest.mark.docker] if n == "docker" else []) for n in MOUNTING])
def mounting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """A harness for each runtime, in the mode where pods get volumes (as in test_config.py)."""
    h = MOUNTING[request.param](tmp_path)
    try:
        yield h
    finally:
        h.remove_leftovers()
        _remove_storage(h)


@pytest.fixture
def any_runtime(runtime: Harness) -> Iterator[Harness]:
    """The conformance harness of each runtime, its storage removed afterwards."""
    try:
        yield runtime
    finally:
        _remove_storage(runtime)


def claim(name: str, pv: str | None, *, modes: tuple[str, ...] = ("ReadWriteOnce",)) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"},
    }
    if pv is not None:
        out["spec"]["volumeName"] = pv
        out["status"] = {"phase": "Bound"}
    return out


def volume(name: str, fragment: dict[str, Any], claim_name: str) -> dict[str, Any]:
    spec = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Delete",
        "storageClassName": "local-path",
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": claim_name},
        **fragment,
    }
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def bound(claim_name: str, pv: str, fragment: dict[str, Any], **kw: Any) -> Objects:
    c, v = claim(claim_name, pv, **kw), volume(pv, fragment, claim_name)
    return {("PersistentVolumeClaim", "default", claim_name): c, ("PersistentVolume", "", pv): v}


def claim_pod(h: Harness, name: str, script: str, mnt: str, *, read_only: bool = False, **vm: Any) -> dict[str, Any]:
    c = sh("main", script + QUIET)
    c["volumeMounts"] = [{"name": "data", "mountPath": mnt, **vm}]
    pod = h.pod(name, [c])
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": read_only}}]
    return pod


def _message(rt: Runtime, uid: str) -> str:
    return str(cstatus(rt.status(uid), "main")["state"].get("waiting", {}).get("message"))


def _store_exists(h: Harness, fragment: dict[str, Any]) -> bool:
    if "hostPath" in fragment:
        return os.path.isdir(fragment["hostPath"]["path"])
    import docker

    client = docker.from_env()
    try:
        client.volumes.get(fragment["csi"]["volumeHandle"])
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


# ----------------------------------------------------------------------------- no pods


def test_provisioning_is_idempotent_and_delete_removes_the_store(any_runtime: Harness) -> None:
    h = any_runtime

    async def main() -> None:
        rt, _ = await h.open()
        try:
            first = await rt.provision_volume("pvc-one", claim("data", None))
            assert await rt.provision_volume("pvc-one", claim("data", None)) == first
            if "hostPath" in first:
                path = first["hostPath"]["path"]
                assert first == {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}
                assert path == os.path.join(h.state_dir, "storage", "pvc-one")
                assert os.stat(path).st_mode & 0o777 == 0o777
            else:
                assert first["csi"]["driver"] == CSI_DRIVER
            other = await rt.provision_volume("pvc-two", claim("other", None))
            assert other != first
            await rt.delete_volume(volume("pvc-one", first, "data"))
            assert not _store_exists(h, first)
            assert _store_exists(h, other)
            await rt.delete_volume(volume("pvc-one", first, "data"))  # gone already: fine
            with pytest.raises(RuntimeError_):
                await rt.provision_volume("../escape", claim("data", None))
        finally:
            await rt.close(stop_pods=True)
        assert _store_exists(h, other)  # a clean stop keeps every volume

    run(main())


def test_delete_volume_refuses_what_the_runtime_did_not_provision(any_runtime: Harness) -> None:
    h = any_runtime
    foreign = h.tmp_path / "foreign"
    (foreign / "keep").mkdir(parents=True)
    outside = h.tmp_path / "state" / "storage-not"  # a name that starts like the storage dir
    outside.mkdir(parents=True)

    async def main() -> None:
        rt, _ = await h.open()
        try:
            for fragment in (
                {"hostPath": {"path": str(foreign)}},
                {"local": {"path": str(outside)}},
                {"hostPath": {"path": os.path.join(h.state_dir, "storage")}},  # the root itself
                {"csi": {"driver": "other.example.com", "volumeHandle": "vol"}},
                {"nfs": {"server": "nfs.example.com", "path": "/"}},
            ):
                with pytest.raises(RuntimeError_):
                    await rt.delete_volume(volume("foreign", fragment, "data"))
            assert (foreign / "keep").is_dir() and outside.is_dir()
        finally:
            await rt.close(stop_pods=True)

    run(main())


# ----------------------------------------------------------------------------- pods


def test_data_outlives_the_pod_and_the_runtime_instance(mounting: Harness) -> None:
    mnt = str(mounting.tmp_path / "data")

    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            fragment = await rt.provision_volume("pvc-keep", claim("data", None))
            rt.set_config_objects(bound("data", "pvc-keep", fragment))
            writer = claim_pod(mounting, "writer", f"echo kept > {mnt}/f; busybox mkdir -p {mnt}/sub; ", mnt)
            await rt.create_pod(writer)
            wuid = writer["metadata"]["uid"]
            await wait_for(lambda: running(rt, wuid), 60, what="the writer running")
            assert await poll(lambda: sh_out(rt, wuid, "main", f"busybox cat {mnt}/f"), "the file") == "kept\n"
            await sh_out(rt, wuid, "main", f"echo deep > {mnt}/sub/g")
            await rt.delete_pod(wuid, grace_seconds=1)
            reader = claim_pod(mounting, "reader", "", mnt + "-sub", subPath="sub")
            reader["spec"]["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": mnt})
            await rt.create_pod(reader)
            ruid = reader["metadata"]["uid"]
            await wait_for(lambda: running(rt, ruid), 60, what="the reader running")
            assert await sh_out(rt, ruid, "main", f"busybox cat {mnt}/f") == "kept\n"
            assert await sh_out(rt, ruid, "main", f"busybox cat {mnt}-sub/g") == "deep\n"
            assert await rt.provision_volume("pvc-keep", claim("data", None)) == fragment
        finally:
            await rt.close(stop_pods=True)
        rt2, _ = await mounting.open()  # a new instance on the same state (a restart, an upgrade)
        try:
            assert await rt2.provision_volume("pvc-keep", claim("data", None)) == fragment
            rt2.set_config_objects(bound("data", "pvc-keep", fragment))
            again = claim_pod(mounting, "again", "", mnt)
            await rt2.create_pod(again)
            auid = again["metadata"]["uid"]
            await wait_for(lambda: running(rt2, auid), 60, what="the pod of the new instance running")
            assert await sh_out(rt2, auid, "main", f"busybox cat {mnt}/f") == "kept\n"
            if "csi" in fragment:  # Docker refuses to remove a volume a container uses: retried later
                with pytest.raises(RuntimeError_):
                    await rt2.delete_volume(volume("pvc-keep", fragment, "data"))
                assert _store_exists(mounting, fragment)
            await rt2.delete_pod(auid, grace_seconds=1)
            await rt2.delete_volume(volume("pvc-keep", fragment, "data"))
            assert not _store_exists(mounting, fragment)
        finally:
            await rt2.close(stop_pods=True)

    run(main())


def test_a_pod_waits_for_its_claim_until_the_objects_arrive(mounting: Harness) -> None:
    mnt = str(mounting.tmp_path / "data")

    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            pod = claim_pod(mounting, "patient", f"echo here > {mnt}/f; ", mnt)
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            prefix = 'MountVolume.SetUp failed for volume "data" : '
            want = prefix + 'persistentvolumeclaim "data" not found'
            await wait_for(lambda: _message(rt, uid) == want, 60, what="the missing claim's message")
            assert waiting_reason(rt.status(uid), "main") == "ContainerCreating"
            rt.set_config_objects({("PersistentVolumeClaim", "default", "data"): claim("data", None)})
            want = prefix + 'persistentvolumeclaim "data" is not bound'
            await wait_for(lambda: _message(rt, uid) == want, 60, what="the unbound claim's message")
            fragment = await rt.provision_volume("pvc-late", claim("data", None))
            objs = bound("data", "pvc-late", fragment)
            del objs[("PersistentVolume", "", "pvc-late")]
            rt.set_config_objects(objs)
            want = prefix + 'persistentvolume "pvc-late" not found'
            await wait_for(lambda: _message(rt, uid) == want, 60, what="the missing volume's message")
            assert not running(rt, uid)
            rt.set_config_objects(bound("data", "pvc-late", fragment))
            await wait_for(lambda: running(rt, uid), 60, what="the container running")
            assert await poll(lambda: sh_out(rt, uid, "main", f"busybox cat {mnt}/f"), "the file") == "here\n"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_read_only_claim_volume_cannot_be_written(mounting: Harness) -> None:
    mnt = str(mounting.tmp_path / "data")

    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            fragment = await rt.provision_volume("pvc-ro", claim("data", None))
            rt.set_config_objects(bound("data", "pvc-ro", fragment))
            writer = claim_pod(mounting, "seed", f"echo seed > {mnt}/f; ", mnt)
            await rt.create_pod(writer)
            wuid = writer["metadata"]["uid"]
            await wait_for(lambda: running(rt, wuid), 60, what="the writer running")
            await poll(lambda: sh_out(rt, wuid, "main", f"busybox cat {mnt}/f"), "the seed file")
            for name, kw, objs in (
                ("vol-ro", {"read_only": True}, bound("data", "pvc-ro", fragment)),
                ("claim-ro", {}, bound("data", "pvc-ro", fragment, modes=("ReadOnlyMany",))),
            ):
                rt.set_config_objects(objs)
                pod = claim_pod(mounting, name, "", mnt + "-" + name, **kw)
                uid = pod["metadata"]["uid"]
                await rt.create_pod(pod)
                await wait_for(lambda: running(rt, uid), 60, what=f"{name} running")  # noqa: B023
                assert await sh_out(rt, uid, "main", f"busybox cat {mnt}-{name}/f") == "seed\n"
                res = await rt.exec(uid, "main", ["busybox", "sh", "-c", f"echo x > {mnt}-{name}/new"])
                assert res.exit_code != 0, name
                await rt.delete_pod(uid, grace_seconds=1)
            assert (await rt.exec(wuid, "main", ["busybox", "test", "-e", f"{mnt}/new"])).exit_code != 0
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_volume_outside_the_storage_dir_obeys_allow_host_path(mounting: Harness) -> None:
    host = mounting.tmp_path / "host"
    (host / "static").mkdir(parents=True)
    (host / "static" / "seed").write_text("static\n")
    mnt = str(mounting.tmp_path / "data")
    fragment = {"hostPath": {"path": str(host / "static"), "type": "Directory"}}

    async def main() -> None:
        for allow, expect_running in (([], False), ([str(host)], True)):
            rt, _ = await mounting.open(allow_host_paths=allow)
            try:
                rt.set_config_objects(bound("data", "static-pv", fragment))
                pod = claim_pod(mounting, "static", "", mnt)
                uid = pod["metadata"]["uid"]
                await rt.create_pod(pod)
                if expect_running:
                    await wait_for(lambda: running(rt, uid), 60, what="the container running")  # noqa: B023
                    assert await sh_out(rt, uid, "main", f"busybox cat {mnt}/seed") == "static\n"  # noqa: B023
                else:
                    await wait_for(
                        lambda: "is not under an --allow-host-path prefix" in _message(rt, uid),  # noqa: B023
                        60,
                        what="the refusal",
                    )
            finally:
                await rt.close(stop_pods=True)
        assert (host / "static" / "seed").is_file()  # the pod went, the data stays

    run(main())


def test_data_survives_a_kill_9_of_the_runtime(mounting: Harness) -> None:
    """A runtime in another process runs a pod that writes to its claim and is killed -9; a new
    instance adopts the pod, which still sees its data, and a new pod after it too."""
    mnt = str(mounting.tmp_path / "data")

    async def provision() -> dict[str, Any]:
        rt, _ = await mounting.open()
        try:
            return await rt.provision_volume("pvc-crash", claim("data", None))
        finally:
            await rt.close(stop_pods=False)

    fragment = run(provision())
    objs = bound("data", "pvc-crash", fragment)
    pod = claim_pod(mounting, "crashy", f"echo before > {mnt}/f; ", mnt)
    probe = {"exec": {"command": ["busybox", "test", "-f", f"{mnt}/f"]}, "periodSeconds": 1}
    pod["spec"]["containers"][0]["readinessProbe"] = probe
    uid = pod["metadata"]["uid"]
    child = mounting.crash_child(pod, objects=list(objs.values()))
    try:
        assert child.stdout is not None
        line = ""
        for line in child.stdout:
            if line.startswith(MARK):
                break
        assert line.startswith(MARK), f"the runtime process exited {child.wait()} before the pod was ready"
        assert "error" not in json.loads(line.removeprefix(MARK)), line
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()

    async def main() -> None:
        rt = mounting.new()
        rt.set_config_objects(objs)  # as the daemon has them at start
        try:
            assert uid in await rt.start(lambda uid: None)
            await wait_for(lambda: running(rt, uid), 60, what="the adopted pod running")
            assert await sh_out(rt, uid, "main", f"busybox cat {mnt}/f") == "before\n"
            await rt.delete_pod(uid, grace_seconds=1)
            after = claim_pod(mounting, "after", "", mnt)
            await rt.create_pod(after)
            auid = after["metadata"]["uid"]
            await wait_for(lambda: running(rt, auid), 60, what="the new pod running")
            assert await sh_out(rt, auid, "main", f"busybox cat {mnt}/f") == "before\n"
        finally:
            await rt.close(stop_pods=True)

    run(main())
