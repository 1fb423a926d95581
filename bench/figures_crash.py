"""Figure 7 of bench/run.py: `kill -9` of `gitship up` under load through a ClusterIP and a NodePort.

A Deployment of 3 replicas of the template's app (with a readiness probe), a ClusterIP Service and a
NodePort Service. Two clients, one through the ClusterIP and one through 127.0.0.1:<nodePort>, each
send a request on a new connection every 10 ms. After 1 s of load the daemon gets SIGKILL (it alone:
its pods live in sessions of their own), and is started again 1 s later; the load goes on until the
restarted daemon has finished its first pass (adoption included) and 3 s more. Counted: failed
requests (refused, reset, timed out after 2 s, non-200), the longest outage (from the start of a
failed request to the end of the next one that succeeds), and the pods restarted or replaced
(restartCount, uid). Measured in sandbox + nftables mode (the rules are in the kernel and outlive the
daemon) against today's host + proxy mode (the proxy lives in the daemon) in the same run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    LABEL,
    Daemon,
    Row,
    cluster_ip,
    commit,
    deployment,
    deployment_complete,
    free_node_port,
    http_get,
    new_repo,
    row,
    sandbox_unavailable,
    service,
    wait,
)

PERIOD = 0.01  # seconds between one client's requests
TIMEOUT = 2.0  # seconds a request may take before it counts as failed
DOWN = 1.0  # seconds the daemon stays dead
AFTER = 3.0  # seconds of load after the restarted daemon's first pass


class Load:
    """One client per target, a request on a new connection every PERIOD; every request recorded as
    (start, end, ok) on the monotonic clock, the first few errors kept."""

    def __init__(self, targets: list[tuple[str, int]]):
        self.targets = targets
        self.records: dict[tuple[str, int], list[tuple[float, float, bool]]] = {t: [] for t in targets}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in targets]

    def _run(self, target: tuple[str, int]) -> None:
        out = self.records[target]
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                http_get(*target, timeout=TIMEOUT)
                out.append((t0, time.monotonic(), True))
            except OSError as e:  # refused, reset, timeout, a non-200 answer (ConnectionError)
                out.append((t0, time.monotonic(), False))
                if len(self.errors) < 5:
                    self.errors.append(f"{target[0]}:{target[1]}: {e!r}")
            self._stop.wait(PERIOD)

    def start(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(TIMEOUT + 5)

    def failed(self, target: tuple[str, int] | None = None) -> int:
        recs = self.records[target] if target else [r for rs in self.records.values() for r in rs]
        return sum(1 for r in recs if not r[2])

    def total(self) -> int:
        return sum(len(rs) for rs in self.records.values())

    def outage(self) -> float:
        """The longest time any target failed: from the start of a failed request to the end of the
        next request that succeeded (or of the last request)."""
        longest = 0.0
        for recs in self.records.values():
            start = None
            for t0, t1, ok in recs:
                if not ok and start is None:
                    start = t0
                elif ok and start is not None:
                    longest, start = max(longest, t1 - start), None
            if start is not None and recs:
                longest = max(longest, recs[-1][1] - start)
        return longest


def _pods(d: Daemon) -> dict[str, int]:
    """uid -> restartCount of the app's pods (none terminating)."""
    out = {}
    for p in d.objects("Pod"):
        if (p["metadata"].get("labels") or {}).get("app") != "web" or p["metadata"].get("deletionTimestamp"):
            continue
        statuses = (p.get("status") or {}).get("containerStatuses") or [{}]
        out[p["metadata"]["uid"]] = int(statuses[0].get("restartCount") or 0)
    return out


def _kill9_under_load(work: Path, mode: str) -> dict[str, Any]:
    repo = new_repo(work, mode)
    node_port = free_node_port()
    files = {
        "web.yaml": deployment("web", 3, "qinchaowhut/allen:v1", "web", probe=True),
        "svc.yaml": service("web", "web"),
        "np.yaml": service("web-np", "web", node_port),
    }
    commit(repo, files, "web, a ClusterIP and a NodePort")
    d = Daemon(repo, work / "state", mode=mode).start()
    load: Load | None = None
    try:
        wait(lambda: deployment_complete(d, "web", 3), 120, "3 ready replicas", 0.05)
        ip = wait(lambda: cluster_ip(d, "web"), 30, "the ClusterIP")
        targets = [(ip, 80), ("127.0.0.1", node_port)]
        wait(lambda: all(http_get(*t, timeout=1) for t in targets), 30, "both Services to answer", 0.05)
        before = _pods(d)
        load = Load(targets).start()
        time.sleep(1.0)
        d.kill9()
        time.sleep(DOWN)
        t_restart = time.monotonic()
        d.start(wait_applied=False)
        first_pass = time.monotonic() - t_restart
        time.sleep(AFTER)
        load.stop()
        wait(lambda: deployment_complete(d, "web", 3), 60, "3 ready replicas after the restart", 0.05)
        after = _pods(d)
    finally:
        if load is not None:
            load.stop()
        d.stop()
    replaced = len(set(before) - set(after))
    restarted = sum(max(0, after[uid] - n) for uid, n in before.items() if uid in after)
    return {
        "failed": load.failed(),
        "cluster_ip_failed": load.failed(targets[0]),
        "node_port_failed": load.failed(targets[1]),
        "total": load.total(),
        "outage": load.outage(),
        "pods": replaced + restarted,
        "replaced": replaced,
        "restarted": restarted,
        "first_pass": first_pass,
        "errors": load.errors,
    }


def _failures(r: dict[str, Any]) -> str:
    return (
        f"{r['failed']} of {r['total']:,} (ClusterIP {r['cluster_ip_failed']}, NodePort {r['node_port_failed']}),"
        f" outage {r['outage']:.2f} s"
    )


def fig7_kill9_under_load(work: Path, quick: bool) -> list[Row]:
    what = "7 kill -9 of gitship up under load (ClusterIP + NodePort, restart after 1 s)"
    base = _kill9_under_load(work / "f7-host", "host")
    bl_failed = f"{LABEL['host']} (today's): {_failures(base)}"
    bl_pods = f"{LABEL['host']}: {base['pods']}"
    why_not = sandbox_unavailable()
    if why_not is not None:
        return [row(f"{what}: failed requests, {LABEL['sandbox']}", f"skipped: {why_not}", bl_failed)]
    r = _kill9_under_load(work / "f7-sandbox", "sandbox")
    rows = [
        row(f"{what}: failed requests, {LABEL['sandbox']}", _failures(r), bl_failed, "0", r["failed"] == 0),
        row(
            f"{what}: pods restarted or replaced, {LABEL['sandbox']}",
            f"{r['pods']} (replaced {r['replaced']}, restarted {r['restarted']})",
            bl_pods,
            "0",
            r["pods"] == 0,
        ),
        row(
            "7 restart -> the restarted daemon's first pass done (info)",
            f"{r['first_pass'] * 1000:.0f} ms",
            f"{LABEL['host']} {base['first_pass'] * 1000:.0f} ms",
        ),
    ]
    if r["errors"]:
        rows.append(row("7 failed requests, e.g. (info)", "; ".join(r["errors"][:2]).replace("|", "/")))
    return rows
