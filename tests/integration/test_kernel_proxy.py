"""runtime.net.kernelproxy.KernelProxy with real nftables rules and real traffic (root only).

Each test builds its own "node": a network namespace with a bridge and a loopback of its own, pods in
further namespaces on veths to that bridge (each runs a small TCP + UDP server answering
``<name> <peer address>``), and the KernelProxy's table inside the node namespace. Test code drives
the proxy from a thread that entered the node namespace (network namespaces are per thread), and opens
client sockets in the node (a host process) or in a pod namespace. Nothing leaves the namespaces the
test made; everything is torn down in a finalizer, also when the test fails. One test runs in the
host's own namespace with loopback backends, as gitship's loopback mode places its pods.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.net.kernelproxy import KernelProxy, delete_table, port_taken
from runtime.net.nftables import ServiceRule
from tests.conftest import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces and nftables)"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed (Debian package nftables)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="ip not installed (iproute2)"),
]

CLONE_NEWNET = 0x40000000
PORT = 8080
SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 8080))
tcp.listen(128)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 8080))

def serve(conn, peer):
    with conn:
        for _line in conn.makefile("rb"):
            conn.sendall(f"{name} {peer[0]}\n".encode())

def udp_loop():
    while True:
        _data, peer = udp.recvfrom(2048)
        udp.sendto(f"{name} {peer[0]}".encode(), peer)

threading.Thread(target=udp_loop, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
"""


def _sh(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def _enter(ns: str) -> None:
    """Move the calling thread into network namespace ``ns`` (only this thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Netns:
    """A network namespace of the test, with a worker thread inside it."""

    def __init__(self, name: str):
        self.name = name
        _sh("ip", "netns", "add", name)
        self.pool = concurrent.futures.ThreadPoolExecutor(1, initializer=_enter, initargs=(name,))
        try:
            _sh("ip", "-n", name, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def socket(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket of this namespace (it stays there whichever thread uses it)."""
        return self.pool.submit(socket.socket, socket.AF_INET, kind).result()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on an event loop inside this namespace (its subprocesses start here too)."""
        return self.pool.submit(asyncio.run, coro).result(timeout)

    def sh(self, *argv: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True).stdout

    def remove(self) -> None:
        self.pool.shutdown(wait=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Node:
    """A node namespace with bridge ``br0`` (``<net>.1``), pods on it and a ClusterIP range routed to it."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 1000:03d}{random.randrange(16**4):04x}"
        a, b = random.randint(64, 127), random.randint(0, 255)
        self.net = f"10.{a}.{b}"  # pods: .10, .11, ...; the bridge: .1
        self.svc_net = f"10.{a + 64}.{b}"  # ClusterIPs
        self.tag = tag
        self.table = f"gsT{tag}"
        self.pods: dict[str, Netns] = {}
        self.servers: list[subprocess.Popen[str]] = []
        self.node = Netns(f"gsT{tag}n")
        try:
            self._wire()
        except BaseException:
            self.teardown()
            raise

    def _wire(self) -> None:
        n = self.node.name
        _sh("ip", "-n", n, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", n, "addr", "add", f"{self.bridge}/24", "dev", "br0")
        _sh("ip", "-n", n, "link", "set", "br0", "up")
        _sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.br0.route_localnet=1")
        # the ClusterIP range goes to a device of its own, not back out of the bridge the pods are on
        # (a packet routed out of the interface it came in by earns its sender an ICMP redirect,
        # and the redirect's rate limit then swallows the ICMP port unreachable of a reject)
        # (no dummy device in every kernel: a veth pair with nothing behind it does as well)
        _sh("ip", "-n", n, "link", "add", "svc0", "type", "veth", "peer", "name", "svc1")
        _sh("ip", "-n", n, "link", "set", "svc1", "up")
        _sh("ip", "-n", n, "link", "set", "svc0", "up")
        _sh("ip", "-n", n, "route", "add", f"{self.svc_net}.0/24", "dev", "svc0")

    @property
    def bridge(self) -> str:
        return f"{self.net}.1"

    def ip(self, pod: str) -> str:
        return f"{self.net}.{10 + list(self.pods).index(pod)}"

    def add_pod(self, name: str, serve: bool = True) -> str:
        ns = Netns(f"gsT{self.tag}{name}")
        self.pods[name] = ns
        ip = self.ip(name)
        veth = f"v{len(self.pods)}"
        _sh("ip", "-n", self.node.name, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
        _sh("ip", "-n", self.node.name, "link", "set", veth, "master", "br0", "up")
        # a pod calling its own Service: with br_netfilter the DNATed frame is bridged back out of
        # the port it came in by, which a bridge does only in hairpin mode (kubelet sets it too)
        _sh("ip", "-n", self.node.name, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        _sh("ip", "-n", ns.name, "addr", "add", f"{ip}/24", "dev", "eth0")
        _sh("ip", "-n", ns.name, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns.name, "route", "add", "default", "via", self.bridge)
        if serve:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns.name, sys.executable, "-c", SERVER, name],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self.servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return ip

    def cluster_ip(self, n: int) -> str:
        return f"{self.svc_net}.{n}"

    def teardown(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for ns in [*self.pods.values(), self.node]:
            ns.remove()

    # ---- the table, seen from inside the node
    def table_json(self) -> list[dict[str, Any]] | None:
        out = self.node.sh("nft", "-j", "list", "table", "ip", self.table)
        return json.loads(out)["nftables"] if out.strip() else None

    def count(self, kind: str) -> int:
        return sum(1 for obj in self.table_json() or [] if kind in obj)


@pytest.fixture
def node() -> Iterator[Node]:
    n = Node()
    try:
        yield n
    finally:
        n.teardown()


# ---- clients ------------------------------------------------------------------------------------


def ask(ns: Netns, addr: tuple[str, int], timeout: float = 5) -> tuple[str, str]:
    """One TCP request from namespace ``ns``: (server name, the peer address the server saw)."""
    with ns.socket() as s:
        s.settimeout(timeout)
        s.connect(addr)
        s.sendall(b"hi\n")
        name, peer = s.makefile().readline().split()
        return name, peer


def names_seen(ns: Netns, addr: tuple[str, int], want: set[str], timeout: float = 30) -> set[str]:
    """Ask until every name in ``want`` answered (the balance is random)."""
    seen: set[str] = set()
    wait_for(lambda: seen.add(ask(ns, addr)[0]) or want <= seen, timeout=timeout, interval=0, what=f"{want}")
    return seen


def udp_ask(s: socket.socket) -> str:
    s.send(b"hi")
    return s.recv(2048).decode().split()[0]


def rule(key: str, listen: list[tuple[str, int]], backends: list[str], **kw: Any) -> ServiceRule:
    return ServiceRule(
        key=key,
        protocol=kw.pop("protocol", "TCP"),
        listen=tuple(listen),
        backends=tuple((ip, PORT) for ip in backends),
        cluster_ip=listen[0][0],
        **kw,
    )


# ---- tests ---------------------------------------------------------------------------------------


def test_cluster_ip_balances_over_three_backends(node: Node) -> None:
    ips = [node.add_pod(p) for p in ("a", "b", "c")]
    proxy = KernelProxy(node.table)
    vip = (node.cluster_ip(10), 80)
    assert node.node.run(proxy.apply([rule("default/web:80", [vip], ips)])) == {}
    # from the host (the node's own processes: the output hook), keeping the host's source
    assert names_seen(node.node, vip, {"a", "b", "c"}) == {"a", "b", "c"}
    assert ask(node.node, vip)[1] == node.bridge
    info = proxy.info()
    assert info["dataPlane"] == "nftables" and info["table"] == node.table
    assert info["rules"] == 1 and info["endpoints"] == 3 and info["loads"] == 1


@pytest.mark.parametrize("bridge_nf", ["0", "1"])
def test_pod_reaches_pod_on_the_same_bridge_through_the_cluster_ip(node: Node, bridge_nf: str) -> None:
    """The masquerade case: without it the endpoint would answer the client straight over the
    bridge from its own address, and the client would drop the reply. Both with the bridge's
    frames passing the IP hooks (br_netfilter, as Docker sets it up) and without."""
    knob = "net.bridge.bridge-nf-call-iptables"
    if not node.node.sh("sysctl", "-n", knob).strip():
        pytest.skip(f"{knob} does not exist here (br_netfilter not loaded)")
    _sh("ip", "netns", "exec", node.node.name, "sysctl", "-qw", f"{knob}={bridge_nf}")
    backend = node.add_pod("a")
    node.add_pod("client", serve=False)
    vip = (node.cluster_ip(11), 80)
    proxy = KernelProxy(node.table)
    node.node.run(proxy.apply([rule("default/web:80", [vip], [backend])]))
    name, peer = ask(node.pods["client"], vip)
    assert (name, peer) == ("a", node.bridge)  # the reply came back through the node
    # hairpin: the endpoint calls its own Service
    assert ask(node.pods["a"], vip) == ("a", node.bridge)


def test_node_port_on_every_address(node: Node) -> None:
    backend = node.add_pod("a")
    node.add_pod("client", serve=False)
    proxy = KernelProxy(node.table)
    nodeport = random.randint(30000, 32767)
    node.node.run(proxy.apply([rule("default/np:80", [(node.cluster_ip(12), 80), ("0.0.0.0", nodeport)], [backend])]))
    # the host on 127.0.0.1: masqueraded to the bridge's address (route_localnet on br0)
    assert ask(node.node, ("127.0.0.1", nodeport)) == ("a", node.bridge)
    # the host on the bridge address: keeps its source
    assert ask(node.node, (node.bridge, nodeport)) == ("a", node.bridge)
    # a pod on the bridge address
    assert ask(node.pods["client"], (node.bridge, nodeport))[0] == "a"


def test_client_ip_affinity_pins_a_client_across_table_changes(node: Node) -> None:
    ips = [node.add_pod(p) for p in ("a", "b", "c")]
    node.add_pod("client", serve=False)
    vip = (node.cluster_ip(13), 80)
    sticky = rule("default/sticky:80", [vip], ips, affinity="ClientIP", affinity_timeout=600)
    proxy = KernelProxy(node.table)
    node.node.run(proxy.apply([sticky]))
    client = node.pods["client"]
    first = {ask(client, vip)[0] for _ in range(12)}
    assert len(first) == 1
    # another Service changes: the table is replaced, the client keeps its endpoint
    other = rule("default/other:80", [(node.cluster_ip(14), 80)], ips[:1])
    node.node.run(proxy.apply([sticky, other]))
    assert proxy.info()["loads"] == 2
    assert {ask(client, vip)[0] for _ in range(12)} == first
    # its endpoint leaves: the client moves to another one and stays there
    pinned = ips[["a", "b", "c"].index(first.pop())]
    rest = [ip for ip in ips if ip != pinned]
    node.node.run(proxy.apply([rule("default/sticky:80", [vip], rest, affinity="ClientIP", affinity_timeout=600)]))
    moved = {ask(client, vip)[0] for _ in range(12)}
    assert len(moved) == 1 and node.ip(moved.pop()) in rest


def test_no_endpoints_refuse_at_once(node: Node) -> None:
    node.add_pod("client", serve=False)
    vip = (node.cluster_ip(15), 80)
    udp_vip = (node.cluster_ip(15), 53)
    nodeport = random.randint(30000, 32767)
    proxy = KernelProxy(node.table)
    node.node.run(
        proxy.apply(
            [
                rule("default/empty:80", [vip, ("0.0.0.0", nodeport)], []),
                rule("default/empty:53", [udp_vip], [], protocol="UDP"),
            ]
        )
    )
    # TCP: a reset, from the host (output hook) and from a pod (forward hook), and on the nodePort
    for ns, addr in ((node.node, vip), (node.pods["client"], vip), (node.node, ("127.0.0.1", nodeport))):
        with pytest.raises(ConnectionRefusedError):
            ask(ns, addr, timeout=10)
    # UDP: an ICMP port unreachable, which a connected socket reports as refused
    with node.pods["client"].socket(socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.connect(udp_vip)
        with pytest.raises(ConnectionRefusedError):
            udp_ask(s)


def test_udp_round_trip_and_stale_flow_flushed(node: Node) -> None:
    ips = [node.add_pod(p) for p in ("a", "b")]
    node.add_pod("client", serve=False)
    vip = (node.cluster_ip(16), 53)
    proxy = KernelProxy(node.table)
    node.node.run(proxy.apply([rule("default/dns:53", [vip], ips, protocol="UDP")]))
    with node.pods["client"].socket(socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.connect(vip)
        first = udp_ask(s)
        assert {udp_ask(s) for _ in range(5)} == {first}  # one conntrack flow: one endpoint
        remaining = [ip for ip in ips if ip != node.ip(first)]
        # the endpoint leaves the Service (its server still runs): the same socket moves on
        node.node.run(proxy.apply([rule("default/dns:53", [vip], remaining, protocol="UDP")]))
        assert node.ip(udp_ask(s)) in remaining
    assert proxy.info()["conntrackFlushed"] >= 1 or shutil.which("conntrack") is None


def test_established_tcp_connection_survives_its_endpoint_leaving(node: Node) -> None:
    ips = [node.add_pod(p) for p in ("a", "b")]
    vip = (node.cluster_ip(17), 80)
    proxy = KernelProxy(node.table)
    node.node.run(proxy.apply([rule("default/web:80", [vip], ips)]))
    with node.node.socket() as s:
        s.settimeout(5)
        s.connect(vip)
        f = s.makefile()
        s.sendall(b"hi\n")
        first = f.readline().split()[0]
        rest = [ip for ip in ips if ip != node.ip(first)]
        node.node.run(proxy.apply([rule("default/web:80", [vip], rest)]))
        s.sendall(b"again\n")
        assert f.readline().split()[0] == first  # the connection finishes on its endpoint
        # new connections go to the remaining endpoint only
        assert {ask(node.node, vip)[0] for _ in range(6)} == {n for n in ("a", "b") if n != first}


def test_table_outlives_the_proxy_and_is_taken_over_once(node: Node) -> None:
    ips = [node.add_pod(p) for p in ("a", "b")]
    vip = (node.cluster_ip(18), 80)
    rules = [
        rule("default/web:80", [vip, ("0.0.0.0", 30999)], ips),
        rule("default/sticky:81", [(node.cluster_ip(18), 81)], ips, affinity="ClientIP", affinity_timeout=60),
    ]
    proxy = KernelProxy(node.table)
    node.node.run(proxy.apply(rules))
    counts = node.count("rule"), node.count("chain"), node.count("set"), node.count("map")
    assert counts[0] > 0
    del proxy  # a crash: no close(); the rules stay in the kernel
    assert names_seen(node.node, vip, {"a", "b"}) == {"a", "b"}
    again = KernelProxy(node.table)  # the restarted daemon
    node.node.run(again.apply(rules))
    assert (node.count("rule"), node.count("chain"), node.count("set"), node.count("map")) == counts
    assert (n := node.table_json()) is not None and sum(1 for o in n if "table" in o) == 1
    assert names_seen(node.node, vip, {"a", "b"}) == {"a", "b"}
    node.node.run(again.close())
    assert node.table_json() is None


def test_unchanged_rules_are_not_loaded_again_and_bad_data_changes_nothing(node: Node) -> None:
    ip = node.add_pod("a")
    vip = (node.cluster_ip(19), 80)
    proxy = KernelProxy(node.table)
    good = [rule("default/web:80", [vip], [ip])]
    node.node.run(proxy.apply(good))
    node.node.run(proxy.apply(list(reversed(good))))
    assert proxy.info()["loads"] == 1 and proxy.info()["unchanged"] == 1
    before = node.count("rule")
    bad = ServiceRule("default/bad:80", "TCP", (vip,), (("fe80::1", 80),))
    with pytest.raises(ValueError, match="default/bad:80"):
        node.node.run(proxy.apply([*good, bad]))
    assert node.count("rule") == before and ask(node.node, vip)[0] == "a"


def test_a_host_port_bound_elsewhere_is_reported_and_left_alone(node: Node) -> None:
    ip = node.add_pod("a")
    vip = (node.cluster_ip(20), 80)
    nodeport = random.randint(30000, 32767)
    taken = node.node.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("0.0.0.0", nodeport))
    taken.listen(8)
    proxy = KernelProxy(node.table)
    web = rule("default/web:80", [vip, ("0.0.0.0", nodeport)], [ip])
    try:
        refused = node.node.run(proxy.apply([web]))
        assert set(refused) == {("0.0.0.0", nodeport, "TCP")} and "EADDRINUSE" in refused[("0.0.0.0", nodeport, "TCP")]
        assert ask(node.node, vip)[0] == "a"  # the ClusterIP still works
        # the other program keeps its port: a connection reaches it, not the Service
        with node.node.socket() as c:
            c.settimeout(5)
            c.connect(("127.0.0.1", nodeport))
            conn, _ = taken.accept()
            conn.close()
    finally:
        taken.close()
    assert node.node.run(proxy.apply([web])) == {}
    assert ask(node.node, ("127.0.0.1", nodeport))[0] == "a"


# ---- the host's own namespace: loopback backends, as gitship's loopback mode runs pods ----------


class _Names:
    """TCP servers on loopback addresses answering their name."""

    def __init__(self, addrs: list[str]):
        self.socks: list[socket.socket] = []
        self.backends: list[tuple[str, int]] = []
        self.stop = threading.Event()
        for i, host in enumerate(addrs):
            s = socket.socket()
            s.bind((host, 0))
            s.listen(64)
            s.settimeout(0.2)
            self.socks.append(s)
            self.backends.append((host, s.getsockname()[1]))
            threading.Thread(target=self._serve, args=(s, f"b{i}"), daemon=True).start()

    def _serve(self, s: socket.socket, name: str) -> None:
        while not self.stop.is_set():
            try:
                conn, _peer = s.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(name.encode())

    def close(self) -> None:
        self.stop.set()
        for s in self.socks:
            s.close()


def _fetch(addr: tuple[str, int]) -> str:
    with socket.create_connection(addr, timeout=5) as s:
        return s.recv(100).decode()


def test_loopback_cluster_ip_to_loopback_backends_in_the_host_namespace() -> None:
    a, b = random.randint(100, 250), random.randint(0, 255)
    servers = _Names([f"127.{a}.{b}.{i}" for i in (11, 12, 13)])
    table = f"gsT{os.getpid() % 1000:03d}{random.randrange(16**4):04x}"
    vip = (f"127.{a}.{b}.1", 80)
    proxy = KernelProxy(table)
    key = "default/loop:80"
    nodeport = next(p for p in iter(lambda: random.randint(30000, 32767), 0) if port_taken("0.0.0.0", p, "TCP") is None)
    try:
        listen = (vip, ("0.0.0.0", nodeport))
        sr = ServiceRule(key, "TCP", listen, tuple(servers.backends), cluster_ip=vip[0])
        assert asyncio.run(proxy.apply([sr])) == {}
        seen: set[str] = set()
        wait_for(lambda: seen.add(_fetch(vip)) or len(seen) == 3, timeout=30, interval=0, what="all three backends")
        # a nodePort on 127.0.0.1 to a loopback backend: DNAT in the output hook, out of lo unmasqueraded
        assert _fetch(("127.0.0.1", nodeport)) in {"b0", "b1", "b2"}
    finally:
        servers.close()
        asyncio.run(proxy.close())
        delete_table(table)
