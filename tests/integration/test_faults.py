"""Faults: gitship killed mid-rollout, a crash-looping pod, a remote that goes away or is
force-pushed, and a state dir that is read-only or on a full disk.

Real daemons, real processes, real git; waiting by polling with deadlines.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_app_repo, ROOT, Gitship, commit_file, git, wait_for, pod_ready as ready


def http_get(ip: str, port: int = 8080, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=timeout) as r:
        return r.read().decode()


def integrity(state_dir: Path | str) -> str:
    db = sqlite3.connect(f"file:{os.path.join(state_dir, 'gitship.db')}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def pod_processes() -> dict[str, list[int]]:
    """{GITSHIP_POD_UID: [pids]} of every container process that carries one (zombies and pod
    sandbox holders, which carry GITSHIP_SANDBOX=1, excluded)."""
    out: dict[str, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(") ", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        m = re.search(rb"(?:^|\x00)GITSHIP_POD_UID=([^\x00]+)", env)
        if m and b"GITSHIP_SANDBOX=1" not in env.split(b"\x00"):
            out.setdefault(m.group(1).decode(), []).append(int(d))
    return out


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: kubia:IMAGE
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          initialDelaySeconds: 2
          periodSeconds: 1
"""


def _live(g: Gitship) -> list[dict[str, Any]]:
    return [p for p in g.pods("app=web") if not p["metadata"].get("deletionTimestamp")]


def _image(p: dict[str, Any]) -> str:
    return p["spec"]["containers"][0]["image"]


def test_kill9_mid_rollout_then_restart_completes_it(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    commit_file(empty_repo, "web.yaml", DEPLOY.replace("IMAGE", "v1"), "web v1")
    g = gitship_factory(empty_repo)
    wait_for(lambda: len([p for p in _live(g) if ready(p)]) == 4, 60, what="4 v1 replicas ready")

    sha = commit_file(empty_repo, "web.yaml", DEPLOY.replace("IMAGE", "v2"), "web v2")
    g.wait_applied(sha)
    # kill -9 in the middle: some v2 pod exists, not all are v2 and ready yet
    wait_for(lambda: any(_image(p) == "kubia:v2" for p in g.pods("app=web")), 30, what="the first v2 pod")
    assert not all(_image(p) == "kubia:v2" and ready(p) for p in _live(g)), "rollout finished before the kill"
    g.kill9()

    g2 = gitship_factory(empty_repo, state_dir=tmp_path / "state")
    max_live = 0

    def rolled_out() -> bool:
        nonlocal max_live
        live = _live(g2)
        max_live = max(max_live, len(live))
        return (
            len(live) == 4 and all(_image(p) == "kubia:v2" and ready(p) for p in live) and len(g2.pods("app=web")) == 4
        )

    wait_for(rolled_out, 60, what="the rollout to complete after restart")
    assert max_live <= 4 + 1, f"{max_live} pods at once: over replicas + maxSurge"
    # no doubled, no leaked pods: exactly one process per pod, and no process of a pod that is gone
    uids = {p["metadata"]["uid"] for p in g2.pods()}
    procs = wait_for(lambda: (pp := pod_processes()) and set(pp) & uids == uids and pp, 30, what="pod processes")
    mine = {u: pids for u, pids in procs.items() if u in uids}
    assert all(len(pids) == 1 for pids in mine.values()), mine
    state_uids = {f.stem for f in (tmp_path / "state" / "runtime" / "pods").glob("*.json")}
    wait_for(
        lambda: {f.stem for f in (tmp_path / "state" / "runtime" / "pods").glob("*.json")} == uids,
        30,
        what=f"runtime state to hold only the live pods (has {state_uids})",
    )
    leaked = (
        wait_for(lambda: not (set(pod_processes()) & (state_uids - uids)) or None, 30, what="old pods stopped")
        if state_uids - uids
        else True
    )
    assert leaked
    for p in g2.pods("app=web"):
        assert http_get(p["status"]["podIP"]).startswith("This is v2")
    rs = g2.json("get", "rs")["items"]
    assert sorted(r["spec"]["replicas"] for r in rs) == [0, 4], [
        (r["metadata"]["name"], r["spec"]["replicas"]) for r in rs
    ]
    assert integrity(tmp_path / "state") == "ok"
    g2.stop()
    assert integrity(tmp_path / "state") == "ok"


def test_crash_looping_pod_backs_off_and_the_rest_keeps_serving(empty_repo: Path, gitship_factory) -> None:
    commit_file(
        empty_repo,
        "web.yaml",
        """apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: app, image: kubia:v1, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers: [{name: c, image: busybox, command: [sh, -c, "exit 1"]}]
""",
        "web and a crasher",
    )
    g = gitship_factory(empty_repo)
    web = wait_for(lambda: (p := g.json("get", "pod", "web")) and ready(p) and p, 30, what="web ready")

    def crasher_status() -> dict[str, Any]:
        return g.json("get", "pod", "crasher")["status"]["containerStatuses"][0]

    seen_backoffs: list[str] = []

    def backoff_seen(want: str) -> bool:
        cs = crasher_status()
        msg = (cs.get("state", {}).get("waiting") or {}).get("message", "")
        m = re.search(r"back-off (\S+) restarting", msg)
        if m and m.group(1) not in seen_backoffs:
            seen_backoffs.append(m.group(1))
        return want in seen_backoffs

    wait_for(lambda: backoff_seen("10s"), 30, what="back-off 10s")
    row = next(line for line in g.cli("get", "pods").stdout.splitlines() if line.startswith("crasher"))
    assert "CrashLoopBackOff" in row.split(), row
    assert int(row.split()[3]) >= 1, row  # RESTARTS
    first = crasher_status()["restartCount"]
    assert first >= 1
    wait_for(lambda: backoff_seen("20s"), 40, what="back-off growing to 20s")
    assert seen_backoffs[:2] == ["10s", "20s"], seen_backoffs
    assert crasher_status()["restartCount"] > first
    assert crasher_status()["lastState"]["terminated"]["exitCode"] == 1
    # the rest is unaffected: web kept its uid, never restarted, still answers
    now = g.json("get", "pod", "web")
    assert now["metadata"]["uid"] == web["metadata"]["uid"]
    assert now["status"]["containerStatuses"][0]["restartCount"] == 0
    assert http_get(now["status"]["podIP"]).startswith("This is v1 running in pod web")
    assert g.status()["status"]["conditions"][0]["status"] == "True"


POD = """apiVersion: v1
kind: Pod
metadata: {name: NAME, labels: {app: NAME}}
spec:
  containers: [{name: app, image: kubia:v1, ports: [{containerPort: 8080}]}]
"""


SLEEPER = """apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""


def _source_errors(g: Gitship) -> int:
    """How many failed source checks the reconcile log holds."""
    return Path(g.state_dir, "reconcile.log").read_text(errors="replace").count('"event":"source_error"')


def _bare_from(src: Path, bare: Path) -> None:
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)


def test_remote_unreachable_then_back(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    commit_file(empty_repo, "web.yaml", POD.replace("NAME", "web"), "web")
    bare = tmp_path / "bare.git"
    _bare_from(empty_repo, bare)
    git(empty_repo, "remote", "add", "origin", str(bare))
    g = gitship_factory(f"file://{bare}", extra=["--interval", "1"])
    web = wait_for(lambda: (p := g.json("get", "pod", "web")) and ready(p) and p, 30, what="web ready")
    good = g.status()["status"]["lastAppliedRevision"]

    bare.rename(tmp_path / "gone.git")
    st = wait_for(lambda: (s := g.status()["status"])["sourceError"] and s, 30, what="sourceError")
    cond = st["conditions"][0]
    assert cond["status"] == "False" and cond["reason"] == "SourceUnavailable", cond
    assert "bare.git" in st["sourceError"] or "fetch" in st["sourceError"], st["sourceError"]
    assert st["lastAppliedRevision"] == good
    # the last good state keeps running, untouched, through a couple of failed fetch intervals
    failed = _source_errors(g)
    wait_for(lambda: _source_errors(g) >= failed + 2, 30, what="two more failed fetches")
    now = g.json("get", "pod", "web")
    assert now["metadata"]["uid"] == web["metadata"]["uid"] and ready(now)
    assert http_get(now["status"]["podIP"]).startswith("This is v1")
    assert "Source error" in g.cli("status").stdout

    (tmp_path / "gone.git").rename(bare)
    st = wait_for(lambda: (s := g.status()["status"])["sourceError"] is None and s, 30, what="recovery")
    assert st["conditions"][0]["status"] == "True", st
    # and it follows the remote again
    sha = commit_file(empty_repo, "other.yaml", POD.replace("NAME", "other"), "other")
    git(empty_repo, "push", "-q", "origin", "main")
    g.wait_applied(sha)
    wait_for(lambda: (p := g.json("get", "pod", "other")) and ready(p), 30, what="other ready")


def test_force_pushed_unrelated_history(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    """A branch force-pushed to an unrelated history.

    What a Flux user expects: Flux applies whatever the branch points at, so gitship does the
    same -- history is not required to be linear. The new head goes through the same
    validation as any commit: an invalid one is rejected (the last good state keeps running,
    status says why), a valid one is applied (objects not in it are pruned), and status
    names the revision it runs.
    """
    commit_file(empty_repo, "web.yaml", POD.replace("NAME", "web"), "web")
    bare = tmp_path / "bare.git"
    _bare_from(empty_repo, bare)
    g = gitship_factory(f"file://{bare}", extra=["--interval", "1"])
    web = wait_for(lambda: (p := g.json("get", "pod", "web")) and ready(p) and p, 30, what="web ready")
    good = g.status()["status"]["lastAppliedRevision"]

    other = make_app_repo(tmp_path / "other", "Other", "other@example.com", commit=False)
    bad = commit_file(other, "broken.yaml", "kind: Pod\nmetadata: {name: x\n", "unrelated, broken")
    git(other, "push", "-q", "--force", str(bare), "main")
    g.wait_applied(bad)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == good and st["conditions"][0]["reason"] == "ValidationFailed", st
    assert "broken.yaml" in st["conditions"][0]["message"]
    now = g.json("get", "pod", "web")
    assert now["metadata"]["uid"] == web["metadata"]["uid"] and ready(now)
    assert http_get(now["status"]["podIP"]).startswith("This is v1")

    git(other, "rm", "-q", "broken.yaml")
    valid = commit_file(other, "solo.yaml", POD.replace("NAME", "solo"), "unrelated, valid")
    git(other, "push", "-q", "--force", str(bare), "main")
    g.wait_applied(valid)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == valid and st["conditions"][0]["status"] == "True", st
    wait_for(
        lambda: [p["metadata"]["name"] for p in g.pods() if ready(p)] == ["solo"], 30, what="solo running, web pruned"
    )
    assert g.json("history")["items"][0]["sha"] == valid


def _up(state_dir: Path, repo: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    g = Gitship(repo, state_dir)
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "up", str(repo), "--state-dir", str(state_dir), *g.net_args()],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_state_dir_is_a_file(empty_repo: Path, tmp_path: Path) -> None:
    where = tmp_path / "state"
    where.write_text("not a directory")
    p = _up(where, empty_repo)
    assert p.returncode != 0
    assert "state dir" in p.stderr and str(where) in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert where.read_text() == "not a directory"


def _mount(*args: str) -> str | None:
    p = subprocess.run(["mount", *args], capture_output=True, text=True)
    return None if p.returncode == 0 else (p.stderr.strip() or f"mount exited {p.returncode}")


def test_read_only_state_dir(empty_repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    err = _mount("--bind", str(state), str(state))
    if err:
        pytest.skip(f"cannot bind-mount (needs root): {err}")
    try:
        err = _mount("-o", "remount,ro,bind", str(state))
        if err:
            pytest.skip(f"cannot remount read-only: {err}")
        p = _up(state, empty_repo)
        assert p.returncode != 0
        assert "not writable" in p.stderr and str(state) in p.stderr, p.stderr
        assert "Traceback" not in p.stderr, p.stderr
    finally:
        subprocess.run(["umount", str(state)], capture_output=True)


def test_full_disk(empty_repo: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    err = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk))
    if err:
        pytest.skip(f"cannot mount a tmpfs (needs root): {err}")
    state = disk / "state"
    try:
        # a store made while there was room (a pod that needs no image map: this test is about the store)
        commit_file(empty_repo, "web.yaml", SLEEPER, "web")
        g = Gitship(empty_repo, state)
        g.start()
        try:
            wait_for(lambda: (p := g.json("get", "pod", "web")) and ready(p), 30, what="web ready")
        finally:
            assert g.stop() == 0
        assert integrity(state) == "ok"
        # now the disk is full: fill every byte
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        p = _up(state, empty_repo)
        assert p.returncode != 0, "gitship up ran on a full disk"
        assert "full disk" in p.stderr or "No space left" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr, p.stderr
        (disk / "filler").unlink()
        assert integrity(state) == "ok"
        # and with room again it runs from the same store
        g = Gitship(empty_repo, state)
        g.start()
        try:
            wait_for(lambda: (p := g.json("get", "pod", "web")) and ready(p), 30, what="web ready again")
        finally:
            g.stop()
        assert integrity(state) == "ok"
    finally:
        from tests.conftest import _kill_leftovers

        _kill_leftovers(disk)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_full_tiny_disk_at_first_start(empty_repo: Path, tmp_path: Path) -> None:
    disk = tmp_path / "tiny"
    disk.mkdir()
    err = _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk))
    if err:
        pytest.skip(f"cannot mount a tmpfs (needs root): {err}")
    try:
        try:
            p = _up(disk / "state", empty_repo, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("gitship up kept running on a full 64 KiB disk")
        if p.returncode == 0:
            pytest.fail("gitship up exited 0 on a 64 KiB disk")
        assert "Traceback" not in p.stderr, p.stderr[-3000:]
        assert "state dir" in p.stderr or "No space left" in p.stderr or "full" in p.stderr, p.stderr[-3000:]
        if (disk / "state" / "gitship.db").exists():
            assert integrity(disk / "state") == "ok"
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
