"""The soak's load (bench/soak.py): requests without pause through each path (a Service's ClusterIP, an
Ingress), every failure recorded with its time, path, kind and detail; and the attribution of every
failure to the soak action that explains it (or to none: "unexplained").

Kinds: ``refused`` (connect refused), ``reset`` (connection reset or broken pipe), ``timeout``,
``empty`` (closed without a response), ``5xx``/``4xx`` (a response with that status: HAProxy answers 503
when a backend has no server), ``bad`` (something else). The pod a failed request went to is not
knowable from the client (the proxy and HAProxy pick it); each record carries the pod that answered the
same client's last successful request, and the attribution names the pod a nearby kill hit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

# requests to a pod killed with -9 fail until the pod leaves the endpoints (its exit seen by the runtime,
# or its readiness probe, every 1 s, failing): 3 s covers both
POD_KILL_GRACE = 3.0


@dataclass
class Failure:
    t: float  # time.monotonic()
    path: str
    kind: str
    detail: str
    last_pod: str = ""  # the pod of this client's last answered request
    target: str = ""  # the address the request was sent to, where knowable (conntrack's DNAT of a ClusterIP)


@dataclass
class Action:
    t: float
    what: str
    detail: str = ""
    until: float | None = None  # for a down window: when the target was back (monotonic)


def request(host: str, port: int, vhost: str = "soak", timeout: float = 2.0, ports: list[int] | None = None) -> str:
    """One GET / on a new connection; the pod's name from kubia's body ("This is v1 running in pod P").
    ``ports``: the connection's local port is appended (to look its NAT up after a failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        if ports is not None:
            s.bind(("0.0.0.0", 0))
            ports.append(s.getsockname()[1])
        s.connect((host, port))
        s.sendall(f"GET / HTTP/1.1\r\nHost: {vhost}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise _Bad("empty", "closed without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not head.startswith(b"HTTP/1."):
        raise _Bad("bad", repr(head[:60]))
    if status[1] != b"200":
        code = status[1].decode(errors="replace")
        raise _Bad(code[0] + "xx" if code[:1] in ("4", "5") else "bad", code)
    words = body.decode(errors="replace").split()
    return words[-1] if words else ""


class _Bad(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def classify(e: BaseException) -> tuple[str, str]:
    if isinstance(e, _Bad):
        return e.kind, e.detail
    if isinstance(e, ConnectionRefusedError):
        return "refused", str(e)
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset", str(e)
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout", str(e) or "timed out"
    return "bad", repr(e)[:80]


class Load(threading.Thread):
    """Requests through one path without pause (one client: requests in sequence, a new connection each)."""

    def __init__(self, path: str, host: str, port: int, vhost: str = "soak", nat: bool = False):
        super().__init__(daemon=True, name=f"load-{path}")
        self.path, self.host, self.port, self.vhost = path, host, port, vhost
        self.nat = nat and shutil.which("conntrack") is not None and os.geteuid() == 0
        self.ok = 0
        self.failures: list[Failure] = []
        self.pods: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        last = ""
        while not self.stop.is_set():
            ports: list[int] = []
            try:
                last = request(self.host, self.port, self.vhost, ports=ports if self.nat else None)
                self.ok += 1
                self.pods[last] = self.pods.get(last, 0) + 1
            except Exception as e:  # noqa: BLE001 - every failure is a record
                kind, detail = classify(e)
                t = time.monotonic()
                target = nat_target(ports[0], self.host, self.port) if ports else ""
                self.failures.append(Failure(t, self.path, kind, detail, last, target))
                time.sleep(0.01)


def nat_target(sport: int, host: str, port: int) -> str:
    """Where conntrack sent the connection from local port ``sport`` to ``host:port`` (a ClusterIP on
    the nftables data plane: the pod's ip:port of its DNAT), or "" if it has no entry."""
    try:
        out = subprocess.run(
            ["conntrack", "-L", "-p", "tcp", "--orig-port-src", str(sport), "--orig-dst", host,
             "--orig-port-dst", str(port)],
            capture_output=True, text=True, timeout=5,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in out.splitlines():
        fields = [w.split("=", 1) for w in line.split() if "=" in w]
        src = [v for k, v in fields if k == "src"]
        sports = [v for k, v in fields if k == "sport"]
        if len(src) >= 2 and len(sports) >= 2:
            return f"{src[1]}:{sports[1]}"  # the reply direction's source: the endpoint
    return ""


@dataclass
class Attributed:
    failure: Failure
    cause: str  # "daemon kill", "engine kill", "pod kill", "unexplained"
    nearest: Action | None
    since: float  # seconds since the nearest action before the failure
    last_kill: str = ""  # the last kill -9 before it (any kind) and its age, e.g. "kill-pod soak-x 4.2 s"
    extra: dict[str, str] = field(default_factory=dict)


def attribute(failures: list[Failure], actions: list[Action]) -> list[Attributed]:
    """Each failure with its cause: inside a daemon's or engine's down window (kill -9 to back, as the
    soak recorded it), within POD_KILL_GRACE after a pod's kill -9, or unexplained; and the nearest
    action before it."""
    acts = sorted(actions, key=lambda a: a.t)
    out = []
    for f in sorted(failures, key=lambda f: f.t):
        before = [a for a in acts if a.t <= f.t]
        nearest = before[-1] if before else None
        cause = "unexplained"
        for a in reversed(before):
            if a.what in ("kill-daemon", "kill-engine") and a.until is not None and f.t <= a.until:
                cause = "daemon kill" if a.what == "kill-daemon" else "engine kill"
                break
            if a.what == "kill-pod" and f.t - a.t <= POD_KILL_GRACE:
                cause = "pod kill"
                break
        kills = [a for a in before if a.what.startswith("kill-")]
        last_kill = f"{kills[-1].what} {kills[-1].detail} {f.t - kills[-1].t:.1f} s".replace("  ", " ") if kills else ""
        out.append(Attributed(f, cause, nearest, f.t - nearest.t if nearest else 0.0, last_kill))
    return out


def table(rows: list[Attributed], t0: float, limit: int = 60) -> str:
    """A text table of the failures (at most ``limit`` rows, the unexplained ones first)."""
    ordered = sorted(rows, key=lambda r: (r.cause != "unexplained", r.failure.t))[:limit]
    lines = [
        f"{'t (s)':>8} {'path':8} {'error':8} {'cause':12} {'sent to':22} {'last pod':28} nearest action (age)  detail",
    ]
    for r in ordered:
        f = r.failure
        near = f"{r.nearest.what} {r.nearest.detail}".strip() if r.nearest else "-"
        lines.append(
            f"{f.t - t0:8.2f} {f.path:8} {f.kind:8} {r.cause:12} {(f.target or '-')[:22]:22} {f.last_pod[:28]:28} "
            f"{near[:40]} ({r.since:.2f} s)  {f.detail[:50]}"
        )
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    return "\n".join(lines)


def summary(rows: list[Attributed], paths: list[str]) -> dict[str, dict[str, int]]:
    """{path: {cause: count, "total": n}} for every path (zeros included)."""
    out: dict[str, dict[str, int]] = {
        p: {"total": 0, "daemon kill": 0, "engine kill": 0, "pod kill": 0, "unexplained": 0} for p in paths
    }
    for r in rows:
        s = out.setdefault(r.failure.path, {"total": 0})
        s["total"] += 1
        s[r.cause] = s.get(r.cause, 0) + 1
    return out
