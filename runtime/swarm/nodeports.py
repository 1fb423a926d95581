"""NodePorts (and LoadBalancer ports) on every Swarm node, not only on gitship's host.

gitship's data plane serves a nodePort on its own host, as on the other runtimes. Swarm's routing
mesh would publish it on every node but needs IPVS, which a node may lack; so each node port gets
a small global service of gitship's own, ``gs-<instance 8>-np-<port>``: one busybox ``nc`` task
per node, its port published in host mode on the node's address, relaying every connection to
the Service's ClusterIP, which the node's gateway task carries to gitship's proxy (gateway.py).

``NodePortPlane`` wraps the daemon's data plane: every set of Service ports the reconciler hands
to it is also the set of node ports the runtime keeps (``SwarmRuntime.set_node_ports``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import docker.errors  # type: ignore[import-untyped]
import docker.types  # type: ignore[import-untyped]

from runtime.docker.common import PAUSE_IMAGE

from .mapping import LABEL_INSTANCE, LABEL_ROLE

NodePort = tuple[int, str, int]  # (node port, ClusterIP, service port)
LABEL_TARGET = "gitship.nodeport.target"


class Rule(Protocol):
    cluster_ip: str
    listen: tuple[tuple[str, int], ...]
    protocol: str


def node_ports(rules: Sequence[Rule]) -> set[NodePort]:
    """The TCP ports a rule listens on besides its ClusterIP, with the ClusterIP port they relay to."""
    out: set[NodePort] = set()
    for r in rules:
        if r.protocol != "TCP" or not r.cluster_ip:
            continue
        cport = next((p for h, p in r.listen if h == r.cluster_ip), None)
        if cport is None:
            continue
        out |= {(p, r.cluster_ip, cport) for h, p in r.listen if h != r.cluster_ip}
    return out


def sync_node_ports(api: Any, instance: str, network: str, wanted: set[NodePort]) -> None:
    """Make the node-port services exactly ``wanted``. Blocking."""
    have = {}
    for s in api.services(filters={"label": [f"{LABEL_INSTANCE}={instance}", f"{LABEL_ROLE}=nodeport"]}):
        have[((s.get("Spec") or {}).get("Labels") or {}).get(LABEL_TARGET, "")] = s["ID"]
    want = {f"{p}:{ip}:{cp}": (p, ip, cp) for p, ip, cp in wanted}
    for target, sid in have.items():
        if target not in want:
            try:
                api.remove_service(sid)
            except docker.errors.NotFound:
                pass
    for target, (port, ip, cport) in sorted(want.items()):
        if target in have:
            continue
        spec = docker.types.ContainerSpec(
            PAUSE_IMAGE,
            command=["nc", "-ll", "-p", str(port), "-e", "nc", ip, str(cport)],
            stop_grace_period=10**9,
            init=True,  # nc as PID 1 would ignore SIGTERM
        )
        endpoint = docker.types.EndpointSpec(
            mode="dnsrr", ports=[{"Protocol": "tcp", "PublishedPort": port, "TargetPort": port, "PublishMode": "host"}]
        )
        try:
            api.create_service(
                docker.types.TaskTemplate(
                    spec, restart_policy=docker.types.RestartPolicy(condition="any", delay=10**9), networks=[network]
                ),
                name=f"gs-{instance[:8]}-np-{port}",
                labels={LABEL_INSTANCE: instance, LABEL_ROLE: "nodeport", LABEL_TARGET: target},
                mode=docker.types.ServiceMode("global"),
                endpoint_spec=endpoint,
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # the old one of this port still being removed: the next pass
                raise


class NodePortPlane:
    """The daemon's data plane, plus the node-port services of every rule it is given."""

    def __init__(self, inner: Any, set_node_ports: Callable[[set[NodePort]], Awaitable[None]]):
        self.inner = inner
        self.name = str(inner.name)
        self._set = set_node_ports
        self._count = 0

    async def apply(self, rules: Sequence[Any]) -> Mapping[tuple[str, str, int], str]:
        failed: Mapping[tuple[str, str, int], str] = await self.inner.apply(rules)
        ports = node_ports(rules)
        self._count = len(ports)
        await self._set(ports)
        return failed

    async def close(self) -> None:
        await self.inner.close()

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "nodePortsOnEveryNode": self._count}
