"""Namespaces through a real `gitship up`: a Namespace from git with a Deployment and a Service in it.

`get -n`, `get -A` (the NAMESPACE column), the default namespace not showing them; `get ns` and
`describe ns`; a pod of team-a resolves the short Service name of team-a, not the same-named
Service of default (pod sandboxes: root); an object in an unknown namespace rejects the commit,
naming the file; removing the Namespace from git: Terminating, then gone with all its pods.
Real git, real daemon, real CLI. No fixed sleeps.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import commit_file, git, pod_ready, wait_for

TEAM_A = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "luksa/kubia:v1"
        ports: [{containerPort: 8080}]
        lifecycle: {preStop: {sleep: {seconds: 3}}}  # keeps team-a Terminating a while
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team-a}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
DEFAULT_WEB = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080}]
"""
RESOLVE = "import socket; print(socket.gethostbyname('web'))"


def _rows(g, *args: str) -> list[list[str]]:
    return [line.split() for line in g.cli("get", *args).stdout.splitlines()]


def _team_pods(g) -> list[dict]:
    return g.json("get", "pods", "-n", "team-a")["items"]


def test_a_namespace_from_git_its_objects_and_its_removal(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    g = gitship_factory(empty_repo)
    commit_file(empty_repo, "default-web.yaml", DEFAULT_WEB, "a Service web in default")
    sha = commit_file(empty_repo, "team-a.yaml", TEAM_A, "team-a: a namespace with web in it")
    g.wait_applied(sha)
    assert g.status()["status"]["lastAppliedRevision"] == sha
    wait_for(lambda: len([p for p in _team_pods(g) if pod_ready(p)]) == 2, 90, what="team-a's two pods Ready")

    # get -n, -A, and the default namespace
    rows = _rows(g, "pods", "-n", "team-a")
    assert rows[0][:2] == ["NAME", "READY"] and len(rows) == 3 and all(r[0].startswith("web-") for r in rows[1:])
    rows = _rows(g, "pods", "-A")
    assert rows[0][:2] == ["NAMESPACE", "NAME"] and {r[0] for r in rows[1:]} == {"team-a"}
    plain = g.cli("get", "pods")
    assert plain.stdout == "" and "No resources found in default namespace." in plain.stderr
    svcs = _rows(g, "svc", "-A")
    assert {(r[0], r[1]) for r in svcs[1:]} >= {("default", "web"), ("team-a", "web")}
    missing = g.cli("get", "pods", "nosuch", "-n", "team-a", check=False)
    assert missing.returncode == 1 and 'Error from server (NotFound): pods "nosuch" not found' in missing.stderr

    # the namespaces: built in and git's
    ns_rows = _rows(g, "ns")
    assert ns_rows[0] == ["NAME", "STATUS", "AGE"]
    assert {r[0]: r[1] for r in ns_rows[1:]} == {
        n: "Active" for n in ("default", "kube-node-lease", "kube-public", "kube-system", "team-a")
    }
    described = g.cli("describe", "ns", "team-a").stdout
    assert "Name:           team-a" in described and "Status:         Active" in described
    assert "kubernetes.io/metadata.name=team-a" in described

    # a pod of team-a: its short names resolve in team-a
    pod = _team_pods(g)[0]["metadata"]["name"]
    team_ip = g.json("get", "svc", "web", "-n", "team-a")["spec"]["clusterIP"]
    default_ip = g.json("get", "svc", "web")["spec"]["clusterIP"]
    assert team_ip != default_ip
    resolved = g.cli("exec", pod, "-n", "team-a", "--", "python3", "-c", RESOLVE).stdout.strip()
    assert resolved == team_ip
    env = g.cli("exec", pod, "-n", "team-a", "--", "env").stdout.splitlines()
    assert f"WEB_SERVICE_HOST={team_ip}" in env and f"WEB_SERVICE_HOST={default_ip}" not in env
    assert (
        "search team-a.svc.cluster.local svc.cluster.local cluster.local"
        in g.cli("exec", pod, "-n", "team-a", "--", "cat", "/etc/resolv.conf").stdout
    )
    wait_for(lambda: g.cli("logs", pod, "-n", "team-a").returncode == 0, 30, what="logs -n")

    # the verbs that change desired state, on team-a's objects (each one commit)
    g.cli("label", "deployment", "web", "tier=front", "-n", "team-a")
    g.cli("scale", "deployment", "web", "--replicas", "3", "-n", "team-a")
    g.cli("set", "image", "deployment", "web", "web=luksa/kubia:v2", "-n", "team-a")
    head = git(empty_repo, "rev-parse", "HEAD").strip()
    g.wait_applied(head)
    assert "successfully rolled out" in g.cli("rollout", "status", "deployment", "web", "-n", "team-a").stdout
    dep = g.json("get", "deployment", "web", "-n", "team-a")
    assert dep["metadata"]["labels"]["tier"] == "front" and dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "luksa/kubia:v2"
    history = g.cli("rollout", "history", "deployment", "web", "-n", "team-a").stdout.splitlines()
    assert len([line for line in history if line[:1].isdigit()]) == 2
    nf = g.cli("rollout", "status", "deployment", "web", check=False)  # not in default
    assert nf.returncode == 1 and 'Error from server (NotFound): deployments.apps "web" not found' in nf.stderr
    assert "team-a" in g.cli("describe", "pods", "-A").stdout
    undone = g.cli("rollout", "undo", "deployment", "web", "-n", "team-a").stdout
    assert "rolled back" in undone
    wait_for(
        lambda: (
            g.json("get", "deployment", "web", "-n", "team-a")["spec"]["template"]["spec"]["containers"][0]["image"]
            == "luksa/kubia:v1"
        ),
        60,
        what="undo in team-a",
    )

    # create/apply -f with -n: an object without a namespace goes there; another namespace is refused
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {color: blue}\n")
    g.cli("apply", "-f", str(cm), "-n", "team-a")
    wait_for(lambda: g.cli("get", "cm", "settings", "-n", "team-a", check=False).returncode == 0, 30, what="cm")
    assert g.cli("get", "cm", "settings", check=False).returncode == 1  # not in default
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: o, namespace: team-a}\n")
    refused = g.cli("create", "-f", str(other), "-n", "kube-public", check=False)
    assert refused.returncode == 1 and "does not match the namespace" in refused.stderr

    # delete pod -n: its ReplicaSet in team-a replaces it; events -n shows team-a's records
    victim = _team_pods(g)[0]["metadata"]["name"]
    assert f'pod "{victim}" deleted' in g.cli("delete", "pod", victim, "-n", "team-a").stdout
    wait_for(lambda: victim not in {p["metadata"]["name"] for p in _team_pods(g)}, 60, what="pod replaced")
    events = g.cli("events", "-n", "team-a", "-o", "json").stdout.splitlines()
    namespaces = {json.loads(line).get("namespace") for line in events}
    assert "team-a" in namespaces and "default" not in namespaces

    # an object in a namespace that does not exist rejects the commit, naming the file
    good = git(empty_repo, "rev-parse", "HEAD").strip()
    g.wait_applied(good)
    bad = commit_file(
        empty_repo, "team-b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: team-b}\n", "x"
    )
    g.wait_applied(bad)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == good
    message = st["conditions"][0]["message"]
    assert "team-b.yaml" in message and 'namespaces "team-b" not found' in message and "metadata.namespace" in message
    git(empty_repo, "rm", "-q", "team-b.yaml")
    git(empty_repo, "commit", "-q", "-m", "drop team-b's object")

    def phase() -> str | None:
        p = g.cli("get", "ns", "team-a", "-o", "jsonpath={.status.phase}", check=False)
        return p.stdout if p.returncode == 0 else None

    # the Namespace removed from git while an object in it stays: the commit is rejected, naming that file
    git(empty_repo, "rm", "-q", "team-a.yaml")  # the Namespace, the Deployment, the Service; not cm.yaml
    git(empty_repo, "commit", "-q", "-m", "drop team-a, forgetting its ConfigMap")
    half = git(empty_repo, "rev-parse", "HEAD").strip()
    g.wait_applied(half)
    message = g.status()["status"]["conditions"][0]["message"]
    assert "cm.yaml" in message and 'namespaces "team-a" not found' in message
    assert phase() == "Active"

    # with everything in it: Terminating, then gone with its pods
    git(empty_repo, "rm", "-q", "cm.yaml")
    git(empty_repo, "commit", "-q", "-m", "drop team-a's ConfigMap too")
    gone = git(empty_repo, "rev-parse", "HEAD").strip()
    g.wait_applied(gone)

    wait_for(lambda: phase() == "Terminating", 30, what="team-a Terminating")
    ns = g.json("get", "ns", "team-a")
    assert ns["metadata"]["deletionTimestamp"] and ns["spec"]["finalizers"] == ["kubernetes"]
    assert all(p["metadata"].get("deletionTimestamp") for p in _team_pods(g))
    wait_for(lambda: phase() is None, 90, what="team-a gone")
    assert _team_pods(g) == []
    assert g.cli("get", "deploy,svc", "-n", "team-a", check=False).stdout == ""
    assert [r[1] for r in _rows(g, "svc", "-A")[1:] if r[0] == "default" and r[1] == "web"] == ["web"]


def test_delete_namespace_removes_it_and_its_objects_from_git(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = commit_file(empty_repo, "team-a.yaml", TEAM_A, "team-a")
    g.wait_applied(sha)
    wait_for(lambda: len(_team_pods(g)) == 2, 60, what="team-a's pods")
    forbidden = g.cli("delete", "ns", "default", check=False)
    assert forbidden.returncode == 1
    assert 'namespaces "default" is forbidden: this namespace may not be deleted' in forbidden.stderr
    out = g.cli("delete", "namespace", "team-a").stdout
    assert 'namespace "team-a" deleted' in out
    assert not (empty_repo / "team-a.yaml").exists() or "team-a" not in (empty_repo / "team-a.yaml").read_text()
    head = git(empty_repo, "rev-parse", "HEAD").strip()
    g.wait_applied(head)
    assert g.status()["status"]["lastAppliedRevision"] == head  # every commit of it valid
    wait_for(lambda: g.cli("get", "ns", "team-a", check=False).returncode == 1, 90, what="team-a gone")
    assert _team_pods(g) == []
