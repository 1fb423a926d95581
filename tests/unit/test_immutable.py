"""Immutable fields (reconciler/sync/immutable.py): a selector change of a live object is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.manifests.model import Manifest, Source
from reconciler.sync.immutable import IMMUTABLE_FIELDS, immutable_field_errors


def _obj(kind: str, selector: Any, name: str = "web") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default", "uid": "u1"},
        "spec": {"replicas": 3, "selector": selector, "template": {"metadata": {"labels": {"app": "web"}}}},
    }


def _manifest(obj: dict, line: int = 4) -> Manifest:
    return Manifest(obj, Source("apps/web.yaml", line, 0))


WEB = {"matchLabels": {"app": "web"}}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"])
def test_a_changed_selector_of_a_live_object_is_an_error(kind: str) -> None:
    live = _obj(kind, WEB)
    new = _obj(kind, {"matchLabels": {"app": "web2"}})
    errors = immutable_field_errors([_manifest(new)], {(kind, "default", "web"): live})
    assert [(e.file, e.line, e.field) for e in errors] == [("apps/web.yaml", 4, "spec.selector")]
    assert str(errors[0]) == (
        'apps/web.yaml:4 (document 1): spec.selector: Invalid value: {"matchLabels":{"app":"web2"}}: field is immutable'
    )


def test_the_rule_is_a_table_by_kind() -> None:
    assert set(IMMUTABLE_FIELDS) == {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"}
    pod_live = {"kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": 1}}
    pod_new = copy.deepcopy(pod_live)
    pod_new["spec"]["selector"] = 2
    assert immutable_field_errors([_manifest(pod_new)], {("Pod", "default", "web"): pod_live}) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (WEB, WEB),
        # matchLabels as a set, order of keys is no change
        ({"matchLabels": {"app": "web", "tier": "front"}}, {"matchLabels": {"tier": "front", "app": "web"}}),
        # empty equals absent
        (WEB, {"matchLabels": {"app": "web"}, "matchExpressions": []}),
        (WEB, {"matchLabels": {"app": "web"}, "matchExpressions": None}),
        # matchExpressions (and their values) as sets
        (
            {
                "matchExpressions": [
                    {"key": "a", "operator": "In", "values": ["x", "y"]},
                    {"key": "b", "operator": "Exists"},
                ]
            },
            {
                "matchExpressions": [
                    {"key": "b", "operator": "Exists", "values": []},
                    {"key": "a", "operator": "In", "values": ["y", "x"]},
                ]
            },
        ),
    ],
    ids=["same", "label-order", "empty-expressions", "null-expressions", "expression-sets"],
)
def test_semantically_equal_selectors_are_no_change(old: Any, new: Any) -> None:
    errors = immutable_field_errors(
        [_manifest(_obj("Deployment", new))], {("Deployment", "default", "web"): _obj("Deployment", old)}
    )
    assert errors == []


@pytest.mark.parametrize(
    "new",
    [
        {"matchLabels": {"app": "web", "tier": "front"}},  # a label more
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},  # same meaning, other field
        {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]},
    ],
)
def test_any_other_selector_is_a_change(new: Any) -> None:
    errors = immutable_field_errors(
        [_manifest(_obj("Deployment", new))], {("Deployment", "default", "web"): _obj("Deployment", WEB)}
    )
    assert [e.field for e in errors] == ["spec.selector"]


def test_a_new_object_or_one_being_deleted_may_have_any_selector() -> None:
    new = _obj("Deployment", {"matchLabels": {"app": "web2"}})
    assert immutable_field_errors([_manifest(new)], {}) == []  # deleted in an earlier commit: re-added
    terminating = _obj("Deployment", WEB)
    terminating["metadata"]["deletionTimestamp"] = "2026-11-25T20:00:00Z"
    assert immutable_field_errors([_manifest(new)], {("Deployment", "default", "web"): terminating}) == []
    other_ns = _obj("Deployment", WEB)
    assert immutable_field_errors([_manifest(new)], {("Deployment", "prod", "web"): other_ns}) == []


FILE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web2}
  template: {}
"""


def test_errors_move_to_the_line_of_their_field() -> None:
    from reconciler.errors import ManifestError
    from reconciler.sync.immutable import at_field_lines

    e = ManifestError("apps/web.yaml", "Invalid value: x: field is immutable", 6, 1, "spec.selector")
    tmpl = ManifestError("apps/web.yaml.j2", "m", 6, 1, "spec.selector")
    gone = ManifestError("gone.yaml", "m", 3, 0, "spec.selector")
    files = {"apps/web.yaml": FILE}
    got = at_field_lines([e, tmpl, gone], files.get)
    assert [(x.file, x.line) for x in got] == [("apps/web.yaml", 12), ("apps/web.yaml.j2", 6), ("gone.yaml", 3)]
    assert str(got[0]).startswith("apps/web.yaml:12 (document 2): spec.selector: Invalid value")
