"""The edits of reconciler.gitops as mutations of an object (no repository needed), and file naming."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.errors import GitOpsError
from reconciler.gitops.edits import (
    check_label,
    image_mutation,
    label_mutation,
    pause_mutation,
    pod_spec,
    scale_mutation,
    template_mutation,
)
from reconciler.gitops.files import target_path
from reconciler.gitops.locate import obj_key, ref


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "containers": [{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}],
                }
            },
            **spec,
        },
    }


# --------------------------------------------------------------------------- label


@pytest.mark.parametrize(
    "key,value,bad",
    [
        ("app", "web", None),
        ("example.com/tier", "", None),
        ("a" * 63, "b" * 63, None),
        ("a" * 64, "x", "key"),
        ("Example.com/x", "x", "key"),
        ("/x", "x", "key"),
        ("a/b/c", "x", "key"),
        ("-x", "x", "key"),
        ("app", "has space", "value"),
        ("app", "x" * 64, "value"),
        ("app", "-x", "value"),
        ("app", None, None),
    ],
)
def test_check_label(key: str, value: str | None, bad: str | None) -> None:
    if bad is None:
        check_label(key, value)
    else:
        with pytest.raises(GitOpsError, match=f"invalid label {bad}"):
            check_label(key, value)


def test_label_add_change_remove() -> None:
    obj = deployment()
    assert label_mutation("deployment/web", {"tier": "fe"}, [], False)(obj) == "label deployment/web: tier=fe"
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    with pytest.raises(GitOpsError, match="--overwrite"):
        label_mutation("deployment/web", {"tier": "be"}, [], False)(obj)
    assert label_mutation("deployment/web", {"tier": "fe"}, [], False)(obj) is None  # same value: nothing
    msg = label_mutation("deployment/web", {"tier": "be"}, ["app", "absent"], True)(obj)
    assert msg == "label deployment/web: tier=be, app-"
    assert label_mutation("deployment/web", {}, ["tier"], False)(obj) == "label deployment/web: tier-"
    assert "labels" not in obj["metadata"]  # an emptied mapping goes


def test_label_set_and_remove_the_same_key_refused() -> None:
    with pytest.raises(GitOpsError, match="both modify and remove"):
        label_mutation("pod/p", {"a": "1"}, ["a"], False)


# --------------------------------------------------------------------------- set image


def test_set_image_one_container_and_every_container() -> None:
    obj = deployment()
    assert image_mutation("deployment/web", {"side": "side:2"})(obj) == "set image deployment/web: side=side:2"
    containers = pod_spec(obj)["containers"]  # type: ignore[index]
    assert [c["image"] for c in containers] == ["app:1", "side:2"]
    assert image_mutation("deployment/web", {"side": "side:2"})(obj) is None
    assert image_mutation("deployment/web", {"*": "x:9"})(obj) == "set image deployment/web: *=x:9"
    spec = pod_spec(obj)
    assert spec is not None
    assert {c["image"] for c in spec["containers"] + spec["initContainers"]} == {"x:9"}


@pytest.mark.parametrize(
    "images,obj,error",
    [
        ({}, deployment(), "at least one"),
        ({"nope": "x"}, deployment(), "unable to find container named nope"),
        ({"app": ""}, deployment(), "an image is required"),
        ({"app": "x"}, {"kind": "Service", "spec": {"ports": []}}, "has no pod template"),
    ],
)
def test_set_image_refused(images: dict[str, str], obj: dict[str, Any], error: str) -> None:
    with pytest.raises(GitOpsError, match=error):
        image_mutation("x/y", images)(obj)


@pytest.mark.parametrize(
    "obj,found",
    [
        ({"kind": "Pod", "spec": {"containers": []}}, {"containers": []}),
        ({"kind": "Job", "spec": {"template": {"spec": {"containers": [1]}}}}, {"containers": [1]}),
        (
            {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [2]}}}}}},
            {"containers": [2]},
        ),
        ({"kind": "ConfigMap", "data": {}}, None),
        ({"kind": "Deployment", "spec": {"template": {}}}, None),
    ],
)
def test_pod_spec(obj: dict[str, Any], found: dict[str, Any] | None) -> None:
    assert pod_spec(obj) == found


# --------------------------------------------------------------------------- scale, pause, template


def test_scale() -> None:
    obj = deployment()
    assert scale_mutation("deployment/web", 5)(obj) == "scale deployment/web: replicas 2 -> 5"
    assert scale_mutation("deployment/web", 5)(obj) is None
    bare = {"kind": "ReplicaSet", "spec": {}}
    assert scale_mutation("replicaset/r", 1)(bare) is None  # the default is 1
    assert scale_mutation("replicaset/r", 0)(bare) == "scale replicaset/r: replicas 1 -> 0"


@pytest.mark.parametrize("replicas", [-1, True, 1.5, "3"])
def test_scale_needs_a_non_negative_int(replicas: Any) -> None:
    with pytest.raises(GitOpsError, match="non-negative integer"):
        scale_mutation("deployment/web", replicas)


@pytest.mark.parametrize("kind", ["Pod", "Service", "ConfigMap", "Secret"])
def test_scale_refused_for_kinds_without_replicas(kind: str) -> None:
    with pytest.raises(GitOpsError, match="cannot be scaled"):
        scale_mutation("x/y", 1)({"kind": kind, "spec": {}})


def test_pause_and_resume() -> None:
    obj = deployment()
    assert pause_mutation("deployment/web", True)(obj) == "rollout pause deployment/web"
    assert obj["spec"]["paused"] is True
    with pytest.raises(GitOpsError, match="already paused"):
        pause_mutation("deployment/web", True)(obj)
    assert pause_mutation("deployment/web", False)(obj) == "rollout resume deployment/web"
    assert "paused" not in obj["spec"]
    with pytest.raises(GitOpsError, match="not paused"):
        pause_mutation("deployment/web", False)(obj)
    with pytest.raises(GitOpsError, match="only deployments"):
        pause_mutation("replicaset/r", True)({"kind": "ReplicaSet", "spec": {}})


def test_set_template_copies() -> None:
    obj = deployment()
    tmpl = {"spec": {"containers": [{"name": "app", "image": "app:0"}]}}
    assert template_mutation("deployment/web", tmpl, "undo")(obj) == "undo"
    assert obj["spec"]["template"] == tmpl
    before = copy.deepcopy(tmpl)
    obj["spec"]["template"]["spec"]["containers"].clear()
    assert tmpl == before
    with pytest.raises(GitOpsError, match="must be a mapping"):
        template_mutation("deployment/web", [], "undo")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    "manifests,filename,path",
    [
        ("manifests", "web.yaml", "manifests/web.yaml"),
        ("", "apps/web.yml", "apps/web.yml"),
        ("m", "./web.json", "m/web.yaml"),
        ("m", "web", "m/web.yaml"),
    ],
)
def test_target_path(manifests: str, filename: str, path: str) -> None:
    assert target_path(manifests, filename) == path


@pytest.mark.parametrize("filename", ["", "/abs.yaml", "a\\b.yaml", "../up.yaml", ".hidden/x.yaml", "t.yaml.j2"])
def test_target_path_refused(filename: str) -> None:
    with pytest.raises(GitOpsError):
        target_path("manifests", filename)


def test_obj_key_and_ref() -> None:
    assert obj_key({"kind": "Pod", "metadata": {"name": "p"}}) == ("Pod", "default", "p")
    assert obj_key({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}}) == ("Pod", "ns", "p")
    assert obj_key({"kind": "Pod", "metadata": {}}) is None
    assert obj_key(["not", "a", "mapping"]) is None
    assert ref("Deployment", "default", "web") == "deployment/web"
    assert ref("Deployment", "ns", "web") == "deployment/web (namespace ns)"
