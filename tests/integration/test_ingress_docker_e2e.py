"""Issue 15 on the Docker runtime: HAProxy on the host routes to the containers' IPs on the Docker
bridge (the pods of this test's own gitship instance). Skipped, with the reason, where no engine
answers or haproxy is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import commit_file, wait_for
from tests.integration.test_docker_e2e import V1, deployment, docker_args, docker_env, ready_pods  # noqa: F401
from tests.integration.test_ingress_e2e import free_port, get, version

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)"),
]

INGRESS = """apiVersion: v1
kind: Service
metadata:
  name: kubia
spec:
  selector: {app: kubia}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: kubia
spec:
  rules:
  - host: kubia.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: kubia, port: {number: 80}}}}
"""


@pytest.mark.usefixtures("docker_env")  # set up first, so it looks for leftovers after the daemon stopped
def test_ingress_routes_to_docker_containers(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    commit_file(empty_repo, "kubia.yaml", deployment(replicas=2, image=V1), "kubia")
    commit_file(empty_repo, "ing.yaml", INGRESS, "the Ingress")
    port = free_port()
    extra = ["--node-address", "127.0.0.1", "--ingress-http-port", str(port), "--ingress-https-port", str(free_port())]
    g = gitship_factory(empty_repo, extra=[*docker_args(tmp_path), *extra])
    pods = ready_pods(g, n=2)
    names = {p["metadata"]["name"] for p in pods}

    def both_served() -> bool:
        seen = {get(port, "kubia.test")[1].split()[-1] for _ in range(10)}
        return seen == names

    wait_for(both_served, 60, interval=0.2, what="both containers behind the Ingress")
    assert version(get(port, "kubia.test")[1]) == "v1"
    assert get(port, "other.test")[0] == 404
