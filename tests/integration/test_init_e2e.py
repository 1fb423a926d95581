"""Init containers end to end through a real `gitship up` (in-process runtime, host mode): `get pods`
says Init:0/1 while the init container runs, then Running with READY 1/1; a failing init container
shows Init:Error / Init:CrashLoopBackOff with its restarts counted, its app never starts, and
`logs -c` reads the init container's output."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import commit_file, pod_ready, wait_for

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  initContainers:
  - name: setup
    image: busybox
    command: ["sh", "-c", "{init}"]
  containers:
  - name: app
    image: busybox
    command: ["sleep", "infinity"]
"""


def row(g, name: str) -> list[str]:
    out = g.cli("get", "pods").stdout.splitlines()
    return next((line.split() for line in out[1:] if line.split()[0] == name), [])


def test_get_pods_shows_init_progress_and_failures(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "slow.yaml", POD.format(name="slow", init="sleep 4"), "slow init")
    commit_file(empty_repo, "bad.yaml", POD.format(name="bad", init="echo cannot set up; exit 1"), "failing init")
    g = gitship_factory(empty_repo)
    wait_for(lambda: row(g, "slow")[1:3] == ["0/1", "Init:0/1"], 60, what="slow: Init:0/1")
    pod = wait_for(lambda: (p := g.json("get", "pod", "slow")) and pod_ready(p) and p, 60, what="slow ready")
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert row(g, "slow")[1:3] == ["1/1", "Running"]
    wait_for(lambda: row(g, "bad")[2:3] in (["Init:Error"], ["Init:CrashLoopBackOff"]), 60, what="bad: Init:...")
    wait_for(lambda: int(row(g, "bad")[3]) >= 1, 60, what="bad: its init restarts counted")
    bad = g.json("get", "pod", "bad")
    assert bad["status"]["phase"] == "Pending"
    assert bad["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert "cannot set up" in g.cli("logs", "bad", "-c", "setup").stdout  # an init container's log, as kubectl
