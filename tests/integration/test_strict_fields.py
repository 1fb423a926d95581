"""Strict fields through the real daemon (issue 11 item 2).

A typo (`spec.replica: 3`) used to be accepted silently: the Deployment ran with the default of
1 replica. As kubectl's strict validation, the commit is now rejected whole, `gitship status`
names the file, the line and `unknown field "spec.replica"`, and the last good commit keeps
running. `validation: warn` in gitship.yaml accepts it again, never silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from tests.conftest import Gitship, commit_file, wait_for

GOOD = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: kubia:v1
        ports:
        - containerPort: 8080
"""

TYPO = GOOD.replace("  replicas: 2\n", "  replica: 3\n").replace("kubia:v1", "kubia:v2")
TYPO_LINE = 6


def _uids(g: Gitship) -> set[str]:
    return {p["metadata"]["uid"] for p in g.running_pods("app=web")}


def test_unknown_field_rejects_the_commit_and_the_last_good_one_keeps_running(
    empty_repo: Path, gitship_factory: Callable[..., Gitship]
) -> None:
    good = commit_file(empty_repo, "apps/web.yaml", GOOD, "web v1")
    g = gitship_factory(empty_repo)
    g.wait_applied(good, timeout=60)
    wait_for(lambda: len(_uids(g)) == 2, 60, what="2 web pods ready")
    before = _uids(g)

    bad = commit_file(empty_repo, "apps/web.yaml", TYPO, "web: replica typo")
    g.wait_applied(bad, timeout=60)
    st = g.status()["status"]
    assert st["lastAttemptedRevision"] == bad
    assert st["lastAppliedRevision"] == good
    cond = st["conditions"][0]
    assert cond["status"] == "False" and cond["reason"] == "ValidationFailed", cond
    assert f"apps/web.yaml:{TYPO_LINE}" in cond["message"], cond["message"]
    assert 'unknown field "spec.replica"' in cond["message"], cond["message"]

    # what a user reads: `gitship status` names the file, the line and the field
    text = g.cli("status").stdout
    assert f"apps/web.yaml:{TYPO_LINE}" in text and 'unknown field "spec.replica"' in text, text

    # nothing of the rejected commit was applied: the same two v1 pods serve
    dep = g.json("get", "deployment", "web")
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "kubia:v1"
    assert _uids(g) == before

    # the fix applies
    fixed = commit_file(empty_repo, "apps/web.yaml", GOOD.replace("replicas: 2", "replicas: 3"), "web: 3 replicas")
    g.wait_applied(fixed, timeout=60)
    assert g.status()["status"]["lastAppliedRevision"] == fixed
    wait_for(lambda: len(_uids(g)) == 3, 60, what="3 web pods ready")


def test_validation_warn_accepts_the_typo(empty_repo: Path, gitship_factory: Callable[..., Gitship]) -> None:
    config = (empty_repo / "gitship.yaml").read_text() + '\nvalidation:\n- {path: "legacy/**", mode: warn}\n'
    commit_file(empty_repo, "gitship.yaml", config, "legacy/ is validated in warn mode")
    sha = commit_file(empty_repo, "legacy/web.yaml", TYPO, "legacy web with a typo")
    g = gitship_factory(empty_repo)
    g.wait_applied(sha, timeout=60)
    st: dict[str, Any] = g.status()["status"]
    assert st["lastAppliedRevision"] == sha, json.dumps(st)[:2000]
    dep = g.json("get", "deployment", "web")
    assert dep["spec"]["replicas"] == 1  # the typo is not `replicas`: the default applies, as in Kubernetes
    wait_for(lambda: len(_uids(g)) == 1, 60, what="1 web pod ready")

    # never silently: a Warning event on the Deployment (once for the revision) and a log line
    def warning_event() -> str | None:
        text = g.cli("describe", "deployment", "web").stdout
        return text if "UnknownField" in text else None

    described = wait_for(warning_event, 30, what="the UnknownField event")
    assert 'unknown field "spec.replica" (validation: warn in gitship.yaml)' in described, described
    assert described.count("UnknownField") == 1, described
    log = [json.loads(line) for line in g.cli("events", "-o", "json").stdout.splitlines()]
    warned = [e for e in log if e.get("event") == "manifest_warning"]
    assert len(warned) == 1, warned
    assert warned[0]["field"] == "spec.replica" and warned[0]["file"] == "legacy/web.yaml", warned
    assert warned[0]["line"] == TYPO_LINE and warned[0]["kind"] == "Deployment" and warned[0]["name"] == "web"
    assert warned[0]["level"] == "warning"
