"""`gitship up --runtime docker` end to end: real git, the real CLI and daemon, a real Docker Engine.

Images are gitship-test/kubia:v1/v2 (tests/dockerimages.py, built locally: no registry is
needed), always with imagePullPolicy IfNotPresent. Every daemon gets a service CIDR of its
own in 10.97.0.0/16 (the DNS on its ".10", port 53), and each test its own nodePort, so
tests never share an address. Skipped, with the reason, where no engine answers.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_file, git, wait_for, pod_ready as ready
from tests.dockerimages import docker_client_or_skip, ensure_test_images

pytestmark = pytest.mark.docker

V1 = "gitship-test/kubia:v1"
V2 = "gitship-test/kubia:v2"


def deployment(name: str = "kubia", replicas: int = 3, image: str = V1) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: kubia
        image: {image}
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"""


def nodeport_service(name: str, node_port: int, app: str = "kubia") -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  selector: {{app: {app}}}
  ports:
  - port: 80
    targetPort: 8080
    nodePort: {node_port}
"""


HEADLESS = """apiVersion: v1
kind: Service
metadata:
  name: kubia-headless
spec:
  clusterIP: None
  selector: {app: kubia}
  ports:
  - port: 8080
"""

CLIENT_POD = f"""apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: {V1}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo client up in pod $HOSTNAME; trap 'exit 0' TERM; while :; do sleep 1; done"]
"""


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def docker_env(tmp_path: Path):
    """The engine (or a skip), the test images, and afterwards: no container of this test's
    gitship instance is left behind (only this state dir's instance label is touched)."""
    client = docker_client_or_skip()
    ensure_test_images(client)
    yield client
    instance = hashlib.sha256(os.path.abspath(tmp_path / "state" / "runtime").encode()).hexdigest()[:16]
    leftovers = client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]})
    for c in leftovers:
        client.api.remove_container(c["Id"], force=True)
    prefix = docker_args(tmp_path)[3].rsplit(".", 2)[0] + "."  # 10.97.X.
    addrs = [
        line.split()[3].split("/")[0]
        for line in subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True
        ).stdout.splitlines()
    ]
    stale = [a for a in addrs if a.startswith(prefix)]
    for a in stale:
        subprocess.run(["ip", "addr", "del", f"{a}/32", "dev", "lo"], capture_output=True)
    assert not leftovers, f"gitship left {len(leftovers)} containers behind"
    assert not stale, f"gitship left service addresses on lo: {stale}"


def docker_args(tmp_path: Path) -> list[str]:
    """--runtime docker with a service CIDR of this test's own (its .10 is the DNS)."""
    x = 100 + zlib.crc32(str(tmp_path).encode()) % 150
    return ["--runtime", "docker", "--service-cidr", f"10.97.{x}.0/24", "--dns-addr", f"10.97.{x}.10:53"]


def ready_pods(g, selector: str = "app=kubia", n: int = 3, timeout: float = 60) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (
            (ps := [p for p in g.pods(selector) if ready(p) and not p["metadata"].get("deletionTimestamp")])
            and len(ps) == n
            and ps
        ),
        timeout,
        what=f"{n} ready pods {selector}",
    )


def get(host: str, port: int, timeout: float = 3.0) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        body = r.read().decode()
        if r.status != 200:
            raise OSError(f"HTTP {r.status}")
        return body
    finally:
        conn.close()


def answers_from(host: str, port: int, names: set[str], timeout: float = 30) -> set[str]:
    seen: set[str] = set()

    def all_seen() -> bool:
        body = get(host, port)
        seen.add(body.strip().rsplit(" ", 1)[-1])
        return names <= seen

    wait_for(all_seen, timeout, interval=0.01, what=f"answers from every replica of {sorted(names)} (seen {seen})")
    return seen


class Load:
    """Threads sending requests (a new connection each) to host:port; counts outcomes."""

    def __init__(self, host: str, port: int, threads: int = 4):
        self.host, self.port = host, port
        self.ok: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body = get(self.host, self.port, timeout=5)
                with self._lock:
                    self.ok[body.split()[2]] += 1  # "This is vN running in pod X"
            except Exception as e:
                with self._lock:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {e!r}")
            self._stop.wait(0.005)  # pacing: about 200 requests per second per thread

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    @property
    def total(self) -> int:
        return sum(self.ok.values()) + len(self.failures)


def resolve_in(g, pod: str, name: str) -> list[str]:
    """A records of ``name`` as busybox nslookup sees them inside ``pod``."""
    res = g.cli("exec", pod, "--", "nslookup", "-type=a", name, check=False)
    _, _, answer = res.stdout.partition("Name:")
    return [line.split()[-1] for line in answer.splitlines() if line.startswith("Address")]


def http_in(g, pod: str, ip: str, port: int) -> str:
    """GET / from inside ``pod`` (busybox nc); the response body."""
    res = g.cli("exec", pod, "--", "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port}")
    head, sep, body = res.stdout.replace("\r\n", "\n").partition("\n\n")
    return body if sep else f"<no response: {res.returncode} {res.stdout!r} {res.stderr!r}>"


def app_containers(client, instance: str) -> list[dict[str, Any]]:
    return [
        c
        for c in client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]})
        if c["Labels"].get("gitship.container") != "POD"
    ]


# ----------------------------------------------------------------------------- tests


def test_docker_defaults_pick_a_service_range_containers_reach() -> None:
    from reconciler.daemon import Options

    d = Options(source=".", state_dir="/tmp/x", runtime="docker")
    assert (d.service_cidr, d.dns_addr) == ("10.97.0.0/16", "10.97.0.10:53")
    i = Options(source=".", state_dir="/tmp/x", isolation="host")
    assert (i.pod_cidr, i.service_cidr, i.dns_addr) == ("127.244.0.0/16", "127.96.0.0/16", "127.96.0.10:53")
    s = Options(source=".", state_dir="/tmp/x", pod_cidr="10.244.0.0/16")
    assert (s.service_cidr, s.dns_addr) == ("10.96.0.0/16", "10.96.0.10:53")
    assert (
        Options(source=".", state_dir="/tmp/x", runtime="docker", service_cidr="10.98.4.0/24").dns_addr
        == "10.98.4.10:53"
    )
    assert Options(source=".", state_dir="/tmp/x", runtime="docker", dns_addr="10.1.2.3:53").dns_addr == "10.1.2.3:53"


def test_deployment_behind_nodeport_answers_from_every_replica_and_dns_works_in_pods(
    docker_env, empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    client = docker_env
    commit_file(empty_repo, "kubia.yaml", deployment() + "---\n" + nodeport_service("kubia", 31080), "kubia")
    commit_file(empty_repo, "headless.yaml", HEADLESS, "headless")
    commit_file(empty_repo, "client.yaml", CLIENT_POD, "client")
    t0 = time.monotonic()
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    pods = ready_pods(g)
    print(f"\n3 replicas ready {time.monotonic() - t0:.2f}s after `gitship up` started")

    # status: the runtime and the engine's version
    st = g.status()["status"]
    assert st["runtime"]["name"] == "docker" and st["runtime"]["engine"] == "up"
    assert st["runtime"]["engineVersion"] == client.version()["Version"]
    assert f"Docker Engine {client.version()['Version']}" in g.cli("status").stdout

    # pods are containers: a sandbox per pod plus the app container, labelled with our instance
    instance = st["runtime"]["instance"]
    for p in pods:
        cid = p["status"]["containerStatuses"][0]["containerID"].split("//")[1]
        info = client.api.inspect_container(cid)
        assert info["State"]["Running"]
        assert info["Config"]["Labels"]["gitship.instance"] == instance
        assert info["Config"]["Labels"]["gitship.pod.uid"] == p["metadata"]["uid"]
        assert info["HostConfig"]["NetworkMode"].startswith("container:")
        assert get(p["status"]["podIP"], 8080) == f"This is v1 running in pod {p['metadata']['name']}\n"

    # the NodePort answers from the host, from every replica
    names = {p["metadata"]["name"] for p in pods}
    answers_from("127.0.0.1", 31080, names)
    svc = g.json("get", "svc", "kubia")
    cluster_ip = svc["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.97.")
    answers_from(cluster_ip, 80, names)  # the ClusterIP from the host too

    # inside a pod: the service by its short, namespaced and full names, through gitship's DNS
    wait_for(lambda: any(ready(p) for p in g.pods() if p["metadata"]["name"] == "client"), 30, what="client pod")
    # (the test image's static busybox wget crashes in glibc's getaddrinfo, so: its nslookup,
    # which reads resolv.conf's nameserver and search path itself, and nc to the address)
    for name in ("kubia", "kubia.default", "kubia.default.svc.cluster.local"):
        assert resolve_in(g, "client", name) == [cluster_ip], name
    # the ClusterIP from inside a pod: one stable address, load-balanced across the ready pods
    seen = set()
    for _ in range(30):
        out = http_in(g, "client", cluster_ip, 80)
        assert out.startswith("This is v1 running in pod kubia-"), out
        seen.add(out.split()[-1])
        if seen == names:
            break
    assert seen == names
    # headless: the pod IPs
    assert sorted(resolve_in(g, "client", "kubia-headless")) == sorted(p["status"]["podIP"] for p in pods)
    # the search path is Kubernetes'
    resolv = g.cli("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "ndots:5" in resolv

    # logs come from the engine
    wait_for(lambda: "client up in pod client" in g.cli("logs", "client").stdout, 20, what="client's log")
    # and -f follows them (it is stopped by the test once the line has come)
    follow = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "logs", "-f", "client"],
        env=g.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert b"client up in pod client" in follow.stdout.readline()
        assert follow.poll() is None  # still following
    finally:
        follow.kill()
        follow.wait()


def test_rollout_to_v2_under_load_fails_no_request_and_undo_comes_back(
    docker_env, empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    commit_file(empty_repo, "kubia.yaml", deployment() + "---\n" + nodeport_service("kubia", 31081), "kubia")
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    answers_from("127.0.0.1", 31081, {p["metadata"]["name"] for p in ready_pods(g)})

    with Load("127.0.0.1", 31081) as load:
        wait_for(lambda: load.total >= 20, 30, what="load flowing")
        t0 = time.monotonic()
        before = git(empty_repo, "rev-parse", "HEAD")
        g.cli("set", "image", "deployment", "kubia", f"kubia={V2}")
        assert git(empty_repo, "rev-parse", "HEAD") != before
        out = g.cli("rollout", "status", "deployment", "kubia", "--timeout", "120").stdout
        assert 'deployment "kubia" successfully rolled out' in out
        wait_for(
            lambda: (
                (ps := [p for p in g.pods("app=kubia") if not p["metadata"].get("deletionTimestamp")])
                and len(ps) == 3
                and all(ready(p) and p["spec"]["containers"][0]["image"] == V2 for p in ps)
            ),
            120,
            what="3 ready v2 pods",
        )
        rolled = time.monotonic() - t0
        wait_for(lambda: len(g.pods("app=kubia")) == 3, 60, what="old pods gone")
        n = load.total
        wait_for(lambda: load.total >= n + 20, 30, what="load after the rollout")
        v2_phase = (load.total, len(load.failures), dict(load.ok))
    print(f"\nrollout v1->v2: {rolled:.1f}s, {v2_phase[0]} requests, {v2_phase[1]} failed, by version {v2_phase[2]}")
    assert load.failures == [], load.failures[:10]
    assert load.ok["v2"] > 0 and load.ok["v1"] > 0
    assert get("127.0.0.1", 31081).startswith("This is v2")

    with Load("127.0.0.1", 31081) as load:
        t0 = time.monotonic()
        before = git(empty_repo, "rev-parse", "HEAD")
        g.cli("rollout", "undo", "deployment", "kubia")
        assert git(empty_repo, "rev-parse", "HEAD") != before  # the undo is a commit
        wait_for(
            lambda: (
                (ps := [p for p in g.pods("app=kubia") if not p["metadata"].get("deletionTimestamp")])
                and len(ps) == 3
                and all(ready(p) and p["spec"]["containers"][0]["image"] == V1 for p in ps)
            ),
            120,
            what="3 ready v1 pods after undo",
        )
        undone = time.monotonic() - t0
        wait_for(lambda: len(g.pods("app=kubia")) == 3, 60, what="v2 pods gone")
        n = load.total
        wait_for(lambda: load.total >= n + 20, 30, what="load after the undo")
    print(f"undo v2->v1: {undone:.1f}s, {load.total} requests, {len(load.failures)} failed, by version {dict(load.ok)}")
    assert load.failures == [], load.failures[:10]
    assert get("127.0.0.1", 31081).startswith("This is v1")


def test_kill9_restart_adopts_containers_and_rm_f_is_repaired(
    docker_env, empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    client = docker_env
    commit_file(empty_repo, "kubia.yaml", deployment() + "---\n" + nodeport_service("kubia", 31082), "kubia")
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    pods = ready_pods(g)
    instance = g.status()["status"]["runtime"]["instance"]
    cids = {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["containerID"] for p in pods}
    started = {
        c["Id"]: client.api.inspect_container(c["Id"])["State"]["StartedAt"]
        for c in client.api.containers(filters={"label": [f"gitship.instance={instance}"]})
    }
    assert len(started) == 6  # 3 sandboxes + 3 app containers

    g.kill9()
    for cid in started:
        assert client.api.inspect_container(cid)["State"]["Running"], "containers outlive gitship"
    t0 = time.monotonic()
    g2 = gitship_factory(empty_repo, extra=docker_args(tmp_path), state_dir=tmp_path / "state")
    again = ready_pods(g2)
    print(f"\nadopted 3 running pods {time.monotonic() - t0:.2f}s after the restart")
    assert {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["containerID"] for p in again} == cids
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in again)
    now = {
        c["Id"]: client.api.inspect_container(c["Id"])["State"]["StartedAt"]
        for c in client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]})
    }
    assert now == started, "no container was restarted, none doubled"
    answers_from("127.0.0.1", 31082, {p["metadata"]["name"] for p in again})
    # the service addresses (left on lo by the killed gitship) are taken over: DNS included
    st = g2.status()["status"]
    assert st["dnsAddress"] == docker_args(tmp_path)[-1], st["dnsAddress"]
    vname = again[0]["metadata"]["name"]
    assert resolve_in(g2, vname, "kubia") == [g2.json("get", "svc", "kubia")["spec"]["clusterIP"]]

    # docker rm -f of a pod's app container: the pod's container is started again
    victim = again[0]
    vcid = victim["status"]["containerStatuses"][0]["containerID"].split("//")[1]
    client.api.remove_container(vcid, force=True)
    fixed = wait_for(
        lambda: (
            (p := g2.json("get", "pod", victim["metadata"]["name"]))
            and ready(p)
            and p["status"]["containerStatuses"][0]["containerID"].split("//")[1] != vcid
            and p
        ),
        60,
        what="the removed container replaced",
    )
    assert fixed["metadata"]["uid"] == victim["metadata"]["uid"]
    assert fixed["status"]["containerStatuses"][0]["restartCount"] == 1
    assert get(fixed["status"]["podIP"], 8080).startswith("This is v1")
    ready_pods(g2)
    assert len(app_containers(client, instance)) == 3

    # a clean stop removes every container of this instance
    g2.stop()
    assert client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]}) == []


def test_missing_image_is_err_image_pull_while_the_rest_runs(
    docker_env, empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    broken = """apiVersion: v1
kind: Pod
metadata:
  name: broken
spec:
  containers:
  - name: app
    image: gitship-test/no-such-image:v1
"""
    commit_file(
        empty_repo,
        "all.yaml",
        deployment(replicas=2) + "---\n" + nodeport_service("kubia", 31083) + "---\n" + broken,
        "kubia and a broken pod",
    )
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    pods = ready_pods(g, n=2)
    answers_from("127.0.0.1", 31083, {p["metadata"]["name"] for p in pods})

    def waiting_reason() -> str | None:
        cs = (g.json("get", "pod", "broken").get("status") or {}).get("containerStatuses") or []
        return cs and (cs[0]["state"].get("waiting") or {}).get("reason")

    reason = wait_for(
        lambda: waiting_reason() in ("ErrImagePull", "ImagePullBackOff") and waiting_reason(),
        60,
        what="ErrImagePull on the broken pod",
    )
    assert reason in ("ErrImagePull", "ImagePullBackOff")
    row = next(line for line in g.cli("get", "pods").stdout.splitlines() if line.startswith("broken"))
    assert "ErrImagePull" in row or "ImagePullBackOff" in row
    msg = g.json("get", "pod", "broken")["status"]["containerStatuses"][0]["state"].get("waiting") or {}
    assert "no-such-image" in msg.get("message", ""), msg
    assert g.status()["status"]["conditions"][0]["status"] == "True"  # the commit applied


def test_image_pull_failure_is_an_event(docker_env, empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    commit_file(
        empty_repo,
        "broken.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n"
        "  containers:\n  - {name: app, image: 'gitship-test/no-such-image:v1'}\n",
        "broken",
    )
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    wait_for(
        lambda: (
            "ErrImagePull" in g.cli("events", "--object", "pod/broken").stdout
            or "ImagePullBackOff" in g.cli("events", "--object", "pod/broken").stdout
        ),
        30,
        what="an ErrImagePull event",
    )


def test_engine_down_is_a_status_and_a_retry_not_a_crash(
    docker_env, empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    commit_file(empty_repo, "kubia.yaml", deployment(replicas=1), "kubia")
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path), start=False)
    g.env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    g.start()
    st = wait_for(
        lambda: (s := g.status()["status"]) and s["runtime"].get("engine") == "unreachable" and s,
        30,
        what="engine unreachable in status",
    )
    assert st["daemon"] == "running" and st["runtime"]["error"]
    assert "engine unreachable, retrying" in g.cli("status").stdout
    wait_for(lambda: len(g.pods("app=kubia")) == 1, 30, what="the pod object")
    wait_for(lambda: g.pods("app=kubia")[0]["status"].get("phase") == "Pending", 30, what="the pod Pending")
    assert g.proc is not None and g.proc.poll() is None, "gitship up is still running"


def test_seed_repository_on_docker_with_the_template_image(
    docker_env, repo: Path, gitship_factory, tmp_path: Path
) -> None:
    """`gitship init`'s repository as the README tells it: build image/ as the seed's image, run
    it on Docker, create the Deployment of 3 and the NodePort Service of the tutorial."""
    client = docker_env
    tag = "qinchaowhut/allen:v1"
    try:
        client.api.inspect_image(tag)
        made = False
    except Exception:
        made = True
    # offline: the base is an image the engine has (the README's default is busybox from a registry)
    out = client.api.build(
        path=str(repo / "image"), tag=tag, buildargs={"VERSION": "v1", "BASE": V1}, rm=True, decode=True
    )
    log = [x for x in out]
    assert not [x for x in log if "error" in x], log
    g = None
    try:
        g = gitship_factory(repo, extra=docker_args(tmp_path))
        kubia = wait_for(lambda: (p := g.json("get", "pod", "kubia")) and ready(p) and p, 60, what="the kubia pod")
        assert get(kubia["status"]["podIP"], 8080) == "This is v1 running in pod kubia\n"
        # dnsutil-pod's image (tutum/dnsutils) can't be had here: it waits, the rest runs
        g.cli("create", "-f", str(repo / "examples" / "deployment-v1.yaml"))
        g.cli("create", "-f", str(repo / "examples" / "svc-nodeport.yaml"))
        pods = ready_pods(g, "app=testing")
        answers_from("127.0.0.1", 30123, {p["metadata"]["name"] for p in pods})
        dnsutil = g.json("get", "pod", "dnsutil-pod")["status"]["containerStatuses"][0]["state"]
        assert (dnsutil.get("waiting") or {}).get("reason") in (
            "ErrImagePull",
            "ImagePullBackOff",
        ) or "running" in dnsutil, dnsutil
    finally:
        if made:  # leave the engine as it was
            if g is not None:
                g.stop()
            client.api.remove_image(tag)
