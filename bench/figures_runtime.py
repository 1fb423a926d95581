"""Figures 3 and 5 of bench/run.py: the service proxy and pod start to Ready on each runtime."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import BENCH, MODES, ROOT, Row, free_ranges, ms, pct, ready, row, sandbox_unavailable

# --------------------------------------------------------------------------- 3. service proxy


def _hop_rows(by: dict[str, dict], prefix: str, path: str, scen: str, label: str) -> list[Row]:
    """Two rows for one path and scenario of bench/proxy_bench.py: requests/s with latencies against
    direct's, and the ratio (with its goal, if the path has one)."""
    d, p = f"{prefix}{scen} direct", f"{prefix}{scen} {path}"
    if f"{p} requests/s" not in by:
        return []

    def lat(key: str) -> str:
        rps, p50, p99 = (by[f"{key} {what}"]["value"] for what in ("requests/s", "p50 latency us", "p99 latency us"))
        return f"{rps} ({p50} / {p99} us)"

    ratio = by[f"{prefix}{scen} {path}/direct throughput ratio"]
    return [
        row(f"3 {label} {scen} requests/s (p50 / p99 latency)", lat(p), f"direct {lat(d)}"),
        row(f"3 {label}/direct throughput, {scen}", ratio["value"], "1.0", ratio["goal"] or "", ratio["met"]),
    ]


def fig3_proxy(work: Path, quick: bool) -> list[Row]:
    """The Service hop (bench/proxy_bench.py): to a pod in a network namespace through a ClusterIP on the
    nftables data plane (and, informative, through the Python proxy), against the same load direct to
    the pod; then today's loopback layout, direct vs through the proxy. The paths take turns."""
    from bench import proxy_bench

    by = {r["figure"]: r for r in proxy_bench.run(1.0 if quick else 3.0)}
    out = []
    if "nftables skipped" in by:
        out.append(row("3 Service hop through nftables", f"skipped: {by['nftables skipped']['value']}"))
    for scen in ("keep-alive", "new-connection"):
        out += _hop_rows(by, "", "nftables", scen, "nftables")
    for scen in ("keep-alive", "new-connection"):
        out += _hop_rows(by, "", "proxy", scen, "proxy (pod in a namespace)")
    for scen in ("keep-alive", "new-connection"):
        out += _hop_rows(by, "loopback ", "proxy", scen, "proxy (loopback, today's layout)")
    return out


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


def _inprocess_runtime(work: Path, mode: str, probe: bool) -> tuple[Any, Any]:
    """An InProcessRuntime of the bench's own for ``mode``, and its clean-up (also after a failure).

    Both modes run bench/kubia_host.py (it binds POD_IP, which works with and without a sandbox), so
    the two differ only in the sandbox. Sandbox mode: a bridge and ranges of the bench's own, the
    Service range local to the host as the daemon routes it."""
    from runtime.inprocess import InProcessRuntime
    from runtime.inprocess.sandbox import sweep
    from runtime.net.bridge import teardown_host_network

    # a gitship.yaml `images:` entry, as RepoConfig.images holds it
    rules = [
        {
            "image": "qinchaowhut/allen:*",
            "command": [sys.executable, str(BENCH / "kubia_host.py")],
            "workingDir": None,
            "env": {},
        }
    ]
    state = str(work / f"f5-{mode}-{probe}")
    if mode == "host":
        rt = InProcessRuntime(state, rules, repo_dir=str(ROOT), pod_cidr="127.201.0.0/24", isolation="host")
        return rt, lambda: sweep(state) if os.path.isdir(state) else None
    pod_cidr, service_cidr = free_ranges()
    bridge = "gsb" + uuid.uuid4().hex[:9]
    rt = InProcessRuntime(
        state,
        rules,
        repo_dir=str(ROOT),
        pod_cidr=pod_cidr,
        isolation="sandbox",
        bridge=bridge,
        service_cidr=service_cidr,
        service_route="local",
    )

    def cleanup() -> None:
        if os.path.isdir(state):
            sweep(state)
        teardown_host_network(bridge, service_cidr)

    return rt, cleanup


def fig5_pod_start(work: Path, quick: bool) -> list[Row]:
    n = 20 if quick else 100
    rows: list[Row] = []
    base = []
    for _ in range(20):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"])
        base.append(time.perf_counter() - t0)
    bl = f"python3 -c pass p99 {ms(pct(base, 99))}"
    why_not = sandbox_unavailable()
    p99s: dict[tuple[str, bool], float] = {}
    for mode in MODES:
        if mode == "sandbox" and why_not is not None:
            rows.append(row("5 in-process pod start -> Ready, sandbox", f"skipped: {why_not}"))
            continue
        for probe in (False, True):
            rt, cleanup = _inprocess_runtime(work, mode, probe)
            try:
                lat = asyncio.run(_starts(rt, n, probe))
            finally:
                cleanup()
            what = "httpGet readiness probe" if probe else "no readiness probe"
            p99 = p99s[mode, probe] = pct(lat, 99)
            host = p99s.get(("host", probe))
            rows.append(
                row(
                    f"5 in-process pod start -> Ready, {mode} mode, {what}, p50 ({n} starts)",
                    ms(pct(lat, 50)),
                    f"python3 -c pass p50 {ms(statistics.median(base))}",
                )
            )
            rows.append(
                row(
                    f"5 in-process pod start -> Ready, {mode} mode, {what}, p99",
                    ms(p99) + (f" ({p99 / host:.2f}x host mode)" if mode != "host" and host else ""),
                    bl,
                    "< 300 ms",
                    p99 < 0.3,
                )
            )
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
