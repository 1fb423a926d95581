#!/usr/bin/env python3
"""How gitship's cost grows with its work (issue 20 item 1): ``python3 bench/scale.py [--sizes 10,100,1000]
[--idle 20] [--no-write]``.

One `gitship up` (in-process runtime, host isolation: the cheapest pods, ``busybox sleep`` run as
the host's ``sleep``) with its Kubernetes API on a loopback port; a Deployment scaled to each size in
turn. At each size, once every pod is Ready and the daemon has settled:

- RSS (VmRSS) of the daemon, and idle CPU over ``--idle`` seconds (% of one core);
- a one-line change (a ConfigMap value) committed -> ``revision_applied`` in reconcile.log (end to
  end), and that event's own ``duration_ms`` (load + validate + plan + hand-over: the apply pass);
- `gitship get pods` (CLI start included; baseline `python3 -c pass`) and `kubectl get pods`
  (baseline `kubectl version --client`), medians of 3;
- the web view's server time of ``/`` and ``/objects`` (request to last byte over loopback, logged
  in with a one-time token like bench/figures_web.py), medians of 3.

Each figure's growth is the exponent of a least-squares fit of log(value) on log(pods) (1 = linear).
The table goes into bench/RESULTS.md, section "Scale", with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Daemon, commit, new_repo, proc_cpu_seconds, proc_rss_kib, ready, replace_section, wait  # noqa: E402

KUBECTL = str(Path(sys.executable).parent / "kubectl")

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: idle}}
spec:
  replicas: {n}
  selector: {{matchLabels: {{app: idle}}}}
  template:
    metadata: {{labels: {{app: idle}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{{name: c, image: busybox, command: [sleep, "100000"]}}]
"""
CONFIGMAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: knob}}\ndata:\n  value: "{v}"\n'


def _median_run(argv: list[str], n: int = 3, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env, cwd=str(ROOT), timeout=300)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _applied_event(log_path: Path, offset: int, sha: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        for line in chunk.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("sha") == sha and ev.get("event") in ("revision_applied", "revision_rejected"):
                return dict(ev)
        time.sleep(0.002)
    raise TimeoutError(f"{sha[:7]} never applied")


def _ts(ev: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(ev["timestamp"]).replace("Z", "+00:00")).timestamp()


def measure(d: Daemon, repo: Path, n: int, idle: float, k: int) -> dict[str, float]:
    sha, _ = commit(repo, {"idle.yaml": DEPLOYMENT.format(n=n)}, f"scale to {n}")
    t0 = time.monotonic()
    wait(lambda: sum(1 for p in d.objects("Pod") if ready(p)) >= n, 120 + n * 0.5, f"{n} pods ready", 0.5)
    start_s = time.monotonic() - t0
    time.sleep(5)  # settle: probes, status writes
    c0, w0 = proc_cpu_seconds(d.pid), time.monotonic()
    time.sleep(idle)
    cpu = (proc_cpu_seconds(d.pid) - c0) / (time.monotonic() - w0) * 100
    rss = proc_rss_kib(d.pid) / 1024
    log_path = Path(d.state_dir, "reconcile.log")
    e2e, apply_ms = [], []
    for i in range(k):
        offset = log_path.stat().st_size
        sha, t_commit = commit(repo, {"knob.yaml": CONFIGMAP.format(v=f"{n}-{i}")}, f"knob {n}-{i}")
        ev = _applied_event(log_path, offset, sha, 60)
        e2e.append(_ts(ev) - t_commit)
        apply_ms.append(float(ev.get("duration_ms", 0)))
        time.sleep(0.3)
    env = {**os.environ, "GITSHIP_STATE_DIR": d.state_dir}
    gitship_get = _median_run([sys.executable, "-m", "reconciler.cli", "get", "pods"], env=env)
    kube = {**os.environ, "KUBECONFIG": os.path.join(d.state_dir, "kubeconfig")}
    kubectl_get = _median_run([KUBECTL, "get", "pods"], env=kube) if os.access(KUBECTL, os.X_OK) else float("nan")
    web = web_times(d)
    return {
        "pods": n,
        "start_s": start_s,
        "rss_mb": rss,
        "idle_cpu_pct": cpu,
        "commit_to_applied_ms": statistics.median(e2e) * 1000,
        "apply_pass_ms": statistics.median(apply_ms),
        "gitship_get_ms": gitship_get * 1000,
        "kubectl_get_ms": kubectl_get * 1000,
        "web_index_ms": web["/"] * 1000,
        "web_objects_ms": web["/objects"] * 1000,
    }


def web_times(d: Daemon, runs: int = 3) -> dict[str, float]:
    """The web view's pages, server time (median of ``runs``) with a logged-in session."""
    import http.cookiejar
    import urllib.request

    from reconciler.web.auth import issue_token

    url = str((d.meta("web") or {}).get("url") or "")
    if not url:
        return {"/": float("nan"), "/objects": float("nan")}
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    opener.open(f"{url}/login?token={issue_token(d.state_dir)}", timeout=30).read()
    out = {}
    for page in ("/", "/objects"):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            with opener.open(url + page, timeout=60) as r:
                r.read()
            times.append(time.perf_counter() - t0)
        out[page] = statistics.median(times)
    return out


def exponent(xs: list[float], ys: list[float]) -> float:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0 and not math.isnan(y)]
    if len(pts) < 2:
        return float("nan")
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    num = sum((x - mx) * (y - my) for x, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return num / den


FIGURES = [
    ("rss_mb", "gitship RSS (MB)", "< 150 MB at 1,000", lambda r: r["rss_mb"] < 150),
    ("idle_cpu_pct", "idle CPU (% of a core)", "< 2 % at 1,000", lambda r: r["idle_cpu_pct"] < 2),
    ("commit_to_applied_ms", "one-line change: commit -> applied (ms)", "< 100 ms at 1,000",
     lambda r: r["commit_to_applied_ms"] < 100),
    ("rss_extra_mb", "  RSS above the 0-pod daemon (MB)", "", None),
    ("cpu_extra_pct", "  idle CPU above the 0-pod daemon (%)", "", None),
    ("apply_pass_ms", "apply pass (load+validate+plan) (ms)", "", None),
    ("gitship_get_ms", "`gitship get pods` (ms)", "", None),
    ("kubectl_get_ms", "`kubectl get pods` (ms)", "", None),
    ("web_index_ms", "web view `/`, server time (ms)", "", None),
    ("web_objects_ms", "web view `/objects`, server time (ms)", "", None),
    ("start_s", "scale-up to all Ready (s)", "", None),
]  # fmt: skip


def table(results: list[dict[str, float]], baselines: dict[str, float]) -> list[str]:
    sizes = [r["pods"] for r in results]
    head = "| figure | " + " | ".join(f"{int(s):,} pods" for s in sizes) + " | growth exponent | goal | met |"
    lines = [head, "|" + "---|" * (len(sizes) + 4)]
    at1000 = next((r for r in results if r["pods"] == 1000), None)
    for key, name, goal, check in FIGURES:
        vals = [r[key] for r in results]
        e = exponent(sizes, vals)
        met = "" if check is None or at1000 is None else ("yes" if check(at1000) else "**NO**")
        cells = " | ".join(f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in vals)
        growth = "n/a" if math.isnan(e) else f"{e:.2f} ({'<= linear' if e <= 1.1 else '**worse than linear**'})"
        lines.append(f"| {name} | {cells} | {growth} | {goal} | {met} |")
    lines.append("")
    lines.append("Baselines in the same run: " + ", ".join(f"{k} {v:.1f}" for k, v in baselines.items()))
    return lines


def write_results(lines: list[str], cmd: str, took: float) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# gitship benchmark results\n"
    cpu = ""
    with open("/proc/cpuinfo") as f:
        m = re.search(r"model name\s*:\s*(.*)", f.read())
        cpu = m.group(1) if m else ""
    section = [
        "## Scale (bench/scale.py)",
        "",
        f"`{cmd}` ({took:.0f} s)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, {cpu}, {platform.system()} {platform.release()} (shared with other jobs)",
        f"- Python {platform.python_version()}; in-process runtime, host isolation, `busybox sleep` pods",
        "",
        *lines,
        "",
    ]
    path.write_text(replace_section(text, "## Scale (bench/scale.py)", "\n".join(section)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument(
        "--idle", type=float, default=60.0, help="seconds of idle CPU per size (an idle daemon passes every 10 s)"
    )
    ap.add_argument("--changes", type=int, default=5, help="one-line changes per size (median)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    t_start = time.monotonic()
    baselines = {
        "python3 -c pass (ms)": _median_run([sys.executable, "-c", "pass"]) * 1000,
    }
    if os.access(KUBECTL, os.X_OK):
        baselines["kubectl version --client (ms)"] = _median_run([KUBECTL, "version", "--client"]) * 1000
    results = []
    with tempfile.TemporaryDirectory(prefix="gitship-scale-") as tmp:
        repo = new_repo(Path(tmp), "host")
        commit(repo, {"knob.yaml": CONFIGMAP.format(v="0")}, "knob")
        apis = ["--api-addr", "127.0.0.1:0", "--web-addr", "127.0.0.1:0"]
        d = Daemon(repo, Path(tmp) / "state", extra=apis, mode="host").start()
        try:
            time.sleep(3)
            c0, w0 = proc_cpu_seconds(d.pid), time.monotonic()
            time.sleep(min(args.idle, 10))
            baselines["idle CPU at 0 pods (%)"] = (proc_cpu_seconds(d.pid) - c0) / (time.monotonic() - w0) * 100
            baselines["RSS at 0 pods (MB)"] = proc_rss_kib(d.pid) / 1024
            for n in sizes:
                r = measure(d, repo, n, args.idle, args.changes)
                print(json.dumps(r), flush=True)
                results.append(r)
            commit(repo, {"idle.yaml": None}, "scale down")
            wait(lambda: not d.objects("Pod"), 300, "pods gone", 0.5)
        finally:
            d.stop()
    for r in results:  # the marginal cost: the growth exponent of what the pods add
        r["rss_extra_mb"] = r["rss_mb"] - baselines["RSS at 0 pods (MB)"]
        r["cpu_extra_pct"] = r["idle_cpu_pct"] - baselines["idle CPU at 0 pods (%)"]
    lines = table(results, baselines)
    print("\n".join(lines))
    if not args.no_write:
        cmd = "python3 bench/scale.py " + " ".join(sys.argv[1:])
        write_results(lines, cmd.strip(), time.monotonic() - t_start)


if __name__ == "__main__":
    main()
