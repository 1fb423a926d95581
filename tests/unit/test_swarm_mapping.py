"""The Swarm runtime's pure mapping (runtime/swarm/mapping.py): placement, restart policy, task states."""

from __future__ import annotations

from runtime.swarm.mapping import (
    constraints,
    current_task,
    node_object,
    restart_condition,
    service_name,
    task_ip,
    task_state,
)


def pod(**spec: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "uid": "u"}, "spec": spec}


def test_service_name_is_short_and_keeps_the_uid() -> None:
    name = service_name("0123456789abcdef", "default", "x" * 80, "8f1c2d3e-aaaa-bbbb")
    assert len(name) <= 63 and name.startswith("gs-01234567-default-x") and name.endswith("-8f1c2d3e")


def test_restart_policy_is_swarms_restart_condition() -> None:
    assert restart_condition(pod()) == "any"
    assert restart_condition(pod(restartPolicy="OnFailure")) == "on-failure"
    assert restart_condition(pod(restartPolicy="Never")) == "none"


def test_node_rules_become_placement_constraints() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "disk", "operator": "In", "values": ["ssd"]},
                            {"key": "zone", "operator": "NotIn", "values": ["a", "b"]},
                            {"key": "gpu", "operator": "Exists"},
                        ]
                    },
                    {"matchExpressions": [{"key": "other", "operator": "In", "values": ["x"]}]},
                ]
            }
        }
    }
    got, unsupported = constraints(
        pod(nodeName="node2", nodeSelector={"kubernetes.io/hostname": "node2", "tier": "web"}, affinity=affinity)
    )
    assert got == [
        "node.hostname==node2",
        "node.hostname==node2",
        "node.labels.tier==web",
        "node.labels.disk==ssd",
        "node.labels.zone!=a",
        "node.labels.zone!=b",
    ]
    assert len(unsupported) == 2  # Exists has no Swarm constraint; a second term cannot be ORed


def test_task_states_are_container_states() -> None:
    assert task_state(None) == {"waiting": {"reason": "ContainerCreating"}}
    pending = {"Status": {"State": "pending", "Err": "no suitable node (scheduling constraints not satisfied)"}}
    assert task_state(pending)["waiting"]["message"].startswith("no suitable node")
    running = {"Status": {"State": "running", "Timestamp": "2026-11-30T08:00:00.123Z"}}
    assert task_state(running) == {"running": {"startedAt": "2026-11-30T08:00:00Z"}}
    failed = {"Status": {"State": "failed", "Err": "exit 3", "ContainerStatus": {"ExitCode": 3}}}
    assert task_state(failed)["terminated"]["exitCode"] == 3
    done = {"Status": {"State": "complete", "ContainerStatus": {"ExitCode": 0}, "Timestamp": "2026-11-30T08:00:00Z"}}
    assert task_state(done)["terminated"]["reason"] == "Completed"


def test_the_current_task_is_the_newest_swarm_wants_running() -> None:
    old = {"ID": "a", "CreatedAt": "2026-11-30T08:00:00Z", "DesiredState": "shutdown"}
    new = {"ID": "b", "CreatedAt": "2026-11-30T08:00:05Z", "DesiredState": "running"}
    assert current_task([old, new])["ID"] == "b"  # type: ignore[index]
    assert current_task([old])["ID"] == "a"  # type: ignore[index]
    assert current_task([]) is None
    att = {"NetworksAttachments": [{"Network": {"ID": "n1"}, "Addresses": ["10.245.0.7/16"]}]}
    assert task_ip(att, "n1") == "10.245.0.7" and task_ip(att, "n2") is None


def test_a_swarm_node_is_a_kubernetes_node() -> None:
    n = node_object(
        {
            "ID": "x1",
            "Spec": {"Labels": {"disk": "ssd"}, "Role": "worker", "Availability": "active"},
            "Description": {"Hostname": "node2", "Platform": {"Architecture": "x86_64"}, "Resources": {}},
            "Status": {"State": "down", "Addr": "10.250.0.12"},
        }
    )
    assert n["metadata"]["name"] == "node2"
    assert n["metadata"]["labels"]["disk"] == "ssd" and n["metadata"]["labels"]["kubernetes.io/arch"] == "amd64"
    assert n["status"]["conditions"][0]["status"] == "Unknown"
    assert n["status"]["addresses"][0] == {"type": "InternalIP", "address": "10.250.0.12"}


def test_node_ports_relay_to_the_cluster_ip() -> None:
    from dataclasses import dataclass

    from runtime.swarm.nodeports import node_ports

    @dataclass
    class R:
        cluster_ip: str
        listen: tuple[tuple[str, int], ...]
        protocol: str = "TCP"

    rules = [
        R("10.245.128.5", (("10.245.128.5", 80), ("0.0.0.0", 30080))),
        R("10.245.128.6", (("10.245.128.6", 53),), "UDP"),
        R("10.245.128.7", (("10.245.128.7", 8080),)),
    ]
    assert node_ports(rules) == {(30080, "10.245.128.5", 80)}


def test_the_service_range_is_the_overlays_other_half() -> None:
    from runtime.swarm.gateway import link_addresses, pod_range

    assert pod_range("10.245.0.0/16", "10.245.128.0/17") == "10.245.0.0/17"
    assert pod_range("10.245.0.0/16", "10.245.0.0/17") == "10.245.128.0/17"
    assert pod_range("10.245.0.0/16", "10.97.0.0/16") is None
    host, gw = link_addresses("0123456789abcdef")
    assert host.startswith("169.254.") and not host.startswith("169.254.169.")
    assert int(gw.rsplit(".", 1)[1]) == int(host.rsplit(".", 1)[1]) + 1
