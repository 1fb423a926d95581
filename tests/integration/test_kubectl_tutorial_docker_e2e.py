"""A subset of the tutorial's kubectl commands, as the tutorial writes them, on the Docker runtime.

One daemon for the module. The tutorial's images are the local test images under the tutorial's
names (tests/dockerimages.py; no registry): qinchaowhut/allen:v1/v2 are gitship-test/kubia:v1/v2,
tutum/dnsutils is not there (its pull fails, as offline Kubernetes shows it). Tags this module adds are
removed afterwards. Skipped, with the reason, where no engine answers.
"""

from __future__ import annotations

import hashlib
import time
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Gitship, make_app_repo, wait_for
from tests.dockerimages import docker_client_or_skip, ensure_test_images
from tests.integration.test_docker_e2e import docker_args
from tests.integration.test_kubectl_read_e2e import _free_port
from tests.integration.test_kubectl_tutorial_e2e import MACHINE_KUBECTL, Lines, Tutorial

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not os.access(MACHINE_KUBECTL, os.X_OK), reason=f"no kubectl at {MACHINE_KUBECTL}"),
]

TAGS = {
    "qinchaowhut/allen:v1": "gitship-test/kubia:v1",
    "qinchaowhut/allen:v2": "gitship-test/kubia:v2",
}


@pytest.fixture(scope="module")
def dtut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tutorial]:
    from tests.conftest import _kill_leftovers

    client = docker_client_or_skip()
    ensure_test_images(client)
    made = []
    for tag, source in TAGS.items():
        try:
            client.api.inspect_image(tag)
        except Exception:
            repo_, t = tag.rsplit(":", 1)
            client.api.tag(source, repo_, t)
            made.append(tag)
    tmp = tmp_path_factory.mktemp("dtutorial")
    repo = make_app_repo(tmp / "repo")
    g = Gitship(repo, tmp / "state", [*docker_args(tmp), "--api-addr", f"127.0.0.1:{_free_port()}"])
    try:
        g.start()
        yield Tutorial(g, tmp / "kcache", "")
    finally:
        g.stop()
        _kill_leftovers(tmp)
        instance = hashlib.sha256(os.path.abspath(tmp / "state" / "runtime").encode()).hexdigest()[:16]
        for c in client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]}):
            client.api.remove_container(c["Id"], force=True)
        prefix = docker_args(tmp)[3].rsplit(".", 2)[0] + "."  # this daemon's 10.97.X. service addresses
        lo = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
        for a in [line.split()[3].split("/")[0] for line in lo.splitlines()]:
            if a.startswith(prefix):
                subprocess.run(["ip", "addr", "del", f"{a}/32", "dev", "lo"], capture_output=True)
        for tag in made:
            client.api.remove_image(tag)


def test_tutorial_on_docker(dtut: Tutorial) -> None:
    t = dtut
    t.commits("kubectl create -f dnsutils.yaml", "kubectl create pod/dnsutil-pod", "pod/dnsutil-pod created")
    t.commits(
        "kubectl label po dnsutil-pod app=dnsutil",
        "kubectl label pod/dnsutil-pod app=dnsutil",
        "pod/dnsutil-pod labeled",
    )

    # tutum/dnsutils has no tag: imagePullPolicy Always, and this machine reaches no registry; kubectl
    # shows what Kubernetes shows then
    def pull_failed() -> bool:
        rows = t.table("kubectl get po -l app=dnsutil")
        return rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and rows[1][:3] in (
            ["dnsutil-pod", "0/1", "ErrImagePull"],
            ["dnsutil-pod", "0/1", "ImagePullBackOff"],
        )

    wait_for(pull_failed, 60, interval=0.5, what="dnsutil-pod's image pull to fail")

    t.commits("kubectl create -f svc.yaml", "kubectl create service/test-svc", "service/test-svc created")
    p = t.commits(
        "kubectl create -f deployment-v1.yaml --record",
        "kubectl create deployment/testqc",
        "deployment.apps/testqc created",
    )
    assert "deployment.apps/testqc created" in p.stdout
    status = t.run("kubectl rollout status deployment testqc --timeout=90s")
    assert 'deployment "testqc" successfully rolled out' in status.stdout
    cluster_ip = next(r for r in t.table("kubectl get svc") if r[0] == "test-svc")[2]

    pod = t.pods("app=testing")[0]["metadata"]["name"]  # busybox's nslookup, in a pod of testqc

    def looked_up() -> bool:
        p = t.run(f"kubectl exec {pod} -- nslookup test-svc", check=False)
        return cluster_ip in p.stdout  # (busybox's nslookup exits 1 when the AAAA query finds nothing)

    wait_for(looked_up, 30, interval=0.5, what="nslookup test-svc in a pod")

    t.commits(
        "kubectl set image deployment testqc nodejs=qinchaowhut/allen:v2",
        "kubectl set image deployment/testqc nodejs=qinchaowhut/allen:v2",
        "deployment.apps/testqc image updated",
    )
    status = t.run("kubectl rollout status deployment testqc --timeout=90s")
    assert status.stdout.strip().splitlines()[-1] == 'deployment "testqc" successfully rolled out'
    wait_for(lambda: t.ready("app=testing", 3, "qinchaowhut/allen:v2"), 60, what="3 v2 pods")
    assert t.run("kubectl wait --for=condition=Available deployment/testqc --timeout=60s").returncode == 0

    p = t.run("kubectl rollout undo deployment testqc")
    assert p.stdout.strip() == "deployment.apps/testqc rolled back"
    assert t.last_commit()[1].startswith('Revert "kubectl set image deployment/testqc')
    t.run("kubectl rollout status deployment testqc --timeout=90s")
    history = t.run("kubectl rollout history deployment testqc").stdout.splitlines()
    assert history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert re.match(r"3\s+kubectl create .*--record=true", history[3]), history


TICKER = """apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: ticker
    image: qinchaowhut/allen:v1
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.2; done"]
"""


def test_kubectl_logs_follow_on_docker(dtut: Tutorial, tmp_path: Path) -> None:
    """`kubectl logs -f` keeps printing what the container writes after kubectl started."""
    t = dtut
    ticker = tmp_path / "ticker.yaml"
    ticker.write_text(TICKER)
    t.commits(f"kubectl create -f {ticker}", "kubectl create pod/ticker", "pod/ticker created")
    wait_for(lambda: "line 2" in t.run("kubectl logs ticker", check=False).stdout, 60, what="the ticker's output")
    proc = subprocess.Popen(
        t.argv("kubectl logs -f ticker"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=t.env
    )
    try:
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        already = max(int(line.split()[1]) for line in t.run("kubectl logs ticker").stdout.splitlines())
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not seen or seen[-1] <= already + 5):
            line = lines.next(deadline)
            if not line:
                break
            seen.append(int(line.split()[1]))
        assert seen and seen[-1] > already + 5, (already, seen, proc.poll())
        assert seen == list(range(seen[0], seen[-1] + 1))  # in order, nothing lost or repeated
        assert proc.poll() is None  # still following
    finally:
        proc.kill()
        proc.wait()
