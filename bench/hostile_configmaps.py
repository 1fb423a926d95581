#!/usr/bin/env python3
"""1,000 ConfigMaps of 1 MiB (issue 20 item 4): ``python3 bench/hostile_configmaps.py [--count 1000]
[--batches 4] [--no-write]``. Not in the test suite: it commits 1 GiB to git.

One `gitship up` (in-process runtime; pod sandboxes when root, else host isolation and no volume
mount), its repository given ``--count`` ConfigMaps whose data is exactly Kubernetes' limit (1 MiB:
its value 1,048,576 bytes of random text, ``core.MaxSecretSize``), committed in ``--batches`` commits. Measured:

- each commit -> applied (``lastAppliedRevision`` in the store), -> its ConfigMaps in the store's
  live objects, and the daemon's RSS after it; then a one-line change beside them, five times;
- `gitship get pods` run in a loop meanwhile: every answer, and its slowest;
- the daemon's peak RSS (VmHWM), its RSS once settled, the store's size, the repository's .git size;
- a pod mounting one of the ConfigMaps (a 1 MiB file) starts and reads it (sandboxes only);
- one more ConfigMap of 1 MiB + 1 byte: rejected naming the file, the document and the field, in
  how long; nothing of that commit applied; then reverted.

Writes its section of bench/RESULTS.md ("### 1,000 ConfigMaps of 1 MiB", inside the hostile section).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Daemon, git, new_repo, proc_rss_kib, ready, wait  # noqa: E402

LIMIT = 1048576  # core.MaxSecretSize
HEADING = "### 1,000 ConfigMaps of 1 MiB"

POD = """apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "100000"]
    volumeMounts: [{{name: cfg, mountPath: {mount}}}]
  volumes: [{{name: cfg, configMap: {{name: cm0000}}}}]
"""


def configmap(name: str, size: int, seed: int = 0) -> str:
    """A ConfigMap whose one value is ``size`` bytes of random base64 text (what Kubernetes counts:
    the values, not the keys); random, so git and the store hold it all."""
    rnd = random.Random(seed)
    value = base64.b64encode(rnd.randbytes(size * 3 // 4 + 3)).decode()[:size]
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  k: {value}\n"


def du(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


class GetPods(threading.Thread):
    """`gitship get pods` in a loop until stopped: each run's time and whether it answered."""

    def __init__(self, state_dir: str):
        super().__init__(daemon=True)
        self.env = {**os.environ, "GITSHIP_STATE_DIR": state_dir}
        self.times: list[float] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            t0 = time.monotonic()
            p = subprocess.run(
                [sys.executable, "-m", "reconciler.cli", "get", "pods"],
                capture_output=True,
                text=True,
                env=self.env,
                cwd=str(ROOT),
                timeout=120,
            )
            self.times.append(time.monotonic() - t0)
            if p.returncode != 0:
                self.failures.append(p.stderr.strip()[-300:])
            self.halt.wait(0.2)


def stored(d: Daemon) -> int:
    """ConfigMaps in the store's live objects (written after the revision is marked applied)."""
    return int(d.db().execute("SELECT count(*) FROM cluster WHERE kind='ConfigMap'").fetchone()[0])


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def wait_applied(d: Daemon, sha: str, timeout: float) -> float:
    t0 = time.monotonic()
    wait(lambda: d.meta("lastAttemptedRevision") == sha, timeout, f"revision {sha[:7]}", 0.05)
    result = (d.meta("lastAttemptedResult") or {}).get("result")
    if result != "applied":
        raise RuntimeError(f"revision {sha[:7]}: {result}: {(d.meta('ready') or {}).get('message', '')[:500]}")
    return time.monotonic() - t0


def run(count: int, batches: int, tmp: Path) -> dict[str, Any]:
    mode = "sandbox" if os.geteuid() == 0 else "host"
    repo = new_repo(tmp, mode)
    d = Daemon(repo, tmp / "state", mode=mode).start()
    out: dict[str, Any] = {"mode": mode, "count": count, "batches": []}
    getter = GetPods(d.state_dir)
    try:
        out["rss_start_mb"] = proc_rss_kib(d.pid) / 1024
        (repo / "cms").mkdir()
        getter.start()
        per = (count + batches - 1) // batches
        for b in range(batches):
            names = range(b * per, min(count, (b + 1) * per))
            if not names:
                break
            t_write = time.monotonic()
            for i in names:
                (repo / "cms" / f"cm{i:04}.yaml").write_text(configmap(f"cm{i:04}", LIMIT, i))
            sha = commit_all(repo, f"{len(names)} ConfigMaps of 1 MiB")
            git_s = time.monotonic() - t_write
            applied_s = wait_applied(d, sha, 900)
            t_applied = time.monotonic()
            want = names[-1] + 1
            wait(lambda: stored(d) >= want, 900, "the ConfigMaps in the store", 0.1)  # noqa: B023
            out["batches"].append(
                {
                    "n": len(names),
                    "git_s": git_s,
                    "applied_s": applied_s,
                    "stored_s": applied_s + time.monotonic() - t_applied,
                    "rss_mb": proc_rss_kib(d.pid) / 1024,
                }
            )
            print(f"batch {b}: {out['batches'][-1]}", flush=True)
        out["live_configmaps"] = stored(d)
        out["small"] = []
        for k in range(5):  # a one-line change beside them, five times: time and RSS must not climb
            knob = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: knob}}\ndata: {{v: '{k}'}}\n"
            (repo / "knob.yaml").write_text(knob)
            sha = commit_all(repo, f"one line ({k})")
            out["small"].append((wait_applied(d, sha, 900), proc_rss_kib(d.pid) / 1024))
            print(f"one-line change {k}: {out['small'][-1]}", flush=True)
        time.sleep(5)  # settle (a bench, not a test)
        out["rss_settled_mb"] = proc_rss_kib(d.pid) / 1024
        out["hwm_mb"] = proc_rss_kib(d.pid, "VmHWM") / 1024
        out["store_mb"] = (
            sum(
                os.path.getsize(os.path.join(d.state_dir, f))
                for f in os.listdir(d.state_dir)
                if f.startswith("gitship.db")
            )
            / 2**20
        )
        out["state_mb"] = du(d.state_dir) / 2**20
        out["git_mb"] = du(str(repo / ".git")) / 2**20
        if mode == "sandbox":
            mount = tmp / "mnt" / "cfg"
            (repo / "reader.yaml").write_text(POD.format(mount=mount))
            t0 = time.monotonic()
            sha = commit_all(repo, "a pod mounts cm0000")
            wait_applied(d, sha, 300)
            pod = wait(lambda: [p for p in d.objects("Pod") if ready(p)], 120, "the reader ready", 0.05)[0]
            out["pod_ready_s"] = time.monotonic() - t0
            uid = pod["metadata"]["uid"]
            f = next(Path(d.state_dir).glob(f"**/volumes/{uid}/cfg/k"))
            out["pod_file_bytes"] = f.stat().st_size
        out.update(over_limit(d, repo))
    finally:
        getter.halt.set()
        getter.join(150)
        d.stop()
    out["get_pods"] = {
        "runs": len(getter.times),
        "failures": getter.failures,
        "median_s": statistics.median(getter.times) if getter.times else None,
        "max_s": max(getter.times) if getter.times else None,
    }
    return out


def over_limit(d: Daemon, repo: Path) -> dict[str, Any]:
    """A ConfigMap of 1 MiB + 1 byte, as the second document of its file: rejected, nothing applied."""
    applied = d.meta("lastAppliedRevision")
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {a: b}\n---\n"
    (repo / "over.yaml").write_text(doc + configmap("over", LIMIT + 1))
    t0 = time.monotonic()
    sha = commit_all(repo, "one ConfigMap over the limit")
    wait(lambda: d.meta("lastAttemptedRevision") == sha, 300, "the rejection", 0.05)
    elapsed = time.monotonic() - t0
    result = d.meta("lastAttemptedResult") or {}
    message = str((d.meta("ready") or {}).get("message", ""))
    names = {o["metadata"]["name"] for o in d.objects("ConfigMap")}
    res = {
        "over_result": result.get("result"),
        "over_message": message[:400],
        "over_s": elapsed,
        "over_nothing_applied": d.meta("lastAppliedRevision") == applied and not {"fine", "over"} & names,
    }
    os.unlink(repo / "over.yaml")
    wait_applied(d, commit_all(repo, "revert the over-limit ConfigMap"), 300)
    return res


def section(r: dict[str, Any], when: str) -> str:
    rows = "\n".join(
        f"| {i + 1} | {b['n']} | {b['git_s']:.1f} s | {b['applied_s']:.1f} s | {b['stored_s']:.1f} s"
        f" | {b['rss_mb']:.0f} MB |"
        for i, b in enumerate(r["batches"])
    )
    gp = r["get_pods"]
    mib = sum(b["n"] for b in r["batches"]) * LIMIT / 2**20

    def per(mb: float) -> str:
        return f"{mb / mib:.2f} MB"

    lines = [
        HEADING,
        "",
        f"`python3 bench/hostile_configmaps.py --count {r['count']} --batches {len(r['batches'])}` ({when};"
        f" {os.cpu_count()} CPUs, shared; Python {platform.python_version()}; mode {r['mode']}). Each ConfigMap's"
        f" value is exactly the limit ({LIMIT:,} bytes of random base64 text: git and the store hold it all).",
        "",
        "| commit | ConfigMaps | write + git commit | commit -> applied | commit -> in the store | daemon RSS after |",
        "|---|---|---|---|---|---|",
        rows,
        "",
        f"- live ConfigMaps: {r['live_configmaps']:,}; daemon RSS at start {r['rss_start_mb']:.0f} MB, settled"
        f" {r['rss_settled_mb']:.0f} MB, peak (VmHWM) {r['hwm_mb']:.0f} MB",
        f"- store (gitship.db + WAL) {r['store_mb']:.0f} MB; whole state dir {r['state_mb']:.0f} MB;"
        f" the repository's .git {r['git_mb']:.0f} MB",
        f"- growth: linear in the content; per MiB of ConfigMap: {per(r['rss_settled_mb'] - r['rss_start_mb'])} of"
        f" daemon RSS, {per(r['store_mb'])} of store (the desired and the live copy of each object),"
        f" {sum(b['applied_s'] for b in r['batches']) * 1000 / mib:.0f} ms of commit -> applied",
        f"- `gitship get pods` in a loop throughout: {gp['runs']} runs, {len(gp['failures'])} failed, median"
        f" {gp['median_s']:.2f} s, slowest {gp['max_s']:.2f} s",
    ]
    small = r["small"]
    lines.append(
        "- a one-line change (another small ConfigMap) beside them, 5 times: commit -> applied "
        + ", ".join(f"{t:.1f} s" for t, _ in small)
        + "; daemon RSS after each "
        + ", ".join(f"{m:.0f}" for _, m in small)
        + " MB"
    )
    if "pod_ready_s" in r:
        lines.append(
            f"- a pod mounting one of them: commit -> Ready in {r['pod_ready_s']:.1f} s; its file"
            f" {r['pod_file_bytes']:,} bytes"
        )
    lines.append(
        f"- a ConfigMap of 1 MiB + 1 byte (second document of over.yaml): {r['over_result']} in"
        f" {r['over_s']:.1f} s, nothing applied: {r['over_nothing_applied']}; the status said:"
        f" `{r['over_message'][:300]}`"
    )
    return "\n".join(lines) + "\n"


def write_results(block: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    start = text.find(HEADING)
    if start >= 0:
        end = text.find("\n#", start + len(HEADING))
        text = text[:start] + block + (text[end + 1 :] if end >= 0 else "")
    else:
        anchor = text.find("\n## ", text.find("## Fuzzing and hostile input"))
        text = text[: anchor + 1] + block + "\n" + text[anchor + 1 :] if anchor >= 0 else text + "\n" + block
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gitship-cms-"))
    try:
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        r = run(a.count, a.batches, tmp)
        block = section(r, when)
        print(block)
        if not a.no_write:
            write_results(block)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
