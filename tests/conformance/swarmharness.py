"""The conformance suite's harness for the Swarm runtime (opt-in: ``GITSHIP_CONFORMANCE_SWARM=1``).

One real 3-node Swarm (tests/swarmlab.py) for the whole session; each test gets its own runtime
state dir (so its own instance, overlay network and gateway) on a free 10.X.0.0/16. The nodes'
engines are given as ``node_apis`` (exec, hooks and exec probes on any node). What the Swarm
mapping does not do (docs/swarm.md) is listed in ``SwarmHarness.unsupported`` with the reason, and
the ``runtime`` fixture skips those tests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.base import Runtime
from tests.conformance.conftest import IMAGE, Harness
from tests.swarmlab import SwarmLab, lab_or_skip

_LAB: list[SwarmLab] = []

ONE_CONTAINER = "a Swarm service runs one container: no init containers, sidecars or second containers"
NO_POD_IP = "its pod listens on $POD_IP, empty in a Swarm task's env (no template for a task's address; docs/swarm.md)"


@pytest.fixture(scope="session")
def swarm_conformance_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmLab]:
    from runtime.docker.common import PAUSE_IMAGE
    from runtime.swarm.gateway import ensure_pause_image
    from tests.dockerimages import docker_client_or_skip, ensure_test_images

    client = docker_client_or_skip()
    ensure_test_images(client)
    ensure_pause_image(client.api)
    for lab in lab_or_skip(tmp_path_factory.mktemp("swarm-conformance")):
        lab.load_image(IMAGE, PAUSE_IMAGE)
        _LAB.append(lab)
        try:
            yield lab
        finally:
            _LAB.clear()


def _free_ranges() -> tuple[str, str]:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    nets = []
    for line in out.splitlines():
        with contextlib.suppress(ValueError, IndexError):
            nets.append(ipaddress.ip_network(line.split()[0], strict=False))
    for _ in range(100):
        x = 160 + secrets.randbelow(40)
        cand = ipaddress.ip_network(f"10.{x}.0.0/16")
        if not any(n.prefixlen and n.overlaps(cand) for n in nets):
            return str(cand), f"10.{x}.128.0/17"
    pytest.skip("no free 10.X.0.0/16 for the Swarm runtime's pods")


class SwarmHarness(Harness):
    name = "swarm"
    unsupported = {
        "test_init_containers_run_in_order_before_the_app": ONE_CONTAINER,
        "test_a_failing_init_container_restarts_with_back_off_and_the_app_never_starts": ONE_CONTAINER,
        "test_a_failing_init_container_under_never_fails_the_pod": ONE_CONTAINER,
        "test_adoption_does_not_rerun_completed_init_containers": ONE_CONTAINER,
        "test_a_sidecar_starts_before_the_next_init_container_and_keeps_running": ONE_CONTAINER,
        "test_a_pod_with_a_sidecar_completes_when_its_app_containers_do": ONE_CONTAINER,
        "test_a_new_sandbox_runs_the_init_containers_again": ONE_CONTAINER,
        "test_logs": ONE_CONTAINER,
        "test_limits_are_given_as_the_kubelet_computes_them": ONE_CONTAINER,
        "test_exec": NO_POD_IP,
        "test_pods_are_reachable_at_their_ip": NO_POD_IP,
        "test_readiness_probe_flips_ready": NO_POD_IP,
        "test_tcp_socket_readiness": NO_POD_IP,
        "test_adoption_after_kill_9": NO_POD_IP,
        "test_liveness_failure_restarts": NO_POD_IP,
        "test_always_restarts_with_crash_loop_back_off": "Swarm restarts with its fixed delay, no CrashLoopBackOff",
        "test_memory_limit_oom_kills_and_restarts": "a Swarm task's status does not say OOMKilled",
        "test_provisioning_is_idempotent_and_delete_removes_the_store": "a node's engine makes the volume at the "
        "first mount (docs/swarm.md): provisioning makes nothing to find",
    }

    def __init__(self, tmp_path: Path) -> None:
        if not _LAB:
            pytest.skip("the Swarm lab is not up")
        super().__init__(tmp_path)
        self.lab = _LAB[0]
        self.pod_cidr, self.service_cidr = _free_ranges()

    def kwargs(self) -> dict[str, Any]:
        return {
            "docker_host": self.lab.manager,
            "pod_cidr": self.pod_cidr,
            "service_cidr": self.service_cidr,
            "node_apis": [f"node{i}={self.lab.sock(i)}" for i in (2, 3)],
            "restart_delay": 0.2,
        }

    @staticmethod
    def build(state_dir: str, kwargs: dict[str, Any]) -> Runtime:
        from runtime.swarm import SwarmRuntime

        return SwarmRuntime(state_dir, **kwargs)

    def _services(self, uids: set[str] | None = None) -> list[dict[str, Any]]:
        import json

        out = self.lab.docker(1, "service", "ls", "-q", "--filter", "label=gitship.role=pod", check=False).split()
        if not out:
            return []
        found = json.loads(self.lab.docker(1, "service", "inspect", *out, check=False) or "[]")
        return [s for s in found if uids is None or s["Spec"]["Labels"].get("gitship.pod.uid") in uids]

    def leftovers(self, uids: set[str]) -> list[str]:
        return [f"service {s['Spec']['Name']}" for s in self._services(uids)]

    def remove_leftovers(self) -> None:
        mine = [s["ID"] for s in self._services(self.uids)]
        if mine:
            self.lab.docker(1, "service", "rm", *mine, check=False)
