"""The walking skeleton, driven through the real CLI: a git commit becomes running pods.

Real git repositories, a real `gitship up` daemon, real processes. No mocks.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from tests.conftest import commit_file, git, wait_for, pod_ready as ready


def http_get(ip: str, port: int = 8080, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=timeout) as r:
        return r.read().decode()


def test_template_pods_run_and_label_is_a_commit(repo: Path, gitship_factory) -> None:
    g = gitship_factory(repo)
    pods = wait_for(
        lambda: (ps := g.pods()) and len(ps) == 2 and all(ready(p) for p in ps) and ps,
        60,
        what="dnsutil-pod and kubia ready",
    )
    by_name = {p["metadata"]["name"]: p for p in pods}
    assert set(by_name) == {"dnsutil-pod", "kubia"}
    assert http_get(by_name["kubia"]["status"]["podIP"]) == "This is v1 running in pod kubia\n"
    table = g.cli("get", "pods").stdout
    assert table.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "Running" in table

    # the seed's labels chapter: kubectl label po dnsutil-pod app=dnsutil; get po -l app=dnsutil
    assert g.cli("get", "po", "-l", "app=dnsutil").stdout.strip() == ""
    before = git(repo, "rev-parse", "HEAD")
    out = g.cli("label", "po", "dnsutil-pod", "app=dnsutil").stdout
    assert "labeled" in out
    head = git(repo, "rev-parse", "HEAD")
    assert head != before
    assert "label pod/dnsutil-pod: app=dnsutil" in git(repo, "log", "-1", "--format=%s")
    assert git(repo, "diff", "--name-only", before, head) == "pods/dnsutils.yaml"
    g.wait_applied(head)
    listed = wait_for(lambda: g.cli("get", "po", "-l", "app=dnsutil").stdout, 20, what="the labelled pod")
    assert "dnsutil-pod" in listed and "kubia" not in listed
    # relabelling a pod does not restart it
    uid = by_name["dnsutil-pod"]["metadata"]["uid"]
    assert g.json("get", "pod", "dnsutil-pod")["metadata"]["uid"] == uid
    # set-based selectors
    names = {p["metadata"]["name"] for p in g.pods("app in (dnsutil, kubia)")}
    assert names == {"dnsutil-pod", "kubia"}
    assert {p["metadata"]["name"] for p in g.pods("app,app notin (kubia)")} == {"dnsutil-pod"}
    bad = g.cli("get", "pods", "-l", "app in (a", check=False)
    assert bad.returncode != 0 and "error" in bad.stderr


def test_bad_commit_is_rejected_whole_and_good_one_applies(empty_repo: Path, gitship_factory) -> None:
    pod = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: kubia:v1
    ports:
    - containerPort: 8080
"""
    commit_file(empty_repo, "web.yaml", pod, "add web")
    g = gitship_factory(empty_repo)
    first = wait_for(lambda: [p for p in g.pods() if ready(p)], 30, what="web ready")[0]

    # one bad document among good ones: a second good pod plus an invalid port
    (empty_repo / "other.yaml").write_text(pod.replace("name: web", "name: other"))
    git(empty_repo, "add", "other.yaml")
    sha = commit_file(
        empty_repo, "web.yaml", pod.replace("containerPort: 8080", "containerPort: 99999"), "add other, break web"
    )
    g.wait_applied(sha)
    st = g.status()["status"]
    assert st["lastAttemptedRevision"] == sha
    assert st["lastAppliedRevision"] != sha
    cond = st["conditions"][0]
    assert cond["status"] == "False" and cond["reason"] == "ValidationFailed"
    assert "web.yaml:11" in cond["message"]
    assert "spec.containers[0].ports[0].containerPort" in cond["message"]
    # nothing of it applied: web still runs, untouched, and "other" (same commit range) did not start
    pods = g.pods()
    assert [p["metadata"]["name"] for p in pods] == ["web"]
    assert pods[0]["metadata"]["uid"] == first["metadata"]["uid"]
    assert http_get(pods[0]["status"]["podIP"]).startswith("This is v1")
    hist = g.json("history")["items"]
    assert hist[0]["sha"] == sha and hist[0]["result"] == "rejected"
    assert hist[0]["error"][0]["file"] == "web.yaml" and hist[0]["error"][0]["line"] == 11

    good = commit_file(empty_repo, "web.yaml", pod, "fix web")
    g.wait_applied(good)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == good and st["conditions"][0]["status"] == "True"
    wait_for(
        lambda: {p["metadata"]["name"] for p in g.pods() if ready(p)} == {"web", "other"},
        30,
        what="both pods after the fix",
    )


def test_unknown_kind_and_yaml_errors_name_the_document(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = commit_file(
        empty_repo,
        "multi.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"
        "spec: {containers: [{name: c, image: x, command: [sleep, '9']}]}\n"
        "---\napiVersion: v1\nkind: ServiceAcount\nmetadata: {name: sa}\n",
        "add multi",
    )
    g.wait_applied(sha)
    msg = g.status()["status"]["conditions"][0]["message"]
    assert "multi.yaml" in msg and "document 2" in msg and "ServiceAcount" in msg
    assert g.pods() == []


def test_delete_pod_is_replaced_and_logs_exec_events(repo: Path, gitship_factory) -> None:
    g = gitship_factory(repo)
    wait_for(lambda: len([p for p in g.pods() if ready(p)]) == 2, 60, what="template pods")
    old = g.json("get", "pod", "kubia")
    out = g.cli("delete", "pod", "kubia").stdout
    assert 'pod "kubia" deleted' in out
    new = wait_for(
        lambda: (
            (p := g.json("get", "pod", "kubia")) and p["metadata"]["uid"] != old["metadata"]["uid"] and ready(p) and p
        ),
        30,
        what="kubia back with a new uid",
    )
    assert http_get(new["status"]["podIP"]).startswith("This is v1 running in pod kubia")
    wait_for(lambda: "Kubia server starting" in g.cli("logs", "kubia").stdout, 20, what="kubia's log")
    res = g.cli("exec", "kubia", "--", "sh", "-c", "echo $POD_NAME $HOSTNAME $CONTAINER_IMAGE")
    assert res.stdout.split() == ["kubia", "kubia", "qinchaowhut/allen:v1"]
    lines = [json.loads(x) for x in g.cli("events", "-o", "json", "--object", "pod/kubia").stdout.splitlines()]
    assert lines and all(e["name"] == "kubia" for e in lines)
    head = git(repo, "rev-parse", "HEAD")
    mine = [json.loads(x) for x in g.cli("events", "-o", "json", "--commit", head[:7]).stdout.splitlines()]
    assert any(e["event"] == "revision_applied" for e in mine)
    assert "Events:" in g.cli("describe", "pod", "kubia").stdout


def test_replicaset_replaces_a_deleted_pod(repo: Path, gitship_factory) -> None:
    g = gitship_factory(repo)
    out = g.cli("create", "-f", str(repo / "examples" / "replicaset.yaml")).stdout
    assert "replicaset/dnsutil-rs created" in out
    assert (repo / "replicaset.yaml").exists()
    rs_pods = wait_for(
        lambda: (ps := [p for p in g.pods("app=dnsutil") if ready(p)]) and len(ps) == 2 and ps, 30, what="2 replicas"
    )
    victim = rs_pods[0]["metadata"]["name"]
    assert victim.startswith("dnsutil-rs-")
    g.cli("delete", "pod", victim)
    after = wait_for(
        lambda: (
            (ps := [p for p in g.pods("app=dnsutil") if ready(p)])
            and len(ps) == 2
            and victim not in {p["metadata"]["name"] for p in ps}
            and ps
        ),
        30,
        what="a replacement pod",
    )
    assert all(p["metadata"]["name"].startswith("dnsutil-rs-") for p in after)
    rs = g.json("get", "rs", "dnsutil-rs")
    assert rs["status"]["replicas"] == 2
    table = g.cli("get", "rs").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert table[1].split()[:4] == ["dnsutil-rs", "2", "2", "2"]
    again = g.cli("create", "-f", str(repo / "examples" / "replicaset.yaml"), check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr


def test_diff_shows_what_a_revision_would_change(repo: Path, gitship_factory) -> None:
    g = gitship_factory(repo)
    text = (repo / "pods" / "kubia.yaml").read_text().replace("app: kubia", "app: kubia\n    tier: web")
    (repo / "pods" / "kubia.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tier label")
    # gitship applies it as soon as it sees it; diff against the previous applied revision via REV
    res = g.cli("diff", "HEAD", check=False)
    assert res.returncode in (0, 1)
    g.wait_applied(git(repo, "rev-parse", "HEAD"))
    res = g.cli("diff", "HEAD~1", check=False)
    assert res.returncode == 1
    assert "-    tier: web" in res.stdout and "applied/pod/kubia" in res.stdout


def test_kill9_then_restart_adopts_running_pods(repo: Path, gitship_factory, tmp_path: Path) -> None:
    g = gitship_factory(repo)
    pods = wait_for(lambda: (ps := [p for p in g.pods() if ready(p)]) and len(ps) == 2 and ps, 60, what="pods")
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
    pids = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"] for p in pods}
    g.kill9()
    # the pods survive gitship
    for cid in pids.values():
        os.kill(int(cid.split("//")[1]), 0)
    g2 = gitship_factory(repo, state_dir=tmp_path / "state")
    again = wait_for(lambda: (ps := [p for p in g2.pods() if ready(p)]) and len(ps) == 2 and ps, 60, what="adopted")
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in again} == uids
    assert {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"] for p in again} == pids
    g2.stop()
    # a clean stop stops the pods
    for cid in pids.values():
        wait_for(lambda cid=cid: not _alive(int(cid.split("//")[1])), 30, what="pods stopped with gitship")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def test_second_gitship_on_same_state_dir_is_refused(repo: Path, gitship_factory, tmp_path: Path) -> None:
    g = gitship_factory(repo)
    g2 = gitship_factory(repo, start=False, state_dir=tmp_path / "state")
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "up", str(repo), "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        env=g2.env,
    )
    assert p.returncode != 0 and "another `gitship up`" in p.stderr
    assert g.status()["status"]["daemon"] == "running"


def test_jinja_template_rendered_with_values(empty_repo: Path, gitship_factory) -> None:
    (empty_repo / "gitship.yaml").write_text(
        (empty_repo / "gitship.yaml").read_text().replace("replicas: 3", "replicas: 3\n  who: templated")
    )
    git(empty_repo, "add", "gitship.yaml")
    commit_file(
        empty_repo,
        "pod.yaml.j2",
        'apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ who }}\n  labels: {n: "{{ replicas }}"}\n'
        "spec:\n  containers:\n  - {name: c, image: x, command: [sleep, infinity]}\n",
        "a template",
    )
    g = gitship_factory(empty_repo)
    pod = wait_for(lambda: [p for p in g.pods() if ready(p)], 30, what="templated pod")[0]
    assert pod["metadata"]["name"] == "templated" and pod["metadata"]["labels"] == {"n": "3"}
    # a template that reaches for Python internals is rejected, naming the file and line
    sha = commit_file(empty_repo, "evil.yaml.j2", "x: {{ ''.__class__.__mro__ }}\n", "evil")
    g.wait_applied(sha)
    msg = g.status()["status"]["conditions"][0]["message"]
    assert "evil.yaml.j2" in msg
    assert g.json("get", "pod", "templated")["metadata"]["uid"] == pod["metadata"]["uid"]
    # the CLI refuses to edit an object rendered from a template
    res = g.cli("label", "pod", "templated", "a=b", check=False)
    assert res.returncode != 0 and "template" in res.stderr
