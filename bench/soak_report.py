"""bench/soak.py's section of bench/RESULTS.md: the run's figures and each check met or not."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from bench.common import ROOT, replace_section

HEADING = "## Soak (bench/soak.py)"


def lines(r: dict[str, Any], v: dict[str, bool], cmd: str) -> list[str]:
    runtime = r["runtime"] + (f", {r['mode']} pods" if r["runtime"] == "inprocess" else ", the soak's own dockerd")
    out = [
        HEADING,
        "",
        f"`{cmd}`",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} CPUs (shared); "
        f"{r['minutes']} minutes, seed {r['seed']}; runtime {runtime}; load through {' and '.join(r['paths'])}",
        f"- actions: {json.dumps(r['actions'])}",
    ]
    for p in r["paths"]:
        f = r["failed"][p]
        out.append(
            f"- {p}: {r['requests_ok'][p]:,} requests answered, {f['total']} failed: {f['daemon kill']} in the "
            f"daemon's kill -9 windows, {f['engine kill']} in the engine's, {f['pod kill']} within 3 s of a pod's "
            f"kill -9, **{f['unexplained']} unexplained**"
        )
    if r.get("engine_outages_s"):
        out.append(f"- the engine's kill -9 to 3 replicas ready again (s): {r['engine_outages_s']}")
    for u in r["unexplained"][:10]:
        out.append(
            f"  - unexplained at {u['t']} s: {u['path']} {u['kind']} ({u['detail']}), "
            f"sent to {u.get('sent_to') or '?'}, last pod {u['last_pod']}, "
            f"{u['since']} s after {u['nearest']} (last kill: {u.get('last_kill') or 'none'})"
        )
    out += [
        f"- RSS {r['rss_after_warmup_mb']} MB after warm-up -> {r['rss_end_mb']} MB ({r['rss_growth_pct']:+} %); "
        f"fds {r['fds_after_warmup']} -> {r['fds_end']}",
        "- left behind: " + ", ".join(f"{k} {len(x)}" for k, x in r["leaks"].items()),
        "",
        "| check | met |",
        "|---|---|",
        *[f"| {k} | {'yes' if ok else '**NO**'} |" for k, ok in v.items()],
        "",
    ]
    return out


def write_results(r: dict[str, Any], v: dict[str, bool], cmd: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# gitship benchmark results\n"
    path.write_text(replace_section(text, HEADING, "\n".join(lines(r, v, cmd))))
