"""Figure 9: the Ingress (issue 15). The hop through gitship's HAProxy against direct to one pod (and
against an aiohttp proxy, the engine not chosen: bench/ingress_bench.py), then a rolling update of 10
replicas behind the Ingress under load, through a real `gitship up`."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Daemon,
    Row,
    commit,
    default_mode,
    deployment,
    deployment_complete,
    http_get,
    new_repo,
    pods_all,
    row,
    service,
    wait,
)

INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


def _hop_rows(quick: bool) -> list[Row]:
    from bench import ingress_bench

    out: list[Row] = []
    for r in ingress_bench.run(1.5 if quick else 4.5):
        if "rps" not in r:
            out.append(row(r["figure"], r["value"]))
            continue
        if r["path"] == "direct":
            continue
        goal = ""
        met = None
        if r["backend"] == "kubia pod" and r["scenario"] == "HTTP keep-alive" and r["path"] == "haproxy":
            goal, met = ">= 0.8 of direct", r["ratio"] >= 0.8
        out.append(
            row(
                f"9 {r['scenario']} via {r['path']} ({r['backend']})",
                f"{r['rps']:,.0f} req/s, p99 {r['p99'] * 1000:.1f} ms ({r['ratio']:.2f} of direct)",
                f"direct {r['rps'] / r['ratio'] if r['ratio'] else 0:,.0f} req/s",
                goal,
                met,
            )
        )
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rollout_behind_ingress(work: Path, mode: str) -> dict[str, Any]:
    repo = new_repo(work, mode)
    dep = deployment("web", 10, "qinchaowhut/allen:v1", "web", probe=True)
    commit(repo, {"web.yaml": dep, "svc.yaml": service("web", "web"), "ing.yaml": INGRESS}, "web v1 behind an Ingress")
    port = _free_port()
    extra = ["--node-address", "127.0.0.1", "--ingress-http-port", str(port), "--ingress-https-port", str(_free_port())]
    d = Daemon(repo, work / "state", extra=extra, mode=mode).start()
    stats = {"ok": 0, "failed": 0}
    errors: list[str] = []
    try:
        wait(lambda: deployment_complete(d, "web", 10), 120, "10 v1 replicas", 0.05)
        wait(lambda: http_get("127.0.0.1", port).startswith("This is"), 30, "the Ingress serving", 0.05)
        stop = threading.Event()
        lock = threading.Lock()

        def load() -> None:
            while not stop.is_set():
                try:
                    http_get("127.0.0.1", port, timeout=5)
                    with lock:
                        stats["ok"] += 1
                except OSError as e:
                    with lock:
                        stats["failed"] += 1
                        if len(errors) < 5:
                            errors.append(repr(e))

        workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        before = stats["failed"]
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
    return {**stats, "before": before, "took": took, "errors": errors}


def fig9_ingress(work: Path, quick: bool) -> list[Row]:
    if shutil.which("haproxy") is None:
        return [row("9 Ingress", "skipped: haproxy is not installed (apt-get install haproxy)")]
    rows = _hop_rows(quick)
    mode = default_mode()
    r = _rollout_behind_ingress(work / "f9", mode)
    note = f"{r['ok'] + r['failed']:,} requests, 4 clients, rollout {r['took']:.1f} s" + (
        f"; e.g. {r['errors'][0]}" if r["errors"] else ""
    )
    rows.append(
        row(
            f"9 failed requests during a rolling update of 10 replicas behind the Ingress ({mode})",
            r["failed"],
            f"{r['before']} failed in the 1 s before the update",
            "0",
            r["failed"] == 0,
        )
    )
    rows.append(row("9 requests served during that rollout (info)", note))
    return rows
