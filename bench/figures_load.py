"""Figure 2 of bench/run.py: planning at scale, through the one loader (manifests/revision.py)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Row, ROOT, commit, git, ms, row

# --------------------------------------------------------------------------- 2. planning at scale


def _manifest(i: int, image: str = "kubia:v1") -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: pod-{i:05d}
  labels: {{app: bench, shard: s{i % 10}}}
spec:
  containers:
  - name: app
    image: {image}
    ports:
    - containerPort: 8080
"""


def fig2_planning(work: Path, quick: bool) -> list[Row]:
    import yaml

    from reconciler.manifests.revision import BlobCache, git_blob_id, load_revision
    from reconciler.plan import plan

    rows: list[Row] = []
    reps = 3 if quick else 5
    for n in (1_000, 10_000):
        files = {f"pods/p{i:05d}.yaml": _manifest(i).encode() for i in range(n)}
        blob_ids = {p: git_blob_id(b) for p, b in files.items()}  # git lists them: free for the daemon
        gs, ys = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            for b in files.values():
                yaml.load(b, Loader=yaml.CSafeLoader)
            ys.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ms_ = load_revision(files, {}, cache=BlobCache(), blob_ids=blob_ids)
            plan({}, {m.key: m.obj for m in ms_})
            gs.append(time.perf_counter() - t0)
        g, y = min(gs), min(ys)
        rows.append(
            row(
                f"2 cold load+validate+plan, {n:,} manifests",
                ms(g),
                f"CSafeLoader parse {ms(y)}",
                "<= 1.5x baseline",
                g <= 1.5 * y,
            )
        )
        rows[-1]["value"] += f" ({g / y:.2f}x)"

    # one changed object of 10,000 with a warm blob cache: pure load + plan (gitship's own time)
    n = 10_000
    files = {f"pods/p{i:05d}.yaml": _manifest(i).encode() for i in range(n)}
    blob_ids = {p: git_blob_id(b) for p, b in files.items()}
    cache = BlobCache()
    applied = {m.key: m.obj for m in load_revision(files, {}, cache=cache, blob_ids=blob_ids)}
    times = []
    current, current_ids = files, blob_ids
    for k in range(reps * 4):
        # each commit builds on the last (the cache keeps the last revision's files, as in the daemon)
        path = f"pods/p{(k * 37) % n:05d}.yaml"
        changed = dict(current)
        changed[path] = _manifest((k * 37) % n, image=f"kubia:v{k + 2}").encode()
        ids = dict(current_ids)
        ids[path] = git_blob_id(changed[path])
        t0 = time.perf_counter()
        desired = {m.key: m.obj for m in load_revision(changed, {}, cache=cache, blob_ids=ids)}
        actions = plan(applied, desired)
        times.append(time.perf_counter() - t0)
        assert len(actions) == 1, actions
        current, current_ids, applied = changed, ids, desired
    t = statistics.median(times)
    one_file = files["pods/p00000.yaml"]
    t0 = time.perf_counter()
    for _ in range(100):
        yaml.load(one_file, Loader=yaml.CSafeLoader)
    one = (time.perf_counter() - t0) / 100
    rows.append(
        row(
            "2 one object of 10,000 changed: load (warm cache) + plan, median",
            ms(t),
            f"CSafeLoader parse of 1 file {ms(one)}",
            "< 50 ms",
            t < 0.050,
        )
    )

    # the same through the daemon's RevisionLoader on a real repository (includes git ls-tree + cat-file),
    # in a child process with a deadline: a hang there must not hang the bench
    repo = work / "f2" / "repo"
    (repo / "pods").mkdir(parents=True)
    for p, b in files.items():
        (repo / p).write_bytes(b)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "10k")
    (repo / "pods/p00042.yaml").write_bytes(_manifest(42, "kubia:v9").encode())
    commit(repo, {}, "one change")
    code = (
        "import json, sys, time; sys.path.insert(0, sys.argv[2]);"
        "from bench.figures_load import revision_loader_times; print(json.dumps(revision_loader_times(sys.argv[1])))"
    )
    try:
        p = subprocess.run(
            [sys.executable, "-c", code, str(repo), str(ROOT)], capture_output=True, text=True, timeout=120
        )
        got = json.loads(p.stdout) if p.returncode == 0 else None
        err = p.stderr.strip().splitlines()[-1] if p.returncode else ""
    except subprocess.TimeoutExpired:
        got, err = None, "hung for 120 s (killed)"
    if got is None:
        rows.append(
            row("2 RevisionLoader.load, 10,000 files, cold (incl. git)", f"FAILED: {err}", "", "completes", False)
        )
    else:
        rows.append(row("2 RevisionLoader.load, 10,000 files, cold (incl. git)", ms(got["cold"])))
        rows.append(
            row(
                "2 RevisionLoader.load, one file changed (incl. git ls-tree)",
                ms(got["warm"]),
                f"git ls-tree -r alone {ms(got['lstree'])}",
            )
        )
    return rows


def revision_loader_times(repo: str) -> dict[str, float]:
    """Cold load of HEAD~1 then HEAD (one file changed) through the daemon's RevisionLoader."""
    from reconciler.manifests.load import Limits
    from reconciler.source.git import GitReader
    from reconciler.source.revision import RevisionLoader

    reader = GitReader(repo)
    try:
        loader = RevisionLoader(reader, "", Limits())
        t0 = time.perf_counter()
        loader.load(git(repo, "rev-parse", "HEAD~1"))
        cold = time.perf_counter() - t0
        sha = git(repo, "rev-parse", "HEAD")
        t0 = time.perf_counter()
        loader.load(sha)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        reader.tree(sha)
        lstree = time.perf_counter() - t0
    finally:
        reader.close()
    return {"cold": cold, "warm": warm, "lstree": lstree}
