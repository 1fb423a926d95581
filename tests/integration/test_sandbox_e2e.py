"""Issue 12, end to end: the tutorial's pods in sandboxes, Services in the kernel.

A real `gitship up` as root: each pod gets its own network namespace, hostname and
/etc/resolv.conf (runtime/inprocess/sandbox.py); ClusterIPs and NodePorts are nftables rules
(runtime/net/kernelproxy.py) that outlive the daemon. Traffic goes only to addresses of this
machine: the test's own pod and service ranges on gitship's bridge, and 127.0.0.1.
Waiting is by polling with deadlines, never by fixed sleeps.
"""

from __future__ import annotations

import http.client
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import commit_file, wait_for, pod_ready as ready

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="pod sandboxes and nftables need root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nft (Debian nftables) is not installed"),
]

TEMPLATE = Path(__file__).resolve().parents[2] / "repo-template"


def http_get(host: str, port: int, timeout: float = 3.0) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 200, r.status
        return r.read().decode()
    finally:
        conn.close()


def _copy_example(repo: Path, name: str) -> None:
    text = (TEMPLATE / "examples" / name).read_text()
    commit_file(repo, name, text, f"add {name}")


def _service_ip(g, name: str) -> str:
    return str(g.json("get", "svc", name)["spec"]["clusterIP"])


def _ready_pods(g, selector: str, n: int) -> list[dict]:
    pods = [p for p in g.pods(selector) if ready(p)]
    return pods if len(pods) == n else []


def test_tutorial_app_as_written_in_sandboxes(repo: Path, gitship_factory) -> None:
    """Three replicas of the tutorial's app all bind 0.0.0.0:8080 and answer with their pod name;
    inside a pod `hostname` is the pod's name and `nslookup test-svc` resolves as on Kubernetes."""
    g = gitship_factory(repo)
    st = g.status()["status"]
    assert st["runtime"]["isolation"] == "sandbox", st["runtime"]
    assert st["dataPlane"]["dataPlane"] == "nftables", st["dataPlane"]
    text = g.cli("status").stdout
    assert "Isolation:" in text and "Data plane:    nftables" in text, text

    _copy_example(repo, "replicaset-fqdn.yaml")
    _copy_example(repo, "svc.yaml")
    pods = wait_for(lambda: _ready_pods(g, "app=testing", 3), 60, what="3 ready replicas")
    names = {p["metadata"]["name"] for p in pods}
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 3
    for p in pods:  # each pod answers on its own IP, port 8080, with its own name (Ready without a
        # readiness probe means its process runs, not yet that it listens: poll)
        ip_ = p["status"]["podIP"]
        body = wait_for(lambda ip_=ip_: http_get(ip_, 8080), 30, what=f"{p['metadata']['name']} answers")
        assert body.strip().endswith(p["metadata"]["name"])

    ip = wait_for(lambda: _service_ip(g, "test-svc"), 30, what="a ClusterIP")
    seen: set[str] = set()

    def every_replica() -> bool:
        seen.add(http_get(ip, 80).strip().rsplit(" ", 1)[1])
        return names <= seen

    wait_for(every_replica, 30, interval=0.01, what=f"every replica through {ip}:80 (seen {seen})")
    assert seen == names

    wait_for(lambda: ready(g.json("get", "pod", "dnsutil-pod")), 30, what="dnsutil-pod ready")
    assert g.cli("exec", "dnsutil-pod", "--", "hostname").stdout.strip() == "dnsutil-pod"
    if shutil.which("nslookup"):
        out = g.cli("exec", "dnsutil-pod", "--", "nslookup", "test-svc").stdout
        assert "test-svc.default.svc.cluster.local" in out and ip in out, out
    resolv = g.cli("exec", "dnsutil-pod", "--", "cat", "/etc/resolv.conf").stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv, resolv
    assert "ndots:5" in resolv, resolv


class Load:
    """Clients sending requests without pause to each target until stopped; counts failures."""

    def __init__(self, targets: list[tuple[str, int]]):
        self.targets = targets
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in targets]

    def _run(self, target: tuple[str, int]) -> None:
        while not self._stop.is_set():
            try:
                http_get(*target, timeout=5)
                self.ok += 1
            except Exception as e:  # any failure counts: refused, reset, timeout, non-200
                self.failed.append(f"{target}: {type(e).__name__}: {e}")
            self._stop.wait(0.01)

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)


def test_services_keep_serving_through_kill_9_of_the_daemon(repo: Path, gitship_factory) -> None:
    """kill -9 of `gitship up` under load through a ClusterIP and a NodePort: no request fails
    while the daemon is dead or restarting, and no pod restarts."""
    g = gitship_factory(repo)
    _copy_example(repo, "replicaset-fqdn.yaml")
    commit_file(
        repo,
        "svc-np.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: np\nspec:\n  type: NodePort\n"
        "  ports:\n  - port: 80\n    targetPort: 8080\n    nodePort: 31871\n  selector:\n    app: testing\n",
        "a NodePort",
    )
    pods = wait_for(lambda: _ready_pods(g, "app=testing", 3), 60, what="3 ready replicas")
    before = {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"] for p in pods}
    ip = wait_for(lambda: _service_ip(g, "np"), 30, what="a ClusterIP")
    wait_for(lambda: http_get(ip, 80) and http_get("127.0.0.1", 31871), 30, what="the Service answers")

    load = Load([(ip, 80), ("127.0.0.1", 31871)]).start()
    try:
        wait_for(lambda: load.ok >= 50, 30, what="requests before the kill")
        g.kill9()
        dead_at = load.ok
        wait_for(lambda: load.ok >= dead_at + 100, 30, what="requests served while the daemon is dead")
        g.start(wait_applied=False)
        restarted_at = load.ok
        wait_for(lambda: g.status()["status"]["daemon"] == "running", 30, what="the daemon back")
        wait_for(lambda: load.ok >= restarted_at + 100, 30, what="requests after the restart")
    finally:
        load.stop()
    assert load.failed == [], load.failed[:5]
    after = wait_for(lambda: _ready_pods(g, "app=testing", 3), 30, what="the same 3 pods")
    assert {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"] for p in after} == before


def test_a_range_this_machine_uses_is_refused_at_start(repo: Path, gitship_factory, tmp_path: Path) -> None:
    """A pod range that overlaps a route of this machine would take its traffic away: `gitship up`
    refuses it, naming the flag and the route, and starts nothing."""
    import subprocess
    import zlib

    x = 100 + zlib.crc32(str(tmp_path).encode()) % 140
    a, b = f"gsx{x}a", f"gsx{x}b"  # a veth pair of the test's own, holding a route
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"10.{x}.200.1/24", "dev", a], check=True)
        subprocess.run(["ip", "link", "set", a, "up"], check=True)
        g = gitship_factory(
            repo, extra=["--pod-cidr", f"10.{x}.0.0/16", "--service-cidr", "10.97.128.0/17"], start=False
        )
        with pytest.raises(AssertionError) as err:
            g.start()
        out = g.output()
        assert "--pod-cidr" in out and f"10.{x}.200.0/24" in out and a in out, out
        assert "exited" in str(err.value)
    finally:
        subprocess.run(["ip", "link", "del", a], check=False)
