"""Issue 11, end to end: Kubernetes' rules where users get hurt, through the real loader and daemon.

Real git repositories, a real `gitship up`, real processes (the template's kubia app).
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import commit_file, pod_ready, remove_file, wait_for

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


DEPLOY3 = DEPLOY.replace("replicas: 2", "replicas: 3")
# the selector (and the template's labels, to match it) changed; `selector:` is on line 7
NEW_SELECTOR = DEPLOY3.replace("app: web", "app: web2").replace("allen:v1", "allen:v2")
SELECTOR_LINE = 7


def _serving(g, n: int, selector: str = "app=web") -> set[str] | None:
    pods = g.pods(selector)
    if len(pods) == n and all(pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in pods):
        return {p["metadata"]["uid"] for p in pods}
    return None


def test_a_selector_change_is_rejected_and_the_last_good_commit_keeps_serving(
    empty_repo: Path, gitship_factory
) -> None:
    """Before: accepted; the old ReplicaSet was released and pruned, all 3 pods terminated at once.
    After: rejected whole as Kubernetes rejects it (`field is immutable`), with file and line; the
    same 3 pods keep serving. Deleting the Deployment and declaring it again later is allowed."""
    good = commit_file(empty_repo, "web.yaml", DEPLOY3, "web, 3 replicas")
    g = gitship_factory(empty_repo)
    g.wait_applied(good)
    uids = wait_for(lambda: _serving(g, 3), 60, what="3 ready pods")

    bad = commit_file(empty_repo, "web.yaml", NEW_SELECTOR, "web: select app=web2")
    g.wait_applied(bad)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == good
    cond = st["conditions"][0]
    assert cond["status"] == "False" and cond["reason"] == "ValidationFailed", cond
    text = g.cli("status").stdout
    assert f"web.yaml:{SELECTOR_LINE}" in text, text
    assert 'spec.selector: Invalid value: {"matchLabels":{"app":"web2"}}: field is immutable' in text, text
    events = g.cli("events").stdout
    assert "revision_rejected" in events and "field is immutable" in events, events

    # nothing of the commit was applied: the same Deployment, one ReplicaSet, the same 3 pods
    dep = g.json("get", "deployment", "web")
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "qinchaowhut/allen:v1"
    assert len(g.json("get", "rs")["items"]) == 1
    assert _serving(g, 3) == uids
    assert g.pods("app=web2") == []

    # as in Kubernetes: delete it, then declare it again with the new selector
    gone = remove_file(empty_repo, "web.yaml", "web: delete")
    g.wait_applied(gone)
    assert g.status()["status"]["lastAppliedRevision"] == gone
    wait_for(lambda: not g.json("get", "deployment")["items"], 30, what="the deployment to be deleted")
    again = commit_file(empty_repo, "web.yaml", NEW_SELECTOR, "web: select app=web2")
    g.wait_applied(again)
    assert g.status()["status"]["lastAppliedRevision"] == again
    wait_for(lambda: _serving(g, 3, "app=web2"), 60, what="3 ready web2 pods")


RS = """apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 3
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


def _bare_pod(name: str) -> str:
    return f"""---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: web
spec:
  containers:
  - name: web
    image: qinchaowhut/allen:v1
    ports:
    - containerPort: 8080
"""


def _owner_kinds(pod: dict) -> list[str]:
    return [r["kind"] for r in pod["metadata"].get("ownerReferences") or []]


def _pod(g, name: str) -> dict | None:
    return next((p for p in g.pods() if p["metadata"]["name"] == name), None)


def test_a_released_pod_is_orphaned_and_replaced_not_deleted(empty_repo: Path, gitship_factory) -> None:
    """A ReplicaSet adopts two bare pods from git that match its selector. `gitship label pod extra
    app=other --overwrite`: the ReplicaSet releases it (ownerReference removed), it keeps running,
    and the ReplicaSet makes a replacement (Kubernetes' ClaimPods, then syncReplicaSet). Removing
    the other adopted pod from git prunes it (before: a pod a controller had adopted was never
    pruned) and the ReplicaSet replaces it."""
    sha = commit_file(empty_repo, "web.yaml", RS + _bare_pod("extra") + _bare_pod("extra2"), "web rs + 2 pods")
    g = gitship_factory(empty_repo)
    g.wait_applied(sha)
    wait_for(lambda: _serving(g, 3), 60, what="3 ready pods")
    extra = _pod(g, "extra")
    assert extra is not None and _owner_kinds(extra) == ["ReplicaSet"]
    uid = extra["metadata"]["uid"]

    g.cli("label", "pod", "extra", "app=other", "--overwrite")

    def released() -> dict | None:
        p = _pod(g, "extra")
        return p if p is not None and p["metadata"]["labels"].get("app") == "other" and not _owner_kinds(p) else None

    p = wait_for(released, 30, what="extra released")
    assert p["metadata"]["uid"] == uid and pod_ready(p) and not p["metadata"].get("deletionTimestamp")
    replaced = wait_for(lambda: _serving(g, 3), 60, what="a replacement: 3 ready app=web pods again")
    assert uid not in replaced
    assert all(_owner_kinds(q) == ["ReplicaSet"] for q in g.pods("app=web"))
    extra2_uid = _pod(g, "extra2")["metadata"]["uid"]

    gone = commit_file(empty_repo, "web.yaml", RS + _bare_pod("extra").replace("app: web", "app: other"), "drop extra2")
    g.wait_applied(gone)
    wait_for(lambda: _pod(g, "extra2") is None, 60, what="extra2 pruned")
    after = wait_for(lambda: _serving(g, 3), 60, what="3 ready app=web pods")
    assert extra2_uid not in after
    still = _pod(g, "extra")
    assert still is not None and still["metadata"]["uid"] == uid and pod_ready(still)
