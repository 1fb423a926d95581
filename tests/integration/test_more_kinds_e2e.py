"""Kinds stored without effect and ReplicationControllers through a real `gitship up`.

A commit with an RBAC file, a PodDisruptionBudget, an HPA, a CRD with its custom resource and a
Deployment applies; `get` shows them with kubectl's columns; `status` counts them; a custom
resource without its CRD rejects the commit whole, naming the file; a ReplicationController keeps
its pods, replaces a deleted one and is scaled by a commit. Real git, real daemon, real CLI. No
fixed sleeps.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import commit_file, git, wait_for

RBAC = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-reader}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods}
subjects: [{kind: ServiceAccount, name: app}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}
"""
POLICY = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
"""
CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
"""
CR = """\
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: my-new-cron-object}
spec: {cronSpec: "* * * * */5", image: my-awesome-cron-image}
"""
MONITOR = """\
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web}
spec: {selector: {matchLabels: {app: web}}, endpoints: [{port: http}]}
"""
DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: app
      containers:
      - {name: web, image: "luksa/kubia:v1", ports: [{containerPort: 8080}]}
"""
RC = """\
apiVersion: v1
kind: ReplicationController
metadata: {name: kubia}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: kubia}}
    spec:
      containers:
      - {name: kubia, image: "luksa/kubia:v1", ports: [{containerPort: 8080}]}
"""


def _rows(g, *args: str) -> list[list[str]]:
    return [line.split() for line in g.cli("get", *args).stdout.splitlines()]


def _add(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def test_kinds_without_effect_applied_shown_counted(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = _add(
        empty_repo,
        {"rbac.yaml": RBAC, "policy.yaml": POLICY, "crd.yaml": CRD, "cron.yaml": CR, "web.yaml": DEPLOY},
        "an app with its RBAC, PDB, HPA and a custom resource",
    )
    g.wait_applied(sha)
    assert g.status()["status"]["lastAppliedRevision"] == sha
    wait_for(lambda: len(g.running_pods("app=web")) == 1, 60, what="the Deployment's pod")

    assert _rows(g, "sa")[1][:2] == ["app", "0"]
    assert _rows(g, "pdb")[0] == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert _rows(g, "pdb")[1][:4] == ["web", "1", "N/A", "0"]
    assert _rows(g, "hpa")[1][:2] == ["web", "Deployment/web"]
    assert _rows(g, "rolebindings")[1][:2] == ["read-pods", "ClusterRole/pod-reader"]
    assert _rows(g, "clusterrole", "pod-reader")[1][0] == "pod-reader"
    assert _rows(g, "crd")[1][0] == "crontabs.stable.example.com"
    assert _rows(g, "ct")[0] == ["NAME", "AGE"] and _rows(g, "crontabs")[1][0] == "my-new-cron-object"
    cr = g.json("get", "crontab", "my-new-cron-object")
    assert cr["spec"]["image"] == "my-awesome-cron-image" and cr["metadata"]["uid"]
    role = g.json("get", "clusterrole", "pod-reader")
    assert role["rules"][0]["verbs"] == ["get", "list", "watch"] and "namespace" not in role["metadata"]
    assert "kind: RoleBinding" in g.cli("get", "rolebinding", "read-pods", "-o", "yaml").stdout

    described = g.cli("describe", "pdb", "web").stdout
    assert "NoEffect" in described and "has no effect on this runtime" in described

    st = g.status()["status"]["storedWithoutEffect"]
    assert st["count"] == 7  # sa, clusterrole, rolebinding, pdb, hpa, crd, crontab
    text = g.cli("status").stdout
    assert "7 objects stored without effect" in text and "CronTab" in text

    # a custom resource whose CRD is not in the repository rejects the whole commit, naming the file
    bad = _add(empty_repo, {"monitor.yaml": MONITOR, "extra.yaml": RBAC.replace("name: app", "name: other", 1)}, "x")
    g.wait_applied(bad)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == sha
    message = st["conditions"][0]["message"]
    assert "monitor.yaml" in message and "ServiceMonitor" in message and "monitoring.coreos.com/v1" in message
    assert g.cli("get", "sa", "other", check=False).returncode != 0  # nothing of it applied

    # removed from git: pruned
    git(empty_repo, "rm", "-q", "monitor.yaml", "extra.yaml", "cron.yaml", "rbac.yaml")
    git(empty_repo, "commit", "-q", "-m", "drop the monitor, the cron object and the RBAC")
    gone = git(empty_repo, "rev-parse", "HEAD").strip()
    g.wait_applied(gone)
    assert g.status()["status"]["lastAppliedRevision"] == gone
    wait_for(lambda: g.cli("get", "ct", "my-new-cron-object", check=False).returncode != 0, 30, what="CR pruned")
    wait_for(lambda: g.cli("get", "clusterrole", "pod-reader", check=False).returncode != 0, 30, what="pruned")
    assert g.status()["status"]["storedWithoutEffect"]["count"] == 3


def test_replication_controller_keeps_replaces_and_scales(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = commit_file(empty_repo, "kubia-rc.yaml", RC, "a ReplicationController")
    g.wait_applied(sha)
    wait_for(lambda: len(g.running_pods("app=kubia")) == 3, 90, what="3 pods of the RC")
    rows = _rows(g, "rc")
    assert rows[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    wait_for(lambda: _rows(g, "rc")[1][:4] == ["kubia", "3", "3", "3"], 30, what="RC status")
    wide = _rows(g, "rc", "-o", "wide")
    assert wide[0][-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"] and wide[1][-1] == "app=kubia"
    pod = g.running_pods("app=kubia")[0]
    (ref,) = pod["metadata"]["ownerReferences"]
    assert ref["kind"] == "ReplicationController" and ref["name"] == "kubia"
    described = g.cli("describe", "rc", "kubia").stdout
    assert "Selector:       app=kubia" in described and "SuccessfulCreate" in described

    # a pod deleted: the RC makes another
    victim = pod["metadata"]["name"]
    g.cli("delete", "pod", victim)
    wait_for(
        lambda: len(names := [p["metadata"]["name"] for p in g.running_pods("app=kubia")]) == 3 and victim not in names,
        90,
        what="a replacement pod",
    )

    # scale rc/NAME: a commit, applied
    out = g.cli("scale", "rc/kubia", "--replicas", "1").stdout
    assert "replicationcontroller/kubia scaled" in out
    assert "replicas: 1" in (empty_repo / "kubia-rc.yaml").read_text()
    wait_for(lambda: len(g.running_pods("app=kubia")) == 1 and len(g.pods("app=kubia")) == 1, 90, what="1 pod")
    assert g.json("get", "rc", "kubia")["status"]["replicas"] == 1

    # delete rc: its document leaves git in a commit; the RC is pruned and its pods go with it
    out = g.cli("delete", "rc", "kubia").stdout
    assert 'replicationcontroller "kubia" deleted' in out
    assert not (empty_repo / "kubia-rc.yaml").exists()
    wait_for(lambda: g.cli("get", "rc", "kubia", check=False).returncode != 0, 30, what="the RC pruned")
    wait_for(lambda: g.pods("app=kubia") == [], 60, what="its pods gone")


def test_delete_removes_one_document_and_keeps_the_rest(tmp_path: Path) -> None:
    from reconciler.gitops import RepoWriter

    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "T")
    git(repo, "config", "user.email", "t@example.com")
    text = "# the app\n" + RC + "---\n" + RBAC
    sha0 = commit_file(repo, "app.yaml", text, "app")
    w = RepoWriter(str(repo), "")
    sha = w.delete("ReplicationController", "default", "kubia")
    assert sha != sha0 and "delete replicationcontroller/kubia" in git(repo, "log", "-1", "--format=%s")
    left = (repo / "app.yaml").read_text()
    assert left.startswith("# the app\n---\n") and "ReplicationController" not in left
    assert left.count("\nkind:") == 3 and "name: pod-reader" in left
    w.delete("ClusterRole", None, "pod-reader")
    assert "\nkind: ClusterRole\n" not in (repo / "app.yaml").read_text()
    assert (repo / "app.yaml").read_text().count("\nkind:") == 2
