#!/usr/bin/env python3
"""gitship's benchmarks: ``python3 bench/run.py [--quick] [--only N,N] [--no-write]``.

Every figure is measured against a baseline taken in the same run, on this machine, and
printed as a table ``figure | value | baseline | goal | met``; the table, the machine
(nproc, CPU model, Python) and the date are written to bench/RESULTS.md (unless
``--no-write``). Not part of the test suite. See bench/README.md for what each figure
measures and how.

  0  commit detection           git commit returned -> `revision_detected` in reconcile.log
  1  commit to serving          Deployment(3) + Service committed -> every replica answers
                                through the ClusterIP; image change -> all answers v2
  2  planning at scale          load+validate+plan of 1,000 / 10,000 manifests vs PyYAML
                                CSafeLoader; one changed object of 10,000 (warm cache)
  3  service proxy              bench/proxy_bench.py
  4  rollout under load         failed requests during a rolling update of 10 replicas
  5  pod start to Ready         in-process runtime (no probe / httpGet probe); Docker
  6  footprint                  gitship's RSS and CPU, idle, with 100 pods

``--quick`` runs fewer repetitions (a few minutes in all).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
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


# --------------------------------------------------------------------------- 0. commit detection


def fig0_commit_detection(work: Path, quick: bool) -> list[Row]:
    n = 20 if quick else 50
    repo = new_repo(work / "f0")
    d = Daemon(repo, work / "f0" / "state").start()
    log_path = Path(d.state_dir, "reconcile.log")
    lat: list[float] = []
    try:
        offset = log_path.stat().st_size
        for i in range(n):
            sha, t_commit = commit(repo, {"notes.txt": f"change {i}\n"}, f"bench {i}")
            detected = None
            deadline = time.monotonic() + 30
            while detected is None:
                with open(log_path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                for line in chunk.splitlines():
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("event") == "revision_detected" and ev.get("sha") == sha:
                        detected = dt.datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()
                if detected is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"commit {sha[:7]} never detected")
                    time.sleep(0.002)
            lat.append(detected - t_commit)
            d.wait_attempted(sha)
            offset = log_path.stat().st_size
    finally:
        d.stop()
    base = []
    for _ in range(20):
        t0 = time.perf_counter()
        git(repo, "rev-parse", "HEAD")
        base.append(time.perf_counter() - t0)
    p99 = pct(lat, 99)
    return [
        row(f"0 commit detection p50 ({n} commits)", ms(pct(lat, 50)), f"git rev-parse {ms(statistics.median(base))}"),
        row(
            f"0 commit detection p99 ({n} commits)",
            ms(p99),
            f"git rev-parse p99 {ms(pct(base, 99))}",
            "< 100 ms",
            p99 < 0.100,
        ),
    ]


# --------------------------------------------------------------------------- 1. commit to serving


def _names_until(host: str, want: int, version: str, deadline: float) -> None:
    """Request through the ClusterIP until ``want`` distinct pods answered ``version``."""
    seen: set[str] = set()
    while len(seen) < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(seen)} of {want} replicas answered {version}")
        try:
            body = http_get(host, 80, timeout=1)
        except OSError:
            time.sleep(0.005)
            continue
        if body.startswith(f"This is {version} "):
            seen.add(body.rsplit(" ", 1)[1].strip())
        else:
            seen.clear() if version == "v2" else None


def _all_answers(host: str, version: str, streak: int, deadline: float) -> None:
    ok = 0
    while ok < streak:
        if time.monotonic() > deadline:
            raise TimeoutError(f"answers never all {version}")
        try:
            body = http_get(host, 80, timeout=1)
            ok = ok + 1 if body.startswith(f"This is {version} ") else 0
        except OSError:
            ok = 0


def fig1_commit_to_serving(work: Path, quick: bool) -> list[Row]:
    runs = 5 if quick else 10
    repo = new_repo(work / "f1")
    d = Daemon(repo, work / "f1" / "state").start()
    serve: list[float] = []
    rollout: list[float] = []
    try:
        for i in range(runs):
            name = f"web{i}"
            files = {"web.yaml": deployment(name, 3, "qinchaowhut/allen:v1", name), "svc.yaml": service(name, name)}
            sha, t0 = commit(repo, files, f"web v1 run {i}")
            deadline = time.monotonic() + 60
            ip = wait(lambda name=name: cluster_ip(d, name), 60, "the ClusterIP", 0.002)
            _names_until(ip, 3, "v1", deadline)
            serve.append(time.time() - t0)
            wait(lambda name=name: deployment_complete(d, name, 3), 60, "v1 complete")
            sha, t0 = commit(repo, {"web.yaml": files["web.yaml"].replace("allen:v1", "allen:v2")}, f"v2 run {i}")
            deadline = time.monotonic() + 120
            wait(
                lambda sha=sha, name=name: (
                    d.meta("lastAppliedRevision") == sha and pods_all(d, name, "qinchaowhut/allen:v2", 3)
                ),
                120,
                "rollout complete",
                0.005,
            )
            _all_answers(ip, "v2", 20, deadline)
            _names_until(ip, 3, "v2", deadline)
            rollout.append(time.time() - t0)
            sha, _ = commit(repo, {"web.yaml": None, "svc.yaml": None}, f"remove run {i}")
            wait(lambda: not d.objects("Pod"), 60, "pods gone")
    finally:
        d.stop()
    # baseline: the same app started directly and answering once (process start + bind)
    base = []
    for _ in range(5):
        ip = "127.0.0.1"
        port = _free_port()
        t0 = time.time()
        p = subprocess.Popen(
            [sys.executable, str(repo / "app" / "kubia.py")],
            cwd=str(repo),
            env={**os.environ, "POD_IP": ip, "PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait(lambda ip=ip, port=port: http_get(ip, port, 1), 10, "kubia direct", 0.002)
            base.append(time.time() - t0)
        finally:
            p.terminate()
            p.wait()
    med = statistics.median(serve)
    bl = f"one kubia started directly {ms(statistics.median(base))}"
    return [
        row(f"1 commit -> 3 replicas serving via ClusterIP, median ({runs} runs)", ms(med), bl, "< 1 s", med < 1.0),
        row("1 commit -> 3 replicas serving via ClusterIP, p90", ms(pct(serve, 90)), bl),
        row(f"1 image change -> rollout complete (all v2), median ({runs} runs)", ms(statistics.median(rollout)), bl),
        row("1 image change -> rollout complete (all v2), p90", ms(pct(rollout, 90)), bl),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- 2. planning at scale


def _manifest(i: int, image: str = "kubia:v1") -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: pod-{i:05d}
  labels: {{app: bench, shard: s{i % 10}}}
spec:
  containers:
  - name: app
    image: {image}
    ports:
    - containerPort: 8080
"""


def fig2_planning(work: Path, quick: bool) -> list[Row]:
    import yaml

    from reconciler.manifests.revision import BlobCache, git_blob_id, load_revision
    from reconciler.plan import plan

    rows: list[Row] = []
    reps = 3 if quick else 5
    for n in (1_000, 10_000):
        files = {f"pods/p{i:05d}.yaml": _manifest(i).encode() for i in range(n)}
        blob_ids = {p: git_blob_id(b) for p, b in files.items()}  # git lists them: free for the daemon
        gs, ys = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            for b in files.values():
                yaml.load(b, Loader=yaml.CSafeLoader)
            ys.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ms_ = load_revision(files, {}, cache=BlobCache(), blob_ids=blob_ids)
            plan({}, {m.key: m.obj for m in ms_})
            gs.append(time.perf_counter() - t0)
        g, y = min(gs), min(ys)
        rows.append(
            row(
                f"2 cold load+validate+plan, {n:,} manifests",
                ms(g),
                f"CSafeLoader parse {ms(y)}",
                "<= 1.5x baseline",
                g <= 1.5 * y,
            )
        )
        rows[-1]["value"] += f" ({g / y:.2f}x)"

    # one changed object of 10,000 with a warm blob cache: pure load + plan (gitship's own time)
    n = 10_000
    files = {f"pods/p{i:05d}.yaml": _manifest(i).encode() for i in range(n)}
    blob_ids = {p: git_blob_id(b) for p, b in files.items()}
    cache = BlobCache()
    applied = {m.key: m.obj for m in load_revision(files, {}, cache=cache, blob_ids=blob_ids)}
    times = []
    current, current_ids = files, blob_ids
    for k in range(reps * 4):
        # each commit builds on the last (the cache keeps the last revision's files, as in the daemon)
        path = f"pods/p{(k * 37) % n:05d}.yaml"
        changed = dict(current)
        changed[path] = _manifest((k * 37) % n, image=f"kubia:v{k + 2}").encode()
        ids = dict(current_ids)
        ids[path] = git_blob_id(changed[path])
        t0 = time.perf_counter()
        desired = {m.key: m.obj for m in load_revision(changed, {}, cache=cache, blob_ids=ids)}
        actions = plan(applied, desired)
        times.append(time.perf_counter() - t0)
        assert len(actions) == 1, actions
        current, current_ids, applied = changed, ids, desired
    t = statistics.median(times)
    one_file = files["pods/p00000.yaml"]
    t0 = time.perf_counter()
    for _ in range(100):
        yaml.load(one_file, Loader=yaml.CSafeLoader)
    one = (time.perf_counter() - t0) / 100
    rows.append(
        row(
            "2 one object of 10,000 changed: load (warm cache) + plan, median",
            ms(t),
            f"CSafeLoader parse of 1 file {ms(one)}",
            "< 50 ms",
            t < 0.050,
        )
    )

    # the same through the daemon's RevisionLoader on a real repository (includes git ls-tree + cat-file),
    # in a child process with a deadline: a hang there must not hang the bench
    repo = work / "f2" / "repo"
    (repo / "pods").mkdir(parents=True)
    for p, b in files.items():
        (repo / p).write_bytes(b)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "10k")
    (repo / "pods/p00042.yaml").write_bytes(_manifest(42, "kubia:v9").encode())
    commit(repo, {}, "one change")
    code = (
        "import json, sys, time; sys.path.insert(0, sys.argv[2]);"
        "from bench.run import revision_loader_times; print(json.dumps(revision_loader_times(sys.argv[1])))"
    )
    try:
        p = subprocess.run(
            [sys.executable, "-c", code, str(repo), str(ROOT)], capture_output=True, text=True, timeout=120
        )
        got = json.loads(p.stdout) if p.returncode == 0 else None
        err = p.stderr.strip().splitlines()[-1] if p.returncode else ""
    except subprocess.TimeoutExpired:
        got, err = None, "hung for 120 s (killed)"
    if got is None:
        rows.append(
            row("2 RevisionLoader.load, 10,000 files, cold (incl. git)", f"FAILED: {err}", "", "completes", False)
        )
    else:
        rows.append(row("2 RevisionLoader.load, 10,000 files, cold (incl. git)", ms(got["cold"])))
        rows.append(
            row(
                "2 RevisionLoader.load, one file changed (incl. git ls-tree)",
                ms(got["warm"]),
                f"git ls-tree -r alone {ms(got['lstree'])}",
            )
        )
    return rows


def revision_loader_times(repo: str) -> dict[str, float]:
    """Cold load of HEAD~1 then HEAD (one file changed) through the daemon's RevisionLoader."""
    from reconciler.manifests.load import Limits
    from reconciler.source.git import GitReader
    from reconciler.source.revision import RevisionLoader

    reader = GitReader(repo)
    try:
        loader = RevisionLoader(reader, "", Limits())
        t0 = time.perf_counter()
        loader.load(git(repo, "rev-parse", "HEAD~1"))
        cold = time.perf_counter() - t0
        sha = git(repo, "rev-parse", "HEAD")
        t0 = time.perf_counter()
        loader.load(sha)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        reader.tree(sha)
        lstree = time.perf_counter() - t0
    finally:
        reader.close()
    return {"cold": cold, "warm": warm, "lstree": lstree}


# --------------------------------------------------------------------------- 3. service proxy


def fig3_proxy(work: Path, quick: bool) -> list[Row]:
    from bench import proxy_bench

    rows = proxy_bench.run(1.0 if quick else 3.0)
    out = []
    by = {r["figure"]: r for r in rows}
    for scen in ("keep-alive", "new-connection"):
        d, p = by[f"{scen} direct requests/s"], by[f"{scen} proxy requests/s"]
        ratio = by[f"{scen} proxy/direct throughput ratio"]
        out.append(row(f"3 proxy {scen} requests/s", p["value"], f"direct {d['value']}"))
        out.append(
            row(
                f"3 proxy {scen} p99 latency",
                f"{by[f'{scen} proxy p99 latency us']['value']} us",
                f"direct {by[f'{scen} direct p99 latency us']['value']} us",
            )
        )
        out.append(row(f"3 proxy/direct throughput, {scen}", ratio["value"], "1.0", ratio["goal"], ratio["met"]))
    return out


# --------------------------------------------------------------------------- 4. rollout under load


def fig4_rollout_under_load(work: Path, quick: bool) -> list[Row]:
    repo = new_repo(work / "f4")
    dep = deployment("web", 10, "qinchaowhut/allen:v1", "web")
    commit(repo, {"web.yaml": dep, "svc.yaml": service("web", "web")}, "web v1")
    d = Daemon(repo, work / "f4" / "state").start()
    try:
        wait(lambda: deployment_complete(d, "web", 10), 120, "10 v1 replicas", 0.05)
        ip = wait(lambda: cluster_ip(d, "web"), 30, "ClusterIP")
        stop = threading.Event()
        stats = {"ok": 0, "failed": 0, "v1": 0, "v2": 0}
        errors: list[str] = []
        lock = threading.Lock()

        def load() -> None:
            while not stop.is_set():
                try:
                    body = http_get(ip, 80, timeout=5)
                    with lock:
                        stats["ok"] += 1
                        stats["v2" if body.startswith("This is v2") else "v1"] += 1
                except OSError as e:
                    with lock:
                        stats["failed"] += 1
                        if len(errors) < 5:
                            errors.append(repr(e))

        workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        before = dict(stats)
        sha, t0 = commit(repo, {"web.yaml": dep.replace("allen:v1", "allen:v2")}, "web v2")
        wait(
            lambda: d.meta("lastAppliedRevision") == sha and pods_all(d, "web", "qinchaowhut/allen:v2", 10),
            180,
            "rollout complete, old pods gone",
            0.05,
        )
        took = time.time() - t0
        time.sleep(1.0)
        stop.set()
        for w in workers:
            w.join(10)
    finally:
        d.stop()
    total = stats["ok"] + stats["failed"]
    failed = stats["failed"]
    note = f"{total:,} requests, 4 clients, rollout {took:.1f} s" + (f"; e.g. {errors[0]}" if errors else "")
    return [
        row(
            "4 failed requests during a rolling update of 10 replicas",
            failed,
            f"{before['failed']} failed in the 1 s before the update",
            "0",
            failed == 0,
        ),
        row("4 requests served during the rollout (info)", note),
    ]


# --------------------------------------------------------------------------- 5. pod start to Ready


def _pod(name: str, probe: bool) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": "qinchaowhut/allen:v1", "ports": [{"containerPort": 8080}]}
    if probe:
        c["readinessProbe"] = {
            "httpGet": {"path": "/", "port": 8080},
            "initialDelaySeconds": 0,
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4()), "labels": {"app": "b"}},
        "spec": {"containers": [c], "restartPolicy": "Always", "terminationGracePeriodSeconds": 5},
    }


async def _starts(rt: Any, n: int, probe: bool, image: str = "qinchaowhut/allen:v1") -> list[float]:
    ready_at: dict[str, float] = {}
    waiters: dict[str, asyncio.Event] = {}

    def on_change(uid: str) -> None:
        st = rt.status(uid)
        if st and uid not in ready_at and ready(st and {"status": st}):
            ready_at[uid] = time.perf_counter()
            if uid in waiters:
                waiters[uid].set()

    await rt.start(on_change)
    out = []
    try:
        for i in range(n):
            pod = _pod(f"b{i}", probe)
            pod["spec"]["containers"][0]["image"] = image
            uid = pod["metadata"]["uid"]
            waiters[uid] = asyncio.Event()
            t0 = time.perf_counter()
            await rt.create_pod(pod)
            on_change(uid)
            await asyncio.wait_for(waiters[uid].wait(), 60)
            out.append(ready_at[uid] - t0)
            await rt.delete_pod(uid)
    finally:
        await rt.close(stop_pods=True)
    return out


def fig5_pod_start(work: Path, quick: bool) -> list[Row]:
    from runtime.inprocess import InProcessRuntime

    n = 20 if quick else 100
    rows: list[Row] = []
    base = []
    for _ in range(20):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"])
        base.append(time.perf_counter() - t0)
    bl = f"python3 -c pass p99 {ms(pct(base, 99))}"
    # a gitship.yaml `images:` entry, as RepoConfig.images holds it
    rules = [
        {"image": "qinchaowhut/allen:*", "command": [sys.executable, "app/kubia.py"], "workingDir": None, "env": {}}
    ]
    for probe in (False, True):
        rt = InProcessRuntime(str(work / f"f5-{probe}"), rules, repo_dir=str(TEMPLATE), pod_cidr="127.201.0.0/24")
        lat = asyncio.run(_starts(rt, n, probe))
        what = "httpGet readiness probe" if probe else "no readiness probe"
        p99 = pct(lat, 99)
        rows.append(
            row(
                f"5 in-process pod start -> Ready, {what}, p50 ({n} starts)",
                ms(pct(lat, 50)),
                f"python3 -c pass p50 {ms(statistics.median(base))}",
            )
        )
        rows.append(row(f"5 in-process pod start -> Ready, {what}, p99", ms(p99), bl, "< 300 ms", p99 < 0.3))
    rows.extend(_docker_starts(work, 10 if quick else 50))
    return rows


def _docker_starts(work: Path, n: int) -> list[Row]:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as e:  # noqa: BLE001
        return [
            row("5 Docker pod start -> Ready", "skipped", "", "< 1 s", None) | {"value": f"skipped: no engine ({e})"}
        ]
    from runtime.docker import BUSYBOX, DockerRuntime, LABEL_INSTANCE

    if not os.path.exists(BUSYBOX):
        return [row("5 Docker pod start -> Ready", f"skipped: {BUSYBOX} missing", "", "< 1 s", None)]
    from tests.dockerimages import ensure_test_images

    ensure_test_images(client)
    base = []
    for _ in range(min(n, 20)):
        t0 = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "gitship-test/kubia:v1", "true"], capture_output=True, check=True)
        base.append(time.perf_counter() - t0)
    instance = "bench-" + uuid.uuid4().hex[:8]
    rows = []
    try:
        for probe in (False, True):
            rt = DockerRuntime(str(work / f"f5-docker-{probe}"), instance=instance, network="gitship-bench")
            lat = asyncio.run(_starts(rt, n, probe, "gitship-test/kubia:v1"))
            what = "httpGet readiness probe" if probe else "no readiness probe"
            p99 = pct(lat, 99)
            rows.append(
                row(
                    f"5 Docker pod start -> Ready, {what}, p50 ({n} starts)",
                    ms(pct(lat, 50)),
                    f"docker run --rm p50 {ms(statistics.median(base))}",
                )
            )
            rows.append(
                row(
                    f"5 Docker pod start -> Ready, {what}, p99",
                    ms(p99),
                    f"docker run --rm p99 {ms(pct(base, 99))}",
                    "< 1 s",
                    p99 < 1.0,
                )
            )
    finally:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}):
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        client.close()
    return rows


# --------------------------------------------------------------------------- 6. footprint


def _idle(pid: int, seconds: float) -> tuple[float, float]:
    c0, t0 = proc_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = proc_cpu_seconds(pid), time.monotonic()
    return proc_rss_kib(pid) / 1024, (c1 - c0) / (t1 - t0) * 100


def fig6_footprint(work: Path, quick: bool) -> list[Row]:
    seconds = 5.0 if quick else 10.0
    repo = new_repo(work / "f6")
    d = Daemon(repo, work / "f6" / "state").start()
    try:
        time.sleep(2)
        rss0, cpu0 = _idle(d.pid, seconds)
        dep = """apiVersion: apps/v1
kind: Deployment
metadata: {name: idle}
spec:
  replicas: 100
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec:
      terminationGracePeriodSeconds: 5
      containers: [{name: c, image: busybox, command: [sleep, "100000"]}]
"""
        sha, _ = commit(repo, {"idle.yaml": dep}, "100 pods")
        wait(lambda: len([p for p in d.objects("Pod") if ready(p)]) == 100, 180, "100 pods ready", 0.2)
        time.sleep(3)  # let start-up settle
        rss, cpu = _idle(d.pid, seconds)
        hwm = proc_rss_kib(d.pid, "VmHWM") / 1024
    finally:
        d.stop()
    return [
        row("6 gitship RSS, idle, 100 pods", f"{rss:.1f} MB", f"0 pods {rss0:.1f} MB", "< 100 MB", rss < 100),
        row(
            f"6 gitship CPU, idle, 100 pods ({seconds:g} s)",
            f"{cpu:.2f} % of a core",
            f"0 pods {cpu0:.2f} %",
            "< 2 %",
            cpu < 2.0,
        ),
        row("6 gitship peak RSS (VmHWM) incl. starting 100 pods", f"{hwm:.1f} MB"),
    ]


# --------------------------------------------------------------------------- main

FIGURES = [
    fig0_commit_detection,
    fig1_commit_to_serving,
    fig2_planning,
    fig3_proxy,
    fig4_rollout_under_load,
    fig5_pod_start,
    fig6_footprint,
]


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(rows: list[Row]) -> str:
    def met(r: Row) -> str:
        return "" if r["met"] is None else ("yes" if r["met"] else "**NO**")

    lines = ["| figure | value | baseline | goal | met |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['figure']} | {r['value']} | {r['baseline']} | {r['goal']} | {met(r)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="gitship's benchmarks (not a test)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions: a few minutes in all")
    ap.add_argument("--only", help="comma-separated figure numbers (0-6)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    args = ap.parse_args(argv)
    from reconciler import log as gitship_log

    gitship_log.configure(None, console=None)  # the runtimes used directly (figure 5) log nowhere
    which = [int(x) for x in args.only.split(",")] if args.only else list(range(len(FIGURES)))
    rows: list[Row] = []
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gitship-bench-") as tmp:
        for i in which:
            fn = FIGURES[i]
            t0 = time.monotonic()
            print(f"-- {fn.__name__} ...", file=sys.stderr, flush=True)
            try:
                got = fn(Path(tmp), args.quick)
            except Exception as e:  # noqa: BLE001 - one broken figure must not hide the others
                got = [row(f"{i} {fn.__name__}", f"ERROR: {type(e).__name__}: {e}".replace("|", "/"), "", "", False)]
            for r in got:
                print(
                    f"   {r['figure']}: {r['value']}  [{r['baseline']}]"
                    + (f"  goal {r['goal']}: {'met' if r['met'] else 'NOT met'}" if r["met"] is not None else ""),
                    file=sys.stderr,
                    flush=True,
                )
            rows.extend(got)
            print(f"   ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    m = machine()
    text = table(rows)
    print(text)
    if not args.no_write:
        mode = "--quick" if args.quick else "full"
        only = f" --only {args.only}" if args.only else ""
        out = (
            f"# gitship benchmark results\n\n`python3 bench/run.py{' --quick' if args.quick else ''}{only}` "
            f"({mode} run, {time.monotonic() - t_all:.0f} s)\n\n"
            f"- date: {m['date']}\n- machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}\n"
            f"- Python {m['python']}\n\n{text}\n\n"
            "Every baseline is measured in the same run on the same machine. "
            "See bench/README.md for what each figure measures.\n"
        )
        (ROOT / "bench" / "RESULTS.md").write_text(out)
    return 0 if all(r["met"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
