"""The Kubernetes API's pure parts: discovery, Status bodies, field selectors, Tables, watch history,
OpenAPI documents."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.kapi import openapi, resources, views
from reconciler.kapi.watch import Hub
from reconciler.manifests.model import CLUSTER_SCOPED, KINDS


T0 = "2026-01-01T00:00:00Z"


def _pod(name: str, phase: str = "Running", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": labels or {},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}}}],
        },
    }


def test_every_supported_kind_is_served_with_its_scope() -> None:
    for kind, api_version in KINDS.items():
        group, _, version = api_version.rpartition("/")
        found = [r for r in resources.RESOURCES if r.kind == kind and r.group == group and r.version == version]
        assert len(found) == 1, kind
        assert found[0].namespaced == (kind not in CLUSTER_SCOPED)
        assert "watch" in found[0].verbs and "patch" in found[0].verbs


def test_legacy_discovery() -> None:
    core = resources.resource_list("", "v1")
    assert core is not None
    pods = next(e for e in core["resources"] if e["name"] == "pods")
    assert pods["kind"] == "Pod" and pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert any(e["name"] == "pods/log" for e in core["resources"])
    assert resources.resource_list("nope.io", "v1") is None
    groups = {g["name"] for g in resources.api_group_list()["groups"]}
    assert {"apps", "batch", "networking.k8s.io", "storage.k8s.io"} <= groups


def test_aggregated_discovery_v2() -> None:
    apis = resources.aggregated(core=False)
    assert apis["kind"] == "APIGroupDiscoveryList" and apis["apiVersion"] == "apidiscovery.k8s.io/v2"
    apps = next(i for i in apis["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and deploy["shortNames"] == ["deploy"]
    assert deploy["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert any(s["subresource"] == "scale" for s in deploy["subresources"])
    core = resources.aggregated(core=True)
    assert [i["metadata"]["name"] for i in core["items"]] == [""]


def test_status_bodies() -> None:
    r = resources.find("apps", "v1", "deployments")
    assert r is not None
    body = views.not_found(r, "x")
    assert body["code"] == 404 and body["reason"] == "NotFound" and body["message"] == 'deployments.apps "x" not found'
    pods = resources.find("", "v1", "pods")
    assert pods is not None and views.not_found(pods, "y")["message"] == 'pods "y" not found'


def test_field_selectors() -> None:
    terms = views.parse_field_selector("status.phase=Running,metadata.name!=b")
    assert terms == [("status.phase", True, "Running"), ("metadata.name", False, "b")]
    assert views.field_matches(_pod("a"), terms)
    assert not views.field_matches(_pod("b"), terms)
    assert not views.field_matches(_pod("a", "Pending"), terms)
    assert views.field_matches(_pod("a"), views.parse_field_selector("spec.nodeName=localhost"))
    assert views.field_matches(_pod("a", "Pending"), views.parse_field_selector("spec.nodeName="))
    assert views.check_fields(views.parse_field_selector("status.phase=x"), "Service") is not None
    assert views.check_fields(terms, "Pod") is None
    with pytest.raises(ValueError):
        views.parse_field_selector("nonsense")


def test_table_has_gitships_columns() -> None:
    t = views.table("Pod", [_pod("a")], 1767225600.0 + 65, "7")
    names = [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert t["rows"][0]["cells"][:5] == ["a", "1/1", "Running", 2, "65s"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert t["metadata"]["resourceVersion"] == "7"


def test_api_object_fills_image_id() -> None:
    served = views.api_object("v1", _pod("a"))
    assert served["status"]["containerStatuses"][0]["imageID"] == ""


def test_watch_hub_numbers_changes_and_forgets_old_ones() -> None:
    hub = Hub(history=3)
    a, b = _pod("a"), _pod("b")
    hub.observe([(("Pod", "default", "a"), a), (("Pod", "default", "b"), b)])
    assert hub.rv == 2
    assert not hub.observe([(("Pod", "default", "a"), a), (("Pod", "default", "b"), b)])
    a2 = {**a, "status": {"phase": "Failed"}}
    hub.observe([(("Pod", "default", "a"), a2)])
    changes = hub.since(2)
    assert changes is not None
    assert [(c.type, c.key[2], c.obj["metadata"]["resourceVersion"]) for c in changes] == [
        ("MODIFIED", "a", "3"),
        ("DELETED", "b", "4"),
    ]
    assert hub.since(0) is None  # history holds three changes: rv 1 is gone (410 Gone)
    assert hub.objects()[("Pod", "default", "a")]["status"]["phase"] == "Failed"


def test_openapi_documents() -> None:
    idx = openapi.index()
    assert "api/v1" in idx["paths"] and "apis/apps/v1" in idx["paths"]
    doc = openapi.document("apps", "v1")
    assert doc is not None
    schemas = doc["components"]["schemas"]
    deploy = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deploy["x-kubernetes-group-version-kind"] == [{"group": "apps", "version": "v1", "kind": "Deployment"}]
    # every $ref resolves
    import json

    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert ref in schemas, ref
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert openapi.document("nope.io", "v1") is None


def test_endpoint_slice_from_endpoints() -> None:
    ep = {
        "kind": "Endpoints",
        "metadata": {"name": "svc", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}],
                     "ports": [{"port": 8080}]}],
    }  # fmt: skip
    s = views.endpoint_slice(ep)
    assert s["metadata"]["labels"]["kubernetes.io/service-name"] == "svc"
    assert [(e["addresses"], e["conditions"]["ready"]) for e in s["endpoints"]] == [
        (["10.0.0.1"], True),
        (["10.0.0.2"], False),
    ]
    assert s["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    t = views.table("EndpointSlice", [s], 0.0, "1")
    assert t["rows"][0]["cells"][:4] == ["svc-gs", "IPv4", "8080", "10.0.0.1,10.0.0.2"]


def test_the_one_node() -> None:
    node = views.node_object(0.0, "v1.33.0", 3, 2, 1024)
    assert node["metadata"]["name"] == views.NODE_NAME and node["status"]["allocatable"]["cpu"] == "2"
    t = views.table("Node", [node], 60.0, "1")
    assert t["rows"][0]["cells"] == ["localhost", "Ready", "control-plane", "60s", "v1.33.0"]
    r = resources.find("", "v1", "nodes")
    assert r is not None and not r.namespaced and "patch" not in r.verbs
