"""Helpers every figure of bench/run.py shares: rows, timing, git, a real `gitship up`, HTTP."""

from __future__ import annotations

import json
import os
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

TEMPLATE = ROOT / "repo-template"
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


def new_repo(where: Path) -> Path:
    repo = where / "repo"
    repo.mkdir(parents=True)
    shutil.copytree(TEMPLATE / "app", repo / "app")
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


class Daemon:
    """One `gitship up` on a temporary state dir; reads its store directly (no CLI start-up cost)."""

    def __init__(self, repo: Path | str, state_dir: Path, extra: list[str] | None = None):
        self.repo, self.state_dir = str(repo), str(state_dir)
        x = 100 + zlib.crc32(self.state_dir.encode()) % 140
        self.args = [
            "--pod-cidr",
            f"127.{x}.0.0/17",
            "--service-cidr",
            f"127.{x}.128.0/17",
            "--dns-addr",
            "127.0.0.1:0",
            *(extra or []),
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self._db: sqlite3.Connection | None = None

    def start(self) -> "Daemon":
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
        wait(
            lambda: os.path.exists(os.path.join(self.state_dir, "gitship.sock")) or self.proc.poll() is not None,
            60,
            "gitship up to start",
            0.05,
        )
        if self.proc.poll() is not None:
            raise RuntimeError(f"gitship up exited {self.proc.returncode}; see {self.state_dir}.out")
        wait(lambda: self.meta("lastAttemptedRevision"), 60, "the first revision", 0.05)
        return self

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


def deployment(name: str, replicas: int, image: str, app: str, extra_spec: str = "") -> str:
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
"""


def service(name: str, app: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {app}}}
  ports: [{{port: 80, targetPort: 8080}}]
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
