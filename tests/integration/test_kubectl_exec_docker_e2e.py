"""`kubectl exec` on the Docker runtime: output, exit code and stdin through gitship's Kubernetes API."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_file
from tests.integration.test_docker_e2e import deployment, docker_args, docker_env, ready_pods  # noqa: F401
from tests.integration.test_kubectl_read_e2e import PINNED_KUBECTL, _free_port, kubectl

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not os.access(PINNED_KUBECTL, os.X_OK), reason=f"no kubectl at {PINNED_KUBECTL}"),
]


def test_kubectl_exec_on_docker(docker_env: Any, empty_repo: Path, gitship_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    commit_file(empty_repo, "kubia.yaml", deployment(replicas=1), "kubia")
    g = gitship_factory(empty_repo, extra=[*docker_args(tmp_path), "--api-addr", f"127.0.0.1:{_free_port()}"])
    pod = ready_pods(g, n=1)[0]["metadata"]["name"]
    p = kubectl(g, PINNED_KUBECTL, tmp_path, "exec", pod, "--", "hostname")
    assert p.stdout.strip() == pod
    p = kubectl(g, PINNED_KUBECTL, tmp_path, "exec", pod, "--", "sh", "-c", "exit 4", check=False)
    assert p.returncode == 4, p.stderr
    env = {**os.environ, "KUBECONFIG": os.path.join(g.state_dir, "kubeconfig")}
    p = subprocess.run(
        [PINNED_KUBECTL, "--cache-dir", str(tmp_path / "kcache"), "exec", "-i", pod, "--", "cat"],
        input="hi\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (p.returncode, p.stdout) == (0, "hi\n"), p.stderr
