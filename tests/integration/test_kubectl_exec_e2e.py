"""`kubectl exec` against gitship's Kubernetes API (WebSocket, v5.channel.k8s.io) on the in-process
runtime: output, the exit code, stdin, and a TTY (kubectl run under a pseudo-terminal)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Gitship
from tests.integration.test_kubectl_read_e2e import PINNED_KUBECTL, _kubectls, cluster, kubectl  # noqa: F401

pytestmark = pytest.mark.skipif(not os.access(PINNED_KUBECTL, os.X_OK), reason=f"no kubectl at {PINNED_KUBECTL}")


def _pod(g: Gitship, tmp: Path) -> str:
    p = kubectl(g, PINNED_KUBECTL, tmp, "get", "pods", "-o", "json")
    items = [i for i in json.loads(p.stdout)["items"] if i["status"].get("phase") == "Running"]
    assert items, p.stdout
    return str(items[0]["metadata"]["name"])


@pytest.mark.parametrize("binary", _kubectls())
def test_exec_prints_output(cluster: Gitship, binary: str, tmp_path: Path) -> None:  # noqa: F811
    pod = _pod(cluster, tmp_path)
    p = kubectl(cluster, binary, tmp_path, "exec", pod, "--", "sh", "-c", "echo out; echo err >&2")
    assert p.stdout == "out\n"
    assert "err" in p.stderr


@pytest.mark.parametrize("binary", _kubectls())
def test_exec_exit_code(cluster: Gitship, binary: str, tmp_path: Path) -> None:  # noqa: F811
    pod = _pod(cluster, tmp_path)
    p = kubectl(cluster, binary, tmp_path, "exec", pod, "--", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3, p.stderr


def test_exec_unknown_pod(cluster: Gitship, tmp_path: Path) -> None:  # noqa: F811
    p = kubectl(cluster, PINNED_KUBECTL, tmp_path, "exec", "no-such-pod", "--", "true", check=False)
    assert p.returncode != 0
    assert "no-such-pod" in p.stderr


def test_exec_stdin(cluster: Gitship, tmp_path: Path) -> None:  # noqa: F811
    pod = _pod(cluster, tmp_path)
    env = {**os.environ, "KUBECONFIG": os.path.join(cluster.state_dir, "kubeconfig")}
    p = subprocess.run(
        [PINNED_KUBECTL, "--cache-dir", str(tmp_path / "kcache"), "exec", "-i", pod, "--", "cat"],
        input="hi\nthere\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hi\nthere\n"


def test_exec_tty(cluster: Gitship, tmp_path: Path) -> None:  # noqa: F811
    pod = _pod(cluster, tmp_path)
    env = {**os.environ, "KUBECONFIG": os.path.join(cluster.state_dir, "kubeconfig")}
    argv = [PINNED_KUBECTL, "--cache-dir", str(tmp_path / "kcache"), "exec", "-it", pod, "--", "sh"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl with the pty as its terminal
        os.execve(argv[0], argv, env)
    out = b""
    try:
        os.write(fd, b"tty; exit 7\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert b"/dev/pts/" in out, out
    assert os.waitstatus_to_exitcode(status) == 7, out


def test_attach_shows_new_output(cluster: Gitship, tmp_path: Path) -> None:  # noqa: F811
    import threading
    import urllib.request

    from tests.conftest import wait_for

    p = kubectl(cluster, PINNED_KUBECTL, tmp_path, "get", "pods", "-l", "app=testing", "-o", "json")
    pod = next(i for i in json.loads(p.stdout)["items"] if i["status"].get("phase") == "Running")
    env = {**os.environ, "KUBECONFIG": os.path.join(cluster.state_dir, "kubeconfig")}
    argv = [PINNED_KUBECTL, "--cache-dir", str(tmp_path / "kcache"), "attach", pod["metadata"]["name"]]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stdout.read1(4096), b"")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def asked() -> bool:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/", timeout=5) as r:
            r.read()
        return b"Received request" in b"".join(seen)

    try:
        wait_for(asked, 60, what="kubectl attach prints the request the pod logged")
    finally:
        proc.terminate()
        proc.wait(10)
