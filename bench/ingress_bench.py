"""Figure 9: the Ingress hop, and the measurement that chose its engine.

``wrk`` (8 connections, one thread) sends HTTP/1.1 GETs (keep-alive, and a new connection per request;
plain HTTP and HTTPS) to one backend directly (one pod of the tutorial's kubia app; then a small uvloop
server, which shows the hop's own cost), through HAProxy configured as gitship
configures it (reconciler/ingress/render.py: one Ingress, a host rule, TLS by SNI), and -- when a
Python with aiohttp is given (``--python-proxy PYTHON`` or /tmp/ingbench/bin/python) -- through an
aiohttp reverse proxy (the alternative engine: a Python HTTP proxy on a well-kept library). The paths
take turns (three rounds), so machine noise hits them alike. For each path: the median of the rounds'
requests/s and p99 latency.

    python3 bench/ingress_bench.py [--seconds 3]

Traffic stays on 127.0.0.1; every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "bench.test"
BODY = b"This is v1 running in pod bench\n"

BACKEND = r"""
import asyncio, ssl, sys
import uvloop
BODY = %r
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %%d\r\n\r\n" %% len(BODY)) + BODY
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, d):
        self.buf += d
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.t.write(RESP)
            if b"connection: close" in head.lower():
                self.t.close(); return
async def main():
    port, tls_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH); ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    await loop.create_server(P, "127.0.0.1", port, backlog=1024)
    await loop.create_server(P, "127.0.0.1", tls_port, ssl=ctx, backlog=1024)
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
""" % (BODY,)

AIOHTTP_PROXY = r"""
import asyncio, ssl, sys
import aiohttp
from aiohttp import web
import uvloop
port, tls_port, cert, key, upstream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}
async def handle(request):
    s = request.app["session"]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    headers["X-Forwarded-For"] = request.remote or ""
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    async with s.request(request.method, upstream + request.rel_url.path_qs, headers=headers,
                         data=await request.read() if request.can_read_body else None) as r:
        return web.Response(status=r.status, body=await r.read(),
                            headers={k: v for k, v in r.headers.items() if k.lower() not in HOP})
async def main():
    app = web.Application()
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None); await runner.setup()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH); ctx.load_cert_chain(cert, key)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await web.TCPSite(runner, "127.0.0.1", tls_port, ssl_context=ctx).start()
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(d: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt = cert.public_bytes(serialization.Encoding.PEM).decode()
    k = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (d / "tls.crt").write_text(crt)
    (d / "tls.key").write_text(k)
    return crt, k


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start_haproxy(d: Path, backend_port: int, crt: str, key: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """HAProxy with the configuration gitship renders for one Ingress with TLS to the backend."""
    import base64

    from reconciler.controllers.ingress import build_table, builtin_class
    from reconciler.ingress.render import Listen, render

    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    meta = {"namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"}
    ing = {
        "kind": "Ingress",
        "metadata": {"name": "bench", "annotations": {"gitship.io/ssl-redirect": "false"}, **meta},
        "spec": {
            "tls": [{"hosts": [HOST], "secretName": "bench-tls"}],
            "rules": [
                {
                    "host": HOST,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    svc = {"kind": "Service", "metadata": {"name": "web", **meta}, "spec": {"ports": [{"port": 80}]}}
    ep = {
        "kind": "Endpoints",
        "metadata": {"name": "web", **meta},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": backend_port}]}],
    }
    secret = {
        "kind": "Secret",
        "metadata": {"name": "bench-tls", **meta},
        "data": {"tls.crt": b64(crt), "tls.key": b64(key)},
    }
    table = build_table([ing], [builtin_class("u", 0.0)], [svc], [ep], [secret])
    http_port, https_port = free_port(), free_port()
    certs = d / "certs"
    certs.mkdir()
    listen = Listen(
        ("127.0.0.1", http_port), ("127.0.0.1", https_port), str(d / "admin.sock"), str(d / "crt-list"), str(certs)
    )
    r = render(table, listen)
    (d / "haproxy.cfg").write_text(r.config)
    (d / "crt-list").write_text(r.crt_list)
    for name, pem in r.certs.items():
        (certs / name).write_text(pem)
    p = subprocess.Popen(["haproxy", "-W", "-db", "-f", str(d / "haproxy.cfg")], stdout=subprocess.DEVNULL)
    _wait_port(http_port)
    _wait_port(https_port)
    return p, http_port, https_port


def _python_proxy() -> str | None:
    for candidate in (os.environ.get("INGRESS_BENCH_PYTHON"), "/tmp/ingbench/bin/python"):
        if candidate and os.path.exists(candidate):
            ok = subprocess.run([candidate, "-c", "import aiohttp, uvloop"], capture_output=True).returncode == 0
            if ok:
                return candidate
    return None


def wrk(url: str, seconds: float, keepalive: bool, conns: int = 8) -> tuple[float, float]:
    """(requests/s, p99 seconds) of ``wrk`` with ``conns`` connections (one thread)."""
    args = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", "-H", f"Host: {HOST}"]
    if not keepalive:
        args += ["-H", "Connection: close"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if rps is None or p99 is None:
        raise RuntimeError(f"wrk: {out[-300:]}")
    if errors and errors.group(1):
        raise RuntimeError(f"wrk: {errors.group(0)}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[p99.group(2)]
    return float(rps.group(1)), float(p99.group(1)) * scale


def _turns(targets: dict[str, str], seconds: float, keepalive: bool, rounds: int) -> dict[str, tuple[float, float]]:
    """The paths take turns, ``rounds`` times; the median requests/s and p99 of each."""
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, url in targets.items():
            got[name].append(wrk(url, seconds / rounds, keepalive))
    return {name: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v)) for name, v in got.items()}


def _start(cmd: list[str], procs: list[subprocess.Popen[bytes]], port: int, env: dict[str, str] | None = None) -> None:
    procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
    _wait_port(port)


def run(seconds: float = 3.0, python_proxy: str | None = None) -> list[dict[str, Any]]:
    """Rows: (backend, scenario, path) -> requests/s, p99, and the ratio to direct (same backend,
    same run). Backends: one pod of the tutorial's kubia app (bench/kubia_host.py: Python's
    ThreadingHTTPServer, plain HTTP: its HTTPS rows compare TLS at the Ingress with plain HTTP to the
    pod) and a small uvloop server (the hop's own cost: it serves HTTPS itself)."""
    if shutil.which("haproxy") is None:
        return [{"figure": "9 skipped", "value": "haproxy is not installed (apt-get install haproxy)"}]
    if shutil.which("wrk") is None:
        return [{"figure": "9 skipped", "value": "wrk is not installed (apt-get install wrk)"}]
    py = python_proxy or _python_proxy()
    rows: list[dict[str, Any]] = []
    for backend in ("kubia pod", "uvloop"):
        procs: list[subprocess.Popen[bytes]] = []
        with tempfile.TemporaryDirectory(prefix="ingress-bench-") as tmp:
            d = Path(tmp)
            crt, key = make_cert(d)
            try:
                bport, btls = free_port(), free_port()
                if backend == "kubia pod":
                    env = {**os.environ, "POD_IP": "127.0.0.1", "PORT": str(bport), "HOSTNAME": "bench"}
                    _start([sys.executable, str(ROOT / "bench" / "kubia_host.py")], procs, bport, env)
                else:
                    (d / "backend.py").write_text(BACKEND)
                    cmd = [
                        sys.executable,
                        str(d / "backend.py"),
                        str(bport),
                        str(btls),
                        str(d / "tls.crt"),
                        str(d / "tls.key"),
                    ]
                    _start(cmd, procs, bport)
                hp, hport, hsport = start_haproxy(d, bport, crt, key)
                procs.append(hp)
                http_t = {"direct": f"http://127.0.0.1:{bport}/", "haproxy": f"http://127.0.0.1:{hport}/"}
                https_t = {
                    "direct": f"https://127.0.0.1:{btls}/" if backend == "uvloop" else http_t["direct"],
                    "haproxy": f"https://127.0.0.1:{hsport}/",
                }
                if py:
                    pport, psport = free_port(), free_port()
                    (d / "pyproxy.py").write_text(AIOHTTP_PROXY)
                    cmd = [py, str(d / "pyproxy.py"), str(pport), str(psport), str(d / "tls.crt"), str(d / "tls.key"),
                           f"http://127.0.0.1:{bport}"]  # fmt: skip
                    _start(cmd, procs, pport)
                    http_t["aiohttp"] = f"http://127.0.0.1:{pport}/"
                    https_t["aiohttp"] = f"https://127.0.0.1:{psport}/"
                for tls, targets in ((False, http_t), (True, https_t)):
                    for keepalive in (True, False):
                        scen = f"{'HTTPS' if tls else 'HTTP'} {'keep-alive' if keepalive else 'new connection'}"
                        res = _turns(targets, seconds, keepalive, rounds=3)
                        base = res["direct"][0]
                        for name, (rps, p99) in res.items():
                            rows.append(
                                {"backend": backend, "scenario": scen, "path": name, "rps": rps, "p99": p99,
                                 "ratio": rps / base if base else 0.0}
                            )  # fmt: skip
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    try:
                        p.wait(5)
                    except subprocess.TimeoutExpired:
                        p.kill()
    if not py:
        rows.append({"figure": "9 aiohttp skipped", "value": "no Python with aiohttp and uvloop (--python-proxy)"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--python-proxy", help="a Python with aiohttp and uvloop (the engine comparison)")
    a = ap.parse_args()
    print(f"{'backend':10} {'scenario':22} {'path':8} {'req/s':>8} {'p99 ms':>8} {'vs direct':>9}")
    for r in run(a.seconds, a.python_proxy):
        if "rps" not in r:
            print(r)
            continue
        b, sc, pa = r["backend"], r["scenario"], r["path"]
        print(f"{b:10} {sc:22} {pa:8} {r['rps']:8.0f} {r['p99'] * 1000:8.2f} {r['ratio']:9.2f}")


if __name__ == "__main__":
    main()
