"""Helpers every figure of bench/run.py shares: rows, timing, git, a real `gitship up`, HTTP."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# gitship's processes start from bytecode, as on a user's machine (with PYTHONDONTWRITEBYTECODE set,
# each CLI call measured would compile ~200 modules again)
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

TEMPLATE = ROOT / "repo-template"
BENCH = ROOT / "bench"
Row = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]


def row(figure: str, value: Any, baseline: Any = "", goal: str = "", met: bool | None = None) -> Row:
    return {"figure": figure, "value": value, "baseline": baseline, "goal": goal, "met": met}


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def git(repo: Path | str, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr}")
    return p.stdout.strip()


def new_repo(where: Path, mode: str = "sandbox") -> Path:
    """A repository with the template's app and gitship.yaml. Pods without a sandbox (``mode`` "host")
    share the host's network: there the app is bench/kubia_host.py (it binds POD_IP), as the template's
    app was before sandboxes; with sandboxes it is the template's app as written (0.0.0.0:8080)."""
    repo = where / "repo"
    repo.mkdir(parents=True)
    shutil.copytree(TEMPLATE / "app", repo / "app")
    if mode == "host":
        shutil.copy(BENCH / "kubia_host.py", repo / "app" / "kubia.py")
    shutil.copy(TEMPLATE / "gitship.yaml", repo / "gitship.yaml")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    return repo


def commit(repo: Path, files: dict[str, str | None], message: str) -> tuple[str, float]:
    """Write (or delete, for None) files, commit; returns (sha, time.time() when `git commit` returned)."""
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            if path.exists():
                path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    t = time.time()
    return git(repo, "rev-parse", "HEAD"), t


def wait(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - the condition may fail while things start
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" ({last!r})" if last else ""))


def proc_rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# --------------------------------------------------------------------------- modes and ranges

# How `gitship up` runs its pods and carries Service traffic: "sandbox" (each pod in namespaces of its
# own on a bridge; ClusterIPs and NodePorts are nftables rules: the default as root) or "host" (pods
# share the host's network on loopback addresses; the Python proxy in the daemon: the mode without
# root, and the only one before issue 12).
MODES = ("host", "sandbox")
MODE_FLAGS = {
    "host": ["--isolation", "host", "--data-plane", "proxy"],
    "sandbox": ["--isolation", "sandbox", "--data-plane", "nftables"],
}
LABEL = {"host": "host + proxy", "sandbox": "sandbox + nftables"}
_picked: set[int] = set()  # second octets of 10.x ranges this process has handed out


def sandbox_unavailable() -> str | None:
    """Why the bench cannot run pods in sandboxes with the nftables data plane here (None: it can)."""
    from reconciler.daemon import sandbox_unavailable as no_sandboxes
    from runtime.net.kernelproxy import KernelProxy

    return no_sandboxes("auto") or KernelProxy.unavailable()


def default_mode() -> str:
    """What `gitship up` chooses by default here: sandboxes and nftables as root, else host mode."""
    return "sandbox" if sandbox_unavailable() is None else "host"


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine has an address in or a route to (not the default route)."""
    nets: list[ipaddress.IPv4Network] = []
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        words = line.split()
        if not words:
            continue
        first = words[1] if words[0] in ("local", "broadcast", "unreachable", "blackhole", "prohibit") else words[0]
        if first != "default" and len(words) > 1:
            try:
                nets.append(ipaddress.ip_network(first, strict=False))
            except ValueError:
                pass
    return nets


def free_ranges() -> tuple[str, str]:
    """(pod CIDR, Service CIDR) for a sandboxed daemon: 10.x.0.0/17 and 10.x.128.0/17 of a 10.x.0.0/16
    that no address or route of this machine overlaps. x is taken from 240-253 (not 244, the
    daemon's default): the test suite's daemons use 10.100-239 (tests/conftest.py)."""
    used = used_networks()
    choices = [x for x in range(240, 254) if x != 244 and x not in _picked]
    random.shuffle(choices)
    for x in choices:
        net = ipaddress.ip_network(f"10.{x}.0.0/16")
        if not any(net.overlaps(u) for u in used):
            _picked.add(x)
            return f"10.{x}.0.0/17", f"10.{x}.128.0/17"
    raise RuntimeError("no free 10.x.0.0/16 (x in 240-253) on this machine")


def free_node_port() -> int:
    """A port of the NodePort range (30000-32767) nothing listens on, on any address."""
    for _ in range(200):
        port = random.randint(30000, 32767)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 30000-32767")


class Daemon:
    """One `gitship up` on a temporary state dir, in ``mode`` (MODES); reads its store directly (no
    CLI start-up cost). ``stop()`` also removes what a daemon leaves in the kernel when it dies
    (pods' processes and sandboxes, its nftables table, its bridge): call it in a ``finally``."""

    def __init__(self, repo: Path | str, state_dir: Path, extra: list[str] | None = None, mode: str = "host"):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}")
        self.repo, self.state_dir, self.mode = str(repo), str(state_dir), mode
        if mode == "sandbox":
            self.pod_cidr, self.service_cidr = free_ranges()
            net = ["--pod-cidr", self.pod_cidr, "--service-cidr", self.service_cidr]
        else:
            x = 100 + zlib.crc32(self.state_dir.encode()) % 140
            self.pod_cidr, self.service_cidr = f"127.{x}.0.0/17", f"127.{x}.128.0/17"
            net = ["--pod-cidr", self.pod_cidr, "--service-cidr", self.service_cidr, "--dns-addr", "127.0.0.1:0"]
        self.args = [*net, *MODE_FLAGS[mode], *(extra or [])]
        self.proc: subprocess.Popen[bytes] | None = None
        self._db: sqlite3.Connection | None = None

    def start(self, wait_applied: bool = True) -> "Daemon":
        """Start `gitship up` and wait until it has finished its first pass (it writes its pid into the
        store after that pass; the socket file alone proves nothing after a kill -9). If it does not
        come up, it is stopped and what it made is removed before the error is raised."""
        try:
            return self._start(wait_applied)
        except BaseException:
            self.stop()
            raise

    def _start(self, wait_applied: bool) -> "Daemon":
        os.makedirs(os.path.dirname(self.state_dir), exist_ok=True)
        self.logf = open(self.state_dir + ".out", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "up", self.repo, "--state-dir", self.state_dir, *self.args],
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait(lambda: self.proc.poll() is not None or self.first_pass_done(), 90, "gitship up to start", 0.02)
        if self.proc.poll() is not None:
            raise RuntimeError(f"gitship up exited {self.proc.returncode}; see {self.state_dir}.out")
        if wait_applied:
            wait(lambda: self.meta("lastAttemptedRevision"), 60, "the first revision", 0.05)
        return self

    def first_pass_done(self) -> bool:
        """This process of the daemon has adopted what runs and finished its first pass."""
        d = self.meta("daemon")
        return bool(self.proc and isinstance(d, dict) and d.get("pid") == self.proc.pid)

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(
                f"file:{os.path.join(self.state_dir, 'gitship.db')}?mode=ro",
                uri=True,
                timeout=10,
                check_same_thread=False,
            )
        return self._db

    def meta(self, key: str) -> Any:
        r = self.db().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(r[0]) if r else None

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(b) for (b,) in self.db().execute("SELECT body FROM cluster WHERE kind=?", (kind,))]

    def wait_attempted(self, sha: str, timeout: float = 60) -> None:
        wait(lambda: self.meta("lastAttemptedRevision") == sha, timeout, f"revision {sha[:7]}")

    def kill9(self) -> None:
        """SIGKILL the daemon alone (its pods and sandboxes live in sessions of their own)."""
        assert self.proc
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.cleanup()

    def cleanup(self) -> None:
        """Remove what the daemon may have left (after a clean stop there is nothing): the processes of
        its pods, their sandboxes and veths, and in sandbox mode its nftables table and bridge."""
        from reconciler.dataplane import table_name
        from runtime.inprocess.sandbox import sweep

        runtime_dir = os.path.join(self.state_dir, "runtime")
        if os.path.isdir(runtime_dir):
            sweep(runtime_dir)
        if self.mode == "sandbox" and os.geteuid() == 0:
            from runtime.net.bridge import bridge_name, teardown_host_network
            from runtime.net.kernelproxy import delete_table

            delete_table(table_name(self.state_dir))
            teardown_host_network(bridge_name(self.state_dir), self.service_cidr)


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def http_get(host: str, port: int, timeout: float = 2.0) -> str:
    """One request on a new connection (Connection: close); the body."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"bad response: {head[:80]!r}")
    return body.decode()


READINESS = """        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
"""


def deployment(name: str, replicas: int, image: str, app: str, extra_spec: str = "", probe: bool = False) -> str:
    """A Deployment of the kubia app; ``probe``: with an httpGet readiness probe (READINESS)."""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
{extra_spec}  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: app
        image: {image}
        ports: [{{containerPort: 8080}}]
{READINESS if probe else ""}"""


def service(name: str, app: str, node_port: int | None = None) -> str:
    """A ClusterIP Service (port 80 -> 8080) of ``app``'s pods; a NodePort Service with ``node_port``."""
    if node_port is None:
        kind, port = "", "{port: 80, targetPort: 8080}"
    else:
        kind, port = "  type: NodePort\n", f"{{port: 80, targetPort: 8080, nodePort: {node_port}}}"
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
{kind}  selector: {{app: {app}}}
  ports: [{port}]
"""


def cluster_ip(d: Daemon, name: str) -> str | None:
    for s in d.objects("Service"):
        if s["metadata"]["name"] == name:
            return s["spec"].get("clusterIP")
    return None


def pods_all(d: Daemon, app: str, image: str, replicas: int) -> bool:
    """Exactly ``replicas`` pods of ``app`` exist (none terminating), all of ``image`` and Ready."""
    pods = [p for p in d.objects("Pod") if (p["metadata"].get("labels") or {}).get("app") == app]
    return len(pods) == replicas and all(
        not p["metadata"].get("deletionTimestamp") and p["spec"]["containers"][0]["image"] == image and ready(p)
        for p in pods
    )


def deployment_complete(d: Daemon, name: str, replicas: int) -> bool:
    for dep in d.objects("Deployment"):
        if dep["metadata"]["name"] != name:
            continue
        st, gen = dep.get("status") or {}, dep["metadata"].get("generation")
        return (
            st.get("observedGeneration") == gen
            and st.get("updatedReplicas") == replicas
            and st.get("replicas") == replicas
            and st.get("availableReplicas") == replicas
        )
    return False


def replace_section(text: str, heading: str, block: str) -> str:
    """``text`` (bench/RESULTS.md) with the section starting at ``heading`` replaced by ``block``,
    or ``block`` appended when there is none yet."""
    start = text.find(heading)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + block
    end = text.find("\n## ", start + 5)
    return text[:start] + block + (text[end + 1 :] if end >= 0 else "")
