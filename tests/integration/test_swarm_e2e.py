"""`gitship up --runtime swarm` end to end on a real 3-node Docker Swarm (tests/swarmlab.py).

One Swarm and one gitship daemon for the whole module (the tests run in order and build on each
other: the tutorial's Deployment and Services, a rolling update under load, a node crash, an
adoption after kill -9). Skipped, with the reason, when not root, when a tool is missing or when
the lab cannot start. Images: the test images of the host's dockerd, copied onto every node
(``SwarmLab.load_image``: docker save | docker load). Traffic goes only to this host's loopback,
to the lab's LAN and to the pods' overlay network, all made by this module.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.docker.common import PAUSE_IMAGE
from runtime.swarm.gateway import ensure_pause_image
from tests.conftest import Gitship, commit_file, git, pod_ready, wait_for
from tests.dockerimages import docker_client_or_skip, ensure_test_images
from tests.integration.test_docker_e2e import deployment, nodeport_service
from tests.swarmlab import SwarmLab, swarm_lab  # noqa: F401 (the module-scoped fixture)

pytestmark = pytest.mark.docker

V1, V2 = "gitship-test/kubia:v1", "gitship-test/kubia:v2"
NODE_PORT = 30000 + secrets.randbelow(2000)

CLUSTERIP = """apiVersion: v1
kind: Service
metadata:
  name: test-svc
spec:
  selector: {app: kubia}
  ports:
  - port: 80
    targetPort: 8080
"""

HEADLESS = """apiVersion: v1
kind: Service
metadata:
  name: test-svc-headless
spec:
  clusterIP: None
  selector: {app: kubia}
  ports:
  - port: 8080
"""

DAEMONSET = f"""apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {{app: agent}}
  template:
    metadata:
      labels: {{app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: agent
        image: {V1}
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo agent on $(hostname); trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
"""


def _free_ranges() -> tuple[str, str]:
    """The pods' overlay 10.X.0.0/16 no route of this host overlaps, and its upper half for Services."""
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    nets = []
    for line in out.splitlines():
        try:
            nets.append(ipaddress.ip_network(line.split()[0], strict=False))
        except ValueError:
            continue
    for _ in range(100):
        x = 160 + secrets.randbelow(40)
        cand = ipaddress.ip_network(f"10.{x}.0.0/16")
        if not any(n.prefixlen and n.overlaps(cand) for n in nets):
            return f"10.{x}.0.0/16", f"10.{x}.128.0/17"
    pytest.skip("no free 10.X.0.0/16 for the pods and services")


class Env:
    def __init__(self, lab: SwarmLab, repo: Path, gs: Gitship):
        self.lab, self.repo, self.gs = lab, repo, gs

    def pods(self, app: str = "kubia") -> list[dict[str, Any]]:
        return self.gs.pods(f"app={app}")

    def ready_pods(self, app: str = "kubia") -> list[dict[str, Any]]:
        return [p for p in self.pods(app) if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]

    def services(self) -> list[dict[str, Any]]:
        out = self.lab.docker(1, "service", "ls", "--filter", "label=gitship.role=pod", "--format", "{{json .}}")
        return [json.loads(x) for x in out.splitlines()]

    def in_pod(self, pod: dict[str, Any], script: str) -> str:
        """Run a shell script in a pod's container through its node's own engine (test only)."""
        node = int(pod["status"]["nominatedNodeName"].removeprefix("node"))
        uid = pod["metadata"]["uid"]
        cid = self.lab.docker(node, "ps", "-q", "--filter", f"label=gitship.pod.uid={uid}").split()[0]
        return self.lab.docker(node, "exec", cid, "sh", "-c", script, check=False, timeout=30)


@pytest.fixture(scope="module")
def env(swarm_lab: SwarmLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:  # noqa: F811
    client = docker_client_or_skip()
    ensure_test_images(client)
    ensure_pause_image(client.api)  # the gateway's image (runtime/swarm/gateway.py)
    swarm_lab.load_image(V1, V2, PAUSE_IMAGE)
    base = tmp_path_factory.mktemp("swarm-e2e")
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    commit_file(repo, "deploy.yaml", deployment(replicas=3), "kubia v1")
    pod_cidr, service_cidr = _free_ranges()
    args = ["--runtime", "swarm", "--docker-host", swarm_lab.manager, "--pod-cidr", pod_cidr]
    with socket.socket() as sock:  # the Kubernetes API on a free loopback port (kubectl get nodes)
        sock.bind(("127.0.0.1", 0))
        api = f"127.0.0.1:{sock.getsockname()[1]}"
    args += ["--service-cidr", service_cidr, "--api-addr", api]
    for i in (2, 3):  # the workers' engines (exec, hooks, exec probes); node1's is the manager's
        args += ["--swarm-node-api", f"node{i}={swarm_lab.sock(i)}"]
    gs = Gitship(repo, base / "state", args)
    gs.start()
    try:
        yield Env(swarm_lab, repo, gs)
    finally:
        gs.stop()
        left = swarm_lab.docker(1, "service", "ls", "-q", check=False)
        assert gs.proc is not None and gs.proc.returncode == 0, gs.output()
        assert not left.split(), f"services left after a clean stop: {left}"
        lo = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
        net = ipaddress.ip_network(service_cidr)
        kept = [w.split("/")[0] for w in lo.split() if "/" in w and w[0].isdigit()]
        assert not [a for a in kept if ipaddress.ip_address(a) in net], f"service addresses left on lo: {lo}"


def test_the_lab_is_a_three_node_swarm(swarm_lab: SwarmLab) -> None:  # noqa: F811
    assert swarm_lab.node_status() == {"node1": "Ready", "node2": "Ready", "node3": "Ready"}
    info = json.loads(swarm_lab.docker(1, "info", "--format", "{{json .Swarm}}"))
    assert info["ControlAvailable"] is True and info["Nodes"] == 3 and info["Managers"] == 1


def _get(url_host: str, port: int, timeout: float = 3) -> str:
    conn = http.client.HTTPConnection(url_host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_deployment_and_services_spread_over_three_nodes(env: Env) -> None:
    commit_file(env.repo, "svc.yaml", CLUSTERIP, "test-svc")
    commit_file(env.repo, "headless.yaml", HEADLESS, "test-svc-headless")
    sha = commit_file(env.repo, "np.yaml", nodeport_service("kubia-np", NODE_PORT), "nodeport")
    env.gs.wait_applied(sha, 60)
    pods = wait_for(lambda: len(env.ready_pods()) == 3 and env.ready_pods(), 90, what="3 ready pods")
    nodes = Counter(p["status"]["nominatedNodeName"] for p in pods)
    assert len(nodes) == 3, f"pods not spread over the 3 nodes: {nodes}"
    assert {p["status"]["hostIP"] for p in pods} == {env.lab.addr(i) for i in (1, 2, 3)}
    assert len(env.services()) == 3
    names = {p["metadata"]["name"] for p in pods}
    # through gitship's data plane on this host: the ClusterIP and the NodePort reach every pod
    cip = env.gs.json("get", "svc", "test-svc")["spec"]["clusterIP"]
    seen_cip = {_get(cip, 80).split()[-1] for _ in range(30)}
    seen_np = {_get("127.0.0.1", NODE_PORT).split()[-1] for _ in range(30)}
    assert seen_cip == names and seen_np == names
    # the NodePort on every node's own address too (a relay task per node: runtime/swarm/nodeports.py)
    for i in (1, 2, 3):
        wait_for(lambda i=i: _get(env.lab.addr(i), NODE_PORT).startswith("This is v1"), 60, what=f"NodePort on node{i}")
    # inside a pod on every node: the cluster DNS (the ClusterIP; one record per pod, headless),
    # and the ClusterIP by name, through gitship's data plane
    ips = sorted(p["status"]["podIP"] for p in pods)
    get = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 test-svc 80 | tail -1'
    for p in pods:
        out = env.in_pod(p, "nslookup test-svc-headless.default.svc.cluster.local; nslookup test-svc")
        assert all(ip in out for ip in ips), out
        assert cip in out, out
        answers = {env.in_pod(p, get).split()[-1] for _ in range(6)}
        assert answers and answers <= names, answers


def test_rolling_update_under_load_fails_no_request(env: Env) -> None:
    stop = threading.Event()
    results: Counter[str] = Counter()
    errors: list[str] = []

    def client() -> None:
        while not stop.is_set():
            try:
                body = _get("127.0.0.1", NODE_PORT)
                results["v2" if "v2" in body else "v1"] += 1
            except Exception as exc:  # noqa: BLE001 (counted)
                errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        sha = commit_file(env.repo, "deploy.yaml", deployment(replicas=3, image=V2), "kubia v2")
        env.gs.wait_applied(sha, 60)

        def done() -> bool:
            pods = env.ready_pods()
            return len(pods) == 3 and all(p["spec"]["containers"][0]["image"] == V2 for p in pods)

        wait_for(done, 120, what="3 ready v2 pods")
        wait_for(lambda: len(env.pods()) == 3, 60, what="the v1 pods gone")
        wait_for(lambda: results["v2"] > 20, 30, what="v2 answering")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, f"{len(errors)} failed requests of {sum(results.values()) + len(errors)}: {errors[:3]}"
    assert results["v1"] > 0 and results["v2"] > 0
    assert len(env.services()) == 3


def _watch_available(env: Env) -> tuple[list[int], threading.Event]:
    """The kubia Deployment's availableReplicas, read as often as the API answers, until stopped."""
    kubernetes = pytest.importorskip("kubernetes")
    api = kubernetes.config.new_client_from_config(config_file=os.path.join(env.gs.state_dir, "kubeconfig"))
    apps = kubernetes.client.AppsV1Api(api)
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                seen.append(apps.read_namespaced_deployment("kubia", "default").status.available_replicas or 0)
            except Exception:  # noqa: BLE001 (the API may be busy: ask again)
                pass
            stop.wait(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return seen, stop


def test_node_crash_pods_replaced_and_nothing_doubled_when_it_returns(env: Env) -> None:
    before = env.ready_pods()
    # a worker that runs pods (node1 is the manager gitship talks to)
    busy = Counter(p["status"]["nominatedNodeName"] for p in before if p["status"]["nominatedNodeName"] != "node1")
    victim = busy.most_common(1)[0][0]
    n = int(victim.removeprefix("node"))
    others = {f"node{i}" for i in (1, 2, 3) if i != n}
    dead_ips = {p["status"]["podIP"] for p in before if p["status"]["nominatedNodeName"] == victim}
    available, stop = _watch_available(env)
    t0 = time.monotonic()
    env.lab.kill(n)

    def endpoints() -> set[str]:
        subsets = env.gs.json("get", "ep", "test-svc").get("subsets") or [{}]
        return {a["ip"] for a in subsets[0].get("addresses") or []}

    # Services stop sending to the dead node's pods within seconds (Swarm's heartbeat is 1 s here)
    wait_for(lambda: not endpoints() & dead_ips, 20, what="the dead node's pods out of the endpoints")
    print(f"{victim} killed: its pods out of the endpoints after {time.monotonic() - t0:.1f}s")
    # availability is reported truthfully meanwhile: the Deployment is not fully available (watched
    # through the Kubernetes API from before the kill: the dip lasts only until Swarm replaced the pods)
    wait_for(lambda: min(available, default=3) < 3, 30, what="the Deployment reported below 3 available")
    stop.set()

    def back() -> bool:
        pods = env.ready_pods()
        return len(pods) == 3 and all(p["status"]["nominatedNodeName"] in others for p in pods)

    wait_for(back, 90, what=f"the pods of {victim} replaced on {sorted(others)}")
    replaced_after = time.monotonic() - t0
    eps = env.gs.json("get", "ep", "test-svc")["subsets"][0]["addresses"]
    assert sorted(a["ip"] for a in eps) == sorted(p["status"]["podIP"] for p in env.ready_pods())
    names = {p["metadata"]["name"] for p in env.ready_pods()}
    assert {_get("127.0.0.1", NODE_PORT).split()[-1] for _ in range(20)} <= names
    print(f"{victim} killed: pods Ready again on {sorted(others)} after {replaced_after:.1f}s")
    env.lab.start(n)
    env.lab.wait_nodes_ready(3)
    # the node's orphans are stopped when its engine is back, and nothing is doubled
    wait_for(lambda: not env.lab.docker(n, "ps", "-q", "--filter", "label=gitship.pod.uid").split(), 60)
    assert len(env.services()) == 3
    running = env.lab.docker(1, "service", "ps", *(s["ID"] for s in env.services()), "-q", "--filter",
                             "desired-state=running")  # fmt: skip
    assert len(running.split()) == 3, running
    assert len(env.ready_pods()) == 3


def test_adoption_after_kill9(env: Env) -> None:
    before = {s["ID"] for s in env.services()}
    pods = {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"] for p in env.ready_pods()}
    env.gs.kill9()
    env.gs.start()
    wait_for(lambda: len(env.ready_pods()) == 3, 60, what="the adopted pods Ready")
    assert {p["metadata"]["uid"] for p in env.ready_pods()} == set(pods)
    assert {s["ID"] for s in env.services()} == before
    assert _get("127.0.0.1", NODE_PORT).startswith("This is v2")


def test_daemonset_one_pod_per_node_and_get_nodes(env: Env) -> None:
    status = env.gs.status()["status"]["runtime"]
    assert sorted(n["name"] for n in status["nodes"]) == ["node1", "node2", "node3"]
    kubernetes = pytest.importorskip("kubernetes")
    api = kubernetes.config.new_client_from_config(config_file=os.path.join(env.gs.state_dir, "kubeconfig"))
    nodes = kubernetes.client.CoreV1Api(api).list_node().items
    ready = {n.metadata.name: n.status.conditions[0].status for n in nodes}
    assert ready == {"node1": "True", "node2": "True", "node3": "True"}
    assert {n.status.addresses[0].address for n in nodes} == {env.lab.addr(i) for i in (1, 2, 3)}
    sha = commit_file(env.repo, "ds.yaml", DAEMONSET, "agent daemonset")
    env.gs.wait_applied(sha, 60)
    pods = wait_for(lambda: len(env.ready_pods("agent")) == 3 and env.ready_pods("agent"), 90, what="3 agents")
    assert sorted(p["status"]["nominatedNodeName"] for p in pods) == ["node1", "node2", "node3"]
    # logs of a pod on any node, through the manager (Swarm's service logs)
    name = next(p["metadata"]["name"] for p in pods if p["status"]["nominatedNodeName"] == "node3")
    wait_for(lambda: f"agent on {name}" in env.gs.cli("logs", name).stdout, 30, what="the agent's log line")


ONE_SHOT = f"""apiVersion: v1
kind: Pod
metadata:
  name: one-shot
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {V1}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo done; exit 3"]
"""


def test_restart_policy_never_is_a_failed_pod_with_its_exit_code(env: Env) -> None:
    sha = commit_file(env.repo, "one-shot.yaml", ONE_SHOT, "a one-shot pod")
    env.gs.wait_applied(sha, 60)

    def failed() -> dict[str, Any] | None:
        pod = env.gs.json("get", "pod", "one-shot")
        return pod if (pod.get("status") or {}).get("phase") == "Failed" else None

    pod = wait_for(failed, 60, what="the one-shot pod Failed")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["state"]["terminated"]["exitCode"] == 3 and cs["restartCount"] == 0


CONFIGURED = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: hello
  app.conf: "level={{level}}"
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
data:
  password: czNjcmV0
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: configured
spec:
  replicas: 1
  selector:
    matchLabels: {{app: configured}}
  template:
    metadata:
      labels: {{app: configured, tier: web}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {{kubernetes.io/hostname: node3}}
      containers:
      - name: main
        image: {V1}
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
        env:
        - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: app-config, key: greeting}}}}}}
        - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: app-secret, key: password}}}}}}
        - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
        - {{name: BRACES, value: "{{{{.Node.ID}}}}"}}
        envFrom:
        - prefix: CFG_
          configMapRef: {{name: app-config}}
        volumeMounts:
        - {{name: cfg, mountPath: /etc/app}}
        - {{name: sec, mountPath: /etc/secret}}
        - {{name: info, mountPath: /etc/podinfo}}
        - {{name: scratch, mountPath: /scratch}}
      volumes:
      - name: cfg
        configMap:
          name: app-config
          items: [{{key: app.conf, path: conf/app.conf, mode: 384}}]
      - name: sec
        secret: {{secretName: app-secret}}
      - name: info
        downwardAPI:
          items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]
      - name: scratch
        emptyDir: {{}}
"""


def _one_ready(env: Env, app: str, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    def one() -> dict[str, Any] | None:
        ready = [p for p in env.ready_pods(app) if p["metadata"]["name"] not in exclude]
        return ready[0] if len(ready) == 1 else None

    pod: dict[str, Any] = wait_for(one, 90, what=f"one ready {app} pod")
    return pod


def _exec(env: Env, pod: str, script: str) -> str:
    return env.gs.cli("exec", pod, "--", "sh", "-c", script).stdout


def test_configuration_env_and_files_on_a_remote_node(env: Env) -> None:
    sha = commit_file(env.repo, "configured.yaml", CONFIGURED.replace("{level}", "1"), "configured app")
    env.gs.wait_applied(sha, 60)
    pod = _one_ready(env, "configured")
    assert pod["status"]["nominatedNodeName"] == "node3"
    name = pod["metadata"]["name"]
    out = _exec(env, name, 'echo "$GREETING $PASSWORD $NODE $CFG_greeting $BRACES"').strip()
    assert out == "hello s3cret node3 hello {{.Node.ID}}"
    out = _exec(
        env, name, "cat /etc/app/conf/app.conf; echo; stat -c %a /etc/app/conf/app.conf; cat /etc/secret/password"
    )
    assert out.split() == ["level=1", "600", "s3cret"]
    assert 'tier="web"' in _exec(env, name, "cat /etc/podinfo/labels")
    assert _exec(env, name, "touch /scratch/x && ls /scratch").strip() == "x"
    # a changed ConfigMap: a new Swarm config, the pod's files follow (the same pod: name and uid)
    sha = commit_file(env.repo, "configured.yaml", CONFIGURED.replace("{level}", "2"), "configured app: level 2")
    env.gs.wait_applied(sha, 60)

    def updated() -> bool:
        p = env.gs.json("get", "pod", name)
        if not pod_ready(p):
            return False
        r = env.gs.cli("exec", name, "--", "cat", "/etc/app/conf/app.conf", check=False)
        return r.returncode == 0 and r.stdout.strip() == "level=2"

    wait_for(updated, 90, what="the pod's file updated from the changed ConfigMap")
    assert env.gs.json("get", "pod", name)["metadata"]["uid"] == pod["metadata"]["uid"]


DATABASE = f"""apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: db-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
spec:
  replicas: 1
  strategy: {{type: Recreate}}
  selector:
    matchLabels: {{app: db}}
  template:
    metadata:
      labels: {{app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {V1}
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
        volumeMounts:
        - {{name: data, mountPath: /data}}
      volumes:
      - name: data
        persistentVolumeClaim: {{claimName: db-data}}
"""


def test_a_claim_is_a_node_local_volume_and_its_pod_stays_on_that_node(env: Env) -> None:
    sha = commit_file(env.repo, "db.yaml", DATABASE, "a database with a claim")
    env.gs.wait_applied(sha, 60)
    pod = _one_ready(env, "db")
    name, node = pod["metadata"]["name"], pod["status"]["nominatedNodeName"]
    _exec(env, name, "echo kept > /data/f")
    node_id = env.lab.docker(int(node.removeprefix("node")), "info", "--format", "{{.Swarm.NodeID}}").strip()
    svc = next(s["Name"] for s in env.services() if "-db-" in s["Name"])

    def pinned() -> bool:
        spec = json.loads(env.lab.docker(1, "service", "inspect", svc))[0]["Spec"]
        return f"node.id=={node_id}" in (spec["TaskTemplate"].get("Placement") or {}).get("Constraints", [])

    wait_for(pinned, 30, what="the pod pinned to its volume's node")
    env.gs.cli("delete", "pod", name)
    again = _one_ready(env, "db", exclude=frozenset({name}))
    assert again["status"]["nominatedNodeName"] == node
    assert _exec(env, again["metadata"]["name"], "cat /data/f").strip() == "kept"
    pvc = env.gs.json("get", "pvc", "db-data")
    assert pvc["status"]["phase"] == "Bound"


HOOKED = f"""apiVersion: v1
kind: Pod
metadata:
  name: hooked
  labels: {{app: hooked}}
spec:
  terminationGracePeriodSeconds: 2
  nodeSelector: {{kubernetes.io/hostname: node2}}
  containers:
  - name: main
    image: {V1}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.3 & wait; done"]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo started > /tmp/started"]}}
    readinessProbe:
      exec: {{command: ["cat", "/tmp/started"]}}
      periodSeconds: 1
"""


def _kubectl(env: Env, *args: str) -> list[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    return [kubectl, "--kubeconfig", os.path.join(env.gs.state_dir, "kubeconfig"), *args]


def test_hooks_exec_probe_exec_and_logs_follow(env: Env) -> None:
    sha = commit_file(env.repo, "hooked.yaml", HOOKED, "a pod with hooks and an exec probe")
    env.gs.wait_applied(sha, 60)
    pod = _one_ready(env, "hooked")  # Ready needs the postStart hook's file, read by the exec probe
    assert pod["status"]["nominatedNodeName"] == "node2"
    assert _exec(env, "hooked", "cat /tmp/started").strip() == "started"
    # kubectl exec -i (stdin through the node's engine)
    p = subprocess.run(
        _kubectl(env, "exec", "-i", "hooked", "--", "sh", "-c", "cat; echo done"),
        input="from stdin\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and p.stdout.split("\n")[:2] == ["from stdin", "done"], p
    r = subprocess.run(_kubectl(env, "exec", "hooked", "--", "sh", "-c", "exit 7"), capture_output=True, timeout=60)
    assert r.returncode == 7
    # kubectl logs -f: new lines as the container writes them
    follow = subprocess.Popen(_kubectl(env, "logs", "-f", "hooked"), stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(seen) < 5 and time.monotonic() < deadline:
            line = follow.stdout.readline()
            if line.startswith("tick "):
                seen.append(int(line.split()[1]))
        assert len(seen) == 5 and seen == sorted(seen), seen
    finally:
        follow.kill()
        follow.wait()
