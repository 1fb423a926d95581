"""The cluster DNS server: Kubernetes DNS records (docs/kubernetes.md §6) over UDP and TCP.

Two parts:

* pure: ``build_zone(services, endpoints, pods, domain) -> Zone`` and
  ``Zone.answer(qname, qtype) -> (rcode, [dnslib.RR])``;
* the server: ``await DNSServer.start(host, port, zone_getter)`` serving UDP and TCP on
  the same port (dnslib for the wire format, asyncio for the sockets).

Records (zone ``<z>`` = ``domain``, lookups case-insensitive):

==========================================  =====  ==========================================
``<svc>.<ns>.svc.<z>`` (ClusterIP)          A      the cluster IP, even with no endpoints
``<svc>.<ns>.svc.<z>`` (headless)           A      one per ready endpoint address; none -> NXDOMAIN
``<host>.<svc>.<ns>.svc.<z>`` (headless)    A      that endpoint (host = endpoint ``hostname``,
                                                   else the dashed IP ``127-244-0-7``)
``<svc>.<ns>.svc.<z>`` (ExternalName)       CNAME  ``spec.externalName`` (for any query type)
``_<port>._<proto>.<svc>.<ns>.svc.<z>``     SRV    named ports only; ClusterIP: service port ->
                                                   ``<svc>.<ns>.svc.<z>``; headless: one per ready
                                                   endpoint -> ``<host>.<svc>...`` (endpoint port),
                                                   priority 0, weight max(1, 100 // n)
``<a-b-c-d>.<ns>.pod.<z>``                  A      only if a pod of that namespace has that IP
                                                   (CoreDNS ``pods verified``)
reverse of a ClusterIP / headless endpoint  PTR    ``<svc>.<ns>.svc.<z>`` / ``<host>.<svc>...``
``dns-version.<z>``                         TXT    ``1.1.0``
``<z>``                                     SOA    negative answers carry it (minimum = ttl)
==========================================  =====  ==========================================

A name that exists with other types (``<ns>.svc.<z>``, a ClusterIP name asked for AAAA)
answers NOERROR with no records; a name in the zone that does not exist, NXDOMAIN.

Short names: a name not under ``<z>`` is tried with the search list of a pod in
namespace ``search_namespace`` (default ``default``): ``<name>.default.svc.<z>``, then
``<name>.svc.<z>``, then ``<name>.<z>``; the first that exists answers, with the records'
owner name being the name asked (so ``nslookup test-svc <dns-ip>`` and
``dig @127.0.0.1 -p <port> test-svc`` work from the host). Anything else outside the zone
(and outside ``in-addr.arpa`` / ``ip6.arpa``) gets **REFUSED**: there is no upstream
forwarding; pods resolve external names through the host's resolvers, listed after us.

TTL: 5 s for every record (CoreDNS's ``kubernetes`` plugin default, docs/kubernetes.md §6.2), including
the SOA minimum used for negative caching; ``build_zone(ttl=...)`` changes it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Callable, Iterable
from typing import Any

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSRecord  # type: ignore[import-untyped]
from dnslib.dns import DNSError  # type: ignore[import-untyped]

Obj = dict[str, Any]
DNS_SCHEMA_VERSION = "1.1.0"
DEFAULT_TTL = 5
NOERROR = RCODE.NOERROR
NXDOMAIN = RCODE.NXDOMAIN
REFUSED = RCODE.REFUSED
SERVFAIL = RCODE.SERVFAIL
FORMERR = RCODE.FORMERR


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def dashed(ip: str) -> str:
    """``10.42.0.7`` -> ``10-42-0-7``; IPv6 colons become dashes too."""
    return ip.replace(".", "-").replace(":", "-")


def _addr_rdata(ip: str) -> tuple[int, Any] | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return (QTYPE.A, A(ip)) if addr.version == 4 else (QTYPE.AAAA, AAAA(ip))


class Zone:
    """The records of one cluster domain; immutable once built (build a new one on change)."""

    def __init__(self, domain: str = "cluster.local", ttl: int = DEFAULT_TTL, search_namespace: str = "default"):
        self.domain = _norm(domain)
        self.ttl = ttl
        self.search_namespace = search_namespace
        # name -> list of (qtype int, rdata)
        self.records: dict[str, list[tuple[int, Any]]] = {}
        self.names: set[str] = {self.domain}  # existing names, incl. empty non-terminals
        self.soa_rr = RR(
            self.domain + ".",
            QTYPE.SOA,
            ttl=ttl,
            rdata=SOA(f"ns.dns.{self.domain}.", f"hostmaster.{self.domain}.", (1, 7200, 1800, 86400, ttl)),
        )

    # ---- building
    def add(self, name: str, qtype: int, rdata: Any) -> None:
        name = _norm(name)
        recs = self.records.setdefault(name, [])
        if (qtype, str(rdata)) not in {(t, str(r)) for t, r in recs}:
            recs.append((qtype, rdata))
        self._exists(name)

    def _exists(self, name: str) -> None:
        # register the name and its ancestors down to the zone apex
        while name and name not in self.names:
            self.names.add(name)
            if name.endswith("." + self.domain):
                name = name.split(".", 1)[1]
            else:
                break

    def in_zone(self, name: str) -> bool:
        return name == self.domain or name.endswith("." + self.domain)

    @staticmethod
    def _is_reverse(name: str) -> bool:
        return name.endswith("in-addr.arpa") or name.endswith("ip6.arpa")

    # ---- answering
    def resolve_name(self, qname: str) -> str | None:
        """The zone name a query name stands for (search list applied to short names),
        or None when it is outside the zone."""
        name = _norm(qname)
        if self.in_zone(name) or self._is_reverse(name):
            return name
        if not name:
            return None
        for suffix in (f"{self.search_namespace}.svc.{self.domain}", f"svc.{self.domain}", self.domain):
            candidate = f"{name}.{suffix}"
            if candidate in self.names:
                return candidate
        return None

    def answer(self, qname: str, qtype: str | int) -> tuple[int, list[RR]]:
        """``(rcode, answer RRs)`` for one question. Owner names are ``qname`` as asked."""
        qt = qtype if isinstance(qtype, int) else getattr(QTYPE, qtype.upper())
        name = self.resolve_name(qname)
        if name is None:
            return REFUSED, []
        owner = qname if qname.endswith(".") else qname + "."
        if name not in self.names:
            return NXDOMAIN, []
        recs = self.records.get(name, [])
        out: list[RR] = []
        for t, rdata in recs:
            if t == qt or qt == QTYPE.ANY or (t == QTYPE.CNAME and qt != QTYPE.CNAME):
                out.append(RR(owner, t, ttl=self.ttl, rdata=rdata))
        if qt == QTYPE.SOA and name == self.domain:
            out.append(self.soa_rr)
        return NOERROR, out

    def soa(self) -> RR:
        return self.soa_rr


def _reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


def build_zone(
    services: Iterable[Obj],
    endpoints: Iterable[Obj],
    pods: Iterable[Obj],
    domain: str = "cluster.local",
    ttl: int = DEFAULT_TTL,
    search_namespace: str = "default",
    namespaces: Iterable[str] = (),
) -> Zone:
    """Build the zone from service *views* (``spec.clusterIP`` filled; ``"None"`` =
    headless), Endpoints objects and pods (``status.podIP``). Each of ``namespaces`` (the live
    Namespaces) exists as ``<ns>.svc.<z>`` (NOERROR, no records), with or without a Service."""
    zone = Zone(domain, ttl, search_namespace)
    zone.add(f"dns-version.{zone.domain}", QTYPE.TXT, TXT(DNS_SCHEMA_VERSION))
    for ns in namespaces:
        zone._exists(f"{ns}.svc.{zone.domain}".lower())
    eps_by_key: dict[tuple[str, str], Obj] = {}
    for ep in endpoints:
        m = ep.get("metadata") or {}
        eps_by_key[(m.get("namespace") or "default", str(m.get("name")))] = ep
    for svc in services:
        _add_service(zone, svc, eps_by_key)
    for pod in pods:
        _add_pod(zone, pod)
    return zone


def _add_service(zone: Zone, svc: Obj, eps_by_key: dict[tuple[str, str], Obj]) -> None:
    m = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    ns, name = m.get("namespace") or "default", m.get("name")
    if not name:
        return
    z = zone.domain
    fqdn = f"{name}.{ns}.svc.{z}".lower()
    zone._exists(f"{ns}.svc.{z}")
    if (spec.get("type") or "ClusterIP") == "ExternalName":
        target = spec.get("externalName")
        if target:
            zone.add(fqdn, QTYPE.CNAME, CNAME(target.rstrip(".") + "."))
        return
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        _add_cluster_ip(zone, fqdn, spec, cluster_ip)
    else:
        # headless: ready endpoint addresses (Endpoints.subsets[].addresses)
        _add_headless(zone, fqdn, eps_by_key.get((ns, name)))


def _add_cluster_ip(zone: Zone, fqdn: str, spec: Obj, cluster_ip: str) -> None:
    zone._exists(fqdn)
    for ip in spec.get("clusterIPs") or [cluster_ip]:
        rd = _addr_rdata(ip)
        if rd:
            zone.add(fqdn, *rd)
            zone.add(_reverse_name(ip), QTYPE.PTR, PTR(fqdn + "."))
    for p in spec.get("ports") or []:
        if p.get("name"):
            proto = (p.get("protocol") or "TCP").lower()
            zone.add(f"_{p['name']}._{proto}.{fqdn}", QTYPE.SRV, SRV(0, 100, int(p["port"]), fqdn + "."))


def _add_headless(zone: Zone, fqdn: str, ep: Obj | None) -> None:
    """One A record per ready address, under the service name and the address's host name;
    SRV per named port. A headless service with no ready endpoint does not exist (NXDOMAIN)."""
    srv_targets: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for subset in (ep or {}).get("subsets") or []:
        for addr in subset.get("addresses") or []:
            ip = addr.get("ip")
            rd = _addr_rdata(ip) if ip else None
            if not rd:
                continue
            hfqdn = f"{(addr.get('hostname') or dashed(ip)).lower()}.{fqdn}"
            zone.add(fqdn, *rd)
            zone.add(hfqdn, *rd)
            zone.add(_reverse_name(ip), QTYPE.PTR, PTR(hfqdn + "."))
            for port in subset.get("ports") or []:
                if port.get("name"):
                    key = (port["name"], (port.get("protocol") or "TCP").lower())
                    srv_targets.setdefault(key, []).append((int(port["port"]), hfqdn))
    for (pname, proto), targets in srv_targets.items():
        weight = max(1, 100 // len(targets))
        for port_number, target in targets:
            zone.add(f"_{pname}._{proto}.{fqdn}", QTYPE.SRV, SRV(0, weight, port_number, target + "."))


def _add_pod(zone: Zone, pod: Obj) -> None:
    m = pod.get("metadata") or {}
    ns = m.get("namespace") or "default"
    status = pod.get("status") or {}
    ips = [i.get("ip") for i in status.get("podIPs") or []] or [status.get("podIP")]
    for ip in ips:
        rd = _addr_rdata(ip) if ip else None
        if rd:
            zone.add(f"{dashed(ip)}.{ns}.pod.{zone.domain}", *rd)


# --------------------------------------------------------------------------- server


def _pack(record: Any) -> bytes:
    data: bytes = record.pack()
    return data


def respond(zone: Zone | None, data: bytes, max_size: int | None = 512) -> bytes | None:
    """The wire reply to one wire query (None when it cannot even be parsed).

    ``max_size``: UDP payload limit (512, or the client's EDNS size); a larger reply is
    sent truncated (TC bit, no records) so the client retries over TCP. None for TCP."""
    try:
        request = DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError):
        if len(data) >= 12:  # echo the ID with FORMERR
            ident = int.from_bytes(data[:2], "big")
            return struct.pack("!HHHHHH", ident, 0x8000 | FORMERR, 0, 0, 0, 0)
        return None
    reply = request.reply(ra=0, aa=1)
    if request.header.opcode != 0 or not request.questions:
        reply.header.rcode = RCODE.NOTIMP if request.header.opcode != 0 else FORMERR
        return _pack(reply)
    if zone is None:
        reply.header.aa = 0
        reply.header.rcode = SERVFAIL
        return _pack(reply)
    q = request.questions[0]
    try:
        rcode, rrs = zone.answer(str(q.qname), q.qtype)
    except Exception:  # noqa: BLE001 -- a bad question must not stop the server
        rcode, rrs = SERVFAIL, []
    reply.header.rcode = rcode
    if rcode == REFUSED:
        reply.header.aa = 0
    for rr in rrs:
        reply.add_answer(rr)
    if rcode in (NOERROR, NXDOMAIN) and not rrs:
        reply.add_auth(zone.soa())
    if max_size is not None:
        for rr in request.ar:
            if rr.rtype == QTYPE.OPT:
                max_size = max(512, min(int(rr.rclass), 4096))
        packed = _pack(reply)
        if len(packed) > max_size:
            return _pack(reply.truncate())
        return packed
    return _pack(reply)


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: "DNSServer"):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = respond(self.server._zone(), data, 512)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


class _TCP(asyncio.Protocol):
    """RFC 1035 4.2.2 / RFC 7766: 2-byte length-prefixed messages, several per connection."""

    def __init__(self, server: "DNSServer"):
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._tcp_conns.add(transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 2:
            n = int.from_bytes(self.buf[:2], "big")
            if len(self.buf) < 2 + n:
                if len(self.buf) > 70000:
                    self.transport.close()  # type: ignore[union-attr]
                return
            msg, self.buf = self.buf[2 : 2 + n], self.buf[2 + n :]
            out = respond(self.server._zone(), msg, None)
            if out is None:
                self.transport.close()  # type: ignore[union-attr]
                return
            self.transport.write(len(out).to_bytes(2, "big") + out)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._tcp_conns.discard(self.transport)


class DNSServer:
    """Cluster DNS on UDP and TCP ``host:port`` (port 0: one free port for both)."""

    def __init__(self, zone_getter: Callable[[], Zone] | None = None):
        self._getter = zone_getter
        self._fixed: Zone | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._tcp_conns: set[asyncio.BaseTransport] = set()
        self._address: tuple[str, int] = ("", 0)

    @classmethod
    async def start(cls, host: str, port: int, zone_getter: Callable[[], Zone] | None = None) -> "DNSServer":
        self = cls(zone_getter)
        loop = asyncio.get_running_loop()
        last_error: OSError | None = None
        for _attempt in range(20 if port == 0 else 1):
            udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), local_addr=(host, port))
            actual = udp.get_extra_info("sockname")[1]
            try:
                tcp = await loop.create_server(lambda: _TCP(self), host, actual, reuse_address=True)
            except OSError as e:  # TCP port taken (port 0 picked a UDP-only free port)
                udp.close()
                last_error = e
                continue
            self._udp, self._tcp, self._address = udp, tcp, (host, actual)
            return self
        assert last_error is not None
        raise last_error

    def set_zone(self, zone: Zone) -> None:
        """Serve this zone (instead of asking zone_getter)."""
        self._fixed = zone

    def _zone(self) -> Zone | None:
        if self._fixed is not None:
            return self._fixed
        return self._getter() if self._getter is not None else None

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for t in list(self._tcp_conns):
            t.close()
        self._tcp_conns.clear()
