"""The real kubectl's writes become commits: the tutorial's write commands against a daemon on the
tutorial's template (the API server and its fixture: tests/integration/test_kubectl_read_e2e.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Gitship, wait_for

e2e = pytest.importorskip("tests.integration.test_kubectl_read_e2e", reason="the API server (h/kapi) is not here")
cluster = e2e.cluster


def last_commit(g: Gitship) -> tuple[str, str]:
    p = subprocess.run(["git", "-C", str(g.repo), "log", "-1", "--format=%an%x00%B"], capture_output=True, text=True)
    author, _, body = p.stdout.partition("\x00")
    return author, body.strip()


def head(g: Gitship) -> str:
    return subprocess.run(
        ["git", "-C", str(g.repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def test_tutorial_writes_are_commits(cluster: Gitship, tmp_path: Path) -> None:
    g = cluster
    k = e2e.PINNED_KUBECTL
    if not Path(k).exists():
        pytest.skip(f"no kubectl at {k}")

    def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p: subprocess.CompletedProcess[str] = e2e.kubectl(g, k, tmp_path, *args, check=check)
        return p

    def commits(args: list[str], message: str, printed: str) -> None:
        before = head(g)
        p = kubectl(*args)
        assert printed in p.stdout, p.stdout
        sha = head(g)
        assert sha != before
        assert f"Warning: gitship: committed {sha[:7]}: {message}" in p.stderr, p.stderr
        assert last_commit(g) == ("kubectl", message)

    commits(["scale", "deployment", "testqc", "--replicas=4"], "kubectl scale deployment/testqc --replicas=4", "scaled")
    commits(
        ["set", "image", "deployment", "testqc", "nodejs=qinchaowhut/allen:v2"],
        "kubectl set image deployment/testqc nodejs=qinchaowhut/allen:v2",
        "image updated",
    )
    commits(["label", "po", "dnsutil-pod", "app=dnsutil"], "kubectl label pod/dnsutil-pod app=dnsutil", "labeled")
    text = (Path(g.repo) / "apps" / "deployment-v1.yaml").read_text()
    assert text.startswith("# Section 6.1") and "image: qinchaowhut/allen:v2" in text and "replicas: 4" in text
    assert "imagePullPolicy: IfNotPresent" in text and "progressDeadlineSeconds" not in text  # no defaults

    wait_for(
        lambda: (
            "successfully" in g.cli("rollout", "status", "deployment", "testqc", "--watch=false", check=False).stdout
        ),
        90,
        what="the rollout to v2",
    )
    p = kubectl("rollout", "undo", "deployment", "testqc")
    assert "rolled back" in p.stdout
    author, body = last_commit(g)
    assert (
        author == "kubectl"
        and body.startswith('Revert "kubectl set image deployment/testqc')
        and "git revert" in p.stderr
    )
    assert "image: qinchaowhut/allen:v1" in (Path(g.repo) / "apps" / "deployment-v1.yaml").read_text()

    commits(["rollout", "pause", "deployment", "testqc"], "kubectl rollout pause deployment/testqc", "paused")
    commits(["rollout", "resume", "deployment", "testqc"], "kubectl rollout resume deployment/testqc", "resumed")

    pod = tmp_path / "extra.yaml"
    pod.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: extra\nspec:\n"
        "  containers:\n  - name: c\n    image: qinchaowhut/allen:v1\n"
    )
    commits(["create", "--validate=false", "-f", str(pod)], "kubectl create pod/extra", "created")
    assert (Path(g.repo) / "default" / "pods" / "extra.yaml").exists()
    commits(["delete", "-f", str(pod)], "kubectl delete pod/extra", "deleted")
    assert not (Path(g.repo) / "default" / "pods" / "extra.yaml").exists()

    before = head(g)
    p = kubectl("patch", "deployment", "testqc", "-p", '{"spec":{"replicas":-1}}', check=False)
    assert p.returncode == 1
    assert 'The Deployment "testqc" is invalid: spec.replicas: Invalid value: -1' in p.stderr, p.stderr
    assert "apps/deployment-v1.yaml:" in p.stderr
    p = kubectl(
        "patch", "pod", "dnsutil-pod", "--subresource=status", "-p", '{"status":{"phase":"Failed"}}', check=False
    )
    assert p.returncode == 1 and "not desired state" in p.stderr, p.stderr
    assert head(g) == before
