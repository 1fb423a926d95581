"""Safe pruning through a real `gitship up`, git and the CLI (reconciler/prune.py, reconciler/ops/prune.py).

A commit deleting every object is held (Ready False, PruneHeld, naming what it would delete) while the
pods keep running; `gitship approve` lets it through with the daemon running. A commit trailer
`Gitship-Allow-Prune: true` lets one through at once; `gitship.io/prune: disabled` keeps an object whose
manifest goes. `gitship validate` and `gitship plan` exit 0 / 1 with the daemon's errors, without a daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, commit_file, git, wait_for


def pod(name: str, annotations: str = "") -> str:
    meta = f"{{name: {name}{', annotations: {' + annotations + '}' if annotations else ''}}}"
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {meta}\n"
        "spec:\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n"
    )


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Author")
    git(path, "config", "user.email", "author@example.com")
    return path


def running(g, name: str) -> bool:
    p = g.cli("get", "pod", name, "-o", "jsonpath={.status.phase}", check=False)
    return p.returncode == 0 and p.stdout == "Running"


def gone(g, name: str) -> bool:
    return g.cli("get", "pod", name, check=False).returncode != 0


def ready(g) -> dict:
    return g.status()["status"]["conditions"][0]


def test_delete_everything_is_held_until_approved(tmp_path, gitship_factory):
    repo = new_repo(tmp_path / "repo")
    commit_file(repo, "a.yaml", pod("a"), "a")
    first = commit_file(repo, "b.yaml", pod("b"), "b")
    g = gitship_factory(repo, extra=["--prune-threshold", "50"])
    g.wait_applied(first)
    wait_for(lambda: running(g, "a") and running(g, "b"), 60, what="both pods running")
    uid = g.json("get", "pod", "a")["metadata"]["uid"]

    git(repo, "rm", "-q", "a.yaml", "b.yaml")
    git(repo, "commit", "-q", "-m", "remove everything")
    bad = git(repo, "rev-parse", "HEAD")
    g.wait_applied(bad)
    cond = ready(g)
    assert cond["status"] == "False" and cond["reason"] == "PruneHeld", cond
    assert "would delete 2 of 2 objects" in cond["message"] and "pod/a" in cond["message"], cond
    assert g.status()["status"]["lastAppliedRevision"] == first
    assert "Prune held:" in g.cli("status").stdout
    assert running(g, "a") and g.json("get", "pod", "a")["metadata"]["uid"] == uid  # what runs keeps running
    assert any(r["result"] == "held" for r in g.json("history")["items"])
    held_plan = g.cli("plan", check=False)
    assert held_plan.returncode == 1 and "HELD" in held_plan.stdout, held_plan.stdout

    out = g.cli("approve", bad[:7]).stdout
    assert f"approved {bad[:7]}" in out
    wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == bad, 90, what=f"{bad} applied: {g.status()}")
    assert ready(g)["status"] == "True"
    wait_for(lambda: gone(g, "a") and gone(g, "b"), 60, what="both pods pruned")


def test_trailer_allows_and_prune_disabled_keeps(tmp_path, gitship_factory):
    repo = new_repo(tmp_path / "repo")
    commit_file(repo, "keep.yaml", pod("keep", "gitship.io/prune: disabled"), "keep")
    commit_file(repo, "x.yaml", pod("x"), "x")
    first = commit_file(repo, "y.yaml", pod("y"), "y")
    g = gitship_factory(repo, extra=["--prune-threshold", "50"])
    g.wait_applied(first)
    wait_for(lambda: all(running(g, n) for n in ("keep", "x", "y")), 60, what="three pods running")

    # x and y gone (2 of 3: more than half): the trailer allows it
    git(repo, "rm", "-q", "x.yaml", "y.yaml")
    git(repo, "commit", "-q", "-m", "drop x and y\n\nGitship-Allow-Prune: true")
    allowed = git(repo, "rev-parse", "HEAD")
    g.wait_applied(allowed)
    assert g.status()["status"]["lastAppliedRevision"] == allowed, ready(g)
    wait_for(lambda: gone(g, "x") and gone(g, "y"), 60, what="x and y pruned")

    # the last manifest goes: its annotation keeps the pod (nothing is deleted, so nothing is held)
    git(repo, "rm", "-q", "keep.yaml")
    git(repo, "commit", "-q", "-m", "drop keep's manifest")
    last = git(repo, "rev-parse", "HEAD")
    g.wait_applied(last)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == last and st["pruneKept"] == ["pod/keep"], st
    assert "Prune kept:    pod/keep" in g.cli("status").stdout
    assert running(g, "keep")
    events = g.cli("events", "--object", "pod/keep").stdout
    assert "object_prune_disabled" in events


def _cli(*args: str, cwd: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GITSHIP_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_validate_and_plan_without_a_daemon(tmp_path):
    repo = new_repo(tmp_path / "repo")
    state = tmp_path / "no-state"
    commit_file(repo, "a.yaml", pod("a"), "a")
    good = commit_file(repo, "b.yaml", pod("b"), "b")

    ok = _cli("validate", cwd=repo, state=state)
    assert ok.returncode == 0 and "2 object(s)" in ok.stdout, ok
    plan = _cli("plan", cwd=repo, state=state)
    assert plan.returncode == 0 and "2 to create" in plan.stdout and "+ create pod/a" in plan.stdout, plan

    (repo / "b.yaml").write_text(pod("b").replace("containers:", "containerz:"))
    bad = _cli("validate", cwd=repo, state=state)
    assert bad.returncode == 1 and "b.yaml:" in bad.stdout and "containerz" in bad.stdout, bad
    by_name = _cli("validate", str(repo / "b.yaml"), cwd=tmp_path, state=state)
    assert by_name.returncode == 1 and f"{repo / 'b.yaml'}:" in by_name.stdout, by_name
    git(repo, "commit", "-q", "-am", "typo")
    rejected = _cli("plan", cwd=repo, state=state)
    assert rejected.returncode == 1 and "would be rejected" in rejected.stdout and "b.yaml:" in rejected.stdout

    git(repo, "rm", "-q", "a.yaml", "b.yaml")
    git(repo, "commit", "-q", "-m", "everything gone")
    held = _cli("plan", "--base", good, cwd=repo, state=state)
    assert held.returncode == 1 and "2 to delete" in held.stdout and "HELD" in held.stdout, held
    off = _cli("plan", "--base", good, "--prune-threshold", "off", cwd=repo, state=state)
    assert off.returncode == 0 and "Prune: ok" in off.stdout, off
