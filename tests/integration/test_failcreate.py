"""Issue 11 item 8, end to end: pods the runtime cannot create.

A real `gitship up` on a pod CIDR of this test's own that holds 5 pod addresses (a /29 on
loopback: the network, its first address and the broadcast address are not handed out) and a
Deployment of 10 replicas. Kubernetes' ReplicaSet controller (pkg/controller/replicaset/
replica_set.go, replica_set_utils.go) shows that as the ReplicaFailure condition (reason
FailedCreate) on the ReplicaSet, copied to the Deployment (pkg/controller/deployment/
progress.go), with Warning FailedCreate events, and creates pods in slow-start batches of
1, 2, 4, ... that stop at the first batch with a failure: never all at once after failures.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from tests.conftest import SANDBOXES, Gitship, commit_file, pod_ready, wait_for

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: qinchaowhut/allen:v1
        ports:
        - containerPort: 8080
"""


def _condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def _rs(g: Gitship) -> dict[str, Any] | None:
    items = g.json("get", "rs")["items"]
    return items[0] if len(items) == 1 else None


def _log(g: Gitship) -> list[dict[str, Any]]:
    return [json.loads(line) for line in g.cli("events", "-o", "json").stdout.splitlines() if line.strip()]


def _batches_by_pass(g: Gitship, owner: str) -> list[list[tuple[int, int]]]:
    """(size, refused) of each slow-start batch the daemon tried for ``owner``, pass by pass."""
    passes: dict[int, list[tuple[int, int, int]]] = {}
    for e in _log(g):
        if e.get("event") == "pod_create_batch" and e.get("owner") == owner:
            passes.setdefault(int(e["pass_no"]), []).append((int(e["batch"]), int(e["size"]), int(e["refused"])))
    return [[(size, refused) for _, size, refused in sorted(b)] for _, b in sorted(passes.items())]


def test_pods_that_cannot_be_created(empty_repo: Path, tmp_path: Path, gitship_factory) -> None:
    state = tmp_path / "state"
    x = 100 + zlib.crc32(str(state).encode()) % 140  # the test's own range, as conftest's net_args
    cidr = f"{10 if SANDBOXES else 127}.{x}.0.0/29"
    commit_file(empty_repo, "web.yaml", DEPLOYMENT.format(replicas=10), "web: 10 replicas")
    g = gitship_factory(empty_repo, extra=["--pod-cidr", cidr], state_dir=state)

    # the ReplicaSet shows the failure, and the Deployment copies it
    rs = wait_for(lambda: (r := _rs(g)) and _condition(r, "ReplicaFailure") and r, 60, what="ReplicaFailure on rs")
    name = rs["metadata"]["name"]
    cond = _condition(rs, "ReplicaFailure")
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "FailedCreate")
    assert cidr in cond["message"] and "exhausted" in cond["message"]
    dcond = wait_for(
        lambda: _condition(g.json("get", "deploy", "web"), "ReplicaFailure"), 30, what="ReplicaFailure on deploy"
    )
    assert (dcond["status"], dcond["reason"], dcond["message"]) == ("True", "FailedCreate", cond["message"])
    for kind in ("rs/" + name, "deploy/web"):
        desc = g.cli("describe", *kind.split("/")).stdout
        assert "ReplicaFailure" in desc and "FailedCreate" in desc, desc
    events = g.cli("describe", "rs", name).stdout.split("Events:", 1)[1]
    assert "FailedCreate" in events and f"Error creating: {cond['message']}" in events
    logged = [e for e in _log(g) if e.get("event") == "event" and e.get("name") == name]
    assert any(e["type"] == "Warning" and e["reason"] == "FailedCreate" for e in logged)

    # the 5 pods that fit run; a pod whose creation failed does not exist (no Pending leftovers)
    wait_for(lambda: len([p for p in g.pods("app=web") if pod_ready(p)]) == 5, 60, what="the 5 pods that fit")
    wait_for(lambda: len(g.pods("app=web")) == 5, 30, what="no pod beyond the 5 that run")
    created = [e for e in logged if e["reason"] == "SuccessfulCreate"]
    assert len(created) == 5, created  # only the pods that were created

    # creations in growing batches, stopping after a refusal: 1, 2, 4 (2 of the 4 refused, the
    # last 3 skipped), then one try of 1 a pass; never all at once
    wait_for(lambda: len(_batches_by_pass(g, f"default/{name}")) >= 3, 30, what="three passes of creations")
    passes = _batches_by_pass(g, f"default/{name}")
    assert passes[0] == [(1, 0), (2, 0), (4, 2)], passes
    for batches in passes[1:]:
        assert batches == [(1, 1)], passes

    # scaled down to what fits: the condition goes away, from both
    commit_file(empty_repo, "web.yaml", DEPLOYMENT.format(replicas=5), "web: 5 replicas")
    wait_for(lambda: _condition(g.json("get", "rs", name), "ReplicaFailure") is None, 60, what="rs condition gone")
    wait_for(
        lambda: _condition(g.json("get", "deploy", "web"), "ReplicaFailure") is None, 30, what="deploy condition gone"
    )
    assert len([p for p in g.pods("app=web") if pod_ready(p)]) == 5
