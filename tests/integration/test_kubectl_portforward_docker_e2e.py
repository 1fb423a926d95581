"""`kubectl port-forward` on the Docker runtime: HTTP through the forwarded port reaches the
container on the Docker bridge (the daemon connects to the pod's IP there)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_file
from tests.integration.test_docker_e2e import deployment, docker_args, docker_env, ready_pods  # noqa: F401
from tests.integration.test_kubectl_portforward_e2e import Forward, _get, _start, forwards  # noqa: F401
from tests.integration.test_kubectl_read_e2e import PINNED_KUBECTL, _free_port

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not os.access(PINNED_KUBECTL, os.X_OK), reason=f"no kubectl at {PINNED_KUBECTL}"),
]


def test_kubectl_port_forward_on_docker(
    docker_env: Any,  # noqa: F811
    empty_repo: Path,
    gitship_factory: Any,
    tmp_path: Path,
    forwards: list[Forward],  # noqa: F811
) -> None:
    commit_file(empty_repo, "kubia.yaml", deployment(replicas=1), "kubia")
    g = gitship_factory(empty_repo, extra=[*docker_args(tmp_path), "--api-addr", f"127.0.0.1:{_free_port()}"])
    pod = ready_pods(g, n=1)[0]
    direct = _get(f"http://{pod['status']['podIP']}:8080/")
    assert pod["metadata"]["name"].encode() in direct  # kubia answers with its hostname
    for env in ({}, {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}):
        local = _start(g, PINNED_KUBECTL, tmp_path, forwards, pod["metadata"]["name"], 8080, env)
        assert _get(f"http://127.0.0.1:{local}/") == direct
        assert _get(f"http://127.0.0.1:{local}/") == direct
