#!/usr/bin/env python3
"""Service proxy benchmark: direct vs through gitship's ServiceProxy.

Usage::

    python3 bench/proxy_bench.py [--seconds 3] [--json]

What it does, all on loopback:

* a tiny keep-alive HTTP/1.1 backend (uvloop Protocol, fixed 2-byte response) runs in
  its own process on ``127.244.250.1`` (a pod-like address);
* ``runtime.net.proxy.ServiceProxy`` runs in another process (as in gitship, where the
  proxy shares the daemon's loop but not the load generator's core), listening on a
  ClusterIP-like ``127.96.250.1`` and forwarding to the backend;
* this process drives load with plain blocking sockets, for ``--seconds`` each:
  (a) one keep-alive connection, sequential requests;
  (b) a new connection per request (``Connection: close``; the server closes first so no
      client TIME_WAIT piles up);
  each measured direct and through the proxy in the same run: requests/s, p50 and p99
  latency, and the proxy/direct ratio of requests/s.

Goals: keep-alive ratio >= 0.7, new-connection ratio >= 0.5.

``run(seconds) -> list[dict]`` returns rows ``{figure, value, goal, met}`` for a bench
runner (``goal``/``met`` are None for informative rows). This is a documented command,
not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BACKEND_HOST = "127.244.250.1"
PROXY_HOST = "127.96.250.1"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
REQ_KEEPALIVE = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
GOALS = {"keep-alive": 0.7, "new-connection": 0.5}
DEFAULT_CPUS = (0, 1, 2)  # driver, backend, proxy -- each its own core when there are 3+


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
        os.sched_setaffinity(0, {cpu % os.cpu_count()})


def _spawn(*args: str, cpu: int | None = None) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        preexec_fn=(lambda: _pin(cpu)) if cpu is not None else None,
    )
    line = p.stdout.readline()
    if not line:
        p.kill()
        raise RuntimeError(f"bench child {args} did not start")
    return p, json.loads(line)["port"]


# --------------------------------------------------------------------------- load


def _recv_response(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-response")
        got += len(chunk)


def _keepalive(addr: tuple[str, int], seconds: float) -> list[int]:
    lat: list[int] = []
    n = len(RESPONSE)
    clock = time.perf_counter_ns
    with socket.create_connection(addr) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):  # warm up
            s.sendall(REQ_KEEPALIVE)
            _recv_response(s, n)
        end = clock() + int(seconds * 1e9)
        while True:
            t0 = clock()
            if t0 >= end:
                break
            s.sendall(REQ_KEEPALIVE)
            _recv_response(s, n)
            lat.append(clock() - t0)
    return lat


def _new_connections(addr: tuple[str, int], seconds: float) -> list[int]:
    lat: list[int] = []
    clock = time.perf_counter_ns

    def one() -> None:
        s = socket.create_connection(addr)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

    for _ in range(50):
        one()
    end = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        if t0 >= end:
            break
        one()
        lat.append(clock() - t0)
    return lat


def _summary(lat: list[int], seconds: float) -> dict[str, float]:
    lat = sorted(lat)
    n = len(lat)
    return {
        "rps": n / seconds,
        "p50_us": lat[n // 2] / 1000 if n else float("nan"),
        "p99_us": lat[min(n - 1, int(n * 0.99))] / 1000 if n else float("nan"),
    }


def run(seconds: float = 3.0, cpus: tuple[int, int, int] | None = DEFAULT_CPUS) -> list[dict]:
    """Run both scenarios direct and through the proxy; return result rows.

    ``cpus`` = (driver, backend, proxy) CPU numbers to pin the processes to (modulo the
    CPU count), or None to let the scheduler place them."""
    driver_cpu, backend_cpu, proxy_cpu = cpus if cpus else (None, None, None)
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    backend, bport = _spawn("--serve-backend", BACKEND_HOST, cpu=backend_cpu)
    proxy = None
    try:
        _pin(driver_cpu)
        proxy, pport = _spawn("--serve-proxy", PROXY_HOST, BACKEND_HOST, str(bport), cpu=proxy_cpu)
        direct = (BACKEND_HOST, bport)
        via = (PROXY_HOST, pport)
        rows: list[dict] = []
        for name, fn in (("keep-alive", _keepalive), ("new-connection", _new_connections)):
            d = _summary(fn(direct, seconds), seconds)
            p = _summary(fn(via, seconds), seconds)
            for label, res in (("direct", d), ("proxy", p)):
                rows.append(
                    {"figure": f"{name} {label} requests/s", "value": round(res["rps"]), "goal": None, "met": None}
                )
                rows.append(
                    {
                        "figure": f"{name} {label} p50 latency us",
                        "value": round(res["p50_us"], 1),
                        "goal": None,
                        "met": None,
                    }
                )
                rows.append(
                    {
                        "figure": f"{name} {label} p99 latency us",
                        "value": round(res["p99_us"], 1),
                        "goal": None,
                        "met": None,
                    }
                )
            ratio = p["rps"] / d["rps"] if d["rps"] else 0.0
            rows.append(
                {
                    "figure": f"{name} proxy/direct throughput ratio",
                    "value": round(ratio, 3),
                    "goal": f">= {GOALS[name]}",
                    "met": ratio >= GOALS[name],
                }
            )
        return rows
    finally:
        for p in (proxy, backend):
            if p is not None:
                p.kill()
                p.wait()
        if saved is not None:
            os.sched_setaffinity(0, saved)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument(
        "--cpus", default="0,1,2", help="driver,backend,proxy CPUs to pin to (modulo the CPU count), or 'none'"
    )
    ap.add_argument("--serve-backend", metavar="HOST", help=argparse.SUPPRESS)
    ap.add_argument("--serve-proxy", nargs=3, metavar=("HOST", "BHOST", "BPORT"), help=argparse.SUPPRESS)
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
    rows = run(args.seconds, cpus)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"proxy bench: {os.cpu_count()} CPUs, {args.seconds:g} s per measurement, Python {sys.version.split()[0]}")
    width = max(len(r["figure"]) for r in rows)
    for r in rows:
        extra = "" if r["goal"] is None else f"   goal {r['goal']}: {'met' if r['met'] else 'NOT met'}"
        print(f"  {r['figure']:<{width}}  {r['value']:>10}{extra}")
    return 0 if all(r["met"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
