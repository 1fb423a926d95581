#!/usr/bin/env python3
"""gitship's benchmarks: ``python3 bench/run.py [--quick] [--only N,N] [--no-write]``.

Every figure is measured against a baseline taken in the same run, on this machine, and
printed as a table ``figure | value | baseline | goal | met``; the table, the machine
(nproc, CPU model, Python) and the date are written to bench/RESULTS.md (unless
``--no-write``). Not part of the test suite. See bench/README.md for what each figure
measures and how.

  0  commit detection           git commit returned -> `revision_detected` in reconcile.log
  1  commit to serving          Deployment(3) + Service committed -> every replica answers
                                through the ClusterIP; image change -> all answers v2;
                                sandbox + nftables against host + proxy
  2  planning at scale          load+validate+plan of 1,000 / 10,000 manifests vs PyYAML
                                CSafeLoader; one changed object of 10,000 (warm cache)
  3  Service hop                bench/proxy_bench.py: direct vs nftables vs the Python proxy
  4  rollout under load         failed requests during a rolling update of 10 replicas (default
                                mode: sandbox + nftables as root)
  5  pod start to Ready         in-process runtime, host and sandbox mode (no probe / httpGet
                                probe); Docker
  6  footprint                  gitship's RSS and CPU, idle, with 100 pods
  7  kill -9 under load         failed requests through a ClusterIP and a NodePort while the
                                daemon is killed and restarted; pods restarted
  8  configuration in pods      pod start to Ready with configMap + secret + emptyDir volumes vs
                                none (sandbox); SOPS decryption per file vs CSafeLoader; one key
                                of a 1,000-key ConfigMap changed -> the pod's file vs a 1-key one

``--quick`` runs fewer repetitions (a few minutes in all).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# the figures import gitship (ROOT on sys.path, above)
from bench.common import Row, row  # noqa: E402
from bench.figures_daemon import (  # noqa: E402
    fig0_commit_detection,
    fig1_commit_to_serving,
    fig4_rollout_under_load,
    fig6_footprint,
)
from bench.figures_config import fig8_config  # noqa: E402
from bench.figures_crash import fig7_kill9_under_load  # noqa: E402
from bench.figures_ingress import fig9_ingress  # noqa: E402
from bench.figures_kubectl import fig10_kubectl  # noqa: E402
from bench.figures_load import fig2_planning  # noqa: E402
from bench.figures_runtime import fig3_proxy, fig5_pod_start  # noqa: E402
from bench.figures_swarm import fig12_swarm  # noqa: E402
from bench.figures_web import fig11_web  # noqa: E402


# --------------------------------------------------------------------------- main

FIGURES = [
    fig0_commit_detection,
    fig1_commit_to_serving,
    fig2_planning,
    fig3_proxy,
    fig4_rollout_under_load,
    fig5_pod_start,
    fig6_footprint,
    fig7_kill9_under_load,
    fig8_config,
    fig9_ingress,
    fig10_kubectl,
    fig11_web,
    fig12_swarm,
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
    ap.add_argument("--only", help="comma-separated figure numbers (0-12)")
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
        old = (ROOT / "bench" / "RESULTS.md").read_text() if (ROOT / "bench" / "RESULTS.md").exists() else ""
        kept = old.find("\n## ")  # sections other tools add (bench/scale.py, bench/soak.py) are kept
        (ROOT / "bench" / "RESULTS.md").write_text(out + (old[kept:] if kept >= 0 else ""))
    return 0 if all(r["met"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
