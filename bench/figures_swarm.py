"""The Swarm runtime's figures, on the 3-node test bed (tests/swarmlab.py): ``python -m bench.figures_swarm``.

Needs root (it builds the lab); about 90 s. Appends its table to bench/RESULTS.md.

* S1 commit -> N replicas serving through a ClusterIP over 3 nodes: from the commit of a
  Deployment of N replicas (readiness probe every 1 s) to N distinct pods answering through the
  ClusterIP from this host; against Swarm's own ``docker service create --replicas N`` to N tasks
  running, measured in the same lab.
* S2 a worker killed (SIGKILL of its dockerd) under load through the NodePort on a surviving
  node (the manager's address; a new connection every 10 ms, 2 s timeout): failed requests, and
  seconds until the Deployment is back at N available replicas; against the time a plain Swarm
  service of N replicas, running beside it, has N tasks running again on the other nodes.
* S3 memory and CPU: gitship's RSS and CPU seconds over the run, beside the nodes' dockerd +
  containerd RSS.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Row, http_get, proc_cpu_seconds, proc_rss_kib, row, wait
from tests.conftest import Gitship, commit_file, git, pod_ready
from tests.dockerimages import docker_client_or_skip, ensure_test_images
from tests.integration.test_docker_e2e import deployment, nodeport_service
from tests.swarmlab import SwarmLab, missing_reason

N = 6
V1 = "gitship-test/kubia:v1"
CLUSTERIP = """apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: kubia}
  ports:
  - port: 80
    targetPort: 8080
"""


def free_ranges() -> tuple[str, str]:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    nets = [ipaddress.ip_network(w.split()[0], strict=False) for w in out.splitlines() if w.split()[0][0].isdigit()]
    for _ in range(100):
        x = 160 + secrets.randbelow(40)
        if not any(n.prefixlen and n.overlaps(ipaddress.ip_network(f"10.{x}.0.0/16")) for n in nets):
            return f"10.{x}.0.0/16", f"10.{x}.128.0/17"
    raise RuntimeError("no free range")


def ready_pods(gs: Gitship) -> list[dict[str, Any]]:
    return [p for p in gs.pods("app=kubia") if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]


def swarm_running(lab: SwarmLab, service: str, avoid: str = "") -> int:
    out = lab.docker(
        1, "service", "ps", service, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"
    )
    return sum(1 for line in out.splitlines() if line.split()[1:2] == ["Running"] and line.split()[0] != avoid)


def node_rss_mib(lab: SwarmLab) -> float:
    total = 0
    for i in range(1, lab.nodes + 1):
        pid = lab.pid(i)
        if pid is None:
            continue
        total += proc_rss_kib(pid)
        kids = subprocess.run(["pgrep", "-P", str(pid), "-x", "containerd"], capture_output=True, text=True).stdout
        total += sum(proc_rss_kib(int(k)) for k in kids.split())
    return total / 1024


def run(base: Path) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    client = docker_client_or_skip()
    ensure_test_images(client)
    from runtime.docker.common import PAUSE_IMAGE
    from runtime.swarm.gateway import ensure_pause_image

    ensure_pause_image(client.api)
    lab = SwarmLab(base / "lab").up()
    gs = None
    try:
        lab.load_image(V1, PAUSE_IMAGE)
        repo = base / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.email", "b@example.com")
        git(repo, "config", "user.name", "bench")
        node_port = 30000 + secrets.randbelow(2000)
        commit_file(repo, "svc.yaml", CLUSTERIP, "web")
        commit_file(repo, "np.yaml", nodeport_service("web-np", node_port), "nodeport")
        pod_cidr, svc_cidr = free_ranges()
        args = ["--runtime", "swarm", "--docker-host", lab.manager, "--pod-cidr", pod_cidr]
        gs = Gitship(repo, base / "state", args + ["--service-cidr", svc_cidr, "--api-addr", "none"]).start()
        assert gs.proc is not None
        cpu0 = proc_cpu_seconds(gs.proc.pid)
        cip = gs.json("get", "svc", "web")["spec"]["clusterIP"]

        # S1: commit -> N serving through the ClusterIP
        t0 = time.monotonic()
        commit_file(repo, "deploy.yaml", deployment(replicas=N), f"kubia x{N}")
        seen: set[str] = set()

        def serving() -> bool:
            try:
                seen.add(http_get(cip, 80, timeout=1).split()[-1])
            except OSError:
                pass
            return len(seen) >= N

        wait(serving, 120, "N pods answering")
        s1 = time.monotonic() - t0
        spread = Counter(p["status"]["nominatedNodeName"] for p in ready_pods(gs))
        t0 = time.monotonic()
        lab.docker(1, "service", "create", "-d", "-q", "--name", "plain", "--replicas", str(N), "--restart-delay", "1s",
                   "--endpoint-mode", "dnsrr", "--init", V1)  # fmt: skip
        wait(lambda: swarm_running(lab, "plain") == N, 120, "plain service running")
        b1 = time.monotonic() - t0
        rows.append((f"S1 commit -> {N} replicas serving via ClusterIP over 3 nodes ({dict(spread)})",
                     f"{s1:.2f} s", f"docker service create --replicas {N} -> running {b1:.2f} s"))  # fmt: skip

        # S2: a worker killed under load through the NodePort of a surviving node (node1)
        busy = Counter(
            p["status"]["nominatedNodeName"] for p in ready_pods(gs) if p["status"]["nominatedNodeName"] != "node1"
        )
        victim = busy.most_common(1)[0][0]
        stop = threading.Event()
        counts = Counter()

        def load() -> None:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    http_get(lab.addr(1), node_port, timeout=2)
                    counts["ok"] += 1
                except OSError:
                    counts["failed"] += 1
                time.sleep(max(0.0, 0.01 - (time.monotonic() - t)))

        dead_ips = {p["status"]["podIP"] for p in ready_pods(gs) if p["status"]["nominatedNodeName"] == victim}
        th = threading.Thread(target=load, daemon=True)
        th.start()
        time.sleep(1)
        t0 = time.monotonic()
        lab.kill(int(victim.removeprefix("node")))
        times: dict[str, float] = {}

        def recovered() -> bool:
            if "endpoints" not in times:
                subsets = gs.json("get", "ep", "web").get("subsets") or [{}]  # type: ignore[union-attr]
                if not {a["ip"] for a in subsets[0].get("addresses") or []} & dead_ips:
                    times["endpoints"] = time.monotonic() - t0
            if "swarm" not in times and swarm_running(lab, "plain", avoid=victim) == N:
                times["swarm"] = time.monotonic() - t0
            if "gitship" not in times:
                pods = ready_pods(gs)  # type: ignore[arg-type]
                if len(pods) == N and all(p["status"]["nominatedNodeName"] != victim for p in pods):
                    times["gitship"] = time.monotonic() - t0
            return len(times) == 3

        wait(recovered, 120, "both back at N", interval=0.2)
        time.sleep(2)
        stop.set()
        th.join()
        rows.append((f"S2 {victim} killed under load via NodePort on node1: failed requests",
                     f"{counts['failed']} of {counts['ok'] + counts['failed']}", ""))  # fmt: skip
        rows.append((f"S2 {victim} killed: seconds until the Service stops sending to its pods",
                     f"{times['endpoints']:.1f} s", "Swarm dispatcher heartbeat 1 s"))  # fmt: skip
        rows.append((f"S2 {victim} killed: seconds to {N} available replicas again", f"{times['gitship']:.1f} s",
                     f"Swarm's own reschedule of a {N}-replica service {times['swarm']:.1f} s"))  # fmt: skip

        # S3: memory and CPU
        rss = proc_rss_kib(gs.proc.pid) / 1024
        cpu = proc_cpu_seconds(gs.proc.pid) - cpu0
        rows.append((f"S3 gitship RSS / CPU seconds over the run ({N} pods, 3 nodes)", f"{rss:.0f} MiB / {cpu:.1f} s",
                     f"nodes' dockerd + containerd RSS {node_rss_mib(lab):.0f} MiB (2 nodes up)"))  # fmt: skip
    finally:
        if gs is not None:
            gs.stop()
        left = lab.down()
        if left:
            print(f"left behind: {left}", file=sys.stderr)
    return rows


def fig12_swarm(tmp: Path, quick: bool) -> list[Row]:
    """Figure 12 in bench/run.py: the same rows, or one saying why the Swarm lab cannot start here."""
    why = missing_reason()
    if why:
        return [row("12 Swarm runtime", f"skipped: {why}")]
    return [row(f"12 {a}", b, c) for a, b, c in run(tmp)]


def main() -> int:
    why = missing_reason()
    if why:
        print(why, file=sys.stderr)
        return 1
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gitship-bench-swarm-") as d:
        rows = run(Path(d))
    lines = ["| figure | value | baseline |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    print("\n".join(lines))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"\n## Swarm runtime (`python -m bench.figures_swarm`, {when})\n\n" + "\n".join(lines) + "\n"
    with open(Path(__file__).with_name("RESULTS.md"), "a", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
