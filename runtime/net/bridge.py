"""The host side of pod networking: gitship's bridge, the pods' veth ends, addresses and routes.

Where it sits: the in-process runtime's sandboxes (runtime/inprocess/sandbox.py) give each
pod a network namespace whose ``eth0`` is one end of a veth pair; the other end is a port
of a bridge on the host that carries the pod CIDR's first address (the gateway, also the
pods' ``hostIP``). This module sets up and removes what lives on the host:

* ``ensure_host_network``: the bridge (a fixed MAC derived from its name, so it does not
  change as ports come and go), the gateway address, the Service CIDR routed to the bridge
  (so ClusterIPs leave the host towards the pods' side, where the Service data plane
  rewrites them), ``route_localnet`` on the bridge (a NodePort reached on 127.0.0.1 can be
  DNATed to a pod), ``ip_forward`` on, and, when dockerd's ``DOCKER-USER`` chain exists,
  accept rules for the bridge there: dockerd sets the FORWARD policy to drop and with
  ``bridge-nf-call-iptables`` bridged traffic between pods passes through FORWARD too.
  Idempotent: nothing is flushed, a rule is inserted only if ``iptables -C`` does not find it.
* ``teardown_host_network``: the rules, the route and the bridge go (a clean stop).
* ``delete_link``: a pod's host end goes away (runtime/inprocess/podnet.py makes the veth,
  attached to the bridge with hairpin on, so a pod can reach itself through a Service).

``ip_forward`` is left on at teardown: other software (dockerd) relies on it too.
Everything here needs root and Linux (iproute2, optionally iptables).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

IFNAME_MAX = 15
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
DOCKER_USER = "DOCKER-USER"
TIMEOUT = 20.0


class NetworkSetupError(Exception):
    """A host network command failed (the message says which and why)."""


def check_ifname(name: str) -> str:
    if not _IFNAME.match(name) or name in (".", ".."):
        raise ValueError(f"invalid interface name {name!r}: at most {IFNAME_MAX} of A-Z a-z 0-9 _ . -")
    return name


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def bridge_name(state_dir: str) -> str:
    """A bridge name of one state dir's own: "gs" and 10 hex digits of its path's hash (12 characters;
    never "gsv...", the veths' prefix)."""
    return "gs" + hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:10]


def veth_name(uid: str) -> str:
    """The host end of a pod's veth pair: "gsv" and 12 hex digits of the pod uid's hash (15 characters)."""
    return "gsv" + hashlib.sha256(uid.encode()).hexdigest()[:12]


def gateway(pod_cidr: str) -> tuple[str, int]:
    """(first host address of the pod CIDR, prefix length): the bridge's address and the pods' default route."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    if net.version != 4 or net.prefixlen > 30:
        raise ValueError(f"pod CIDR must be an IPv4 network of at least 4 addresses: {pod_cidr}")
    return str(net.network_address + 1), net.prefixlen


def _bridge_mac(bridge: str) -> str:
    h = hashlib.sha256(b"gitship-bridge:" + bridge.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *h[:5]))  # locally administered, unicast


def _ip() -> str:
    exe = shutil.which("ip")
    if exe is None:
        raise NetworkSetupError("`ip` (iproute2) not found")
    return exe


def _run(argv: Sequence[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        p = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise NetworkSetupError(f"{argv[0]}: {e}") from None
    if check and p.returncode != 0:
        what = " ".join(argv) + (f" <<{stdin.strip()!r}" if stdin else "")
        raise NetworkSetupError(f"`{what}` failed: {(p.stderr or p.stdout).strip()}")
    return p


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, encoding="ascii") as f:
            if f.read().strip() == value:
                return
        with open(path, "w", encoding="ascii") as f:
            f.write(value)
    except OSError as e:
        raise NetworkSetupError(f"cannot set {path} to {value}: {e}") from None


# --- DOCKER-USER ------------------------------------------------------------------------------


def _iptables() -> str | None:
    return shutil.which("iptables")


def _docker_user_rules(bridge: str) -> list[list[str]]:
    return [["-i", bridge, "-j", "ACCEPT"], ["-o", bridge, "-j", "ACCEPT"]]


def docker_user_chain_exists() -> bool:
    ipt = _iptables()
    return ipt is not None and _run([ipt, "-w", "-S", DOCKER_USER], check=False).returncode == 0


def ensure_docker_user_accept(bridge: str) -> bool:
    """Accept the bridge's traffic in dockerd's DOCKER-USER chain when it exists. True if it does."""
    ipt = _iptables()
    if ipt is None or not docker_user_chain_exists():
        return False
    for rule in _docker_user_rules(bridge):
        if _run([ipt, "-w", "-C", DOCKER_USER, *rule], check=False).returncode != 0:
            _run([ipt, "-w", "-I", DOCKER_USER, *rule])
    return True


def remove_docker_user_accept(bridge: str) -> None:
    ipt = _iptables()
    if ipt is None or not docker_user_chain_exists():
        return
    for rule in _docker_user_rules(bridge):
        for _ in range(100):  # every copy, should someone have inserted it twice
            if _run([ipt, "-w", "-D", DOCKER_USER, *rule], check=False).returncode != 0:
                break


def docker_user_rules_present(bridge: str) -> bool:
    """Whether any of gitship's accept rules for ``bridge`` is in DOCKER-USER (tests)."""
    ipt = _iptables()
    if ipt is None or not docker_user_chain_exists():
        return False
    return any(
        _run([ipt, "-w", "-C", DOCKER_USER, *r], check=False).returncode == 0 for r in _docker_user_rules(bridge)
    )


# --- the bridge -----------------------------------------------------------------------------


SERVICE_ROUTES = ("bridge", "local")


def ensure_host_network(
    bridge: str, pod_cidr: str, service_cidr: str | None = None, service_route: str = "bridge"
) -> str:
    """Create (idempotently) the bridge with the pod CIDR's gateway address, up; route the
    Service CIDR to it; route_localnet on it; ip_forward on; DOCKER-USER accept rules.
    Returns the gateway address. Blocking (a few short commands): run it in a thread.

    ``service_route``: "bridge" routes the Service CIDR out of the bridge
    (``ip route replace <svc> dev <bridge>``); "local" makes all of it local to the host
    (``ip route replace local <svc> dev <bridge> src <gateway> table local``, source address
    still the gateway). With "bridge" a ClusterIP that nothing serves yet is a black hole (the
    host asks the bridge who has it, nobody answers: a client's SYN waits for its 1 s
    retransmission); with "local" it is refused at once, and a proxy can bind any ClusterIP."""
    check_ifname(bridge)
    gw, prefix = gateway(pod_cidr)
    ip = _ip()
    if not link_exists(bridge):
        r = _run([ip, "link", "add", bridge, "address", _bridge_mac(bridge), "type", "bridge"], check=False)
        if r.returncode != 0 and not link_exists(bridge):
            raise NetworkSetupError(f"cannot create bridge {bridge}: {(r.stderr or r.stdout).strip()}")
    batch = [f"addr replace {gw}/{prefix} dev {bridge}", f"link set dev {bridge} up"]
    svc = _routable(service_cidr)
    if svc is not None:
        batch.append(_service_route("replace", svc, bridge, gw, service_route))
    _run([ip, "-batch", "-"], stdin="\n".join(batch) + "\n")
    _write_sysctl(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet", "1")
    _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    ensure_docker_user_accept(bridge)
    return gw


def _service_route(verb: str, svc: str, bridge: str, gw: str, how: str) -> str:
    if how not in SERVICE_ROUTES:
        raise ValueError(f"service_route must be one of {', '.join(SERVICE_ROUTES)}: {how!r}")
    if how == "local":
        return f"route {verb} local {svc} dev {bridge} src {gw} table local"
    return f"route {verb} {svc} dev {bridge}"


def _routable(service_cidr: str | None) -> str | None:
    """The Service CIDR to route to the bridge; None when there is none or it is loopback (127/8 stays local)."""
    if not service_cidr:
        return None
    net = ipaddress.ip_network(service_cidr, strict=False)
    return None if net.is_loopback else str(net)


def teardown_host_network(bridge: str, service_cidr: str | None = None) -> None:
    """Remove what ``ensure_host_network`` made: the DOCKER-USER rules, the Service route, the bridge.

    Missing pieces are fine (idempotent). Call it once no pod uses the bridge any more."""
    check_ifname(bridge)
    remove_docker_user_accept(bridge)
    ip = shutil.which("ip")
    if ip is None:
        return
    svc = _routable(service_cidr)
    if svc is not None:  # whichever of the two kinds it is (deleting the bridge would take either along too)
        _run([ip, "route", "del", svc, "dev", bridge], check=False)
        _run([ip, "route", "del", "local", svc, "dev", bridge, "table", "local"], check=False)
    if link_exists(bridge):
        _run([ip, "link", "del", bridge], check=False)


def add_address(bridge: str, address: str) -> None:
    """Put ``address``/32 on the bridge (idempotent): a Service address the host serves (the cluster
    DNS, a proxy's ClusterIP) becomes local to the host and reachable from every pod."""
    ipaddress.IPv4Address(address)
    _run([_ip(), "addr", "replace", f"{address}/32", "dev", check_ifname(bridge)])


# --- a pod's veth ------------------------------------------------------------------------------


async def delete_link(ip: str, name: str) -> None:
    """Delete a link if it exists (a veth takes its peer with it), off the event loop. Errors are
    ignored: it may vanish meanwhile. ``ip`` is iproute2's path."""
    if link_exists(name):
        try:
            await asyncio.to_thread(_run, [ip, "link", "del", name], None, False)
        except NetworkSetupError:
            pass


def delete_link_sync(name: str) -> None:
    ip = shutil.which("ip")
    if ip is not None and link_exists(name):
        _run([ip, "link", "del", name], check=False)
