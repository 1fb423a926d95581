"""The pods' overlay network, and gitship's host on it through a gateway container.

gitship's data plane (the Service proxy, NodePorts, the cluster DNS) and its probes run in the
gitship process, on the host, as with the Docker runtime (docs/docker.md). The pods live on an
attachable overlay network (VXLAN) spread over the Swarm's nodes, which the host is not part
of. So the runtime starts one **gateway** container, ``gs-<instance 8>-gw``, on the engine it
talks to (the manager; it must run on this host: gitship checks the container's process is
this host's), attached to the overlay, and joins the host to it:

* a veth pair ``gsw<instance 8>`` (host) / ``gsg<instance 8>`` (in the gateway's network
  namespace) with a /30 of 169.254.0.0/16 picked from the instance id;
* on the host a route to the overlay's subnet through the gateway, so the proxy, the probes
  and ``curl POD_IP`` reach every pod on every node;
* in the gateway (its own namespace: nothing of the host's firewall is touched) forwarding on,
  a masquerade of what goes to the overlay (pods answer the gateway, which answers the host),
  a route back to the Service range, and DNS: the gateway's overlay address, port 53, is
  forwarded to gitship's DNS server, so pods that name it as their nameserver (the runtime
  sets it in each service's DNS config) resolve cluster names on any node.

Removing the gateway container removes its end of the veth, hence the pair and the route.
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


def ensure_network(api: Any, name: str, subnet: str, instance: str) -> str:
    """The attachable overlay network for the pods (made once); its id. Blocking."""
    for n in api.networks(names=[name]):
        if n.get("Name") == name:
            return str(n["Id"])
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
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


def ensure_gateway(api: Any, instance: str, network: str) -> tuple[str, int, str]:
    """The gateway container, running (made if missing): (id, pid, its overlay address). Blocking."""
    name = f"gs-{instance[:8]}-gw"
    try:
        info = api.inspect_container(name)
    except docker.errors.NotFound:
        image = ensure_pause_image(api)
        hc = api.create_host_config(network_mode=network, restart_policy={"Name": "unless-stopped"}, init=False)
        api.create_container(
            image,
            command=["sh", "-c", SANDBOX_SCRIPT],
            name=name,
            hostname=name,
            labels={LABEL_INSTANCE: instance, LABEL_ROLE: "gateway"},
            host_config=hc,
            detach=True,
        )
        info = api.inspect_container(name)
    if not (info.get("State") or {}).get("Running"):
        api.start(info["Id"])
        info = api.inspect_container(info["Id"])
    ip = ((info.get("NetworkSettings") or {}).get("Networks") or {}).get(network, {}).get("IPAddress") or ""
    return str(info["Id"]), int((info.get("State") or {}).get("Pid") or 0), str(ip)


def remove_gateway(api: Any, instance: str) -> None:
    for c in api.containers(all=True, filters={"label": [f"{LABEL_INSTANCE}={instance}", f"{LABEL_ROLE}=gateway"]}):
        try:
            api.remove_container(c["Id"], force=True)
        except docker.errors.NotFound:
            pass


def local_process(pid: int, container_id: str) -> bool:
    """The container's process is this host's (same pid namespace): its cgroup names the container."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            return container_id in f.read()
    except OSError:
        return False


async def _sh(*argv: str, stdin: str | None = None, ok_if: tuple[str, ...] = ()) -> None:
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
    await _sh("ip", "link", "del", host_if, ok_if=("Cannot find", "does not exist"))
    await _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", gw_if, "netns", str(pid))
    await _sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
    await _sh("ip", "link", "set", host_if, "up")
    # a nodePort asked on the host's loopback, DNATed by the nftables data plane, leaves through the link
    await _sh("sysctl", "-q", "-w", f"net.ipv4.conf.{host_if}.route_localnet=1")
    await _sh("ip", "route", "replace", subnet, "via", gw_link_ip, "dev", host_if)
    ns = ("nsenter", "-t", str(pid), "-n")
    await _sh(*ns, "ip", "addr", "add", f"{gw_link_ip}/30", "dev", gw_if)
    await _sh(*ns, "ip", "link", "set", gw_if, "up")
    await _sh(*ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    await _sh(*ns, "ip", "route", "replace", service_cidr, "via", host_ip, "dev", gw_if)
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
    await _sh(*ns, "nft", "-f", "-", stdin=ruleset)
