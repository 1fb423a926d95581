#!/usr/bin/env python3
"""Service hop benchmark: direct to the backend vs through a ClusterIP on the nftables data plane
vs through gitship's Python ServiceProxy.

Usage::

    python3 bench/proxy_bench.py [--seconds 3] [--block 0] [--json]

As root with ``nft`` (the nftables data plane can run), in two network namespaces of the bench's
own, as a sandboxed pod and its node:

* a tiny keep-alive HTTP/1.1 backend (uvloop Protocol, fixed 2-byte response) runs in a "pod"
  namespace on ``10.254.0.2`` (``eth0`` of a veth pair whose other end is in the "node");
* in the "node" namespace: ``runtime.net.kernelproxy.KernelProxy`` loads a table of its own with
  one Service (ClusterIP ``10.254.128.2:80`` -> the backend, DNAT), the Service range is local to
  the node (``ip route add local 10.254.128.0/24 ... table local``, as the daemon routes it);
  ``runtime.net.proxy.ServiceProxy`` runs in another process (as in gitship, where the proxy shares
  the daemon's loop but not the load generator's core) on ``10.254.128.1`` forwarding to the same
  backend; the load generator runs there too. The table is in force for all three paths (conntrack
  runs on the direct path too, as on any node with Service rules).
* Each path's connections leave from an address of the node's own (direct ``10.254.0.5``, through
  the ClusterIP ``10.254.0.3``, to the proxy ``10.254.0.1``, which is also where the proxy's own
  connections to the backend come from): paths that shared a source would share its client ports
  and the backend's TIME_WAIT sockets (more reuse, slower connects, for both), and a DNATed
  connection's reply tuple (backend -> client port) would clash with a later direct connection
  from the same client port while conntrack holds the first in TIME_WAIT (conntrack drops that SYN).

These addresses exist only inside the bench's namespaces; nothing leaves them. Then, as root or
not, the loopback layout of today's host mode: backend and proxy on loopback (``127.244.250.1``,
``127.96.250.1``) in the host's namespace, direct vs proxy (the figures the proxy's goals were
set on; its rows start with "loopback ").

Load is driven with plain blocking sockets by one sequential client:
  (a) keep-alive: one connection per path, requests one at a time;
  (b) a new connection per request (``Connection: close``; the server closes first so no
      client TIME_WAIT piles up);
the paths take turns request by request (``--block S``: S seconds of requests each), in an order
rotated every turn, so a busy machine slows every path alike, for
``--seconds`` of requests per path: requests/s (1 / the mean latency of the fastest 99%: on a
shared machine the slowest 1% is mostly waiting for a CPU), p50, p99 and max latency, and each
path's requests/s over direct's.

Goals: nftables/direct >= 0.95 on both; proxy/direct on loopback keep-alive >= 0.7, new-connection
>= 0.5 (the proxy to a pod in a namespace is informative).

``run(seconds) -> list[dict]`` returns rows ``{figure, value, goal, met}`` for a bench
runner (``goal``/``met`` are None for informative rows). This is a documented command,
not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BACKEND_HOST = "127.244.250.1"  # loopback layout (without root)
PROXY_HOST = "127.96.250.1"
# namespace layout: the node's end of the veth has an address per path, the source of that path's
# connections (the proxy's own connections to the backend leave from NODE_IP)
NODE_IP = "10.254.0.1"
DIRECT_SRC = "10.254.0.5"
NAT_SRC = "10.254.0.3"
POD_IP = "10.254.0.2"
SVC_NET = "10.254.128.0/24"
PROXY_IP = "10.254.128.1"
CLUSTER_IP = "10.254.128.2"
TABLE = "gitship_bench"  # in the node namespace only

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
REQ_KEEPALIVE = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
# (layout, path, scenario) -> the least ratio to direct; paths without one are informative
GOALS = {
    ("namespaces", "nftables", "keep-alive"): 0.95,
    ("namespaces", "nftables", "new-connection"): 0.95,
    ("loopback", "proxy", "keep-alive"): 0.7,
    ("loopback", "proxy", "new-connection"): 0.5,
}
BLOCK = 0.0  # seconds of one path's requests in a row (0: the paths alternate request by request)
DEFAULT_CPUS = (0, 1, 2)  # driver, backend, proxy -- each its own core when there are 3+
Target = tuple[tuple[str, int], str | None]  # (address, source address to bind or None)


# --------------------------------------------------------------------------- child processes


def _use_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass


class _HTTP(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        buf = self.buf + data
        while True:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                break
            req, buf = buf[:i], buf[i + 4 :]
            self.t.write(RESPONSE)
            if b"\r\nconnection: close" in req.lower():
                self.t.close()
                return
        self.buf = buf

    def eof_received(self):
        return False


async def _serve_backend(host: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HTTP, host, 0, reuse_address=True, backlog=1024)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


async def _serve_proxy(host: str, backend_host: str, backend_port: int) -> None:
    from runtime.net.proxy import ServiceProxy

    proxy = ServiceProxy()
    await proxy.set_service("bench/svc", [(host, 0)], [(backend_host, backend_port)])
    print(json.dumps({"port": proxy.listening("bench/svc")[0][1]}), flush=True)
    await asyncio.Event().wait()


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def _spawn(*args: str, cpu: int | None = None, netns: str | None = None) -> tuple[subprocess.Popen, int]:
    """This script as a child (in network namespace ``netns``); it prints {"port": N} when it serves."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    p = subprocess.Popen(
        [*prefix, sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        preexec_fn=(lambda: _pin(cpu)) if cpu is not None else None,
    )
    line = p.stdout.readline() if p.stdout else ""
    if not line:
        p.kill()
        p.wait()
        raise RuntimeError(f"bench child {args} did not start")
    return p, json.loads(line)["port"]


# --------------------------------------------------------------------------- load


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def _connect(addr: tuple[str, int], src: str | None) -> socket.socket:
    """A connected TCP socket; from source address ``src`` if given (the port still chosen by
    connect(), as without a bind: IP_BIND_ADDRESS_NO_PORT)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if src:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src, 0))
        s.connect(addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        s.close()
        raise
    return s


def _recv_response(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-response")
        got += len(chunk)


def _one_connection(addr: tuple[str, int], src: str | None) -> None:
    """One request on a new connection (Connection: close; the server closes first)."""
    s = _connect(addr, src)
    try:
        s.sendall(REQ_CLOSE)
        got = 0
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        if got != len(RESPONSE):
            raise ConnectionError(f"short response ({got} bytes)")
    finally:
        s.close()


def _turns(n: int, k: int) -> list[int]:
    """The order of the paths in turn ``k``: rotated every turn, so each path follows every other
    equally often."""
    return [(k + i) % n for i in range(n)]


def _alternate(n: int, seconds: float, block: float, one: Callable[[int], None]) -> list[list[int]]:
    """Requests (``one(i)`` makes one on path i) in turns: in each turn every path gets a block of
    ``block`` seconds of requests, one at a time, until the paths have had ``seconds`` in all.
    Each path's request latencies in ns."""
    clock = time.perf_counter_ns
    lat: list[list[int]] = [[] for _ in range(n)]
    end = clock() + int(seconds * 1e9)
    k = 0
    while clock() < end:
        for i in _turns(n, k):
            out = lat[i]
            stop = clock() + int(block * 1e9)
            while True:
                t0 = clock()
                one(i)
                t1 = clock()
                out.append(t1 - t0)
                if t1 >= stop:
                    break
        k += 1
    return lat


def _keepalive(targets: list[Target], seconds: float, block: float) -> list[list[int]]:
    """One keep-alive connection per path, sequential requests (``_alternate``)."""
    n = len(RESPONSE)
    socks = [_connect(addr, src) for addr, src in targets]

    def one(i: int) -> None:
        socks[i].sendall(REQ_KEEPALIVE)
        _recv_response(socks[i], n)

    try:
        for i in range(len(socks)):
            for _ in range(200):  # warm up
                one(i)
        return _alternate(len(targets), seconds, block, one)
    finally:
        for s in socks:
            s.close()


def _new_connections(targets: list[Target], seconds: float, block: float) -> list[list[int]]:
    """A new connection per request (``_alternate``)."""

    def one(i: int) -> None:
        _one_connection(*targets[i])

    for i in range(len(targets)):
        for _ in range(50):  # warm up
            one(i)
    return _alternate(len(targets), seconds, block, one)


def _summary(lat: list[int]) -> dict[str, float]:
    """requests/s of one sequential client: 1 / the mean latency of the fastest 99% of requests (the
    slowest 1%, on a shared machine mostly the client or server waiting for a CPU, would make the
    mean a lottery; p99 and the slowest request are reported, so a stall of the path shows);
    p50, p99 and max latency in us."""
    lat = sorted(lat)
    n = len(lat)
    kept = lat[: max(1, n - n // 100)]
    return {
        "rps": len(kept) / (sum(kept) / 1e9) if n else 0.0,
        "p50_us": lat[n // 2] / 1000 if n else float("nan"),
        "p99_us": lat[min(n - 1, int(n * 0.99))] / 1000 if n else float("nan"),
        "max_us": lat[-1] / 1000 if n else float("nan"),
    }


def _info(figure: str, value: Any) -> dict:
    return {"figure": figure, "value": value, "goal": None, "met": None}


def measure(targets: dict[str, Target], seconds: float, layout: str, block: float = BLOCK) -> list[dict]:
    """Both scenarios on every path of ``targets`` ("direct" first): the paths take turns request
    by request (a busy machine slows every path alike), ``seconds`` of requests per path. Rows of
    requests/s, latencies, and each path's requests/s over direct's."""
    labels = list(targets)
    rows: list[dict] = []
    scenarios: list[tuple[str, Callable[[list[Target], float, float], list[list[int]]]]] = [
        ("keep-alive", _keepalive),
        ("new-connection", _new_connections),
    ]
    for name, fn in scenarios:
        lat = fn([targets[label] for label in labels], seconds * len(labels), block)
        res = {label: _summary(got) for label, got in zip(labels, lat)}
        for label in labels:
            rows.append(_info(f"{name} {label} requests/s", round(res[label]["rps"])))
            rows.append(_info(f"{name} {label} p50 latency us", round(res[label]["p50_us"], 1)))
            rows.append(_info(f"{name} {label} p99 latency us", round(res[label]["p99_us"], 1)))
            rows.append(_info(f"{name} {label} max latency us", round(res[label]["max_us"], 1)))
        direct = res["direct"]["rps"]
        for label in labels[1:]:
            ratio = round(res[label]["rps"] / direct if direct else 0.0, 3)  # judged as shown
            goal = GOALS.get((layout, label, name))
            rows.append(
                {
                    "figure": f"{name} {label}/direct throughput ratio",
                    "value": ratio,
                    "goal": None if goal is None else f">= {goal}",
                    "met": None if goal is None else ratio >= goal,
                }
            )
    return rows


# --------------------------------------------------------------------------- layouts


def kernel_unavailable() -> str | None:
    """Why the nftables path cannot be measured here (None: it can)."""
    if os.geteuid() != 0:
        return "not running as root"
    if shutil.which("ip") is None:
        return "ip (iproute2) not found"
    from runtime.net.kernelproxy import KernelProxy

    return KernelProxy.unavailable()


def _kill(procs: list[subprocess.Popen | None]) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
        if p is not None:
            p.wait()


def _run_loopback(seconds: float, cpus: tuple[int, int, int] | None, block: float = BLOCK) -> list[dict]:
    """Backend and proxy on loopback in this namespace (no nftables path)."""
    driver_cpu, backend_cpu, proxy_cpu = cpus if cpus else (None, None, None)
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    backend, bport = _spawn("--serve-backend", BACKEND_HOST, cpu=backend_cpu)
    proxy = None
    try:
        _pin(driver_cpu)
        proxy, pport = _spawn("--serve-proxy", PROXY_HOST, BACKEND_HOST, str(bport), cpu=proxy_cpu)
        targets: dict[str, Target] = {"direct": ((BACKEND_HOST, bport), None), "proxy": ((PROXY_HOST, pport), None)}
        return [{**r, "figure": "loopback " + r["figure"]} for r in measure(targets, seconds, "loopback", block)]
    finally:
        _kill([proxy, backend])
        if saved is not None:
            os.sched_setaffinity(0, saved)


def _run_node(pod_ns: str, seconds: float, cpus: tuple[int, int, int] | None, block: float = BLOCK) -> list[dict]:
    """Inside the node namespace: the backend in ``pod_ns``, the proxy, the nftables table, the load."""
    from runtime.net.kernelproxy import KernelProxy
    from runtime.net.nftables import ServiceRule

    driver_cpu, backend_cpu, proxy_cpu = cpus if cpus else (None, None, None)
    backend, bport = _spawn("--serve-backend", "0.0.0.0", cpu=backend_cpu, netns=pod_ns)
    proxy = None
    kernel = KernelProxy(TABLE)
    try:
        _pin(driver_cpu)
        proxy, pport = _spawn("--serve-proxy", PROXY_IP, POD_IP, str(bport), cpu=proxy_cpu)
        rule = ServiceRule("bench/svc", "TCP", ((CLUSTER_IP, 80),), ((POD_IP, bport),), cluster_ip=CLUSTER_IP)
        refused = asyncio.run(kernel.apply([rule]))
        if refused:
            raise RuntimeError(f"the nftables data plane refused {refused}")
        targets: dict[str, Target] = {
            "direct": ((POD_IP, bport), DIRECT_SRC),
            "nftables": ((CLUSTER_IP, 80), NAT_SRC),
            "proxy": ((PROXY_IP, pport), NODE_IP),
        }
        return measure(targets, seconds, "namespaces", block)
    finally:
        _kill([proxy, backend])
        asyncio.run(kernel.close())


def _sh(*argv: str) -> None:
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")


def _make_namespaces(node: str, pod: str) -> None:
    _sh("ip", "netns", "add", node)
    _sh("ip", "netns", "add", pod)
    batch_node = [
        "link set lo up",
        f"link add veth0 type veth peer name eth0 netns {pod}",
        f"addr add {NODE_IP}/24 dev veth0",
        f"addr add {NAT_SRC}/24 dev veth0",
        f"addr add {DIRECT_SRC}/24 dev veth0",
        "link set veth0 up",
        f"route add local {SVC_NET} dev veth0 src {NODE_IP} table local",
    ]
    for cmd in batch_node:
        _sh("ip", "-n", node, *cmd.split())
    for cmd in ("link set lo up", f"addr add {POD_IP}/24 dev eth0", "link set eth0 up"):
        _sh("ip", "-n", pod, *cmd.split())


def _remove_namespaces(*names: str) -> None:
    """Kill whatever still runs in the namespaces, then delete them (the veth and the table go along)."""
    for ns in names:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        for pid in out.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _run_namespaces(seconds: float, cpus: tuple[int, int, int] | None, block: float = BLOCK) -> list[dict]:
    """Make the node and pod namespaces, run the measurement in the node (a child process: a network
    namespace belongs to a process), remove everything again, also on failure."""
    tag = uuid.uuid4().hex[:8]
    node, pod = f"gsbench-{tag}-node", f"gsbench-{tag}-pod"
    inner: subprocess.Popen | None = None
    try:
        _make_namespaces(node, pod)
        cpu_arg = ",".join(map(str, cpus)) if cpus else "none"
        argv = ["--inner-node", pod, "--seconds", str(seconds), "--cpus", cpu_arg, "--block", str(block)]
        inner = subprocess.Popen(
            ["ip", "netns", "exec", node, sys.executable, str(Path(__file__).resolve()), *argv],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
            start_new_session=True,
        )
        out, _ = inner.communicate(timeout=60 + 8 * seconds)
        if inner.returncode != 0:
            raise RuntimeError(f"the measurement in namespace {node} exited {inner.returncode}")
        rows = [line[5:] for line in out.splitlines() if line.startswith("ROWS ")]
        if not rows:
            raise RuntimeError(f"the measurement in namespace {node} printed no rows")
        return json.loads(rows[-1])
    finally:
        if inner is not None and inner.poll() is None:
            os.killpg(inner.pid, signal.SIGKILL)
            inner.wait()
        _remove_namespaces(pod, node)


def run(seconds: float = 3.0, cpus: tuple[int, int, int] | None = DEFAULT_CPUS, block: float = BLOCK) -> list[dict]:
    """Measure direct, nftables and proxy in the namespace layout (where nftables can run), then
    direct and proxy in the loopback layout (today's host mode); return result rows (the loopback
    layout's figures start with "loopback ").

    ``cpus`` = (driver, backend, proxy) CPU numbers to pin the processes to (modulo the
    CPU count), or None to let the scheduler place them."""
    why_not = kernel_unavailable()
    rows = _run_namespaces(seconds, cpus, block) if why_not is None else [_info("nftables skipped", why_not)]
    return rows + _run_loopback(seconds, cpus, block)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per path and scenario")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument(
        "--block",
        type=float,
        default=BLOCK,
        help="seconds of one path's requests in a row (0: alternate every request)",
    )
    ap.add_argument(
        "--cpus", default="0,1,2", help="driver,backend,proxy CPUs to pin to (modulo the CPU count), or 'none'"
    )
    ap.add_argument("--serve-backend", metavar="HOST", help=argparse.SUPPRESS)
    ap.add_argument("--serve-proxy", nargs=3, metavar=("HOST", "BHOST", "BPORT"), help=argparse.SUPPRESS)
    ap.add_argument("--inner-node", metavar="POD_NS", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_backend:
        _use_uvloop()
        asyncio.run(_serve_backend(args.serve_backend))
        return 0
    if args.serve_proxy:
        _use_uvloop()
        host, bhost, bport = args.serve_proxy
        asyncio.run(_serve_proxy(host, bhost, int(bport)))
        return 0
    cpus = None if args.cpus == "none" else tuple(int(c) for c in args.cpus.split(","))
    if args.inner_node:
        print("ROWS " + json.dumps(_run_node(args.inner_node, args.seconds, cpus, args.block)), flush=True)
        return 0
    rows = run(args.seconds, cpus, args.block)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"service hop bench: {os.cpu_count()} CPUs, {args.seconds:g} s per path, Python {sys.version.split()[0]}")
    width = max(len(r["figure"]) for r in rows)
    for r in rows:
        extra = "" if r["goal"] is None else f"   goal {r['goal']}: {'met' if r['met'] else 'NOT met'}"
        print(f"  {r['figure']:<{width}}  {r['value']:>10}{extra}")
    return 0 if all(r["met"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
