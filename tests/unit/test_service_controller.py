"""reconciler.controllers.service: endpoints, allocation, env vars, view."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.controllers.service import Allocation, allocate, endpoints_for, service_env, service_view


def svc(name="web", ns="default", selector=None, ports=None, **spec):
    s = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080}], **spec},
    }
    if selector is not None:
        s["spec"]["selector"] = selector
    return s


def pod(name, ip, ready=True, labels=None, ns="default", ports=None, phase="Running", deleting=False):
    p = {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "labels": labels if labels is not None else {"app": "web"},
        },
        "spec": {"containers": [{"name": "c", "ports": ports or []}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-11-25T20:00:00Z"
    return p


def test_endpoints_ready_and_not_ready():
    s = svc(selector={"app": "web"})
    pods = [
        pod("b", "127.244.0.3"),
        pod("a", "127.244.0.2"),
        pod("c", "127.244.0.4", ready=False),
        pod("other", "127.244.0.5", labels={"app": "db"}),
        pod("otherns", "127.244.0.6", ns="prod"),
        pod("done", "127.244.0.7", phase="Succeeded"),
        pod("noip", None),
        pod("term", "127.244.0.8", deleting=True),
    ]
    ep = endpoints_for(s, pods)
    assert ep["kind"] == "Endpoints" and ep["apiVersion"] == "v1"
    assert ep["metadata"] == {"name": "web", "namespace": "default", "labels": {"app": "web"}}
    [subset] = ep["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["127.244.0.2", "127.244.0.3"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["127.244.0.4"]
    assert subset["addresses"][0]["targetRef"] == {"kind": "Pod", "name": "a", "namespace": "default", "uid": "uid-a"}
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_endpoints_publish_not_ready():
    s = svc(selector={"app": "web"}, publishNotReadyAddresses=True)
    ep = endpoints_for(s, [pod("a", "127.244.0.2", ready=False), pod("t", "127.244.0.3", deleting=True)])
    [subset] = ep["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["127.244.0.2", "127.244.0.3"]
    assert "notReadyAddresses" not in subset


def test_endpoints_named_target_port_per_pod():
    s = svc(selector={"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    pods = [
        pod("a", "127.244.0.2", ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", "127.244.0.3", ports=[{"name": "web", "containerPort": 9090}]),
        pod("c", "127.244.0.4", ports=[{"name": "other", "containerPort": 1}]),
        pod("d", "127.244.0.5", ports=[{"name": "web", "containerPort": 8080}]),
    ]
    ep = endpoints_for(s, pods)
    got = {sub["ports"][0]["port"]: [a["ip"] for a in sub["addresses"]] for sub in ep["subsets"]}
    assert got == {8080: ["127.244.0.2", "127.244.0.5"], 9090: ["127.244.0.3"]}


def test_endpoints_selectorless_and_external_name():
    assert endpoints_for(svc(), [pod("a", "127.244.0.2")]) is None
    assert endpoints_for(svc(selector={}), [pod("a", "127.244.0.2")]) is None
    assert (
        endpoints_for(
            svc(selector={"app": "web"}, type="ExternalName", externalName="x.example"), [pod("a", "127.244.0.2")]
        )
        is None
    )


def test_endpoints_no_pods_is_empty_subsets():
    assert endpoints_for(svc(selector={"app": "web"}), [])["subsets"] == []


def test_allocate_basic_and_stable():
    services = [
        svc("a"),
        svc("b", type="NodePort"),
        svc("h", clusterIP="None"),
        svc("e", type="ExternalName", externalName="x.example", ports=[]),
        svc("lb", type="LoadBalancer", ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}]),
    ]
    alloc, errors = allocate(services, {})
    assert errors == []
    assert alloc[("default", "h")].cluster_ip is None
    assert alloc[("default", "e")] == Allocation(None, {})
    ip = alloc[("default", "a")].cluster_ip
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.96.0.0/16")
    assert alloc[("default", "a")].node_ports == {}
    assert set(alloc[("default", "lb")].node_ports) == {"http", "https"}
    assert all(30000 <= p <= 32767 for p in alloc[("default", "b")].node_ports.values())
    again, errors = allocate(list(reversed(services)), alloc)
    assert errors == [] and again == alloc
    fresh, _ = allocate(list(reversed(services)), {})
    assert fresh == alloc  # deterministic regardless of order


def test_allocate_requested_ip_and_conflicts():
    alloc, errors = allocate([svc("a", clusterIP="127.96.0.10")], {})
    assert alloc[("default", "a")].cluster_ip == "127.96.0.10" and errors == []
    alloc2, errors = allocate([svc("a"), svc("b", clusterIP="127.96.0.10")], alloc)
    assert alloc2[("default", "a")].cluster_ip == "127.96.0.10"  # omitted: keeps previous
    assert ("default", "b") not in alloc2
    assert errors[0][0] == ("default", "b") and errors[0][1] == "spec.clusterIP"
    assert "already allocated" in errors[0][2]
    _, errors = allocate([svc("c", clusterIP="10.0.0.1")], {})
    assert errors[0][1] == "spec.clusterIP" and "not in the valid range" in errors[0][2]
    # a set clusterIP may not change; previous kept
    a3, errors = allocate([svc("a", clusterIP="127.96.0.11")], alloc)
    assert a3[("default", "a")].cluster_ip == "127.96.0.10" and errors[0][1] == "spec.clusterIP"


def test_allocate_node_port_conflicts():
    s1 = svc("a", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    s2 = svc("b", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    alloc, errors = allocate([s1, s2], {})
    assert alloc[("default", "a")].node_ports == {"http": 30080}
    assert ("default", "b") not in alloc
    assert errors == [
        (("default", "b"), "spec.ports[0].nodePort", "Invalid value: 30080: provided port is already allocated")
    ]
    _, errors = allocate([svc("c", type="NodePort", ports=[{"port": 80, "nodePort": 80}])], {})
    assert "not in the valid range" in errors[0][2]
    # unnamed port keyed by number; previous nodePort kept when omitted
    s3 = svc("d", type="NodePort", ports=[{"port": 8080}])
    a, _ = allocate([s3], {("default", "d"): Allocation("127.96.5.5", {8080: 31000})})
    assert a[("default", "d")] == Allocation("127.96.5.5", {8080: 31000})


def test_allocate_lb_without_node_ports():
    s = svc("lb", type="LoadBalancer", allocateLoadBalancerNodePorts=False)
    alloc, _ = allocate([s], {})
    assert alloc[("default", "lb")].node_ports == {}


names = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, max_size=25, unique=True)


@settings(max_examples=60, deadline=None)
@given(names, st.data())
def test_allocation_properties(svc_names, data):
    kinds = data.draw(
        st.lists(
            st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "headless"]),
            min_size=len(svc_names),
            max_size=len(svc_names),
        )
    )
    services = []
    for n, k in zip(svc_names, kinds):
        if k == "headless":
            services.append(svc(n, clusterIP="None"))
        else:
            services.append(svc(n, type=k, ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]))
    # a small range forces collisions
    alloc, errors = allocate(services, {}, service_cidr="127.96.0.0/26", node_port_range=(30000, 30099))
    assert errors == []
    ips = [a.cluster_ip for a in alloc.values() if a.cluster_ip]
    assert len(ips) == len(set(ips))
    ports = [p for a in alloc.values() for p in a.node_ports.values()]
    assert len(ports) == len(set(ports))
    # re-allocating with previous keeps everything, also with a subset and in another order
    subset = data.draw(st.lists(st.sampled_from(services), unique_by=lambda s: s["metadata"]["name"]))
    again, errors = allocate(
        subset + [svc("zz-new")], alloc, service_cidr="127.96.0.0/26", node_port_range=(30000, 30099)
    )
    assert errors == []
    for s in subset:
        key = ("default", s["metadata"]["name"])
        assert again[key] == alloc[key]
    assert again[("default", "zz-new")].cluster_ip not in {
        a.cluster_ip for k, a in again.items() if k != ("default", "zz-new")
    }


def test_service_env():
    services = [
        svc(
            "test-svc", ports=[{"name": "http-alt", "port": 8080}, {"name": "metrics", "port": 9090, "protocol": "UDP"}]
        ),
        svc("headless", clusterIP="None"),
        svc("other", ns="prod"),
    ]
    alloc, _ = allocate(services, {})
    env = {e["name"]: e["value"] for e in service_env(services, alloc, "default")}
    ip = alloc[("default", "test-svc")].cluster_ip
    assert env["TEST_SVC_SERVICE_HOST"] == ip
    assert env["TEST_SVC_SERVICE_PORT"] == "8080"
    assert env["TEST_SVC_SERVICE_PORT_HTTP_ALT"] == "8080"
    assert env["TEST_SVC_SERVICE_PORT_METRICS"] == "9090"
    assert env["TEST_SVC_PORT"] == f"tcp://{ip}:8080"
    assert env["TEST_SVC_PORT_8080_TCP"] == f"tcp://{ip}:8080"
    assert env["TEST_SVC_PORT_9090_UDP"] == f"udp://{ip}:9090"
    assert env["TEST_SVC_PORT_9090_UDP_PROTO"] == "udp"
    assert env["TEST_SVC_PORT_8080_TCP_PORT"] == "8080"
    assert env["TEST_SVC_PORT_8080_TCP_ADDR"] == ip
    assert not any(k.startswith(("HEADLESS_", "OTHER_")) for k in env)


def test_service_view():
    s = svc("lb", type="LoadBalancer")
    alloc, _ = allocate([s], {})
    v = service_view(s, alloc[("default", "lb")], "192.168.1.5")
    a = alloc[("default", "lb")]
    assert v["spec"]["clusterIP"] == a.cluster_ip and v["spec"]["clusterIPs"] == [a.cluster_ip]
    assert v["spec"]["ports"][0]["nodePort"] == a.node_ports["http"]
    assert v["status"]["loadBalancer"] == {"ingress": [{"ip": "192.168.1.5"}]}
    assert "nodePort" not in s["spec"]["ports"][0]  # input untouched
    pending = service_view(s, a, None)
    assert pending["status"]["loadBalancer"] == {}
    h = service_view(svc("h", clusterIP="None"), Allocation(None, {}), None)
    assert h["spec"]["clusterIP"] == "None"
