"""Issue 13 item 6 (resources), end to end through `gitship up`: a Pod's memory limit is enforced
(in-process: a cgroup), the container is OOMKilled and restarted; the API defaults its requests to
its limits; `gitship describe pod` shows its Limits, Requests and QoS class, and the events say
nothing is wrong with enforcement. Waiting is by polling with deadlines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import commit_file, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="enforcing limits in-process needs cgroups (root)")

POD = """apiVersion: v1
kind: Pod
metadata:
  name: greedy
spec:
  containers:
  - name: app
    image: busybox
    command: ["tail", "/dev/zero"]
    resources:
      limits: {memory: 32Mi, cpu: 200m}
"""


def test_oom_killed_pod_through_the_cli(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "pod.yaml", POD, "a greedy pod")
    g = gitship_factory(empty_repo)
    resources = g.status()["status"]["runtime"].get("resources") or {}
    if "memory" not in resources.get("enforced", []):
        pytest.skip(f"memory limits are not enforced here: {resources.get('notEnforced')}")

    def oom_killed():
        p = g.json("get", "pod", "greedy")
        cs = (p.get("status") or {}).get("containerStatuses") or []
        last = cs[0].get("lastState", {}).get("terminated", {}) if cs else {}
        return last.get("reason") == "OOMKilled" and cs[0]["restartCount"] >= 1 and p

    pod = wait_for(oom_killed, 90, what="the pod OOMKilled and restarted")
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"memory": "32Mi", "cpu": "200m"}
    assert pod["status"]["qosClass"] == "Guaranteed"  # both limits, the requests defaulted to them
    text = g.cli("describe", "pod", "greedy").stdout
    assert "    Limits:" in text and "      memory:  32Mi" in text and "      cpu:     200m" in text
    assert "QoS Class:       Guaranteed" in text.splitlines()
    assert "not enforced" not in text
    assert "ResourcesNotEnforced" not in text
