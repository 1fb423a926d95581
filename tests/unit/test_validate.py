"""Unit tests for reconciler/manifests/validate/ (the package): defaults and validation rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifests.validate import (
    default_and_validate,
    default_pull_policy,
    dns1035_label_error,
    dns1123_label_error,
    dns1123_subdomain_error,
    iana_svc_name_error,
)


def pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "c", "image": "img:v1"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": base}


def deployment(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "img:v1"}]},
        },
    }
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": base}


def replicaset(**spec: Any) -> dict[str, Any]:
    obj = deployment(**spec)
    obj["kind"] = "ReplicaSet"
    obj["metadata"]["name"] = "rs"
    return obj


def service(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ports": [{"port": 80}], "selector": {"app": "web"}}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": base}


def run(obj: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    new, errs = default_and_validate(obj, "f.yaml", 0)
    for e in errs:
        assert e.file == "f.yaml" and e.document == 0 and e.line == 0
    return new, [(e.field, e.message) for e in errs]


def fields(obj: dict[str, Any]) -> list[str]:
    return [f for f, _ in run(obj)[1]]


# --------------------------------------------------------------------------- defaults


def test_returns_new_dict_and_leaves_input_alone() -> None:
    obj = deployment()
    before = copy.deepcopy(obj)
    new, errs = run(obj)
    assert errs == []
    assert obj == before
    assert new is not obj
    assert new["spec"]["template"] is not obj["spec"]["template"]


def test_pod_defaults() -> None:
    obj = pod()
    obj["spec"]["containers"][0].update(
        {
            "ports": [{"containerPort": 80}],
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
        }
    )
    new, errs = run(obj)
    assert errs == []
    assert new["metadata"] == {"name": "p", "namespace": "default", "labels": {}, "annotations": {}}
    spec = new["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"][0]["protocol"] == "TCP"
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["periodSeconds"] == 5


@pytest.mark.parametrize(
    "image,policy",
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:v2", "IfNotPresent"),
        ("nginx@sha256:abc", "IfNotPresent"),
        ("qinchaowhut/allen:v1", "IfNotPresent"),
    ],
)
def test_default_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_explicit_values_are_kept() -> None:
    obj = pod(restartPolicy="Never", terminationGracePeriodSeconds=0)
    obj["metadata"]["namespace"] = "prod"
    obj["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    new, errs = run(obj)
    assert errs == []
    assert new["spec"]["restartPolicy"] == "Never"
    assert new["spec"]["terminationGracePeriodSeconds"] == 0
    assert new["metadata"]["namespace"] == "prod"
    assert new["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_deployment_defaults() -> None:
    new, errs = run(deployment())
    assert errs == []
    spec = new["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["minReadySeconds"] == 0
    assert spec["paused"] is False
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_deployment_explicit_zero_replicas_and_recreate() -> None:
    new, errs = run(deployment(replicas=0, strategy={"type": "Recreate"}))
    assert errs == []
    assert new["spec"]["replicas"] == 0
    assert new["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_partial_rolling_update() -> None:
    new, errs = run(deployment(strategy={"rollingUpdate": {"maxSurge": 0}}))
    assert errs == []
    assert new["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": "25%"}


def test_replicaset_defaults() -> None:
    new, errs = run(replicaset())
    assert errs == []
    assert new["spec"]["replicas"] == 1
    assert new["spec"]["minReadySeconds"] == 0
    assert "strategy" not in new["spec"]
    assert new["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_service_defaults() -> None:
    new, errs = run(service(ports=[{"port": 80}, {"name": "b", "port": 81, "targetPort": "web"}]))
    assert [f for f, _ in errs] == ["spec.ports[0].name"]  # two ports: names required
    new, errs = run(service())
    assert errs == []
    spec = new["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert "externalTrafficPolicy" not in spec


def test_service_nodeport_lb_defaults() -> None:
    new, errs = run(service(type="LoadBalancer", sessionAffinity="ClientIP"))
    assert errs == []
    spec = new["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_endpoints_defaults() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}],
    }
    new, errs = run(obj)
    assert errs == []
    assert new["subsets"][0]["ports"][0]["protocol"] == "TCP"
    new, errs = run({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"}})
    assert errs == [] and new["subsets"] == []


def test_status_is_dropped() -> None:
    obj = pod()
    obj["status"] = {"phase": "Running"}
    new, _ = run(obj)
    assert "status" not in new


# --------------------------------------------------------------------------- validation tables

ERROR_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, object, field, message fragment)
    ("name missing", {**pod(), "metadata": {}}, "metadata.name", "Required value"),
    ("name upper", {**pod(), "metadata": {"name": "Web"}}, "metadata.name", "RFC 1123 subdomain"),
    ("name too long", {**pod(), "metadata": {"name": "a" * 254}}, "metadata.name", "253"),
    ("svc name digit", {**service(), "metadata": {"name": "1svc"}}, "metadata.name", "DNS-1035"),
    ("svc name dot", {**service(), "metadata": {"name": "a.b"}}, "metadata.name", "DNS-1035"),
    ("namespace bad", {**pod(), "metadata": {"name": "p", "namespace": "A_B"}}, "metadata.namespace", "RFC 1123 label"),
    ("label key", {**pod(), "metadata": {"name": "p", "labels": {"-x": "a"}}}, "metadata.labels", "name part"),
    (
        "label value int",
        {**pod(), "metadata": {"name": "p", "labels": {"v": 1}}},
        "metadata.labels.v",
        "must be a string",
    ),
    (
        "label value bad",
        {**pod(), "metadata": {"name": "p", "labels": {"v": "a b"}}},
        "metadata.labels.v",
        "valid label",
    ),
    (
        "annotation int",
        {**pod(), "metadata": {"name": "p", "annotations": {"a": 1}}},
        "metadata.annotations.a",
        "must be a string",
    ),
    ("metadata list", {**pod(), "metadata": ["x"]}, "metadata", "must be an object"),
    ("no containers", pod(containers=[]), "spec.containers", "Required value"),
    ("containers map", pod(containers={"name": "c"}), "spec.containers", "must be a list"),
    ("no image", pod(containers=[{"name": "c"}]), "spec.containers[0].image", "Required value"),
    ("container name", pod(containers=[{"name": "C_1", "image": "x"}]), "spec.containers[0].name", "RFC 1123 label"),
    (
        "dup container",
        pod(containers=[{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]),
        "spec.containers[1].name",
        "Duplicate value",
    ),
    ("dup init container", pod(initContainers=[{"name": "c", "image": "x"}]), "spec.containers[0].name", "Duplicate"),
    (
        "containerPort missing",
        pod(containers=[{"name": "c", "image": "x", "ports": [{"name": "http"}]}]),
        "spec.containers[0].ports[0].containerPort",
        "Required value",
    ),
    (
        "containerPort range",
        pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]),
        "spec.containers[0].ports[0].containerPort",
        "less than or equal to 65535",
    ),
    (
        "containerPort zero",
        pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 0}]}]),
        "spec.containers[0].ports[0].containerPort",
        "greater than or equal to 1",
    ),
    (
        "port protocol",
        pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 1, "protocol": "HTTP"}]}]),
        "spec.containers[0].ports[0].protocol",
        "Unsupported value",
    ),
    (
        "port name",
        pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 1, "name": "a--b"}]}]),
        "spec.containers[0].ports[0].name",
        "consecutive hyphens",
    ),
    (
        "env name",
        pod(containers=[{"name": "c", "image": "x", "env": [{"name": "1X", "value": "a"}]}]),
        "spec.containers[0].env[0].name",
        "environment variable name",
    ),
    (
        "env value int",
        pod(containers=[{"name": "c", "image": "x", "env": [{"name": "X", "value": 1}]}]),
        "spec.containers[0].env[0].value",
        "must be a string",
    ),
    (
        "command string",
        pod(containers=[{"name": "c", "image": "x", "command": ["a", 1]}]),
        "spec.containers[0].command[1]",
        "must be a string",
    ),
    (
        "probe no handler",
        pod(containers=[{"name": "c", "image": "x", "livenessProbe": {"periodSeconds": 3}}]),
        "spec.containers[0].livenessProbe",
        "must specify a handler type",
    ),
    (
        "probe two handlers",
        pod(
            containers=[
                {
                    "name": "c",
                    "image": "x",
                    "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
                }
            ]
        ),
        "spec.containers[0].readinessProbe.tcpSocket",
        "more than 1 handler",
    ),
    (
        "liveness successThreshold",
        pod(
            containers=[
                {"name": "c", "image": "x", "livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}}
            ]
        ),
        "spec.containers[0].livenessProbe.successThreshold",
        "must be 1",
    ),
    (
        "probe negative",
        pod(
            containers=[
                {"name": "c", "image": "x", "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": -1}}
            ]
        ),
        "spec.containers[0].livenessProbe.initialDelaySeconds",
        "greater than or equal to 0",
    ),
    (
        "probe port name",
        pod(containers=[{"name": "c", "image": "x", "livenessProbe": {"httpGet": {"port": "HTTP"}}}]),
        "spec.containers[0].livenessProbe.httpGet.port",
        "Invalid value",
    ),
    ("restartPolicy", pod(restartPolicy="Sometimes"), "spec.restartPolicy", "Unsupported value"),
    ("grace negative", pod(terminationGracePeriodSeconds=-1), "spec.terminationGracePeriodSeconds", "greater than"),
    (
        "grace string",
        pod(terminationGracePeriodSeconds="30"),
        "spec.terminationGracePeriodSeconds",
        "must be an integer",
    ),
    ("pod spec missing", {**pod(), "spec": None}, "spec", "Required value"),
    # ReplicaSet / Deployment
    ("replicas string", deployment(replicas="three"), "spec.replicas", "must be an integer"),
    ("replicas negative", deployment(replicas=-1), "spec.replicas", "greater than or equal to 0"),
    ("replicas bool", replicaset(replicas=True), "spec.replicas", "must be an integer"),
    ("selector missing", deployment(selector=None), "spec.selector", "Required value"),
    ("selector empty", deployment(selector={}), "spec.selector", "empty selector"),
    ("rs selector empty", replicaset(selector={"matchLabels": {}}), "spec.selector", "empty selector"),
    (
        "selector mismatch",
        deployment(selector={"matchLabels": {"app": "other"}}),
        "spec.template.metadata.labels",
        "`selector` does not match template `labels`",
    ),
    (
        "rs selector mismatch",
        replicaset(selector={"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
        "spec.template.metadata.labels",
        "`selector` does not match template `labels`",
    ),
    (
        "selector bad op",
        deployment(selector={"matchExpressions": [{"key": "app", "operator": "Is"}]}),
        "spec.selector.matchExpressions[0].operator",
        "Unsupported value",
    ),
    ("template missing", deployment(template=None), "spec.template", "Required value"),
    (
        "template restartPolicy",
        deployment(
            template={
                "metadata": {"labels": {"app": "web"}},
                "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]},
            }
        ),
        "spec.template.spec.restartPolicy",
        'supported values: "Always"',
    ),
    (
        "template activeDeadline",
        replicaset(
            template={
                "metadata": {"labels": {"app": "web"}},
                "spec": {"activeDeadlineSeconds": 5, "containers": [{"name": "c", "image": "x"}]},
            }
        ),
        "spec.template.spec.activeDeadlineSeconds",
        "Forbidden",
    ),
    (
        "template image",
        deployment(template={"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}),
        "spec.template.spec.containers[0].image",
        "Required value",
    ),
    (
        "both zero",
        deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
        "spec.strategy.rollingUpdate.maxUnavailable",
        "may not be 0 when `maxSurge` is 0",
    ),
    (
        "surge bad",
        deployment(strategy={"rollingUpdate": {"maxSurge": "lots"}}),
        "spec.strategy.rollingUpdate.maxSurge",
        "percent",
    ),
    (
        "surge negative",
        deployment(strategy={"rollingUpdate": {"maxSurge": -1}}),
        "spec.strategy.rollingUpdate.maxSurge",
        "greater than or equal to 0",
    ),
    (
        "unavailable >100%",
        deployment(strategy={"rollingUpdate": {"maxUnavailable": "150%"}}),
        "spec.strategy.rollingUpdate.maxUnavailable",
        "100%",
    ),
    (
        "recreate with rollingUpdate",
        deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
        "spec.strategy.rollingUpdate",
        "may not be specified when strategy `type` is 'Recreate'",
    ),
    ("strategy type", deployment(strategy={"type": "BlueGreen"}), "spec.strategy.type", "Unsupported value"),
    (
        "progress deadline",
        deployment(minReadySeconds=700),
        "spec.progressDeadlineSeconds",
        "greater than minReadySeconds",
    ),
    ("revisionHistoryLimit", deployment(revisionHistoryLimit=-1), "spec.revisionHistoryLimit", "greater than"),
    ("paused string", deployment(paused="yes please"), "spec.paused", "must be a boolean"),
    ("deployment spec list", {**deployment(), "spec": []}, "spec", "must be an object"),
    # Service
    ("svc no ports", service(ports=[]), "spec.ports", "Required value"),
    ("svc port range", service(ports=[{"port": 0}]), "spec.ports[0].port", "greater than or equal to 1"),
    ("svc port missing", service(ports=[{"targetPort": 80}]), "spec.ports[0].port", "Required value"),
    (
        "svc dup port",
        service(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
        "spec.ports[1]",
        "Duplicate",
    ),
    (
        "svc dup name",
        service(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
        "spec.ports[1].name",
        "Duplicate value",
    ),
    (
        "svc targetPort name",
        service(ports=[{"port": 80, "targetPort": "8080"}]),
        "spec.ports[0].targetPort",
        "at least one letter",
    ),
    (
        "svc targetPort range",
        service(ports=[{"port": 80, "targetPort": 99999}]),
        "spec.ports[0].targetPort",
        "between 1 and 65535",
    ),
    ("svc nodePort clusterip", service(ports=[{"port": 80, "nodePort": 30080}]), "spec.ports[0].nodePort", "Forbidden"),
    (
        "svc nodePort range",
        service(type="NodePort", ports=[{"port": 80, "nodePort": 80}]),
        "spec.ports[0].nodePort",
        "30000-32767",
    ),
    ("svc headless NodePort", service(type="NodePort", clusterIP="None"), "spec.clusterIP", "may not be set to 'None'"),
    ("svc bad type", service(type="Ingress"), "spec.type", "Unsupported value"),
    ("svc externalName missing", service(type="ExternalName", ports=None), "spec.externalName", "Required value"),
    ("svc externalName bad", service(type="ExternalName", externalName="a_b"), "spec.externalName", "RFC 1123"),
    (
        "svc externalName clusterIP",
        service(type="ExternalName", externalName="x.com", clusterIP="10.0.0.5"),
        "spec.clusterIP",
        "Forbidden",
    ),
    ("svc affinity", service(sessionAffinity="Sticky"), "spec.sessionAffinity", "Unsupported value"),
    (
        "svc affinity timeout",
        service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 90000}}),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "86400",
    ),
    ("svc selector value", service(selector={"app": "a b"}), "spec.selector.app", "valid label"),
    ("svc clusterIP", service(clusterIP="10.0.0.300"), "spec.clusterIP", "valid IP"),
    ("svc lb 10250", service(type="LoadBalancer", ports=[{"port": 10250}]), "spec.ports[0].port", "kubelet"),
    ("svc lb ranges", service(loadBalancerSourceRanges=["0.0.0.0/0"]), "spec.loadBalancerSourceRanges", "LoadBalancer"),
    # Endpoints
    (
        "endpoints ip",
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "nope"}], "ports": [{"port": 1}]}],
        },
        "subsets[0].addresses[0].ip",
        "valid IP",
    ),
    (
        "endpoints port",
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 0}]}],
        },
        "subsets[0].ports[0].port",
        "greater than or equal to 1",
    ),
]


@pytest.mark.parametrize("obj,field,fragment", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_validation_errors(obj: dict[str, Any], field: str, fragment: str) -> None:
    _, errs = run(obj)
    matching = [m for f, m in errs if f == field]
    assert matching, f"no error at {field}; got {errs}"
    assert any(fragment in m for m in matching), matching


VALID_CASES: list[tuple[str, dict[str, Any]]] = [
    ("headless without ports", service(clusterIP="None", ports=None)),
    ("externalName", service(type="ExternalName", externalName="example.com.", ports=None, selector=None)),
    ("one unnamed port", service(ports=[{"port": 80, "targetPort": "http"}])),
    ("nodePort in range", service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])),
    ("surge percent unavailable 0", deployment(strategy={"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 1}})),
    (
        "selector expressions",
        deployment(selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
    ),
    ("replicas zero", replicaset(replicas=0)),
    (
        "named probe port",
        pod(
            containers=[
                {
                    "name": "c",
                    "image": "x",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "readinessProbe": {"httpGet": {"port": "http"}},
                }
            ]
        ),
    ),
    ("prefixed label", {**pod(), "metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "x", "e": ""}}}),
    (
        "env valueFrom",
        pod(
            containers=[
                {
                    "name": "c",
                    "image": "x",
                    "env": [{"name": "A.b-c", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                }
            ]
        ),
    ),
    (
        "preStop sleep",
        pod(containers=[{"name": "c", "image": "x", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}]),
    ),
]


@pytest.mark.parametrize("obj", [c[1] for c in VALID_CASES], ids=[c[0] for c in VALID_CASES])
def test_valid_objects(obj: dict[str, Any]) -> None:
    _, errs = run(obj)
    assert errs == []


def test_many_errors_reported_at_once() -> None:
    obj = deployment(replicas="three", selector=None)
    obj["metadata"]["name"] = "Bad_Name"
    got = fields(obj)
    assert {"spec.replicas", "spec.selector", "metadata.name"} <= set(got)


# --------------------------------------------------------------------------- name formats


@pytest.mark.parametrize(
    "value,label,subdomain,dns1035",
    [
        ("web", True, True, True),
        ("web-1", True, True, True),
        ("1web", True, True, False),
        ("web.example", False, True, False),
        ("Web", False, False, False),
        ("-web", False, False, False),
        ("web-", False, False, False),
        ("a" * 63, True, True, True),
        ("a" * 64, False, True, False),
    ],
)
def test_name_formats(value: str, label: bool, subdomain: bool, dns1035: bool) -> None:
    assert (dns1123_label_error(value) is None) is label
    assert (dns1123_subdomain_error(value) is None) is subdomain
    assert (dns1035_label_error(value) is None) is dns1035


@pytest.mark.parametrize(
    "value,ok",
    [
        ("http", True),
        ("web-80", True),
        ("8080", False),
        ("a--b", False),
        ("-ab", False),
        ("Http", False),
        ("abcdefghijklmnop", False),
    ],
)
def test_iana_svc_name(value: str, ok: bool) -> None:
    assert (iana_svc_name_error(value) is None) is ok


# --------------------------------------------------------------------------- properties

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12,
)

_fields = st.sampled_from(
    [
        "metadata",
        "spec",
        "replicas",
        "selector",
        "template",
        "containers",
        "ports",
        "strategy",
        "type",
        "subsets",
        "clusterIP",
        "labels",
        "name",
        "image",
    ]
)


@settings(max_examples=300)
@given(
    st.sampled_from([pod(), deployment(), replicaset(), service()]),
    st.lists(st.tuples(st.lists(_fields, min_size=1, max_size=3), _json), max_size=3),
)
def test_never_crashes_on_garbage(base: dict[str, Any], edits: list[tuple[list[str], Any]]) -> None:
    obj = copy.deepcopy(base)
    for path, value in edits:
        cur: Any = obj
        for key in path[:-1]:
            if not isinstance(cur, dict):
                break
            cur = cur.setdefault(key, {})
        if isinstance(cur, dict):
            cur[path[-1]] = value
    before = copy.deepcopy(obj)
    new, errs = default_and_validate(obj, "f.yaml", 3)
    assert obj == before
    assert all(e.document == 3 for e in errs)
    # defaulting is idempotent on a valid result
    if not errs:
        again, errs2 = default_and_validate(new, "f.yaml", 3)
        assert errs2 == [] and again == new
