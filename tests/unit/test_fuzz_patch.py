"""Fuzzing reconciler.kapi.patch against the standards' own examples and general properties.

- JSON merge patch: every example of RFC 7386 Appendix A.
- JSON patch: every example of RFC 6902 Appendix A (A.1 .. A.16), and RFC 6902 §4.6's equality
  (numbers equal by value, no bool/number confusion at any depth).
- Strategic merge patch: the worked examples of Kubernetes' "Update API Objects in Place Using
  kubectl patch" task page and of the strategic-merge-patch design document
  (kubernetes/community contributors/devel/sig-api-machinery/strategic-merge-patch.md).
- Properties over random JSON: no input is mutated, only PatchError escapes, a strategic merge patch
  without lists or directives is a JSON merge patch, merge-keyed patches are idempotent.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.kapi.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from tests.unit.fuzzing import FUZZ

# ------------------------------------------------------------------------------------------ RFC 7386 App. A

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "want"), RFC7386)
def test_rfc7386_appendix_a(target: Any, patch: Any, want: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == want
    assert target == before


# ------------------------------------------------------------------------------------------ RFC 6902 App. A

RFC6902_OK: list[tuple[str, Any, list[Any], Any]] = [
    ("A.1", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ("A.2", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ("A.3", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    (
        "A.5",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    ("A.14", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    (
        "A.16",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    # RFC 6902 §4.6: numbers are equal when their values are
    ("4.6 numbers", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    (
        "4.6 nested",
        {"a": [1, {"b": 2.0}]},
        [{"op": "test", "path": "/a", "value": [1.0, {"b": 2}]}],
        {"a": [1, {"b": 2.0}]},
    ),
]


@pytest.mark.parametrize(("name", "doc", "ops", "want"), RFC6902_OK, ids=[c[0] for c in RFC6902_OK])
def test_rfc6902_appendix_a(name: str, doc: Any, ops: list[Any], want: Any) -> None:
    before = copy.deepcopy(doc)
    assert json_patch(doc, ops) == want
    assert doc == before


RFC6902_FAIL: list[tuple[str, Any, Any]] = [
    ("A.9", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ("A.12", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    # A.13: a member given twice is not a valid patch; read as JSON the last one counts: remove a missing member
    ("A.13", {"foo": "bar"}, json.loads('[{"op": "add", "path": "/baz", "value": "qux", "op": "remove"}]')),
    ("A.15", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),
    # §4.6: true is not 1, at the top or deep inside
    ("4.6 bool", {"a": True}, [{"op": "test", "path": "/a", "value": 1}]),
    ("4.6 nested bool", {"a": [True]}, [{"op": "test", "path": "/a", "value": [1]}]),
    ("4.6 nested map", {"a": {"b": False}}, [{"op": "test", "path": "/a", "value": {"b": 0}}]),
    # array indices are ASCII digits only (RFC 6901 §4)
    ("unicode digit", {"a": ["x", "y"]}, [{"op": "remove", "path": "/a/\u0661"}]),
    ("superscript", {"a": ["x", "y"]}, [{"op": "remove", "path": "/a/\u00b2"}]),
    ("leading zero", {"a": ["x", "y"]}, [{"op": "remove", "path": "/a/01"}]),
    ("move into child", {"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b"}]),
]


@pytest.mark.parametrize(("name", "doc", "ops"), RFC6902_FAIL, ids=[c[0] for c in RFC6902_FAIL])
def test_rfc6902_failures_are_patch_errors(name: str, doc: Any, ops: Any) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(PatchError) as e:
        json_patch(doc, ops)
    assert e.value.code in (400, 422)
    assert doc == before


# ------------------------------------------------------------------------------------------ strategic, documented

DOC_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "patch-demo"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {
                "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}],
            },
        },
    },
}


def _pod_spec(d: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = d["spec"]["template"]["spec"]
    return spec


def test_kubectl_patch_task_containers_merge_by_name() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}}
    out = strategic_merge_patch(DOC_DEPLOYMENT, patch)
    assert _pod_spec(out)["containers"] == [
        {"name": "patch-demo-ctr", "image": "nginx"},
        {"name": "patch-demo-ctr-2", "image": "redis"},
    ]
    # the same patch as a JSON merge patch replaces the list
    assert _pod_spec(merge_patch(DOC_DEPLOYMENT, patch))["containers"] == [
        {"name": "patch-demo-ctr-2", "image": "redis"}
    ]


def test_kubectl_patch_task_tolerations_replaced() -> None:
    patch = {
        "spec": {"template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}}}
    }
    out = strategic_merge_patch(DOC_DEPLOYMENT, patch)
    assert _pod_spec(out)["tolerations"] == [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]


def test_kubectl_patch_task_retain_keys() -> None:
    dep = copy.deepcopy(DOC_DEPLOYMENT)
    dep["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    out = strategic_merge_patch(dep, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_design_doc_directives() -> None:
    pod = {
        "metadata": {"finalizers": ["a", "b", "c"], "labels": {"x": "1", "y": "2"}},
        "spec": {
            "containers": [
                {"name": "nginx", "image": "nginx", "env": [{"name": "A", "value": "1"}]},
                {"name": "log", "image": "busybox"},
            ]
        },
    }
    # $patch: replace on a map
    out = strategic_merge_patch(pod, {"metadata": {"labels": {"$patch": "replace", "z": "3"}}})
    assert out["metadata"]["labels"] == {"z": "3"}
    # $patch: delete on a list item, by merge key
    out = strategic_merge_patch(pod, {"spec": {"containers": [{"name": "log", "$patch": "delete"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["nginx"]
    # $patch: replace on a list
    out = strategic_merge_patch(pod, {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}})
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    # $deleteFromPrimitiveList and merge of a primitive list with a merge strategy
    out = strategic_merge_patch(pod, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "finalizers": ["d"]}})
    assert sorted(out["metadata"]["finalizers"]) == ["a", "c", "d"]
    # $setElementOrder
    out = strategic_merge_patch(
        pod,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "log"}, {"name": "nginx"}],
                "containers": [{"name": "log", "image": "b2"}],
            }
        },
    )
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [("log", "b2"), ("nginx", "nginx")]
    # a nested merge-keyed list (env by name) inside a merge-keyed list
    out = strategic_merge_patch(
        pod, {"spec": {"containers": [{"name": "nginx", "env": [{"name": "B", "value": "2"}]}]}}
    )
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


# ------------------------------------------------------------------------------------------ properties

_keys = st.sampled_from(["a", "b", "c", "name", "image", "containers", "env", "finalizers", "ports", "x/y", "~", "0"])
_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False) | st.text(max_size=3)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)
_pointers = st.lists(
    st.sampled_from(["a", "b", "0", "1", "-", "~0", "~1", "01", "\u0661", "name", ""]), max_size=3
).map(lambda parts: "".join("/" + p for p in parts))
_ops = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "nope"]), "path": _pointers},
    optional={"value": json_values, "from": _pointers},
)


@FUZZ
@given(json_values, st.lists(_ops, max_size=4))
def test_json_patch_raises_only_patch_errors_and_never_mutates(doc: Any, ops: list[Any]) -> None:
    before = copy.deepcopy(doc)
    try:
        json_patch(doc, ops)
    except PatchError as e:
        assert e.code in (400, 422)
    assert doc == before


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3), st.sampled_from(["d", "e"]), json_values
)
def test_json_patch_add_then_remove_is_identity(doc: dict[str, Any], key: str, value: Any) -> None:
    added = json_patch(doc, [{"op": "add", "path": "/" + key, "value": value}])
    assert added[key] == value
    assert json_patch(added, [{"op": "remove", "path": "/" + key}]) == doc


_no_list_patch = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(
    st.dictionaries(_keys, json_values, max_size=4),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _no_list_patch, max_size=3),
)
def test_strategic_without_lists_or_directives_is_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    before = copy.deepcopy(target)
    assert strategic_merge_patch(target, patch) == merge_patch(target, patch)
    assert target == before


_directive_values = st.sampled_from(["delete", "replace", "merge", "bogus"])
_smp_keys = _keys | st.sampled_from(
    ["$patch", "$retainKeys", "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers"]
)
_smp_values = st.recursive(
    _scalars | _directive_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_smp_keys, inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(json_values, st.dictionaries(_smp_keys, _smp_values, max_size=4))
def test_strategic_raises_only_patch_errors_and_never_mutates(target: Any, patch: dict[str, Any]) -> None:
    before = copy.deepcopy(target)
    try:
        out = strategic_merge_patch(target, patch)
    except PatchError as e:
        assert e.code == 400
    else:
        assert isinstance(out, dict)
    assert target == before


_container = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "c"])},
    optional={
        "image": st.sampled_from(["x:1", "y:2"]),
        "env": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["E", "F"]), "value": st.sampled_from(["1", "2"])}),
            max_size=2,
        ),
    },
)


@FUZZ
@given(
    st.lists(_container, max_size=3),
    st.lists(_container, max_size=3),
    st.lists(st.sampled_from(["f1", "f2"]), max_size=2),
)
def test_strategic_merge_keyed_patch_is_idempotent(current: list[Any], patch: list[Any], fins: list[str]) -> None:
    target = {"metadata": {"finalizers": ["f0"]}, "spec": {"containers": current}}
    p = {"metadata": {"finalizers": fins}, "spec": {"containers": patch}}
    once = strategic_merge_patch(target, p)
    assert strategic_merge_patch(once, p) == once
    names = [c["name"] for c in once["spec"]["containers"]]
    assert set(names) == {c["name"] for c in current + patch}
