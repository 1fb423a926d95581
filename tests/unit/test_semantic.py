"""Empty and absent are equal, as Kubernetes compares typed objects (reconciler/manifests/semantic.py).

A template that only spells out empty values is the same template: no new ReplicaSet, no new
revision, no rollout (Kubernetes: the template is decoded into Go structs, and
apiequality.Semantic.DeepEqual treats nil and empty slices and maps as equal).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.controllers.deployment.template import equal_ignore_hash, pod_template_hash
from reconciler.manifests.semantic import semantic

BASE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 8080}]}]},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    tpl = copy.deepcopy(BASE)
    node: Any = tpl
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value
    return tpl


@pytest.mark.parametrize(
    "path,value",
    [
        ("spec.containers.0.resources", {}),
        ("spec.containers.0.resources", {"limits": {}, "requests": {}}),
        ("spec.containers.0.env", []),
        ("spec.containers.0.envFrom", []),
        ("spec.containers.0.args", []),
        ("spec.containers.0.securityContext", None),
        ("spec.volumes", []),
        ("spec.nodeSelector", {}),
        ("metadata.creationTimestamp", None),  # kubectl create --dry-run=client -o yaml
        ("metadata.annotations", {}),
        ("spec.initContainers", []),
    ],
)
def test_spelled_out_empty_is_the_same_template(path: str, value: Any) -> None:
    other = _with(path, value)
    assert equal_ignore_hash(BASE, other)
    assert pod_template_hash(BASE) == pod_template_hash(other)


@pytest.mark.parametrize(
    "path,value",
    [
        ("spec.containers.0.image", "web:2"),
        ("spec.containers.0.resources", {"limits": {"cpu": "1"}}),
        ("spec.containers.0.env", [{"name": "A", "value": "1"}]),
        ("spec.containers.0.args", [""]),  # a list with an empty string is a value
        ("spec.terminationGracePeriodSeconds", 0),  # zero is a value, not an absence
        ("spec.volumes", [{"name": "scratch", "emptyDir": {}}]),
    ],
)
def test_a_real_change_is_a_different_template(path: str, value: Any) -> None:
    other = _with(path, value)
    assert not equal_ignore_hash(BASE, other)
    assert pod_template_hash(BASE) != pod_template_hash(other)


def test_an_empty_volume_source_is_a_choice_not_an_absence() -> None:
    vol = {"volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "info", "downwardAPI": {}}]}
    assert semantic(vol) == vol
    assert semantic({"volumes": [{"name": "a", "emptyDir": {}, "extra": None}]}) == {
        "volumes": [{"name": "a", "emptyDir": {}}]
    }


def test_dry_run_output_of_kubectl_equals_the_plain_manifest() -> None:
    dry_run = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}, "name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {"containers": [{"image": "web:1", "name": "web", "resources": {}}]},
            },
        },
        "status": {},
    }
    plain = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"labels": {"app": "web"}, "name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"image": "web:1", "name": "web"}]},
            },
        },
    }
    assert semantic(dry_run) == semantic(plain) == plain
