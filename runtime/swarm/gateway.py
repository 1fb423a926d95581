"""The pods' overlay network, and gitship's host on it through a gateway container.

gitship's data plane (the Service proxy, NodePorts, the cluster DNS) and its probes run in the
gitship process, on the host, as with the Docker runtime (docs/docker.md). The pods live on an
attachable overlay network (VXLAN) spread over the Swarm's nodes, which the host is not part
of. So the runtime starts a **gateway** service, ``gs-<instance 8>-gw``: global (one small
``gitship/pause:1`` task on every node, so it weighs the same on every node for Swarm's
scheduler, which counts tasks), attached to the overlay. The task on the node of the engine
gitship talks to (the manager, which must be this host: gitship checks that the task's
process is this host's) joins the host to the overlay:

* a veth pair ``gsw<instance 8>`` (host) / ``gsg<instance 8>`` (in the gateway's network
  namespace) with a /30 of 169.254.0.0/16 picked from the instance id;
* on the host a route to the overlay's subnet through the gateway, so the proxy, the probes
  and ``curl POD_IP`` reach every pod on every node;
* in the gateway (its own namespace: nothing of the host's firewall is touched) forwarding on,
  a masquerade of what goes to the overlay (pods answer the gateway, which answers the host),
  a route back to the Service range, and DNS: the gateway's overlay address, port 53, is
  forwarded to gitship's DNS server, so pods that name it as their nameserver (the runtime
  sets it in each service's DNS config) resolve cluster names on any node.

Removing the gateway service removes its task's end of the veth, hence the pair and the route.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
from typing import Any

import docker.errors  # type: ignore[import-untyped]

from runtime.base import RuntimeError_
from runtime.docker.common import BUSYBOX, PAUSE_IMAGE, SANDBOX_SCRIPT, busybox_rootfs_tar

from .mapping import LABEL_INSTANCE, LABEL_ROLE


def link_names(instance: str) -> tuple[str, str]:
    return f"gsw{instance[:8]}", f"gsg{instance[:8]}"


def link_addresses(instance: str) -> tuple[str, str]:
    """(host end, gateway end) of the veth: a /30 of 169.254.0.0/16 (not 169.254.169.x) from the id."""
    n = int(hashlib.sha256(instance.encode()).hexdigest()[:8], 16) % (64 * 254)
    third, fourth = 1 + n // 64, (n % 64) * 4
    third += third >= 169
    return f"169.254.{third}.{fourth + 1}", f"169.254.{third}.{fourth + 2}"


def pod_range(subnet: str, services: str) -> str | None:
    """The half of the overlay's subnet the pods' addresses come from when the Service range is its
    other half (then pods reach ClusterIPs on the overlay); None when the ranges are apart."""
    net, svc = ipaddress.ip_network(subnet, strict=False), ipaddress.ip_network(services, strict=False)
    if net.prefixlen >= 31 or not svc.subnet_of(net):  # type: ignore[arg-type]
        return None
    low, high = net.subnets()
    return str(low if svc.subnet_of(high) else high)  # type: ignore[arg-type]


def ensure_network(api: Any, name: str, subnet: str, services: str, instance: str) -> str:
    """The attachable overlay network for the pods (made once); its id. Blocking."""
    for n in api.networks(names=[name]):
        if n.get("Name") == name:
            return str(n["Id"])
    pool = docker.types.IPAMPool(subnet=subnet, iprange=pod_range(subnet, services))
    ipam = docker.types.IPAMConfig(pool_configs=[pool])
    try:
        return str(
            api.create_network(
                name,
                driver="overlay",
                attachable=True,
                ipam=ipam,
                labels={LABEL_INSTANCE: instance},
                check_duplicate=True,
            )["Id"]
        )
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
    return str(next(n["Id"] for n in api.networks(names=[name]) if n.get("Name") == name))


def ensure_pause_image(api: Any) -> str:
    """gitship/pause:1 on the engine (made from this host's busybox, as the Docker runtime does)."""
    try:
        api.inspect_image(PAUSE_IMAGE)
    except docker.errors.ImageNotFound:
        repo, tag = PAUSE_IMAGE.split(":")
        changes = ['CMD ["/bin/sh", "-c", %s]' % json.dumps(SANDBOX_SCRIPT)]
        api.import_image_from_data(busybox_rootfs_tar(busybox=BUSYBOX), repository=repo, tag=tag, changes=changes)
    return PAUSE_IMAGE


# forwarding, answering ARP for the Service half of the overlay's subnet (proxy ARP, also back out
# of the interface it came in on: pvlan), and no ICMP redirects for what it forwards there
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.proxy_arp": "1",
    "net.ipv4.conf.all.proxy_arp_pvlan": "1",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}
# a node's responder: the Service range goes to the hub (found by its tasks.<name> DNS record)
RESPONDER_SCRIPT = """trap 'exit 0' TERM INT; last=
while :; do
  ip=$(nslookup "tasks.$HUB" 2>/dev/null | awk '/^Address/ {a=$2} END {print a}')
  if [ -n "$ip" ] && [ "$ip" != "$last" ] && ip route replace "$SERVICES" via "$ip"; then last=$ip; fi
  sleep 2 & wait
done"""


def _gateway_service(api: Any, name: str, instance: str, network: str, mode: Any, script: str, **kw: Any) -> str:
    try:
        return str(api.inspect_service(name)["ID"])
    except docker.errors.NotFound:
        pass
    spec = docker.types.ContainerSpec(
        PAUSE_IMAGE,
        command=["sh", "-c", script],
        hostname=name,
        stop_grace_period=1_000_000_000,
        sysctls=SYSCTLS,
        cap_add=["CAP_NET_ADMIN"],
        **kw,
    )
    template = docker.types.TaskTemplate(
        spec,
        restart_policy=docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
        networks=[network],
        placement=docker.types.Placement(constraints=[c for c in [mode[1]] if c]),
    )
    try:
        return str(
            api.create_service(
                template,
                name=name,
                labels={LABEL_INSTANCE: instance, LABEL_ROLE: "gateway"},
                mode=mode[0],
                endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
            )["ID"]
        )
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
    return str(api.inspect_service(name)["ID"])


def ensure_gateway(api: Any, instance: str, network: str, services: str) -> str:
    """The hub (one task on this engine's node) and the responders (one on every other node), made
    if missing: so every node carries one gateway task, the same weight for Swarm's scheduler,
    which counts tasks. Returns the hub service's id. Blocking."""
    ensure_pause_image(api)
    node = str((api.info().get("Swarm") or {}).get("NodeID") or "")
    hub = f"gs-{instance[:8]}-hub"
    hub_id = _gateway_service(
        api, hub, instance, network, (docker.types.ServiceMode("replicated", 1), f"node.id=={node}"), SANDBOX_SCRIPT
    )
    _gateway_service(
        api,
        f"gs-{instance[:8]}-gw",
        instance,
        network,
        (docker.types.ServiceMode("global"), f"node.id!={node}"),
        RESPONDER_SCRIPT,
        env={"HUB": hub, "SERVICES": services},
    )
    return hub_id


def local_gateway(api: Any, service_id: str, network_id: str) -> tuple[str, int, str] | None:
    """The gateway task on the node of the engine gitship talks to, once running: (container id,
    pid, overlay address). Blocking."""
    node = str((api.info().get("Swarm") or {}).get("NodeID") or "")
    for t in api.tasks(filters={"service": service_id, "node": node, "desired-state": "running"}):
        st = t.get("Status") or {}
        cs = st.get("ContainerStatus") or {}
        if st.get("State") == "running" and cs.get("PID"):
            ip = next(
                (
                    str(a).split("/")[0]
                    for att in t.get("NetworksAttachments") or []
                    if (att.get("Network") or {}).get("ID") == network_id
                    for a in att.get("Addresses") or []
                ),
                "",
            )
            return str(cs.get("ContainerID")), int(cs["PID"]), ip
    return None


def remove_gateway(api: Any, instance: str) -> None:
    for s in api.services(filters={"label": [f"{LABEL_INSTANCE}={instance}", f"{LABEL_ROLE}=gateway"]}):
        try:
            api.remove_service(s["ID"])
        except docker.errors.NotFound:
            pass


def local_process(pid: int, container_id: str) -> bool:
    """The container's process is this host's (same pid namespace): its cgroup names the container."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            return container_id in f.read()
    except OSError:
        return False


async def sh(*argv: str, stdin: str | None = None, ok_if: tuple[str, ...] = ()) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    text = err.decode(errors="replace").strip()
    if proc.returncode != 0 and not any(x in text for x in ok_if):
        raise RuntimeError_(f"{' '.join(argv)}: {text}")


async def join_host(
    instance: str, pid: int, gateway_ip: str, subnet: str, service_cidr: str, dns: tuple[str, int] | None
) -> None:
    """Plumb the host onto the overlay through the gateway whose process is ``pid`` (idempotent:
    a link left by a killed gitship is replaced)."""
    host_if, gw_if = link_names(instance)
    host_ip, gw_link_ip = link_addresses(instance)
    await sh("ip", "link", "del", host_if, ok_if=("Cannot find", "does not exist"))
    await sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", gw_if, "netns", str(pid))
    await sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
    await sh("ip", "link", "set", host_if, "up")
    # a nodePort asked on the host's loopback, DNATed by the nftables data plane, leaves through the link
    await sh("sysctl", "-q", "-w", f"net.ipv4.conf.{host_if}.route_localnet=1")
    await sh("ip", "route", "replace", subnet, "via", gw_link_ip, "dev", host_if)
    ns = ("nsenter", "-t", str(pid), "-n")
    await sh(*ns, "ip", "addr", "add", f"{gw_link_ip}/30", "dev", gw_if)
    await sh(*ns, "ip", "link", "set", gw_if, "up")
    await sh(*ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    await sh(*ns, "ip", "route", "replace", service_cidr, "via", host_ip, "dev", gw_if)
    rules = [f"ip daddr {ipaddress.ip_network(subnet, strict=False)} oifname != {json.dumps(gw_if)} masquerade"]
    pre = []
    if dns is not None and gateway_ip:
        for proto in ("udp", "tcp"):
            pre.append(f"ip daddr {gateway_ip} {proto} dport 53 dnat to {dns[0]}:{dns[1]}")
    ruleset = (
        "table ip gitship_gw\ndelete table ip gitship_gw\ntable ip gitship_gw {\n"
        "  chain post { type nat hook postrouting priority 100; " + "; ".join(rules) + "; }\n"
        "  chain pre { type nat hook prerouting priority -100; " + "".join(r + "; " for r in pre) + "}\n}\n"
    )
    await sh(*ns, "nft", "-f", "-", stdin=ruleset)
