"""reconciler.kapi.patch: JSON merge patch, JSON patch, strategic merge patch (Kubernetes' worked examples)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.kapi.patch import PatchError, diff_merge_patch, json_patch, merge_patch, strategic_merge_patch

DEP: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "nodejs",
                        "image": "a:v1",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    },
                    {"name": "sidecar", "image": "s:v1", "ports": [{"containerPort": 80}]},
                ],
                "tolerations": [{"key": "k", "operator": "Exists"}],
            }
        },
    },
}


def test_merge_patch_rfc7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert merge_patch({"a": "foo"}, None) is None
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


def _no_null_members(v: Any) -> bool:
    if isinstance(v, dict):
        return all(x is not None and _no_null_members(x) for x in v.values())
    if isinstance(v, list):
        return all(_no_null_members(x) for x in v)
    return True


@given(json_values, json_values)
def test_merge_patch_of_diff_is_target(a: Any, b: Any) -> None:
    if not _no_null_members(b):
        return
    assert merge_patch(a, diff_merge_patch(a, b)) == b


@given(json_values)
def test_json_patch_replace_root_and_test(a: Any) -> None:
    assert json_patch({"x": 1}, [{"op": "replace", "path": "", "value": a}]) == a
    assert json_patch(a, [{"op": "test", "path": "", "value": a}]) == a


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a/b": "1"}}, "list": [1, 2, 3]}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/c", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a~1b"},
            {"op": "replace", "path": "/list/0", "value": 9},
            {"op": "add", "path": "/list/-", "value": 4},
            {"op": "add", "path": "/list/1", "value": 7},
            {"op": "move", "from": "/list/0", "path": "/first"},
            {"op": "copy", "from": "/first", "path": "/second"},
            {"op": "test", "path": "/second", "value": 9},
        ],
    )
    assert out == {"metadata": {"labels": {"c": "2"}}, "list": [7, 2, 3, 4], "first": 9, "second": 9}
    assert doc["list"] == [1, 2, 3]  # the target is not changed


@pytest.mark.parametrize(
    "ops,code",
    [
        ([{"op": "remove", "path": "/nope"}], 422),
        ([{"op": "replace", "path": "/a/b", "value": 1}], 422),
        ([{"op": "test", "path": "/a", "value": 2}], 422),
        ([{"op": "add", "path": "/list/5", "value": 1}], 422),
        ([{"op": "frob", "path": "/a"}], 400),
        ([{"op": "add", "value": 1}], 400),
        ({"op": "add"}, 400),
    ],
)
def test_json_patch_errors(ops: Any, code: int) -> None:
    with pytest.raises(PatchError) as e:
        json_patch({"a": 1, "list": []}, ops)
    assert e.value.code == code


def test_strategic_containers_by_name() -> None:
    """kubectl set image: the patch names one container; the other stays."""
    out = strategic_merge_patch(
        DEP, {"spec": {"template": {"spec": {"containers": [{"name": "nodejs", "image": "a:v2"}]}}}}
    )
    cs = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["nodejs", "sidecar"]
    assert cs[0]["image"] == "a:v2" and cs[0]["env"] == DEP["spec"]["template"]["spec"]["containers"][0]["env"]
    assert DEP["spec"]["template"]["spec"]["containers"][0]["image"] == "a:v1"


def test_strategic_new_container_appended_and_env_by_name() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "nodejs", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]},
                        {"name": "debug", "image": "busybox"},
                    ]
                }
            }
        }
    }
    out = strategic_merge_patch(DEP, patch)
    cs = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["nodejs", "sidecar", "debug"]
    assert cs[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]


def test_strategic_patch_delete_and_replace() -> None:
    out = strategic_merge_patch(
        DEP, {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    )
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nodejs"]
    out = strategic_merge_patch(
        DEP, {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x"}, {"$patch": "replace"}]}}}}
    )
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "x", "image": "x"}]
    out = strategic_merge_patch(DEP, {"metadata": {"labels": {"$patch": "replace", "new": "1"}}})
    assert out["metadata"]["labels"] == {"new": "1"}
    out = strategic_merge_patch(DEP, {"metadata": {"labels": {"$patch": "delete"}}})
    assert "labels" not in out["metadata"]


def test_strategic_null_deletes_and_lists_without_strategy_replace() -> None:
    out = strategic_merge_patch(DEP, {"metadata": {"labels": {"app": None}}, "spec": {"replicas": None}})
    assert out["metadata"]["labels"] == {} and "replicas" not in out["spec"]
    # tolerations have no patch strategy in Kubernetes: replaced whole
    out = strategic_merge_patch(DEP, {"spec": {"template": {"spec": {"tolerations": [{"key": "z"}]}}}})
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "z"}]


def test_strategic_ports_by_container_port_and_set_element_order() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nodejs"}],
                    "containers": [{"name": "sidecar", "ports": [{"containerPort": 80, "name": "http"}]}],
                }
            }
        }
    }
    out = strategic_merge_patch(DEP, patch)
    cs = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["sidecar", "nodejs"]
    assert cs[0]["ports"] == [{"containerPort": 80, "name": "http"}]


def test_strategic_primitive_lists_and_retain_keys() -> None:
    obj = {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
    }
    out = strategic_merge_patch(obj, {"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b", "c"]
    out = strategic_merge_patch(obj, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_missing_merge_key_is_bad_request() -> None:
    with pytest.raises(PatchError) as e:
        strategic_merge_patch(DEP, {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
    assert e.value.code == 400


def test_merge_keys_agree_with_kubernetes_openapi() -> None:
    """Every list field the table names has that merge key somewhere in Kubernetes' 1.37 schema."""
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    import json
    from pathlib import Path

    from reconciler.kapi.patch import MERGE_KEYS, MERGE_PRIMITIVE

    schema = json.loads(
        (Path(kv.__file__).parent / "kubernetes-json-schema" / "v1.37.0-local" / "_definitions.json").read_text()
    )
    found: set[tuple[str, Any]] = set()

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            for f, sub in (n.get("properties") or {}).items():
                if isinstance(sub, dict) and "merge" in str(sub.get("x-kubernetes-patch-strategy", "")):
                    found.add((f, sub.get("x-kubernetes-patch-merge-key")))
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(schema)
    for field, key in MERGE_KEYS.items():
        assert (field, key) in found, (field, key)
    assert ("ports", "containerPort") in found
    for field in MERGE_PRIMITIVE:
        assert (field, None) in found
