"""runtime/net/nftables.py renders the Services' nftables table; runtime/net/kernelproxy.py loads it.

The rendered text is checked for the structure that matters (every listen address reaches its
Service's chain through a map, a chain per endpoint, ``numgen random mod N``, the reject maps) and,
where this runs as root with nft installed, by the real nft in check mode (``nft -c``: nothing
changes in the kernel). KernelProxy's own logic (skip an unchanged table, refuse bad data before any
nft call, carry affinity clients over, which conntrack entries it deletes) runs against a recorded
fake of its subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.net import kernelproxy
from runtime.net import nftables as nft
from runtime.net.kernelproxy import KernelProxy, port_taken
from runtime.net.nftables import Flow, FlowFilter, ServiceRule

CAN_CHECK = os.geteuid() == 0 and shutil.which("nft") is not None
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")


def nft_check(text: str) -> None:
    """The real nft accepts ``text`` (check mode: the kernel validates it and keeps nothing)."""
    proc = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"nft -c refused the table:\n{proc.stderr}\n{text}"


needs_nft = pytest.mark.skipif(not CAN_CHECK, reason="nft -c needs root and the nft binary (Debian nftables)")


def table(rules: list[ServiceRule], owners: dict[Any, str] | None = None) -> tuple[str, dict[Any, str]]:
    nft.validate(rules)
    won, refused = nft.claim(rules, owners or {})
    return nft.render("gitship_unit", nft.effective(rules, won)), refused


def elements(text: str, name: str) -> list[str]:
    """The elements of map ``name``, one string each."""
    m = re.search(rf"\tmap {re.escape(name)} \{{\n(.*?)\n\t\}}", text, re.S)
    assert m, name
    inner = re.search(r"elements = \{(.*?)\}\s*$", m.group(1), re.S)
    return [e.strip() for e in inner.group(1).split(",")] if inner else []


def chain(text: str, name: str) -> list[str]:
    m = re.search(rf"\tchain {re.escape(name)} \{{\n(.*?)\n\t\}}", text, re.S)
    assert m, f"no chain {name}"
    return [line.strip() for line in m.group(1).splitlines()]


WEB = ServiceRule(
    "default/web:http",
    "TCP",
    (("10.96.0.5", 80), ("0.0.0.0", 30080)),
    (("10.244.0.3", 8080), ("10.244.0.2", 8080), ("10.244.0.4", 8080)),
    cluster_ip="10.96.0.5",
)
STICKY = ServiceRule(
    "default/sticky:80",
    "TCP",
    (("10.96.0.6", 80),),
    (("10.244.0.2", 8080), ("10.244.0.3", 8080)),
    "ClientIP",
    60,
    "10.96.0.6",
)
EMPTY = ServiceRule("default/empty:80", "TCP", (("10.96.0.7", 80), ("0.0.0.0", 30081)), (), cluster_ip="10.96.0.7")
DNS = ServiceRule("kube-system/dns:dns", "UDP", (("10.96.0.10", 53),), (("10.244.0.9", 53),), cluster_ip="10.96.0.10")
SCTP = ServiceRule("default/sctp:x", "SCTP", (("10.96.0.11", 99),), (("10.244.0.9", 99),), cluster_ip="10.96.0.11")
ALL = [WEB, STICKY, EMPTY, DNS, SCTP]


# ---- the rendered table ------------------------------------------------------------------------


def test_a_transaction_that_replaces_the_table_whole() -> None:
    text, _ = table(ALL)
    assert text.startswith("add table ip gitship_unit\ndelete table ip gitship_unit\ntable ip gitship_unit {\n")
    assert text.count("table ip gitship_unit {") == 1


def test_cluster_ip_and_node_port_reach_the_service_chain_through_the_maps() -> None:
    text, _ = table(ALL)
    svc = nft.service_chain(WEB)
    assert f"10.96.0.5 . tcp . 80 : goto {svc}" in elements(text, "service-ips")
    assert f"tcp . 30080 : goto {svc}" in elements(text, "service-nodeports")
    # the maps are consulted from the dispatch chain both hooks jump to; 0.0.0.0 = any local address
    assert chain(text, "services") == [
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "fib daddr type local meta l4proto . th dport vmap @service-nodeports",
    ]
    assert "jump services" in chain(text, "nat-prerouting") and "jump services" in chain(text, "nat-output")


def test_a_chain_per_endpoint_and_numgen_over_all_of_them() -> None:
    text, _ = table([WEB])
    eps = [nft.endpoint_chain(WEB, b) for b in sorted(WEB.backends)]
    body = chain(text, nft.service_chain(WEB))
    assert body[-1] == "numgen random mod 3 vmap { " + ", ".join(f"{i} : goto {e}" for i, e in enumerate(eps)) + " }"
    for (ip, port), ep in zip(sorted(WEB.backends), eps):
        rules = chain(text, ep)
        assert rules[-1] == f"meta l4proto tcp dnat to {ip}:{port}"
        assert f"meta mark set meta mark | {nft.MASQUERADE_MARK:#010x}" in rules


def test_one_endpoint_needs_no_numgen_and_udp_dnats_udp() -> None:
    text, _ = table([DNS])
    ep = nft.endpoint_chain(DNS, DNS.backends[0])
    assert chain(text, nft.service_chain(DNS))[-1] == f"goto {ep}"
    assert chain(text, ep)[-1] == "meta l4proto udp dnat to 10.244.0.9:53"
    assert elements(text, "service-ips") == [f"10.96.0.10 . udp . 53 : goto {nft.service_chain(DNS)}"]


def test_client_ip_affinity_checks_each_endpoints_set_before_balancing() -> None:
    text, _ = table([STICKY])
    body = chain(text, nft.service_chain(STICKY))
    for i, b in enumerate(STICKY.backends):
        aff, ep = nft.affinity_set(STICKY, b), nft.endpoint_chain(STICKY, b)
        assert body[1 + i] == f"ip saddr @{aff} goto {ep}"
        assert f"update @{aff} {{ ip saddr }}" in chain(text, ep)
        assert re.search(
            rf"\tset {re.escape(aff)} \{{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 60s\n", text
        )
    assert body[-1].startswith("numgen random mod 2 ")


def test_no_endpoints_reject_before_dnat_and_render_no_service_chain() -> None:
    text, _ = table([EMPTY])
    assert elements(text, "no-endpoint-services") == ["10.96.0.7 . tcp . 80 : goto reject-chain"]
    assert elements(text, "no-endpoint-nodeports") == ["tcp . 30081 : goto reject-chain"]
    assert elements(text, "service-ips") == [] and "svc-" not in text
    assert chain(text, "reject-chain") == ["meta l4proto tcp reject with tcp reset", "reject"]
    for hook in ("input", "forward", "output"):
        assert chain(text, f"filter-{hook}") == [
            f"type filter hook {hook} priority -110; policy accept;",
            "ct state new jump endpoints-check",
        ]


def test_masquerade_only_marked_packets_not_out_of_lo_nor_from_the_hosts_own_addresses() -> None:
    text, _ = table([WEB])
    mark = f"{nft.MASQUERADE_MARK:#010x}"
    assert chain(text, "masquerading") == [
        f"meta mark & {mark} == 0 return",
        f"meta mark set meta mark ^ {mark}",
        'oifname "lo" return',
        "ip saddr != 127.0.0.0/8 fib saddr type local return",
        "masquerade fully-random",
    ]


def test_sctp_renders_nothing_and_its_addresses_are_refused() -> None:
    text, refused = table(ALL)
    assert "10.96.0.11" not in text and "sctp" not in text
    assert refused == {("10.96.0.11", 99, "SCTP"): nft.SCTP_REFUSED}


def test_the_same_table_in_any_order_renders_the_same_text() -> None:
    shuffled = [
        ServiceRule(WEB.key, "TCP", WEB.listen, tuple(reversed(WEB.backends)), cluster_ip=WEB.cluster_ip),
        DNS,
        STICKY,
    ]
    assert table([WEB, STICKY, DNS])[0] == table(shuffled)[0]


def test_empty_table_still_has_its_hooks() -> None:
    text, _ = table([])
    assert "chain nat-prerouting" in text and elements(text, "service-ips") == []
    assert nft.count_rules(text) == 17  # the hooks, the dispatch, the rejects, the masquerade


@needs_nft
@pytest.mark.parametrize(
    "rules", [[], [WEB], [STICKY], [EMPTY], [DNS], ALL], ids=["empty", "web", "sticky", "empty-svc", "udp", "all"]
)
def test_nft_accepts_typical_tables(rules: list[ServiceRule]) -> None:
    nft_check(table(rules)[0])


@needs_nft
def test_nft_accepts_carried_affinity_clients() -> None:
    won, _ = nft.claim([STICKY], {})
    eff = nft.effective([STICKY], won)
    name = nft.affinity_set(STICKY, STICKY.backends[0])
    text = nft.render("gitship_unit", eff, {name: [("10.1.1.1", 30), ("10.1.1.2", 9999), ("10.1.1.3", 0)]})
    assert "10.1.1.1 expires 30s, 10.1.1.2 expires 60s" in text and "10.1.1.3" not in text  # capped, expired dropped
    nft_check(text)


# ---- validation --------------------------------------------------------------------------------


def _bad(**kw: Any) -> ServiceRule:
    base: dict[str, Any] = {
        "key": "ns/bad:80",
        "protocol": "TCP",
        "listen": (("10.96.0.1", 80),),
        "backends": (("10.244.0.1", 8080),),
    }
    return ServiceRule(**{**base, **kw})


@pytest.mark.parametrize(
    "rule",
    [
        _bad(backends=(("fe80::1", 80),)),
        _bad(backends=(("10.244.0.1", 0),)),
        _bad(backends=(("10.244.0.1", 65536),)),
        _bad(backends=(("10.244.0.1", True),)),
        _bad(backends=(("0.0.0.0", 80),)),
        _bad(backends=(("web", 80),)),
        _bad(listen=(("10.96.0.1", 0),)),
        _bad(listen=(("localhost", 80),)),
        _bad(protocol="tcp"),
        _bad(protocol="HTTP"),
        _bad(affinity="Random"),
        _bad(affinity="ClientIP", affinity_timeout=0),
        _bad(affinity="ClientIP", affinity_timeout=86401),
        _bad(cluster_ip="10.96.0.300"),
    ],
)
def test_bad_data_is_a_value_error_naming_the_key(rule: ServiceRule) -> None:
    with pytest.raises(ValueError, match="ns/bad:80"):
        nft.validate([rule])


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        nft.validate([WEB, WEB])


def test_table_names_are_plain_identifiers() -> None:
    assert nft.validate_table("gitship_1a2b3c4d") == "gitship_1a2b3c4d"
    for bad in ("", "1abc", "a b", "a;b", "x" * 64):
        with pytest.raises(ValueError):
            nft.validate_table(bad)


# ---- who gets a listen address -----------------------------------------------------------------


def test_two_services_on_one_port_first_or_previous_owner_wins() -> None:
    a = ServiceRule(
        "ns/a:80", "TCP", (("10.96.0.1", 80), ("0.0.0.0", 80)), (("10.244.0.1", 80),), cluster_ip="10.96.0.1"
    )
    b = ServiceRule(
        "ns/b:80", "TCP", (("10.96.0.2", 80), ("0.0.0.0", 80)), (("10.244.0.2", 80),), cluster_ip="10.96.0.2"
    )
    won, refused = nft.claim([a, b], {})
    assert won[("0.0.0.0", 80, "TCP")] == "ns/a:80"
    assert refused == {("0.0.0.0", 80, "TCP"): "in use by service ns/a:80"}
    won, refused = nft.claim([a, b], {("0.0.0.0", 80, "TCP"): "ns/b:80"})
    assert won[("0.0.0.0", 80, "TCP")] == "ns/b:80" and refused[("0.0.0.0", 80, "TCP")] == "in use by service ns/b:80"
    eff = {r.key: r for r in nft.effective([a, b], won)}
    assert eff["ns/a:80"].listen == (("10.96.0.1", 80),) and ("0.0.0.0", 80) in eff["ns/b:80"].listen
    # the same port on UDP is another address
    u = ServiceRule("ns/u:80", "UDP", (("10.96.0.3", 80), ("0.0.0.0", 80)), (), cluster_ip="10.96.0.3")
    assert nft.claim([a, u], {})[1] == {}


def test_host_ports_are_all_listen_addresses_but_the_cluster_ip() -> None:
    won, _ = nft.claim([WEB, DNS], {})
    assert nft.host_ports([WEB, DNS], won) == [("0.0.0.0", 30080, "TCP")]


def test_effective_keeps_backends_once_and_drops_a_rule_left_without_addresses() -> None:
    twice = ServiceRule("ns/t:80", "TCP", (("10.96.0.1", 80), ("10.96.0.1", 80)), (("10.244.0.1", 80),) * 2)
    won, _ = nft.claim([twice], {})
    (r,) = nft.effective([twice], won)
    assert r.listen == (("10.96.0.1", 80),) and r.backends == (("10.244.0.1", 80),)
    assert nft.effective([twice], {}) == []


# ---- stale UDP flows ---------------------------------------------------------------------------

CONNTRACK_L = "".join(
    line + "\n"
    for line in (
        "udp      17 28 src=10.244.0.20 dst=10.96.0.10 sport=40000 dport=53"
        " src=10.244.0.9 dst=10.244.0.20 sport=53 dport=40000 mark=0 use=1",
        "udp      17 28 src=10.244.0.21 dst=10.96.0.10 sport=40001 dport=53"
        " src=10.244.0.8 dst=10.244.0.21 sport=53 dport=40001 [ASSURED] mark=0 use=1",
        "udp      17 12 src=10.244.0.22 dst=10.96.0.10 sport=40002 dport=53 [UNREPLIED]"
        " src=10.96.0.10 dst=10.244.0.22 sport=53 dport=40002 mark=0 use=1",
        "udp      17 20 src=127.0.0.1 dst=127.0.0.1 sport=50000 dport=30053"
        " src=10.244.0.8 dst=10.244.0.1 sport=53 dport=50000 mark=0 use=1",
        "udp      17 20 src=10.0.0.5 dst=8.8.8.8 sport=50001 dport=30053"
        " src=8.8.8.8 dst=10.0.0.5 sport=30053 dport=50001 mark=0 use=1",
        "tcp      6 431999 ESTABLISHED src=10.244.0.20 dst=10.96.0.10 sport=40000 dport=53"
        " src=10.244.0.8 dst=10.244.0.20 sport=53 dport=40000",
    )
)


def test_parse_conntrack_reads_both_directions() -> None:
    flows = nft.parse_conntrack(CONNTRACK_L + "conntrack v1.4.7 (conntrack-tools): 6 flow entries have been shown.\n")
    assert flows[0] == Flow("10.244.0.20", "10.96.0.10", 40000, 53, "10.244.0.9", 53)
    assert flows[2] == Flow("10.244.0.22", "10.96.0.10", 40002, 53, "10.96.0.10", 53)
    assert len(flows) == 6


def test_stale_udp_flows_are_those_not_answered_by_a_current_endpoint() -> None:
    old_dns = ServiceRule(
        "kube-system/dns:dns",
        "UDP",
        (("10.96.0.10", 53), ("0.0.0.0", 30053)),
        (("10.244.0.8", 53), ("10.244.0.9", 53)),
    )
    new_dns = ServiceRule(old_dns.key, "UDP", old_dns.listen, (("10.244.0.9", 53),))
    flows = [f for f in nft.parse_conntrack(CONNTRACK_L)]
    stale = nft.stale_udp([f for f in flows if True], [old_dns], [new_dns])
    assert stale == [
        FlowFilter(None, 30053, "10.244.0.8", 53),  # the nodePort flow DNATed to the endpoint that left
        FlowFilter("10.96.0.10", 53, "10.244.0.8", 53),  # the ClusterIP flow to it
        FlowFilter("10.96.0.10", 53, "10.96.0.10", 53),  # a flow made before the rules: it went nowhere
    ]
    # the flow on the remaining endpoint and the host's own flow to 8.8.8.8:30053 are left alone
    assert nft.stale_udp(flows, [old_dns], [old_dns]) == [FlowFilter("10.96.0.10", 53, "10.96.0.10", 53)]
    # the Service went away: every flow to its addresses goes
    gone = nft.stale_udp(flows, [old_dns], [])
    assert {(f.dst, f.reply_src) for f in gone} == {
        ("10.96.0.10", "10.244.0.9"),
        ("10.96.0.10", "10.244.0.8"),
        ("10.96.0.10", "10.96.0.10"),
        (None, "10.244.0.8"),
    }


def test_udp_shape_ignores_tcp() -> None:
    assert nft.udp_shape([WEB, STICKY]) == frozenset()
    assert nft.udp_shape([DNS]) == frozenset({(("10.96.0.10", 53), frozenset({("10.244.0.9", 53)}))})


# ---- any valid input renders a table nft takes --------------------------------------------------

_ip = st.ip_addresses(v=4).filter(lambda a: not a.is_unspecified).map(str)
_port = st.integers(1, 65535)
_key = st.from_regex(
    r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?/[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?:[a-z0-9-]{1,15}", fullmatch=True
)


@st.composite
def _rules(draw: st.DrawFn) -> list[ServiceRule]:
    keys = draw(st.lists(_key, max_size=6, unique=True))
    out = []
    for key in keys:
        cluster = draw(_ip)
        extra = draw(st.lists(st.tuples(st.one_of(st.just("0.0.0.0"), _ip), _port), max_size=3))
        affinity = draw(st.sampled_from(nft.AFFINITIES))
        out.append(
            ServiceRule(
                key=key,
                protocol=draw(st.sampled_from(nft.PROTOCOLS)),
                listen=((cluster, draw(_port)), *extra),
                backends=tuple(draw(st.lists(st.tuples(_ip, _port), max_size=5))),
                affinity=affinity,
                affinity_timeout=draw(st.integers(1, nft.AFFINITY_TIMEOUT_MAX)),
                cluster_ip=cluster,
            )
        )
    return out


def _names(text: str) -> list[str]:
    return re.findall(r"^\t(?:chain|set|map) (\S+) \{", text, re.M)


@settings(max_examples=60 if CAN_CHECK else 200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rules())
def test_any_valid_input_renders_a_table_nft_accepts(rules: list[ServiceRule]) -> None:
    text, _ = table(rules)
    names = _names(text)
    assert len(names) == len(set(names))
    assert all(IDENT.fullmatch(n) and len(n) <= nft.NAME_MAX for n in names)
    # every map key once: nft refuses a set declaration with a key twice
    for m in ("service-ips", "service-nodeports", "no-endpoint-services", "no-endpoint-nodeports"):
        keys = [e.split(" : ")[0] for e in elements(text, m)]
        assert len(keys) == len(set(keys))
    if CAN_CHECK:
        nft_check(text)


# ---- KernelProxy against a recorded fake of nft and conntrack -----------------------------------


class FakeTools:
    """Stands in for kernelproxy._run: records each command, answers like nft and conntrack."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.table_json: dict[str, Any] | None = None
        self.conntrack_list = ""
        self.vanished = False

    async def __call__(self, argv: list[str], stdin: str | None = None, timeout: float = 30) -> tuple[int, str, str]:
        argv = list(argv)
        self.calls.append((argv, stdin))
        tool = os.path.basename(argv[0])
        if tool == "nft" and argv[1:3] == ["-j", "list"]:
            return (
                (0, json.dumps(self.table_json), "") if self.table_json else (1, "", "Error: No such file or directory")
            )
        if tool == "nft" and argv[1:] == ["list", "tables", "ip"]:
            return 0, "table ip nat\n" + ("" if self.vanished else "table ip gitship_fake\n"), ""
        if tool == "conntrack" and argv[1] == "-L":
            return 0, self.conntrack_list, "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.\n"
        if tool == "conntrack" and argv[1] == "-D":
            return 0, "", "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n"
        return 0, "", ""

    def loads(self) -> list[str]:
        return [stdin or "" for argv, stdin in self.calls if argv[1:] == ["-f", "-"]]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools()
    monkeypatch.setattr(kernelproxy, "_run", tools)
    monkeypatch.setattr(kernelproxy, "open_library", lambda: None)  # the nft binary's argv is recorded
    monkeypatch.setattr(kernelproxy, "port_taken", lambda host, port, proto: None)
    return tools


def make_proxy(conntrack: str | None = "/usr/sbin/conntrack") -> KernelProxy:
    p = KernelProxy("gitship_fake")
    p._nft, p._conntrack = "/usr/sbin/nft", conntrack
    return p


def test_an_unchanged_table_is_not_loaded_again(fake: FakeTools) -> None:
    proxy = make_proxy()

    async def main() -> None:
        await proxy.apply([WEB, DNS])
        await proxy.apply([DNS, WEB])
        await proxy.apply([WEB])

    asyncio.run(main())
    assert len(fake.loads()) == 2
    info = proxy.info()
    assert info["loads"] == 2 and info["unchanged"] == 1 and info["rules"] == 1 and info["endpoints"] == 3


def test_a_table_deleted_behind_its_back_is_loaded_again(fake: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernelproxy, "RECHECK", 0.0)
    proxy = make_proxy()
    asyncio.run(proxy.apply([WEB]))
    asyncio.run(proxy.apply([WEB]))
    assert len(fake.loads()) == 1  # checked: still there
    fake.vanished = True  # `nft flush ruleset`
    asyncio.run(proxy.apply([WEB]))
    assert len(fake.loads()) == 2


def test_bad_data_runs_nothing(fake: FakeTools) -> None:
    proxy = make_proxy()
    with pytest.raises(ValueError, match="ns/bad:80"):
        asyncio.run(proxy.apply([WEB, _bad(backends=(("::1", 80),))]))
    assert fake.calls == []


def test_a_refused_load_raises_and_keeps_the_previous_state(fake: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = make_proxy()
    asyncio.run(proxy.apply([WEB]))

    async def refuse(argv: list[str], stdin: str | None = None, timeout: float = 30) -> tuple[int, str, str]:
        return 1, "", "Error: Could not process rule: No such file or directory\n"

    monkeypatch.setattr(kernelproxy, "_run", refuse)
    with pytest.raises(kernelproxy.NftError, match="Could not process rule"):
        asyncio.run(proxy.apply([WEB, DNS]))
    assert proxy.info()["rules"] == 1 and proxy.info()["lastError"].startswith("Error: Could not")
    assert isinstance(kernelproxy.NftError("x"), OSError)


def test_affinity_clients_are_carried_into_the_new_table(fake: FakeTools) -> None:
    name = nft.affinity_set(STICKY, STICKY.backends[0])
    fake.table_json = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"set": {"name": name, "table": "gitship_fake", "elem": [{"elem": {"val": "10.1.2.3", "expires": 42}}]}},
            {"set": {"name": "aff-unrelated", "elem": [{"elem": {"val": "10.9.9.9", "expires": 42}}]}},
        ]
    }
    proxy = make_proxy()
    asyncio.run(proxy.apply([STICKY]))
    (loaded,) = fake.loads()
    assert "elements = { 10.1.2.3 expires 42s }" in loaded and "10.9.9.9" not in loaded
    # the skip compares the table without the carried clients: the same rules load nothing
    asyncio.run(proxy.apply([STICKY]))
    assert len(fake.loads()) == 1


def test_stale_udp_flows_are_deleted_after_an_endpoint_leaves(fake: FakeTools) -> None:
    two = ServiceRule("kube-system/dns:dns", "UDP", (("10.96.0.10", 53),), (("10.244.0.8", 53), ("10.244.0.9", 53)))
    one = ServiceRule(two.key, "UDP", two.listen, (("10.244.0.9", 53),))
    fake.conntrack_list = CONNTRACK_L
    proxy = make_proxy()
    asyncio.run(proxy.apply([two]))
    fake.calls.clear()
    flushed = proxy.info()["conntrackFlushed"]
    asyncio.run(proxy.apply([one]))
    deletes = [argv[1:] for argv, _ in fake.calls if argv[1] == "-D"]
    assert ["-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53"] + [
        "--reply-src",
        "10.244.0.8",
        "--reply-port-src",
        "53",
    ] in deletes
    assert proxy.info()["conntrackFlushed"] - flushed == len(deletes)
    # TCP changes never list conntrack
    fake.calls.clear()
    asyncio.run(proxy.apply([one, WEB]))
    assert not any(os.path.basename(argv[0]) == "conntrack" for argv, _ in fake.calls)


def test_without_conntrack_the_flush_is_skipped_and_info_says_so(fake: FakeTools) -> None:
    proxy = make_proxy(conntrack=None)
    asyncio.run(proxy.apply([DNS]))
    assert proxy.info()["conntrack"] == kernelproxy.CONNTRACK_MISSING
    assert all(os.path.basename(argv[0]) == "nft" for argv, _ in fake.calls)


def test_a_taken_host_port_is_reported_and_left_out(fake: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        kernelproxy, "port_taken", lambda h, p, proto: "address already in use (EADDRINUSE)" if p == 30080 else None
    )
    proxy = make_proxy()
    refused = asyncio.run(proxy.apply([WEB]))
    assert refused == {("0.0.0.0", 30080, "TCP"): "address already in use (EADDRINUSE)"}
    (loaded,) = fake.loads()
    assert "30080" not in loaded and "10.96.0.5 . tcp . 80" in loaded
    assert proxy.info()["refused"] == {"0.0.0.0:30080/TCP": "address already in use (EADDRINUSE)"}


def test_close_deletes_the_table(fake: FakeTools) -> None:
    proxy = make_proxy()
    asyncio.run(proxy.apply([WEB]))
    asyncio.run(proxy.close())
    assert fake.calls[-1][0][1:] == ["delete", "table", "ip", "gitship_fake"]
    asyncio.run(proxy.apply([WEB]))  # after close the next apply loads the table again
    assert len(fake.loads()) == 2


def test_port_taken_by_a_listening_socket() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert "EADDRINUSE" in (port_taken("127.0.0.1", port, "TCP") or "")
        assert port_taken("127.0.0.1", port, "UDP") is None
    assert port_taken("127.0.0.1", port, "TCP") is None


def test_unavailable_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernelproxy.os, "geteuid", lambda: 1000)
    assert KernelProxy.unavailable() == "not running as root"
    monkeypatch.setattr(kernelproxy.os, "geteuid", lambda: 0)
    monkeypatch.setattr(kernelproxy.shutil, "which", lambda name: None)
    assert KernelProxy.unavailable() == "nft not found (install nftables)"


@needs_nft
def test_unavailable_is_none_where_nft_takes_the_rules() -> None:
    assert KernelProxy.unavailable() is None
