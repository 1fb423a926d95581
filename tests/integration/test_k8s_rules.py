"""Issue 11, end to end: Kubernetes' rules where users get hurt, through the real loader and daemon.

Real git repositories, a real `gitship up`, real processes (the template's kubia app).
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import commit_file, pod_ready, wait_for

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
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
      - name: web
        image: qinchaowhut/allen:v1
        ports:
        - containerPort: 8080
"""

# The same Deployment as `kubectl create deployment --dry-run=client -o yaml` prints it, with
# every empty value spelled out.
DEPLOY_SPELLED_OUT = """apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: qinchaowhut/allen:v1
        env: []
        resources: {}
        ports:
        - containerPort: 8080
status: {}
"""


def _ready_uids(g) -> set[str] | None:
    pods = g.pods("app=web")
    if len(pods) == 2 and all(pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in pods):
        return {p["metadata"]["uid"] for p in pods}
    return None


def test_spelling_out_empty_values_starts_no_rollout(empty_repo: Path, gitship_factory) -> None:
    """Before: a new ReplicaSet, revision 2 and a full rolling restart. After: nothing changes."""
    sha = commit_file(empty_repo, "web.yaml", DEPLOY, "web v1")
    g = gitship_factory(empty_repo)
    g.wait_applied(sha)
    uids = wait_for(lambda: _ready_uids(g), 60, what="2 ready pods")

    sha2 = commit_file(empty_repo, "web.yaml", DEPLOY_SPELLED_OUT, "the same, as kubectl --dry-run prints it")
    g.wait_applied(sha2)
    # The deployment controller has seen the commit once its status reports the new generation.
    wait_for(
        lambda: (
            (d := g.json("get", "deployment", "web"))["status"].get("observedGeneration", 0)
            >= d["metadata"].get("generation", 1)
        ),
        30,
        what="the deployment controller to observe the commit",
    )
    rss = g.json("get", "rs")["items"]
    assert len(rss) == 1, [r["metadata"]["name"] for r in rss]
    assert rss[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert _ready_uids(g) == uids
