"""`kubectl port-forward` against gitship's Kubernetes API (SPDY/3.1 tunnelled in a WebSocket, and
kubectl's fallback, the HTTP/1.1 upgrade to SPDY/3.1) on the in-process runtime: HTTP requests
through the forwarded port reach the pod, in sequence and concurrently; 8 MiB go to an echo pod and
back; svc/NAME works; a port nothing listens on gives kubectl's error; the Python client's
WebSocket-only protocol works too."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gitship, wait_for
from tests.integration.test_kubectl_read_e2e import PINNED_KUBECTL, _free_port, _kubectls, cluster, kubectl  # noqa: F401

pytestmark = pytest.mark.skipif(not os.access(PINNED_KUBECTL, os.X_OK), reason=f"no kubectl at {PINNED_KUBECTL}")


class Forward:
    """A running ``kubectl port-forward`` with its output collected."""

    def __init__(self, g: Gitship, binary: str, tmp: Path, target: str, ports: str, env: dict[str, str]) -> None:
        full_env = {**os.environ, "KUBECONFIG": os.path.join(g.state_dir, "kubeconfig"), **env}
        argv = [binary, "--cache-dir", str(tmp / "kcache"), "port-forward", target, ports]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        for pipe, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            t = threading.Thread(target=lambda p=pipe, s=sink: s.extend(iter(p.readline, b"")), daemon=True)
            t.start()

    def text(self) -> str:
        return (b"".join(self.out) + b"".join(self.err)).decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def forwards() -> Iterator[list[Forward]]:
    started: list[Forward] = []
    yield started
    for f in started:
        f.stop()


def _pod(g: Gitship, tmp: Path) -> dict[str, Any]:
    p = kubectl(g, PINNED_KUBECTL, tmp, "get", "pods", "-l", "app=testing", "-o", "json")
    items = [i for i in json.loads(p.stdout)["items"] if i["status"].get("phase") == "Running"]
    assert items, p.stdout
    return dict(items[0])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as r:
        body: bytes = r.read()
        return body


def _start(
    g: Gitship, binary: str, tmp: Path, forwards: list[Forward], pod: str, remote: int, env: dict[str, str]
) -> int:
    local = _free_port()
    f = Forward(g, binary, tmp, f"pod/{pod}", f"{local}:{remote}", env)
    forwards.append(f)
    wait_for(
        lambda: f"Forwarding from 127.0.0.1:{local} -> {remote}" in f.text() or f.proc.poll() is not None,
        60,
        what="kubectl port-forward is listening",
    )
    assert f.proc.poll() is None, f.text()
    return local


TRANSPORTS = [
    pytest.param({}, id="websocket"),
    pytest.param({"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}, id="spdy-upgrade"),
]


@pytest.mark.parametrize("env", TRANSPORTS)
@pytest.mark.parametrize("binary", _kubectls())
def test_port_forward_http(
    cluster: Gitship,  # noqa: F811
    binary: str,
    env: dict[str, str],
    tmp_path: Path,
    forwards: list[Forward],
) -> None:
    pod = _pod(cluster, tmp_path)
    direct = _get(f"http://{pod['status']['podIP']}:8080/")
    local = _start(cluster, binary, tmp_path, forwards, pod["metadata"]["name"], 8080, env)
    for _ in range(3):  # one connection after another over the same kubectl session
        assert _get(f"http://127.0.0.1:{local}/") == direct
    with ThreadPoolExecutor(2) as pool:  # two at once
        bodies = list(pool.map(_get, [f"http://127.0.0.1:{local}/"] * 2))
    assert bodies == [direct, direct]
    assert forwards[0].proc.poll() is None, forwards[0].text()


@pytest.mark.parametrize("binary", _kubectls())
def test_port_forward_nothing_listening(
    cluster: Gitship,  # noqa: F811
    binary: str,
    tmp_path: Path,
    forwards: list[Forward],
) -> None:
    pod = _pod(cluster, tmp_path)
    local = _start(cluster, binary, tmp_path, forwards, pod["metadata"]["name"], 9, {})
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{local}/")
    f = forwards[0]
    wait_for(lambda: "error forwarding port 9" in f.text(), 60, what="kubectl shows the pod side's error")
    assert "connection refused" in f.text()
    assert pod["metadata"]["name"] in f.text()
    # kubectl ends the session after an error on the error stream (and exits non-zero)
    wait_for(lambda: f.proc.poll() is not None, 60, what="kubectl port-forward exits")
    assert f.proc.returncode != 0, f.text()


def test_port_forward_unknown_pod(cluster: Gitship, tmp_path: Path) -> None:  # noqa: F811
    p = kubectl(cluster, PINNED_KUBECTL, tmp_path, "port-forward", "pod/no-such-pod", "8080:80", check=False)
    assert p.returncode != 0
    assert "no-such-pod" in p.stderr


def test_python_client_port_forward(cluster: Gitship, tmp_path: Path) -> None:  # noqa: F811
    """The Python ``kubernetes`` client speaks the WebSocket-only protocol (channels 2i and 2i+1)."""
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.stream import portforward as kportforward

    pod = _pod(cluster, tmp_path)
    direct = _get(f"http://{pod['status']['podIP']}:8080/")
    api = client.CoreV1Api(config.new_client_from_config(config_file=os.path.join(cluster.state_dir, "kubeconfig")))
    pf = kportforward(api.connect_get_namespaced_pod_portforward, pod["metadata"]["name"], "default", ports="8080,9")
    sock = pf.socket(8080)
    sock.settimeout(30)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.") and answer.endswith(direct), answer
    wait_for(lambda: pf.error(9) is not None, 30, what="port 9's error arrives on its error channel")
    assert "connection refused" in pf.error(9)


def test_port_forward_to_a_service(cluster: Gitship, tmp_path: Path, forwards: list[Forward]) -> None:  # noqa: F811
    """kubectl resolves svc/NAME to one of its pods and the service port to the target port itself."""
    p = kubectl(cluster, PINNED_KUBECTL, tmp_path, "get", "pods", "-l", "app=testing", "-o", "json")
    running = [i for i in json.loads(p.stdout)["items"] if i["status"].get("phase") == "Running"]
    answers = {_get(f"http://{i['status']['podIP']}:8080/") for i in running}
    local = _free_port()
    f = Forward(cluster, PINNED_KUBECTL, tmp_path, "svc/test-svc", f"{local}:80", {})
    forwards.append(f)
    wait_for(lambda: "Forwarding from" in f.text() or f.proc.poll() is not None, 60, what="kubectl is listening")
    assert f.proc.poll() is None, f.text()
    assert _get(f"http://127.0.0.1:{local}/") in answers


ECHO_POD = """apiVersion: v1
kind: Pod
metadata:
  name: echo
  labels: {app: echo}
spec:
  containers:
  - name: echo
    image: python:3
    command:
    - python3
    - -c
    - |
      import socket, threading
      def serve(c):
          while data := c.recv(65536):
              c.sendall(data)
          c.shutdown(socket.SHUT_WR)
      s = socket.create_server(("0.0.0.0", 7000))
      while True:
          threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
    readinessProbe:
      tcpSocket: {port: 7000}
      periodSeconds: 1
"""


@pytest.mark.parametrize("env", TRANSPORTS)
def test_port_forward_carries_megabytes_both_ways(
    cluster: Gitship,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
    forwards: list[Forward],
) -> None:
    """8 MiB to an echo pod and back through kubectl: in order, complete, the half-close passed on."""
    import socket

    (tmp_path / "echo.yaml").write_text(ECHO_POD)
    kubectl(cluster, PINNED_KUBECTL, tmp_path, "apply", "-f", str(tmp_path / "echo.yaml"))
    kubectl(
        cluster, PINNED_KUBECTL, tmp_path, "wait", "--for=condition=Ready", "pod/echo", "--timeout=90s", timeout=120
    )
    local = _start(cluster, PINNED_KUBECTL, tmp_path, forwards, "echo", 7000, env)
    payload = os.urandom(8 << 20)
    with socket.create_connection(("127.0.0.1", local), timeout=60) as s:
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while chunk := s.recv(1 << 16):
            got += chunk
        sender.join(60)
    assert len(got) == len(payload) and bytes(got) == payload
