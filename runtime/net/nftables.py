"""The kernel data plane for Services, as plain text: one nftables table rendered from plain data. Pure.

runtime/net/kernelproxy.py loads what ``render`` returns with ``nft -f -``; this module does no I/O.
The model is kube-proxy's nftables mode (kubernetes/kubernetes pkg/proxy/nftables/proxier.go), cut
down to one machine:

* **One table of our own** (``ip <name>``), replaced whole in one transaction: the text starts with
  ``add table`` + ``delete table`` and then declares the table afresh, so ``nft -f`` swaps the old
  table for the new one atomically (no packet sees a half-made table) and a table left behind by a
  killed daemon is taken over without duplicates.
* **Dispatch** (chain ``services``, jumped to from ``nat-prerouting`` for traffic from pods,
  containers and other hosts, and from ``nat-output`` for the host's own processes, both at dstnat
  priority): the verdict map ``service-ips``, keyed ``ip daddr . meta l4proto . th dport``, holds
  each ClusterIP and each listen address given by host; ``service-nodeports``, keyed
  ``meta l4proto . th dport`` behind ``fib daddr type local``, holds the ports listened on
  ``0.0.0.0`` (a nodePort or LoadBalancer port on every address of the machine, 127.0.0.1 included).
* **Per Service port** a chain ``svc-<hash>-<key>``: with ClientIP affinity, first one rule per
  endpoint ``ip saddr @aff-... goto ep-...`` (a dynamic set per endpoint whose elements, the client
  addresses, time out after ``affinity_timeout`` seconds), then ``numgen random mod N vmap`` over the
  endpoints. **Per endpoint** a chain ``ep-<hash>-<ip>-<port>``: it refreshes the client's affinity
  element, marks the packet for masquerade, and DNATs to ``ip:port``.
* **No ready endpoints**: the listen addresses go to ``no-endpoint-services`` /
  ``no-endpoint-nodeports`` instead, looked up by ``endpoints-check`` from filter chains on the
  input, forward and output hooks (priority -110: before DNAT) for new connections, which jump to
  ``reject-chain``: TCP gets a reset (connection refused at once), UDP an ICMP port unreachable.
* **Masquerade** (chain ``masquerading`` at srcnat): every packet an endpoint chain DNATs carries
  ``MASQUERADE_MARK`` (bit 24, 0x01000000: clear of Docker, which sets no packet marks, of
  kube-proxy's 0x4000/0x8000, Cilium's 0x0f00 and Tailscale's 0xff0000). Postrouting clears the bit
  and masquerades the packet unless it leaves by ``lo`` (loopback backends need no rewrite: the reply
  comes back the same way) or it is the host's own traffic from a non-loopback address (``fib saddr
  type local``: it keeps its source, the backend can answer it). So a pod calling a ClusterIP whose
  endpoint sits on the same bridge gets its reply through the host (else the endpoint would answer
  straight from its own address and the client would drop it), traffic from other hosts and
  containers is answered through this machine, and the host's 127.0.0.0/8 traffic to a pod on a
  bridge (a nodePort on 127.0.0.1) gets the bridge's address as its source (the host must set
  ``route_localnet`` on that bridge for the 127.x packet to be routed there first).

Replacing the table empties the affinity sets; kernelproxy.py reads their elements just before and
hands them to ``render`` (``affinity_elements``), so a client keeps its endpoint across changes.
SCTP ports get no rules (the reconcile pass warns about them); their listen addresses are refused.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MASQUERADE_MARK = 0x01000000
PROTOCOLS = ("TCP", "UDP", "SCTP")
CARRIED = ("TCP", "UDP")  # what the kernel data plane renders
AFFINITIES = ("None", "ClientIP")
AFFINITY_TIMEOUT_MAX = 86400  # docs/kubernetes.md §5.5: 1-86400 seconds
NAME_MAX = 64  # our own bound on chain and set names (the kernel allows 256)
FILTER_PRIORITY = -110  # before DNAT (-100): "no endpoints" is judged on the Service's address
ANY = "0.0.0.0"
SCTP_REFUSED = "SCTP is not supported by the nftables data plane"

Addr = tuple[str, int]
Listen = tuple[str, int, str]
"""A listen address with its protocol: (host, port, protocol), e.g. ("0.0.0.0", 30080, "TCP")."""

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_./-]")


@dataclass(frozen=True)
class ServiceRule:
    """One Service port in the data plane.

    ``listen`` holds every address it is reached at: the ClusterIP, ``0.0.0.0`` (or the node's
    address) with the nodePort, the LoadBalancer port. ``cluster_ip`` names the ClusterIP among them:
    that address is never checked against the host's bound ports (it is no address of the host).
    ``backends`` are the ready endpoints (an empty tuple: connections are refused)."""

    key: str
    protocol: str
    listen: tuple[Addr, ...]
    backends: tuple[Addr, ...]
    affinity: str = "None"
    affinity_timeout: int = 10800
    cluster_ip: str = ""


@dataclass(frozen=True)
class Flow:
    """One UDP conntrack entry, as ``conntrack -L`` shows it: the original direction's addresses
    and the reply direction's source (the endpoint, when the flow was DNATed)."""

    src: str
    dst: str
    sport: int
    dport: int
    reply_src: str
    reply_sport: int


@dataclass(frozen=True, order=True)
class FlowFilter:
    """Which conntrack entries to delete: original destination ``dst`` (None: any address of the
    machine, for a port listened on 0.0.0.0) and port, and the reply's source (a stale endpoint)."""

    dst: str | None
    dport: int
    reply_src: str
    reply_sport: int


# ---- validation and the choice of listen addresses -----------------------------------------------


def _ipv4(value: object, what: str, key: str, *, any_ok: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key}: {what} {value!r} is not an IPv4 address")
    try:
        ip = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{key}: {what} {value!r} is not an IPv4 address") from None
    if ip.is_unspecified and not any_ok:
        raise ValueError(f"{key}: {what} {value!r} is not a usable address")
    return str(ip)


def _port(value: object, what: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{key}: {what} port {value!r} is out of range (1-65535)")
    return value


def _check_rule(r: ServiceRule) -> None:
    key = r.key
    if r.protocol not in PROTOCOLS:
        raise ValueError(f"{key}: unsupported protocol {r.protocol!r} (expected one of {', '.join(PROTOCOLS)})")
    if r.affinity not in AFFINITIES:
        raise ValueError(f"{key}: unsupported sessionAffinity {r.affinity!r}")
    if r.affinity == "ClientIP" and not (
        isinstance(r.affinity_timeout, int) and 1 <= r.affinity_timeout <= AFFINITY_TIMEOUT_MAX
    ):
        raise ValueError(f"{key}: ClientIP affinity timeout {r.affinity_timeout!r} is out of range (1-86400)")
    if r.cluster_ip:
        _ipv4(r.cluster_ip, "clusterIP", key, any_ok=False)
    for host, port in r.listen:
        _ipv4(host, "listen address", key, any_ok=True)
        _port(port, "listen", key)
    for host, port in r.backends:
        _ipv4(host, "backend", key, any_ok=False)
        _port(port, "backend", key)


def validate(rules: Sequence[ServiceRule]) -> None:
    """Raise ``ValueError`` naming the key of the first bad rule: an unknown protocol or affinity, an
    address that is not IPv4, a port out of 1-65535, a key given twice."""
    seen: set[str] = set()
    for r in rules:
        if not isinstance(r.key, str) or not r.key:
            raise ValueError(f"a rule has no key: {r!r}")
        if r.key in seen:
            raise ValueError(f"{r.key}: the key is given twice")
        seen.add(r.key)
        _check_rule(r)


def validate_table(name: str) -> str:
    """A table name nft takes unquoted (letters, digits, ``_.-``; at most 63 characters)."""
    if not _TABLE_NAME.fullmatch(name):
        raise ValueError(f"table name {name!r}: letters, digits and _.- only, starting with a letter or _")
    return name


def listens(rule: ServiceRule) -> list[Listen]:
    """The rule's listen addresses with its protocol, each once, in order."""
    out: list[Listen] = []
    for host, port in rule.listen:
        item = (str(ipaddress.IPv4Address(host)), port, rule.protocol)
        if item not in out:
            out.append(item)
    return out


def claim(rules: Sequence[ServiceRule], owners: Mapping[Listen, str]) -> tuple[dict[Listen, str], dict[Listen, str]]:
    """Who gets each listen address: ``(owners, refused)``.

    A listen address claimed by several rules goes to the one that had it before (``owners``, the
    previous answer), else to the first; the others are refused with ``in use by service <key>``, as
    the Python proxy answers (the answer is keyed by address: the winner still serves it). SCTP
    listen addresses are refused (nothing is rendered for SCTP) and owned by nobody."""
    claims: dict[Listen, list[str]] = {}
    refused: dict[Listen, str] = {}
    for r in rules:
        for item in listens(r):
            if r.protocol not in CARRIED:
                refused[item] = SCTP_REFUSED
                continue
            claims.setdefault(item, []).append(r.key)
    won: dict[Listen, str] = {}
    for item, keys in claims.items():
        prev = owners.get(item)
        winner = prev if prev in keys else keys[0]
        won[item] = winner
        if len(keys) > 1:
            refused[item] = f"in use by service {winner}"
    return won, refused


def host_ports(rules: Sequence[ServiceRule], owners: Mapping[Listen, str]) -> list[Listen]:
    """The owned listen addresses that are ports of this host (every one but a ClusterIP), which
    kernelproxy.py checks with a test bind."""
    by_key = {r.key: r for r in rules}
    return [item for item, key in owners.items() if item[0] != by_key[key].cluster_ip]


def effective(rules: Sequence[ServiceRule], owners: Mapping[Listen, str]) -> list[ServiceRule]:
    """The rules as rendered: TCP and UDP only, each keeping the listen addresses ``owners`` gives
    it (a rule left with none is dropped), backends each once and sorted, sorted by key; so the
    same table renders the same text whatever order it came in."""
    out: list[ServiceRule] = []
    for r in rules:
        if r.protocol not in CARRIED:
            continue
        keep = tuple((h, p) for h, p, proto in listens(r) if owners.get((h, p, proto)) == r.key)
        if not keep:
            continue
        backends = tuple(sorted({(str(ipaddress.IPv4Address(h)), p) for h, p in r.backends}, key=_addr_order))
        out.append(ServiceRule(r.key, r.protocol, keep, backends, r.affinity, r.affinity_timeout, r.cluster_ip))
    return sorted(out, key=lambda r: r.key)


def _addr_order(a: Addr) -> tuple[int, int]:
    return int(ipaddress.IPv4Address(a[0])), a[1]


# ---- names -------------------------------------------------------------------------------------


def _hash(*parts: object) -> str:
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()
    return base64.b32encode(digest).decode()[:10].lower()


def service_chain(rule: ServiceRule) -> str:
    """``svc-<hash of key and protocol>-<key, made safe>``, at most NAME_MAX characters."""
    slug = _UNSAFE.sub("_", rule.key.replace(":", "."))
    return f"svc-{_hash(rule.key, rule.protocol)}-{slug}"[:NAME_MAX]


def endpoint_chain(rule: ServiceRule, backend: Addr) -> str:
    return f"ep-{_hash(rule.key, rule.protocol)}-{backend[0]}-{backend[1]}"


def affinity_set(rule: ServiceRule, backend: Addr) -> str:
    return f"aff-{_hash(rule.key, rule.protocol)}-{backend[0]}-{backend[1]}"


def affinity_sets(rules: Iterable[ServiceRule]) -> list[str]:
    """The names of the affinity sets the rules render (one per endpoint of a ClientIP rule)."""
    return [affinity_set(r, b) for r in rules if r.affinity == "ClientIP" for b in r.backends]


# ---- rendering ---------------------------------------------------------------------------------

_HEAD = """\
	chain filter-input {{
		type filter hook input priority {fp}; policy accept;
		ct state new jump endpoints-check
	}}

	chain filter-forward {{
		type filter hook forward priority {fp}; policy accept;
		ct state new jump endpoints-check
	}}

	chain filter-output {{
		type filter hook output priority {fp}; policy accept;
		ct state new jump endpoints-check
	}}

	chain endpoints-check {{
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
		fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
	}}

	chain reject-chain {{
		meta l4proto tcp reject with tcp reset
		reject
	}}

	chain nat-prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}}

	chain nat-output {{
		type nat hook output priority -100; policy accept;
		jump services
	}}

	chain nat-postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}}

	chain services {{
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local meta l4proto . th dport vmap @service-nodeports
	}}

	chain masquerading {{
		meta mark & {mark} == 0 return
		meta mark set meta mark ^ {mark}
		oifname "lo" return
		ip saddr != 127.0.0.0/8 fib saddr type local return
		masquerade fully-random
	}}
"""


def _map(name: str, keytype: str, elements: list[str]) -> str:
    lines = [f"\tmap {name} {{", f"\t\ttype {keytype} : verdict"]
    if elements:
        lines.append("\t\telements = {\n\t\t\t" + ",\n\t\t\t".join(elements) + "\n\t\t}")
    lines.append("\t}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    return '"' + re.sub(r'["\\\n\r\t]', "_", text)[:120] + '"'


def _affinity_set(name: str, timeout: int, carried: Sequence[tuple[str, int]]) -> str:
    lines = [f"\tset {name} {{", "\t\ttype ipv4_addr", "\t\tflags dynamic,timeout", f"\t\ttimeout {timeout}s"]
    kept = sorted({(ip, min(expires, timeout)) for ip, expires in carried if expires > 0})
    if kept:
        lines.append("\t\telements = { " + ", ".join(f"{ip} expires {s}s" for ip, s in kept) + " }")
    lines.append("\t}")
    return "\n".join(lines) + "\n"


def _service_chains(rule: ServiceRule) -> list[str]:
    """The Service port's chain and its endpoints' chains (a rule with backends only)."""
    proto = rule.protocol.lower()
    eps = [endpoint_chain(rule, b) for b in rule.backends]
    body: list[str] = [f"comment {_comment(rule.key)}"]
    if rule.affinity == "ClientIP":
        body += [f"ip saddr @{affinity_set(rule, b)} goto {ep}" for b, ep in zip(rule.backends, eps)]
    if len(eps) == 1:
        body.append(f"goto {eps[0]}")
    else:
        body.append(
            f"numgen random mod {len(eps)} vmap {{ " + ", ".join(f"{i} : goto {ep}" for i, ep in enumerate(eps)) + " }"
        )
    chains = [_chain(service_chain(rule), body)]
    for b, ep in zip(rule.backends, eps):
        steps = [f"comment {_comment(f'{rule.key} -> {b[0]}:{b[1]}')}"]
        if rule.affinity == "ClientIP":
            steps.append(f"update @{affinity_set(rule, b)} {{ ip saddr }}")
        steps.append(f"meta mark set meta mark | {MASQUERADE_MARK:#010x}")
        steps.append(f"meta l4proto {proto} dnat to {b[0]}:{b[1]}")
        chains.append(_chain(ep, steps))
    return chains


def _chain(name: str, lines: list[str]) -> str:
    return f"\tchain {name} {{\n" + "".join(f"\t\t{line}\n" for line in lines) + "\t}\n"


def render(
    table: str, rules: Sequence[ServiceRule], affinity_elements: Mapping[str, Sequence[tuple[str, int]]] | None = None
) -> str:
    """The whole transaction for ``nft -f -``: the table ``ip <table>`` replaced by one holding
    ``rules`` (as ``effective`` returns them: each listen address in one rule only).

    ``affinity_elements`` maps an affinity set's name to the (client address, seconds left) it held,
    to carry the clients over to the new table."""
    validate_table(table)
    carried = affinity_elements or {}
    ips: list[str] = []
    nodeports: list[str] = []
    none_ips: list[str] = []
    none_nodeports: list[str] = []
    sets: list[str] = []
    chains: list[str] = []
    for r in rules:
        proto = r.protocol.lower()
        target = f"goto {service_chain(r)}" if r.backends else "goto reject-chain"
        for host, port in r.listen:
            if host == ANY:
                (nodeports if r.backends else none_nodeports).append(f"{proto} . {port} : {target}")
            else:
                (ips if r.backends else none_ips).append(f"{host} . {proto} . {port} : {target}")
        if not r.backends:
            continue
        if r.affinity == "ClientIP":
            sets += [
                _affinity_set(affinity_set(r, b), r.affinity_timeout, carried.get(affinity_set(r, b), ()))
                for b in r.backends
            ]
        chains += _service_chains(r)
    head = (
        f"add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n"
        f"\tcomment {_comment('gitship Services (runtime/net/kernelproxy.py): replaced whole on every change')}\n\n"
    )
    body = [
        _map("service-ips", "ipv4_addr . inet_proto . inet_service", ips),
        _map("service-nodeports", "inet_proto . inet_service", nodeports),
        _map("no-endpoint-services", "ipv4_addr . inet_proto . inet_service", none_ips),
        _map("no-endpoint-nodeports", "inet_proto . inet_service", none_nodeports),
        *sets,
        _HEAD.format(fp=FILTER_PRIORITY, mark=f"{MASQUERADE_MARK:#010x}"),
        *chains,
    ]
    return head + "\n".join(p.rstrip("\n") + "\n" for p in body) + "}\n"


def count_rules(text: str) -> int:
    """How many rules a rendered table holds (lines inside chains that are neither a chain's
    ``type`` line nor its comment)."""
    n = 0
    depth_chain = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("chain "):
            depth_chain = True
        elif s == "}":
            depth_chain = False
        elif depth_chain and s and not s.startswith(("type ", "comment ")):
            n += 1
    return n


# ---- stale UDP conntrack entries ---------------------------------------------------------------


def stale_udp(flows: Iterable[Flow], old: Sequence[ServiceRule], new: Sequence[ServiceRule]) -> list[FlowFilter]:
    """The conntrack entries to delete after ``old`` was replaced by ``new`` (both as ``effective``
    returns them), as kube-proxy's CleanStaleEntries (kubernetes/kubernetes pkg/proxy/conntrack/
    cleanup.go) judges: a UDP flow to a Service address whose reply does not come from one of its
    endpoints now is stale, so the client's next datagram is balanced afresh instead of going to an
    endpoint that left (or, made before the rules, to nowhere). Flows to a listen address that went
    away count too. For a port on 0.0.0.0 only DNATed flows count (reply source not the original
    destination): the host's own flows to that port elsewhere are left alone. TCP is never touched:
    an established connection finishes on its endpoint."""
    by_ip: dict[Addr, set[Addr]] = {}
    by_port: dict[int, set[Addr]] = {}
    for r in old:  # a listen address that went away: none of its flows has an endpoint now
        for host, port in r.listen if r.protocol == "UDP" else ():
            if host == ANY:
                by_port[port] = set()
            else:
                by_ip[(host, port)] = set()
    for r in new:
        for host, port in r.listen if r.protocol == "UDP" else ():
            if host == ANY:
                by_port[port] = set(r.backends)
            else:
                by_ip[(host, port)] = set(r.backends)
    out: set[FlowFilter] = set()
    for f in flows:
        reply = (f.reply_src, f.reply_sport)
        eps = by_ip.get((f.dst, f.dport))
        if eps is not None and reply not in eps:
            out.add(FlowFilter(f.dst, f.dport, f.reply_src, f.reply_sport))
            continue
        eps = by_port.get(f.dport)
        if eps is not None and f.reply_src != f.dst and reply not in eps:
            out.add(FlowFilter(None, f.dport, f.reply_src, f.reply_sport))
    return sorted(out, key=lambda x: (x.dst or "", x.dport, x.reply_src, x.reply_sport))


def udp_shape(rules: Iterable[ServiceRule]) -> frozenset[tuple[Addr, frozenset[Addr]]]:
    """What of the rules matters to UDP conntrack: each UDP listen address with its endpoints."""
    return frozenset((addr, frozenset(r.backends)) for r in rules if r.protocol == "UDP" for addr in r.listen)


_KV = re.compile(r"(src|dst|sport|dport)=(\S+)")


def parse_conntrack(text: str) -> list[Flow]:
    """The flows of ``conntrack -L -p udp`` output (lines without both directions are skipped)."""
    out: list[Flow] = []
    for line in text.splitlines():
        pairs = _KV.findall(line)
        if len(pairs) < 8:
            continue
        v = [value for _k, value in pairs[:8]]
        if [k for k, _v in pairs[:8]] != ["src", "dst", "sport", "dport"] * 2:
            continue
        try:
            out.append(Flow(v[0], v[1], int(v[2]), int(v[3]), v[4], int(v[6])))
        except ValueError:
            continue
    return out
