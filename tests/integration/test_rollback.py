"""Rollbacks are git reverts: `rollout undo`, a user's own `git revert`, automatic rollback,
and repositories reached by URL (a bare repository over file://), all against real git and
real processes.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.conftest import commit_file, git, wait_for

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  # the app of the template repository
  annotations:
    team: blue
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nodejs
        image: qinchaowhut/allen:v1
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet:
            port: 8080
          periodSeconds: 1
"""


def ready_pods(g) -> list[dict]:
    return [
        p
        for p in g.pods("app=web")
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def versions(g) -> set[str]:
    out = set()
    for p in ready_pods(g):
        with urllib.request.urlopen(f"http://{p['status']['podIP']}:8080/", timeout=2) as r:
            out.add(r.read().decode().split()[2])
    return out


def rolled_out(g, version: str, replicas: int = 2) -> bool:
    dep = g.json("get", "deploy", "web")
    st = dep.get("status") or {}
    done = (
        st.get("updatedReplicas") == replicas
        and st.get("availableReplicas") == replicas
        and st.get("replicas") == replicas
        and st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
    )
    return done and versions(g) == {version}


def rs_revisions(g) -> dict[str, str]:
    return {
        r["metadata"]["name"]: r["metadata"]["annotations"].get("deployment.kubernetes.io/revision")
        for r in g.json("get", "rs")["items"]
    }


def test_set_image_then_undo_is_an_exact_revert(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "web.yaml", DEPLOY, "add web")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 rolled out")
    v1_rs = set(rs_revisions(g))
    g.cli("set", "image", "deployment", "web", "nodejs=qinchaowhut/allen:v2")
    set_sha = git(empty_repo, "rev-parse", "HEAD")
    wait_for(lambda: rolled_out(g, "v2"), 60, what="v2 rolled out")

    out = g.cli("rollout", "undo", "deployment", "web").stdout
    assert "rolled back" in out and "git revert" in out
    head = git(empty_repo, "rev-parse", "HEAD")
    assert git(empty_repo, "rev-parse", "HEAD~1") == set_sha
    assert f"This reverts commit {set_sha}" in git(empty_repo, "log", "-1", "--format=%B")
    # the revert's diff is the exact inverse of the set image commit
    inverse_of_set = git(empty_repo, "diff", set_sha, f"{set_sha}~1")
    assert inverse_of_set and git(empty_repo, "diff", f"{head}~1", head) == inverse_of_set
    assert git(empty_repo, "diff", f"{set_sha}~1", head) == ""
    # comments and layout survive
    assert "# the app of the template repository" in (empty_repo / "web.yaml").read_text()
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 back")
    # the old ReplicaSet is reused and takes the next revision, as in Kubernetes
    revs = rs_revisions(g)
    (old_name,) = v1_rs
    assert revs[old_name] == "3"
    assert g.json("get", "deploy", "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    hist = g.cli("rollout", "history", "deployment", "web").stdout
    assert [line.split()[0] for line in hist.splitlines()[2:]] == ["2", "3"]
    assert head[:7] in hist
    # gitship history says the set image commit was reverted, and by which commit
    rows = {r["sha"]: r for r in g.json("history")["items"]}
    assert rows[set_sha]["revertedBy"] == head


def test_undo_to_revision_one_after_three(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "web.yaml", DEPLOY, "add web")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1")
    for v in ("v2", "v3"):
        g.cli("set", "image", "deployment", "web", f"nodejs=qinchaowhut/allen:{v}")
        wait_for(lambda v=v: rolled_out(g, v), 60, what=f"{v} rolled out")
    missing = g.cli("rollout", "undo", "deployment", "web", "--to-revision", "7", check=False)
    assert missing.returncode != 0 and "unable to find specified revision 7" in missing.stderr
    before = git(empty_repo, "rev-parse", "HEAD")
    out = g.cli("rollout", "undo", "deployment", "web", "--to-revision", "1").stdout
    assert "rolled back" in out
    assert git(empty_repo, "rev-parse", "HEAD~1") == before
    msg = git(empty_repo, "log", "-1", "--format=%B")
    assert "revision 3 -> 1" in msg
    assert "image: qinchaowhut/allen:v1" in (empty_repo / "web.yaml").read_text()
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 back")
    assert sorted(rs_revisions(g).values()) == ["2", "3", "4"]
    same = g.cli("rollout", "undo", "deployment", "web", "--to-revision", "4")
    assert "skipped rollback" in same.stdout


def test_users_own_git_revert_has_the_same_outcome(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "web.yaml", DEPLOY, "add web")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1")
    first_rs = set(rs_revisions(g))
    sha = commit_file(empty_repo, "web.yaml", DEPLOY.replace("allen:v1", "allen:v2"), "v2")
    wait_for(lambda: rolled_out(g, "v2"), 60, what="v2")
    git(empty_repo, "revert", "--no-edit", sha)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 after git revert")
    revs = rs_revisions(g)
    assert revs[next(iter(first_rs))] == "3"
    assert {r["sha"]: r for r in g.json("history")["items"]}[sha]["revertedBy"] == git(empty_repo, "rev-parse", "HEAD")


def test_automatic_rollback_of_an_image_that_never_gets_ready(empty_repo: Path, gitship_factory) -> None:
    auto = DEPLOY.replace("    team: blue\n", '    team: blue\n    gitship.io/auto-rollback: "true"\n').replace(
        "  replicas: 2\n", "  replicas: 2\n  progressDeadlineSeconds: 3\n"
    )
    commit_file(empty_repo, "web.yaml", auto, "add web")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1")
    # v2 listens on 8080 but the probe asks 9999: its pods never become ready
    broken = auto.replace("allen:v1", "allen:v2").replace(
        "port: 8080\n          periodSeconds", "port: 9999\n          periodSeconds"
    )
    bad = commit_file(empty_repo, "web.yaml", broken, "v2 with a broken probe")
    revert = wait_for(lambda: (h := git(empty_repo, "rev-parse", "HEAD")) != bad and h, 60, what="the automatic revert")
    msg = git(empty_repo, "log", "-1", "--format=%B")
    assert f"This reverts commit {bad}" in msg
    assert "ProgressDeadlineExceeded" in msg and "Automatic rollback" in msg and "reconcile" in msg
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 back")
    events = g.cli("describe", "deploy", "web").stdout
    assert "AutoRollback" in events
    logged = g.cli("events", "-o", "json").stdout
    assert "auto_rollback_committed" in logged
    # it never reverts twice: the revert commit stays the newest
    wait_for(lambda: rolled_out(g, "v1"), 10)
    assert git(empty_repo, "rev-parse", "HEAD") == revert
    assert git(empty_repo, "log", "--format=%s").count("Revert") == 1


def _bare_with(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "config", "user.name", "Test Author")
    git(work, "config", "user.email", "author@example.com")
    root = Path(__file__).resolve().parents[2] / "repo-template"
    (work / "app").mkdir()
    (work / "app" / "kubia.py").write_text((root / "app" / "kubia.py").read_text())
    (work / "gitship.yaml").write_text((root / "gitship.yaml").read_text())
    for name, text in files.items():
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "start")
    git(work, "push", "-q", "origin", "main")
    return bare, work


def test_url_repository_undo_pushes_and_a_rejected_push_changes_nothing(tmp_path: Path, gitship_factory) -> None:
    bare, work = _bare_with(tmp_path, {"web.yaml": DEPLOY})
    g = gitship_factory(f"file://{bare}", extra=["--interval", "1"])
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 from the remote")
    g.cli("set", "image", "deployment", "web", "nodejs=qinchaowhut/allen:v2")
    assert "set image deployment/web" in git(bare, "log", "-1", "--format=%s")
    wait_for(lambda: rolled_out(g, "v2"), 60, what="v2")
    g.cli("rollout", "undo", "deployment", "web")
    assert git(bare, "log", "-1", "--format=%s").startswith("Revert")
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 back")

    # the remote refuses the next push (as it would when it moved, or a hook says no): nothing changes
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'remote: rejected by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    clone = Path(g.state_dir) / "repo"
    remote_head = git(bare, "rev-parse", "HEAD")
    local_head = git(clone, "rev-parse", "HEAD")
    applied = g.status()["status"]["lastAppliedRevision"]
    res = g.cli("scale", "deployment", "web", "--replicas", "3", check=False)
    assert res.returncode != 0 and "push" in res.stderr.lower()
    assert git(bare, "rev-parse", "HEAD") == remote_head
    assert git(clone, "rev-parse", "HEAD") == local_head
    assert git(clone, "status", "--porcelain") == ""
    assert g.status()["status"]["lastAppliedRevision"] == applied
    assert len(ready_pods(g)) == 2


def test_change_cause_names_the_commit_that_changed_the_template_not_the_resume(
    empty_repo: Path, gitship_factory
) -> None:
    commit_file(empty_repo, "web.yaml", DEPLOY, "add web")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1")
    g.cli("rollout", "pause", "deployment", "web")
    g.wait_applied(git(empty_repo, "rev-parse", "HEAD"))
    g.cli("set", "image", "deployment", "web", "nodejs=qinchaowhut/allen:v2")
    image_commit = git(empty_repo, "rev-parse", "HEAD")
    g.wait_applied(image_commit)
    assert len(rs_revisions(g)) == 1  # paused: no new revision yet
    g.cli("rollout", "resume", "deployment", "web")
    resume_commit = git(empty_repo, "rev-parse", "HEAD")
    wait_for(lambda: rolled_out(g, "v2"), 60, what="v2 after resume")
    hist = g.cli("rollout", "history", "deployment", "web").stdout
    line2 = next(line for line in hist.splitlines() if line.startswith("2 "))
    assert image_commit[:7] in line2 and resume_commit[:7] not in line2
    # and undo reverts exactly that commit
    g.cli("rollout", "undo", "deployment", "web")
    assert f"This reverts commit {image_commit}" in git(empty_repo, "log", "-1", "--format=%B")
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 back")


def _with_cause(manifest: str, cause: str) -> str:
    return manifest.replace("    team: blue\n", f"    team: blue\n    kubernetes.io/change-cause: {cause}\n")


def _revision_causes(g) -> dict[str, str]:
    """`rollout history`'s rows: revision -> CHANGE-CAUSE."""
    hist = g.cli("rollout", "history", "deployment", "web").stdout
    return {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in hist.splitlines()[2:] if line.strip()}


def test_undo_restores_the_change_cause_of_the_target_revision(empty_repo: Path, gitship_factory) -> None:
    # Kubernetes copies the target ReplicaSet's annotations back onto the Deployment on rollback
    # (pkg/controller/deployment/rollback.go, util.SetDeploymentAnnotationsTo): revision 3 is "deploy v1".
    commit_file(empty_repo, "web.yaml", _with_cause(DEPLOY, "deploy v1"), "v1")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1")
    v2 = commit_file(empty_repo, "web.yaml", _with_cause(DEPLOY.replace("allen:v1", "allen:v2"), "deploy v2"), "v2")
    wait_for(lambda: rolled_out(g, "v2"), 60, what="v2")
    assert _revision_causes(g) == {"1": "deploy v1", "2": "deploy v2"}

    g.cli("rollout", "undo", "deployment", "web")
    wait_for(lambda: rolled_out(g, "v1") and "3" in _revision_causes(g), 60, what="v1 back as revision 3")
    assert _revision_causes(g) == {"2": "deploy v2", "3": "deploy v1"}
    ann = g.json("get", "deploy", "web")["metadata"]["annotations"]
    assert ann["kubernetes.io/change-cause"] == "deploy v1" and ann["team"] == "blue"
    manifest = (empty_repo / "web.yaml").read_text()
    assert "kubernetes.io/change-cause: deploy v1" in manifest and "deploy v2" not in manifest
    assert "# the app of the template repository" in manifest
    # the commit that made revision 2 changed only the template and the change-cause: a plain revert
    assert f"This reverts commit {v2}" in git(empty_repo, "log", "-1", "--format=%B")


def test_undo_to_a_revision_without_change_cause_removes_it(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "web.yaml", DEPLOY, "v1")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1")
    for v in ("v2", "v3"):
        text = _with_cause(DEPLOY.replace("allen:v1", f"allen:{v}"), f"deploy {v}")
        commit_file(empty_repo, "web.yaml", text, v)
        wait_for(lambda v=v: rolled_out(g, v), 60, what=f"{v} rolled out")
    before = git(empty_repo, "rev-parse", "HEAD")
    g.cli("rollout", "undo", "deployment", "web", "--to-revision", "1")
    assert git(empty_repo, "rev-parse", "HEAD~1") == before
    assert "revision 3 -> 1" in git(empty_repo, "log", "-1", "--format=%B")
    manifest = (empty_repo / "web.yaml").read_text()
    assert "allen:v1" in manifest and "change-cause" not in manifest and "team: blue" in manifest
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 back")
    ann = g.json("get", "deploy", "web")["metadata"]["annotations"]
    assert "kubernetes.io/change-cause" not in ann


def test_automatic_rollback_restores_the_change_cause(empty_repo: Path, gitship_factory) -> None:
    auto = (
        _with_cause(DEPLOY, "deploy v1")
        .replace("    team: blue\n", '    team: blue\n    gitship.io/auto-rollback: "true"\n')
        .replace("  replicas: 2\n", "  replicas: 2\n  progressDeadlineSeconds: 3\n")
    )
    commit_file(empty_repo, "web.yaml", auto, "v1")
    g = gitship_factory(empty_repo)
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1")
    broken = (
        auto.replace("allen:v1", "allen:v2")
        .replace("port: 8080\n          periodSeconds", "port: 9999\n          periodSeconds")
        .replace("deploy v1", "deploy v2")
    )
    bad = commit_file(empty_repo, "web.yaml", broken, "v2 with a broken probe")
    wait_for(lambda: git(empty_repo, "rev-parse", "HEAD") != bad, 60, what="the automatic rollback")
    assert f"This reverts commit {bad}" in git(empty_repo, "log", "-1", "--format=%B")
    assert "kubernetes.io/change-cause: deploy v1" in (empty_repo / "web.yaml").read_text()
    wait_for(lambda: rolled_out(g, "v1"), 60, what="v1 back")
    wait_for(lambda: _revision_causes(g).get("3") == "deploy v1", 30, what="revision 3 is deploy v1")
