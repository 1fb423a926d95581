"""The Swarm runtime's pure volume mapping (runtime/swarm/storage.py): configs, secrets, mounts, pins, env."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from runtime.kernel import ConfigError
from runtime.kernel.volumes import CSI_DRIVER, VolumeError
from runtime.swarm.storage import (
    NODE_NAME_MARK,
    content_name,
    env_for_swarm,
    pinned_constraints,
    pod_storage,
    storage_volume_name,
)

INSTANCE = "0123456789abcdef"
CM = {"metadata": {"name": "web", "namespace": "default"}, "data": {"a.conf": "A", "b.conf": "B"}}
SECRET = {"metadata": {"name": "db", "namespace": "default"}, "data": {"pw": base64.b64encode(b"s3cret").decode()}}
OBJECTS: dict[tuple[str, str, str], Any] = {("ConfigMap", "default", "web"): CM, ("Secret", "default", "db"): SECRET}


def pod(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    c = {"name": "c", "image": "x", "volumeMounts": mounts}
    meta = {"name": "p", "namespace": "default", "uid": "u1"}
    return {"metadata": meta, "spec": {"volumes": volumes, "containers": [c]}}


def storage(p: dict[str, Any], objects: dict[tuple[str, str, str], Any] = OBJECTS) -> Any:
    return pod_storage(INSTANCE, p, p["spec"]["containers"][0], {}, objects)


def test_configmap_files_are_configs_at_the_mount_path_with_their_modes() -> None:
    vol = {"name": "cfg", "configMap": {"name": "web", "items": [{"key": "a.conf", "path": "x/a.conf", "mode": 0o600}]}}
    st = storage(pod([vol], [{"name": "cfg", "mountPath": "/etc/web"}]))
    [f] = st.files
    assert (f.secret, f.target, f.mode, f.data) == (False, "/etc/web/x/a.conf", 0o600, b"A")
    assert f.name == content_name(INSTANCE, b"A", False) and len(f.name) <= 64


def test_secret_files_are_swarm_secrets_and_default_mode_applies() -> None:
    vol = {"name": "s", "secret": {"secretName": "db", "defaultMode": 0o400}}
    [f] = storage(pod([vol], [{"name": "s", "mountPath": "/run/db"}])).files
    assert (f.secret, f.target, f.mode, f.data) == (True, "/run/db/pw", 0o400, b"s3cret")


def test_a_changed_configmap_is_a_new_config_name() -> None:
    vol = {"name": "cfg", "configMap": {"name": "web"}}
    p = pod([vol], [{"name": "cfg", "mountPath": "/etc/web"}])
    before = {f.name for f in storage(p).files}
    changed = {**OBJECTS, ("ConfigMap", "default", "web"): {**CM, "data": {"a.conf": "A2", "b.conf": "B"}}}
    after = {f.name for f in storage(p, changed).files}
    assert len(before) == len(after) == 2 and len(before & after) == 1


def test_subpath_mounts_one_file_at_the_mount_path() -> None:
    vol = {"name": "cfg", "configMap": {"name": "web"}}
    [f] = storage(pod([vol], [{"name": "cfg", "mountPath": "/etc/b.conf", "subPath": "b.conf"}])).files
    assert (f.target, f.data) == ("/etc/b.conf", b"B")


def test_a_missing_configmap_waits_with_the_kubelets_message() -> None:
    vol = {"name": "cfg", "configMap": {"name": "nope"}}
    with pytest.raises(VolumeError, match='configmap "nope" not found'):
        storage(pod([vol], [{"name": "cfg", "mountPath": "/etc/web"}]))


def test_empty_dir_is_an_anonymous_volume_or_a_tmpfs() -> None:
    vols = [{"name": "d", "emptyDir": {}}, {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
    st = storage(pod(vols, [{"name": "d", "mountPath": "/data"}, {"name": "m", "mountPath": "/fast"}]))
    assert [(m.target, m.source, m.tmpfs, m.tmpfs_size) for m in st.mounts] == [
        ("/data", "", False, None),
        ("/fast", "", True, 1024 * 1024),
    ]


def test_a_claim_of_the_builtin_provisioner_is_its_node_local_volume() -> None:
    handle = storage_volume_name(INSTANCE, "pvc-1")
    pv = {"metadata": {"name": "pvc-1"}, "spec": {"csi": {"driver": CSI_DRIVER, "volumeHandle": handle}}}
    claim = {"metadata": {"name": "data", "namespace": "default"}, "spec": {"volumeName": "pvc-1"}}
    objects = {("PersistentVolumeClaim", "default", "data"): claim, ("PersistentVolume", "", "pvc-1"): pv}
    vol = {"name": "v", "persistentVolumeClaim": {"claimName": "data"}}
    st = storage(pod([vol], [{"name": "v", "mountPath": "/var/lib/db"}]), objects)
    [m] = st.mounts
    assert (m.target, m.source, m.pv_name) == ("/var/lib/db", handle, "pvc-1")
    assert st.claims == {"pvc-1": handle}


def test_host_path_is_refused() -> None:
    vol = {"name": "h", "hostPath": {"path": "/srv"}}
    with pytest.raises(VolumeError, match="not supported on the swarm runtime"):
        storage(pod([vol], [{"name": "h", "mountPath": "/srv"}]))


def test_pins_are_node_id_constraints_and_two_nodes_cannot_both_hold() -> None:
    assert pinned_constraints({"a": "va"}, {}) == []
    assert pinned_constraints({"a": "va", "b": "vb"}, {"a": "n1"}) == ["node.id==n1"]
    with pytest.raises(ConfigError):
        pinned_constraints({"a": "va", "b": "vb"}, {"a": "n1", "b": "n2"})


def test_env_escapes_templates_and_names_the_node() -> None:
    env = {"A": "{{.Node.ID}} literal", "NODE": f"on-{NODE_NAME_MARK}"}
    assert env_for_swarm(env) == ['A={{"{{"}}.Node.ID}} literal', "NODE=on-{{.Node.Hostname}}"]


def test_a_task_replaced_by_swarm_is_a_restart_once() -> None:
    from runtime.swarm.pods import SPod, refresh

    p = SPod({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "c"}]}}, "u", "p", "default", "t0")
    p.service_id = "s"

    def task(tid: str, created: str, state: str, desired: str) -> dict[str, Any]:
        return {"ID": tid, "CreatedAt": created, "DesiredState": desired, "Status": {"State": state}}

    refresh(p, [task("t1", "1", "running", "running")], {}, "net")
    assert p.restarts == 0
    tasks = [task("t1", "1", "failed", "shutdown"), task("t2", "2", "running", "running")]
    refresh(p, tasks, {}, "net")
    refresh(p, tasks, {}, "net")
    assert p.restarts == 1 and "terminated" in p.last_state
    p.seen_tasks.add("t2")  # replaced for a spec update (volumes.py): not a restart
    refresh(p, [*tasks[:1], task("t2", "2", "shutdown", "shutdown"), task("t3", "3", "running", "running")], {}, "net")
    assert p.restarts == 1


def test_a_container_that_cannot_start_is_a_start_error() -> None:
    from runtime.swarm.mapping import task_state

    err = 'starting container failed: exec: "nope": executable file not found in $PATH'
    st = task_state({"Status": {"State": "failed", "Err": err, "ContainerStatus": {"ExitCode": 127}}})
    assert (st["terminated"]["reason"], st["terminated"]["exitCode"]) == ("StartError", 128)
