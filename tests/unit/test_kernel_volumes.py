"""A pod's volumes as files (runtime/kernel/volumes.py) and a container's mounts, table-driven;
and the ``..data`` swap that writes them (runtime/volumes.py) on a temporary directory."""

import os

import pytest

from runtime import volumes
from runtime.kernel import ConfigError
from runtime.kernel.volumes import Mount, VolumeError, container_mounts, volume_plan, volume_sources

POD = {
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"b": "2", "a": "1"}},
    "spec": {
        "containers": [{"name": "app", "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}}}],
        "volumes": [],
    },
}
OBJECTS = {
    ("ConfigMap", "shop", "cfg"): {"data": {"app.conf": "x=1\n", "other": "o"}, "binaryData": {"logo.bin": "AAEC"}},
    ("Secret", "shop", "db"): {"type": "Opaque", "data": {"pw": "czNjcjN0", "user": "YWRtaW4="}},
}


def plan(volume, objects=OBJECTS):
    return volume_plan(POD, {"name": "v", **volume}, objects)


def test_configmap_every_key_with_the_default_mode():
    p = plan({"configMap": {"name": "cfg"}})
    assert p.kind == "files" and p.sources == {("ConfigMap", "shop", "cfg")}
    assert p.files == {"app.conf": (b"x=1\n", 0o644), "other": (b"o", 0o644), "logo.bin": (b"\0\1\2", 0o644)}


def test_items_choose_keys_paths_and_modes_and_default_mode_applies_to_the_rest():
    items = [{"key": "app.conf", "path": "etc/app.conf", "mode": 0o600}, {"key": "other", "path": "o.txt"}]
    p = plan({"configMap": {"name": "cfg", "items": items, "defaultMode": 0o440}})
    assert p.files == {"etc/app.conf": (b"x=1\n", 0o600), "o.txt": (b"o", 0o440)}


def test_secret_values_are_decoded():
    p = plan({"secret": {"secretName": "db", "defaultMode": 0o400}})
    assert p.files == {"pw": (b"s3cr3t", 0o400), "user": (b"admin", 0o400)}
    assert p.sources == {("Secret", "shop", "db")}


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"configMap": {"name": "nope"}}, 'MountVolume.SetUp failed for volume "v" : configmap "nope" not found'),
        ({"secret": {"secretName": "nope"}}, 'MountVolume.SetUp failed for volume "v" : secret "nope" not found'),
        ({"configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}, "non-existent config key: zz"),
        ({"configMap": {"name": "cfg", "items": [{"key": "other", "path": "../x"}]}}, "invalid item path"),
        ({"nfs": {"server": "nfs.example", "path": "/"}}, "volume type nfs is not supported"),
    ],
)  # fmt: skip
def test_a_volume_that_cannot_be_set_up_keeps_the_pod_creating(volume, message):
    with pytest.raises(VolumeError) as e:
        plan(volume)
    assert e.value.reason == "ContainerCreating" and message in e.value.message


def test_optional_sources_and_keys_may_be_missing():
    assert plan({"configMap": {"name": "nope", "optional": True}}).files == {}
    items = [{"key": "zz", "path": "z"}, {"key": "other", "path": "o"}]
    assert plan({"configMap": {"name": "cfg", "items": items, "optional": True}}).files == {"o": (b"o", 0o644)}


def test_downward_api_fields_labels_and_resources():
    items = [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o600},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
    ]
    p = plan({"downwardAPI": {"items": items}})
    assert p.files == {
        "name": (b"web-1", 0o644),
        "labels": (b'a="1"\nb="2"', 0o600),
        "uid": (b"u-1", 0o644),
        "mem": (b"128", 0o644),
    }
    with pytest.raises(VolumeError):
        plan({"downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}})


def test_projected_merges_its_sources_and_skips_service_account_tokens():
    sources = [
        {"configMap": {"name": "cfg", "items": [{"key": "other", "path": "cfg/other"}]}},
        {"secret": {"name": "db", "items": [{"key": "pw", "path": "db/pw", "mode": 0o400}]}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        {"serviceAccountToken": {"path": "token"}},
    ]
    p = plan({"projected": {"sources": sources, "defaultMode": 0o444}})
    assert p.files == {"cfg/other": (b"o", 0o444), "db/pw": (b"s3cr3t", 0o400), "ns": (b"shop", 0o444)}
    assert p.sources == {("ConfigMap", "shop", "cfg"), ("Secret", "shop", "db")}


def test_empty_dir_on_disk_and_in_memory():
    assert plan({"emptyDir": {}}).kind == "emptyDir" and not plan({"emptyDir": {}}).memory
    mem = plan({"emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}})
    assert mem.memory and mem.size_limit == 64 * 2**20


def test_volume_sources_of_a_pod():
    pod = {
        **POD,
        "spec": {
            "volumes": [
                {"name": "a", "configMap": {"name": "cfg"}},
                {"name": "b", "secret": {"secretName": "db"}},
                {"name": "c", "projected": {"sources": [{"configMap": {"name": "p"}}]}},
                {"name": "d", "emptyDir": {}},
            ]
        },
    }
    assert volume_sources(pod) == {("ConfigMap", "shop", "cfg"), ("Secret", "shop", "db"), ("ConfigMap", "shop", "p")}


MPOD = {**POD, "spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}]}}


def test_mounts_parents_first_with_sub_path_expr_expanded():
    c = {
        "name": "app",
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/app/conf.d/", "readOnly": True},
            {"name": "data", "mountPath": "/etc/app", "subPathExpr": "$(POD_NAME)/x"},
            {"name": "cfg", "mountPath": "/etc/one.conf", "subPath": "app.conf"},
        ],
    }
    assert container_mounts(MPOD, c, {"POD_NAME": "web-1"}) == [
        Mount("data", "web-1/x", "/etc/app", False),
        Mount("cfg", "app.conf", "/etc/one.conf", True),  # a configMap is always read-only
        Mount("cfg", "", "/etc/app/conf.d", True),
    ]


@pytest.mark.parametrize(
    "vm",
    [
        {"name": "nope", "mountPath": "/x"},
        {"name": "data", "mountPath": "relative"},
        {"name": "data", "mountPath": "/x", "subPath": "../up"},
        {"name": "data", "mountPath": "/x", "subPath": "/abs"},
    ],
)
def test_bad_mounts_are_config_errors(vm):
    with pytest.raises(ConfigError) as e:
        container_mounts(MPOD, {"name": "app", "volumeMounts": [vm]})
    assert e.value.reason == "CreateContainerConfigError"


# --- the ..data swap (runtime/volumes.py) -------------------------------------------------------


def _read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def test_write_atomic_swaps_data_and_links_each_key(tmp_path):
    d = str(tmp_path / "v")
    assert volumes.write_atomic(d, {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})
    first = os.readlink(os.path.join(d, "..data"))
    assert first.startswith("..") and os.readlink(os.path.join(d, "a")) == "..data/a"
    assert _read(d, "a") == b"1" and _read(d, "sub/b") == b"2"
    assert os.stat(os.path.join(d, "sub/b")).st_mode & 0o777 == 0o600
    assert not volumes.write_atomic(d, {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})  # nothing changed
    assert volumes.write_atomic(d, {"a": (b"new", 0o644)})
    assert _read(d, "a") == b"new" and not os.path.lexists(os.path.join(d, "sub"))
    second = os.readlink(os.path.join(d, "..data"))
    assert second != first and not os.path.exists(os.path.join(d, first))  # the old version is gone
    assert sorted(os.listdir(d)) == sorted([second, "..data", "a"])


def test_prepare_update_and_remove_a_pods_volumes(tmp_path):
    state = str(tmp_path)
    plans = volumes.prepare_pod(state, MPOD, OBJECTS)
    assert set(plans) == {"data", "cfg"}
    cfg = volumes.volume_dir(state, "u-1", "cfg")
    assert _read(cfg, "app.conf") == b"x=1\n" and os.path.isdir(volumes.volume_dir(state, "u-1", "data"))
    changed = {**OBJECTS, ("ConfigMap", "shop", "cfg"): {"data": {"app.conf": "x=2\n"}}}
    assert volumes.update_pod(state, MPOD, changed) == ["cfg"]
    assert _read(cfg, "app.conf") == b"x=2\n"
    assert volumes.update_pod(state, MPOD, {}) == []  # a source that went keeps the last content
    assert _read(cfg, "app.conf") == b"x=2\n"
    volumes.remove_pod(state, "u-1")
    assert not os.path.exists(volumes.pod_dir(state, "u-1"))
