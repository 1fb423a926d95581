"""Stable ClusterIP and nodePort allocation for Services (docs/kubernetes.md §5.4).

Kubernetes allocates with bitmaps in the API server (kubernetes/kubernetes
pkg/registry/core/service/ipallocator and pkg/registry/core/service/portallocator); gitship
recomputes the allocation of every Service on each pass from the Services in git and the
previous allocations, so it is a pure function here.

Allocation policy (deterministic, documented choice): an automatic ClusterIP is
``hash(namespace/name)`` into the *upper* band of the service CIDR, then linear probing
to the next free address; only when the upper band is full is the lower (static) band
used, the same way (Kubernetes' static/dynamic split of the service range: KEP-3070).
Automatic nodePorts work the same way with ``hash(namespace/name/port)`` over the upper
band of the node-port range, then the lower band (30000-30085 by default). Hashing (rather
than "lowest free") makes a Service's address independent of which other Services happen to
exist, so re-creating a repository on another machine tends to give the same addresses.
Collisions are resolved in sorted (namespace, name) order, so the result never depends on
the order of the input list.

``allocate`` works in three passes over the Services in that order: previous allocations that
are still wanted, explicit requests (``spec.clusterIP``, ``nodePort``), automatic picks.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.controllers.service_util import port_key, ports, service_key, spec, svc_type, wants_node_ports
from reconciler.types import NsName, Obj

DEFAULT_SERVICE_CIDR = "127.96.0.0/16"
DEFAULT_NODE_PORT_RANGE = (30000, 32767)

AllocError = tuple[NsName, str, str]
"""(service, field path, message)"""

Want = tuple[str, ...]
"""What a Service wants for its IP: ("none",) | ("auto",) | ("ip", str) | ("keep", str)."""


@dataclass(frozen=True)
class Allocation:
    """What a Service got: its ClusterIP (None: headless or ExternalName) and one nodePort
    per service port, keyed by the port's name, or its number when unnamed."""

    cluster_ip: str | None
    node_ports: Mapping[str | int, int] = field(default_factory=dict)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class _Pool:
    """Integers in [lo, hi] split into a lower (static) band and an upper band; owners
    recorded per value; automatic picks hash into the upper band, then the lower one."""

    def __init__(self, lo: int, hi: int, lower_band: int):
        self.lo, self.hi = lo, hi
        self.split = min(hi + 1, lo + lower_band)  # first value of the upper band
        self.owner: dict[int, Any] = {}

    def contains(self, v: int) -> bool:
        return self.lo <= v <= self.hi

    def free_for(self, v: int, who: Any) -> bool:
        o = self.owner.get(v)
        return o is None or o == who

    def claim(self, v: int, who: Any) -> None:
        self.owner[v] = who

    def pick(self, seed: str, who: Any) -> int | None:
        for lo, hi in ((self.split, self.hi), (self.lo, self.split - 1)):
            size = hi - lo + 1
            if size <= 0:
                continue
            start = _hash(seed) % size
            for i in range(size):
                v = lo + (start + i) % size
                if v not in self.owner:
                    self.owner[v] = who
                    return v
        return None


def _ip_pool(cidr: str, reserved: Iterable[str]) -> tuple[_Pool, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    net = ipaddress.ip_network(cidr, strict=False)
    size = net.num_addresses
    base = int(net.network_address)
    # usable: network+1 .. broadcast-1 (IPv4); lower band min(max(16, size/16), 256)
    lo, hi = base + 1, base + size - (2 if net.version == 4 else 1)
    lower = min(max(16, size // 16), 256)
    pool = _Pool(lo, hi, lower)
    for r in reserved:
        pool.claim(int(ipaddress.ip_address(r)), ("<reserved>", r))
    return pool, net


def _wanted_ip(svc: Obj, prev: Allocation | None) -> tuple[Want, str | None]:
    """What ``svc`` wants for its IP, and the error message when it asks for a change not allowed."""
    given = spec(svc).get("clusterIP")
    had = prev.cluster_ip if prev is not None else None
    if svc_type(svc) == "ExternalName":
        return ("none",), None
    if given == "None":
        if had:
            return ("keep", had), f'Invalid value: "None": may not change once set (allocated {had})'
        return ("none",), None
    if given in (None, ""):
        return (("keep", had) if had else ("auto",)), None
    if had and had != given:
        return ("keep", had), f'Invalid value: "{given}": may not change once set (allocated {had})'
    if had == given:
        return ("keep", str(given)), None
    return ("ip", str(given)), None


class _Allocator:
    """The state of one ``allocate`` call: the pools, what each Service wants and got, the errors."""

    def __init__(
        self,
        services: list[Obj],
        previous: Mapping[NsName, Allocation],
        service_cidr: str,
        node_port_range: tuple[int, int],
        reserved_ips: Iterable[str],
    ) -> None:
        self.previous = previous
        self.service_cidr = service_cidr
        self.ip_pool, self.net = _ip_pool(service_cidr, reserved_ips)
        self.lo_p, self.hi_p = node_port_range
        np_size = self.hi_p - self.lo_p + 1
        self.port_pool = _Pool(self.lo_p, self.hi_p, min(max(16, np_size // 32), 128))
        self.by_key: dict[NsName, Obj] = {}
        for svc in services:
            self.by_key[service_key(svc)] = svc
        self.keys = sorted(self.by_key)
        self.errors: list[AllocError] = []
        self.failed: set[NsName] = set()
        self.ips: dict[NsName, str | None] = {}
        self.nports: dict[NsName, dict[str | int, int]] = {k: {} for k in self.keys}
        self.want: dict[NsName, Want] = {}

    def err(self, key: NsName, fld: str, msg: str) -> None:
        self.errors.append((key, fld, msg))
        self.failed.add(key)

    def node_port_services(self, key: NsName) -> bool:
        return wants_node_ports(self.by_key[key])

    # --- what each Service wants

    def decide_wants(self) -> None:
        for key in self.keys:
            want, problem = _wanted_ip(self.by_key[key], self.previous.get(key))
            if problem is not None:
                self.err(key, "spec.clusterIP", problem)
            self.want[key] = want

    # --- pass 1: previous allocations still wanted

    def keep_previous_ip(self, key: NsName) -> None:
        w = self.want[key]
        if w[0] == "keep":
            v = int(ipaddress.ip_address(w[1]))
            if self.ip_pool.free_for(v, key):
                self.ip_pool.claim(v, key)
                self.ips[key] = w[1]
            elif key not in self.failed:
                self.want[key] = ("auto",)  # corrupted previous state: two owners; reallocate
        elif w[0] == "none":
            self.ips[key] = None

    def keep_previous_ports(self, key: NsName) -> None:
        prev = self.previous.get(key)
        if prev is None or not self.node_port_services(key):
            return
        for port in ports(self.by_key[key]):
            pk = port_key(port)
            given_np = port.get("nodePort")
            old = prev.node_ports.get(pk)
            if old is not None and given_np in (None, 0, old) and self.port_pool.free_for(old, key):
                self.port_pool.claim(old, key)
                self.nports[key][pk] = old

    # --- pass 2: explicit requests

    def explicit_ip(self, key: NsName) -> bool:
        """Claim a requested ``spec.clusterIP``; False when it is not an IP address at all."""
        w = self.want[key]
        if w[0] != "ip":
            return True
        ip = w[1]
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            self.err(key, "spec.clusterIP", f'Invalid value: "{ip}": must be a valid IP address')
            return False
        v = int(addr)
        if addr not in self.net or not self.ip_pool.contains(v):
            self.err(
                key,
                "spec.clusterIP",
                f'Invalid value: "{ip}": failed to allocate IP {ip}: the provided IP '
                f"({ip}) is not in the valid range. The range of valid IPs is {self.service_cidr}",
            )
        elif not self.ip_pool.free_for(v, key):
            self.err(
                key,
                "spec.clusterIP",
                f'Invalid value: "{ip}": failed to allocate IP {ip}: provided IP is already allocated',
            )
        else:
            self.ip_pool.claim(v, key)
            self.ips[key] = ip
        return True

    def explicit_ports(self, key: NsName) -> None:
        if not self.node_port_services(key):
            return
        for i, port in enumerate(ports(self.by_key[key])):
            pk = port_key(port)
            given_np = port.get("nodePort")
            if given_np in (None, 0) or self.nports[key].get(pk) == given_np:
                continue
            fld = f"spec.ports[{i}].nodePort"
            if not isinstance(given_np, int) or not self.port_pool.contains(given_np):
                self.err(
                    key,
                    fld,
                    f"Invalid value: {given_np}: provided port is not in the valid "
                    f"range. The range of valid ports is {self.lo_p}-{self.hi_p}",
                )
            elif not self.port_pool.free_for(given_np, key):
                self.err(key, fld, f"Invalid value: {given_np}: provided port is already allocated")
            else:
                self.port_pool.claim(given_np, key)
                self.nports[key][pk] = given_np

    # --- pass 3: automatic picks

    def auto_ip(self, key: NsName) -> bool:
        """Pick an address for an ("auto",) Service; False when the range is full."""
        if self.want[key][0] != "auto":
            return True
        ns, name = key
        picked_ip = self.ip_pool.pick(f"{ns}/{name}", key)
        if picked_ip is None:
            self.err(key, "spec.clusterIP", f"failed to allocate a serviceIP: range is full ({self.service_cidr})")
            return False
        self.ips[key] = str(ipaddress.ip_address(picked_ip))
        return True

    def auto_ports(self, key: NsName) -> None:
        if not self.node_port_services(key):
            return
        ns, name = key
        for port in ports(self.by_key[key]):
            pk = port_key(port)
            if pk in self.nports[key]:
                continue
            picked_port = self.port_pool.pick(f"{ns}/{name}/{pk}", key)
            if picked_port is None:
                self.err(
                    key,
                    "spec.ports.nodePort",
                    f"failed to allocate a nodePort: range is full ({self.lo_p}-{self.hi_p})",
                )
                break
            self.nports[key][pk] = picked_port

    # --- the result

    def result(self) -> dict[NsName, Allocation]:
        result: dict[NsName, Allocation] = {}
        for key in self.keys:
            if key not in self.failed:
                result[key] = Allocation(self.ips.get(key), dict(self.nports[key]))
                continue
            prev = self.previous.get(key)
            if prev is not None:
                # keep what it had; its addresses are not handed to anybody else this round
                kept_ports = {pk: p for pk, p in prev.node_ports.items() if self.port_pool.free_for(p, key)}
                for p in kept_ports.values():
                    self.port_pool.claim(p, key)
                result[key] = Allocation(prev.cluster_ip, kept_ports)
        return result


def allocate(
    services: list[Obj],
    previous: Mapping[NsName, Allocation],
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE,
    reserved_ips: Iterable[str] = (),
) -> tuple[dict[NsName, Allocation], list[AllocError]]:
    """Allocate ClusterIPs and nodePorts for ``services``, keeping ``previous`` ones.

    Returns ``(allocations, errors)``; errors are ``(key, field, message)`` with
    ``field`` a Kubernetes field path (``spec.clusterIP``, ``spec.ports[1].nodePort``).
    A Service with an error keeps its previous allocation if it had one, else it is
    absent from the result (it cannot be applied). Rules:

    * previous allocations are kept: an omitted ``spec.clusterIP`` / ``nodePort`` keeps the
      previous value (node ports matched by port name, or number when unnamed);
    * ``spec.clusterIP: "None"`` is headless (cluster_ip None), ExternalName gets nothing;
    * a given ``spec.clusterIP`` must lie in ``service_cidr`` and be free; a ClusterIP, once
      allocated, may not change (except by switching to ExternalName);
    * NodePort and LoadBalancer (unless ``allocateLoadBalancerNodePorts: false``) get a
      nodePort per port; a given one must lie in the range and be free;
    * automatic picks are hash-based (see the module docstring); ``reserved_ips`` (e.g. the
      DNS service address) are never handed out.
    """
    a = _Allocator(services, previous, service_cidr, node_port_range, reserved_ips)
    a.decide_wants()
    for key in a.keys:
        a.keep_previous_ip(key)
        a.keep_previous_ports(key)
    for key in a.keys:
        if a.explicit_ip(key):
            a.explicit_ports(key)
    for key in a.keys:
        if key not in a.failed and a.auto_ip(key):
            a.auto_ports(key)
    return a.result(), a.errors
