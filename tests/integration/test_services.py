"""Issue 4, end to end: Services through a real `gitship up` daemon.

Real git repositories, real pods (processes with their own loopback IPs), real HTTP
requests through gitship's TCP proxy and real DNS queries (dnslib) to its DNS server.
Waiting is by polling with deadlines, never by fixed sleeps.

Ports on 0.0.0.0 are shared with whatever else runs on this machine: the tests use
unusual ports where they choose them; the seed's allen-loadbalancer (port 80) and
test-nodeport (30123) are used once, in the seed test.
"""

from __future__ import annotations

import http.client
import ipaddress
import random
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from tests.conftest import commit_file, git, wait_for, pod_ready as ready


def http_get(host: str, port: int, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as r:
        return r.read().decode()


def dns_addr(g) -> tuple[str, int]:
    host, _, port = g.status()["status"]["dnsAddress"].rpartition(":")
    return host, int(port)


def dns_query(g, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    host, port = dns_addr(g)
    return DNSRecord.parse(DNSRecord.question(name, qtype).send(host, port, tcp=tcp, timeout=3))


def a_records(g, name: str, tcp: bool = False) -> list[str]:
    r = dns_query(g, name, "A", tcp)
    return sorted(str(rr.rdata) for rr in r.rr if rr.rtype == QTYPE.A)


def svc(g, name: str) -> dict:
    return g.json("get", "svc", name)


def reach_all(host: str, port: int, names: set[str], version: str = "v1", timeout: float = 30) -> None:
    """Repeated requests through host:port answer with every pod name in ``names``."""
    seen: set[str] = set()

    def probe() -> bool:
        body = http_get(host, port)
        assert body.startswith(f"This is {version} running in pod "), body
        seen.add(body.strip().rsplit(" ", 1)[1])
        return names <= seen

    wait_for(probe, timeout, interval=0.01, what=f"every pod through {host}:{port} (seen {seen})")
    assert seen <= names, (seen, names)


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------- the seed


def test_seed_service_objects(repo: Path, gitship_factory) -> None:
    """Section 5 of the tutorial: test-svc, headless, NodePort and LoadBalancer over test-fqdn."""
    # the seed's fixed host ports; another test daemon on this machine may hold them for a while
    try:
        wait_for(lambda: port_free(80) and port_free(30123), 30, interval=0.2, what="ports 80 and 30123 free")
    except AssertionError:
        pytest.skip("host port 80 or 30123 is held by another process")
    g = gitship_factory(repo)
    for ex in ("replicaset-fqdn", "svc", "svc-headless", "svc-nodeport", "svc-loadbalancer"):
        g.cli("create", "-f", str(repo / "examples" / f"{ex}.yaml"))
    g.wait_applied(git(repo, "rev-parse", "HEAD"))
    pods = wait_for(
        lambda: (ps := g.running_pods("app=testing")) and len(ps) == 3 and ps, 40, what="3 test-fqdn pods ready"
    )
    names = {p["metadata"]["name"] for p in pods}
    ips = sorted(p["status"]["podIP"] for p in pods)

    ts = svc(g, "test-svc")
    cip = ts["spec"]["clusterIP"]
    assert ts["spec"]["type"] == "ClusterIP" and ipaddress.ip_address(cip) in ipaddress.ip_network(g.service_cidr())
    wait_for(
        lambda: len((g.json("get", "ep", "test-svc").get("subsets") or [{}])[0].get("addresses") or []) == 3,
        20,
        what="3 ready endpoints",
    )
    reach_all(cip, 80, names)

    # kubectl's columns
    table = g.cli("get", "svc").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["test-svc"][1:5] == ["ClusterIP", cip, "<none>", "80/TCP"]
    assert rows["test-svc-headless"][1:5] == ["ClusterIP", "None", "<none>", "80/TCP"]
    np_ = svc(g, "test-nodeport")
    assert rows["test-nodeport"][1] == "NodePort" and rows["test-nodeport"][4] == "80:30123/TCP"
    lb = svc(g, "allen-loadbalancer")
    ingress = lb["status"]["loadBalancer"]["ingress"]
    assert ingress and ingress[0].get("ip")
    assert rows["allen-loadbalancer"][1] == "LoadBalancer" and rows["allen-loadbalancer"][3] == ingress[0]["ip"]

    # DNS: the ClusterIP, the three pod IPs of the headless service, short names too; UDP and TCP
    for tcp in (False, True):
        assert a_records(g, "test-svc.default.svc.cluster.local", tcp) == [cip]
        assert a_records(g, "test-svc-headless.default.svc.cluster.local", tcp) == ips
    assert a_records(g, "test-svc.default") == [cip]

    # NodePort on the host
    assert np_["spec"]["ports"][0]["nodePort"] == 30123
    reach_all("127.0.0.1", 30123, names)
    reach_all(np_["spec"]["clusterIP"], 80, names)
    # LoadBalancer: port 80 on the host, like k3s ServiceLB
    reach_all(ingress[0]["ip"], 80, names)

    # endpoints listing
    ep_table = g.cli("get", "ep").stdout
    assert ep_table.splitlines()[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert any(line.startswith("test-svc ") and f"{ips[0]}:8080" in line for line in ep_table.splitlines())
    desc = g.cli("describe", "svc", "test-svc").stdout
    for word in ("test-svc", cip, "app=testing", "8080", "Endpoints"):
        assert word in desc, (word, desc)


# --------------------------------------------------------------------------- the types, our own ports

APP = """apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: kubia:v1
        ports:
        - {name: http, containerPort: 8080}
"""


def services_yaml(cidr_ip: str, node_port: int, lb_port: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: {cidr_ip}
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
---
apiVersion: v1
kind: Service
metadata:
  name: web-np
spec:
  type: NodePort
  sessionAffinity: ClientIP
  selector: {{app: web}}
  ports:
  - {{port: 81, targetPort: 8080, nodePort: {node_port}}}
---
apiVersion: v1
kind: Service
metadata:
  name: web-lb
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports:
  - {{port: {lb_port}, targetPort: 8080}}
---
apiVersion: v1
kind: Service
metadata:
  name: ext
spec:
  type: ExternalName
  externalName: example.com
---
apiVersion: v1
kind: Service
metadata:
  name: manual
spec:
  ports:
  - {{port: 82, targetPort: 8080}}
"""


def manual_endpoints(ip: str) -> str:
    return f"""apiVersion: v1
kind: Endpoints
metadata:
  name: manual
subsets:
- addresses:
  - ip: {ip}
  ports:
  - port: 8080
"""


def _free_port(lo: int, hi: int) -> int:
    """A free host port in [lo, hi), starting at a random place (tests side by side differ)."""
    start = random.randrange(lo, hi)
    for i in range(hi - lo):
        p = lo + (start - lo + i) % (hi - lo)
        if port_free(p):
            return p
    pytest.skip(f"no free port in {lo}-{hi}")


def test_service_types_and_allocation(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    commit_file(empty_repo, "web.yaml", APP, "web")
    g = gitship_factory(empty_repo, start=False)
    # the fixed ClusterIP: the test daemon's service range is 127.X.128.0/17
    svc_cidr = g.net_args()[3]
    base = svc_cidr.split("/")[0].rsplit(".", 2)[0]
    fixed_ip = f"{base}.200.7"
    node_port = _free_port(31000, 32700)
    lb_port = _free_port(18000, 19000)
    commit_file(empty_repo, "svc.yaml", services_yaml(fixed_ip, node_port, lb_port), "services")
    g.start()
    pods = wait_for(lambda: (ps := g.running_pods("app=web")) and len(ps) == 2 and ps, 30, what="web pods ready")
    names = {p["metadata"]["name"] for p in pods}
    web = svc(g, "web")
    assert web["spec"]["clusterIP"] == fixed_ip
    # named targetPort, round robin over both pods
    reach_all(fixed_ip, 80, names)
    # NodePort with ClientIP affinity: one client stays on one pod
    np_ = svc(g, "web-np")
    assert np_["spec"]["ports"][0]["nodePort"] == node_port
    np_ip = np_["spec"]["clusterIP"]
    answers = {http_get("127.0.0.1", node_port) for _ in range(8)}
    assert len(answers) == 1, answers
    assert len({http_get(np_ip, 81) for _ in range(8)}) == 1
    # LoadBalancer on our own port; ingress reported
    lb = svc(g, "web-lb")
    assert lb["status"]["loadBalancer"]["ingress"][0]["ip"]
    reach_all("127.0.0.1", lb_port, names)
    auto_ips = {n: svc(g, n)["spec"]["clusterIP"] for n in ("web-np", "web-lb", "manual")}
    assert all(ip.startswith(base + ".") for ip in auto_ips.values()), auto_ips
    # ExternalName -> CNAME
    r = dns_query(g, "ext.default.svc.cluster.local", "CNAME")
    assert r.header.rcode == RCODE.NOERROR
    assert [str(rr.rdata).rstrip(".") for rr in r.rr if rr.rtype == QTYPE.CNAME] == ["example.com"]
    # a selectorless service uses the Endpoints object from git
    target = min(p["status"]["podIP"] for p in pods)
    target_name = next(p["metadata"]["name"] for p in pods if p["status"]["podIP"] == target)
    sha = commit_file(empty_repo, "manual-ep.yaml", manual_endpoints(target), "manual endpoints")
    g.wait_applied(sha)
    manual_ip = auto_ips["manual"]
    wait_for(
        lambda: http_get(manual_ip, 82) == f"This is v1 running in pod {target_name}\n",
        20,
        what="the selectorless service through git's Endpoints",
    )
    assert {http_get(manual_ip, 82) for _ in range(5)} == {f"This is v1 running in pod {target_name}\n"}

    # service env vars for services that existed when the pod started
    env = g.cli("exec", min(names), "--", "env").stdout
    assert f"WEB_SERVICE_HOST={fixed_ip}" in env and "WEB_SERVICE_PORT=80" in env, env

    # rejected: a ClusterIP outside the range and a duplicate nodePort; the commit is not applied
    before = g.status()["status"].get("lastAppliedRevision")
    bad = services_yaml("10.0.0.1", node_port, lb_port)
    sha = commit_file(empty_repo, "svc.yaml", bad, "bad clusterIP")
    wait_for(lambda: g.status()["status"]["lastAttemptedRevision"] == sha, 20, what="bad commit attempted")
    assert g.status()["status"].get("lastAppliedRevision") == before
    assert "may not change" in g.cli("status").stdout
    assert svc(g, "web")["spec"]["clusterIP"] == fixed_ip
    new_bad = (
        services_yaml(fixed_ip, node_port, lb_port)
        + """---
apiVersion: v1
kind: Service
metadata: {name: outside}
spec:
  clusterIP: 10.0.0.1
  ports: [{port: 80}]
"""
    )
    sha = commit_file(empty_repo, "svc.yaml", new_bad, "clusterIP outside the range")
    wait_for(lambda: g.status()["status"]["lastAttemptedRevision"] == sha, 20, what="outside commit attempted")
    assert g.status()["status"].get("lastAppliedRevision") == before
    status_text = g.cli("status").stdout
    assert "spec.clusterIP" in status_text and "not in the valid range" in status_text, status_text
    assert f"DNS:           {':'.join(map(str, dns_addr(g)))}" in status_text
    dup = (
        services_yaml(fixed_ip, node_port, lb_port)
        + f"""---
apiVersion: v1
kind: Service
metadata:
  name: dup
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - {{port: 80, nodePort: {node_port}}}
"""
    )
    sha = commit_file(empty_repo, "svc.yaml", dup, "duplicate nodePort")
    wait_for(lambda: g.status()["status"]["lastAttemptedRevision"] == sha, 20, what="dup commit attempted")
    assert g.status()["status"].get("lastAppliedRevision") == before
    assert g.cli("get", "svc", "dup", check=False).returncode != 0
    sha = commit_file(empty_repo, "svc.yaml", services_yaml(fixed_ip, node_port, lb_port), "fixed again")
    g.wait_applied(sha)

    # allocations survive a restart
    g.stop()
    g2 = gitship_factory(empty_repo, state_dir=tmp_path / "state")
    assert {n: svc(g2, n)["spec"]["clusterIP"] for n in auto_ips} == auto_ips
    assert svc(g2, "web-np")["spec"]["ports"][0]["nodePort"] == node_port
    # NOTE: a restarted daemon loads gitship.yaml's image rules only when it applies a revision
    # (reconciler/applier.py apply_revision), not for the revision already applied: a new commit
    # makes the restarted pods runnable.
    sha = commit_file(empty_repo, "note.txt", "restart\n", "after restart")
    g2.wait_applied(sha)
    wait_for(lambda: http_get(fixed_ip, 80).startswith("This is v1"), 30, what="service after restart")
    assert svc(g2, "web")["spec"]["clusterIP"] == fixed_ip


def test_endpoints_follow_readiness(empty_repo: Path, gitship_factory) -> None:
    """A pod failing its readiness probe leaves the endpoints (listed as not ready) at once."""
    app = APP.replace(
        "        ports:\n",
        """        readinessProbe:
          exec: {command: [sh, -c, "test ! -e /tmp/unready-$HOSTNAME"]}
          periodSeconds: 1
          failureThreshold: 1
        ports:
""",
    )
    commit_file(empty_repo, "web.yaml", app, "web")
    commit_file(
        empty_repo,
        "svc.yaml",
        """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""",
        "svc",
    )
    g = gitship_factory(empty_repo)
    pods = wait_for(lambda: (ps := g.running_pods("app=web")) and len(ps) == 2 and ps, 30, what="web ready")
    ip = svc(g, "web")["spec"]["clusterIP"]
    reach_all(ip, 80, {p["metadata"]["name"] for p in pods})
    victim, other = pods[0]["metadata"]["name"], pods[1]["metadata"]["name"]
    victim_ip = pods[0]["status"]["podIP"]
    marker = Path(f"/tmp/unready-{victim}")
    marker.touch()
    try:

        def not_ready_listed() -> bool:
            ep = g.json("get", "ep", "web")
            subset = (ep.get("subsets") or [{}])[0]
            return [a["ip"] for a in subset.get("notReadyAddresses") or []] == [victim_ip] and victim_ip not in [
                a["ip"] for a in subset.get("addresses") or []
            ]

        # at once: the probe's failure wakes a pass (one probe period is 1 s; the deadline is generous)
        wait_for(not_ready_listed, 10, what="victim in notReadyAddresses")
        assert {http_get(ip, 80) for _ in range(10)} == {f"This is v1 running in pod {other}\n"}
        assert "web" in g.cli("get", "endpoints", "web").stdout
    finally:
        marker.unlink(missing_ok=True)
    wait_for(
        lambda: len((g.json("get", "ep", "web").get("subsets") or [{}])[0].get("addresses") or []) == 2,
        10,
        what="victim back in the endpoints",
    )


# --------------------------------------------------------------------------- zero failures during a rollout

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: roll
spec:
  replicas: 4
  selector:
    matchLabels: {app: roll}
  template:
    metadata:
      labels: {app: roll}
    spec:
      containers:
      - name: nodejs
        image: qinchaowhut/allen:v1
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: roll
spec:
  selector: {app: roll}
  ports:
  - {port: 80, targetPort: 8080}
"""


class Load:
    """Threads sending requests through host:port until stopped; counts answers and failures."""

    def __init__(self, host: str, port: int, keepalive_threads: int = 1, fresh_threads: int = 2):
        self.host, self.port = host, port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.retries = 0  # keep-alive connections closed by a stopping server while idle, retried
        self.failures: list[str] = []
        self.versions: dict[str, int] = {}
        self.threads = [threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh_threads)]
        self.threads += [threading.Thread(target=self._keepalive, daemon=True) for _ in range(keepalive_threads)]

    def _record(self, body: str | None, err: str | None) -> None:
        with self.lock:
            self.sent += 1
            if err is not None:
                self.failures.append(err)
            elif body is not None:
                v = body.split()[2] if body.startswith("This is ") else body
                self.versions[v] = self.versions.get(v, 0) + 1

    def _fresh(self) -> None:
        while not self.stop.is_set():
            try:
                body = http_get(self.host, self.port, timeout=5)
                self._record(body, None if body.startswith("This is ") else f"bad body {body!r}")
            except Exception as e:  # noqa: BLE001 - every error is a failed request
                self._record(None, f"fresh: {e!r}")

    def _keepalive(self) -> None:
        """HTTP/1.1 keep-alive. A connection the server closes while idle is retried on a new one
        only when nothing of the request could have been processed (as browsers and
        http clients do for idempotent requests on a reused connection)."""
        conn: http.client.HTTPConnection | None = None
        while not self.stop.is_set():
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read().decode()
                if resp.will_close:
                    conn.close()
                    conn = None
                self._record(body, None if resp.status == 200 else f"status {resp.status}")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if reused:
                    with self.lock:
                        self.retries += 1
                    continue  # the idle connection was closed by the server: retry on a fresh one
                self._record(None, f"keepalive: {e!r}")
            except Exception as e:  # noqa: BLE001 - every error is a failed request
                conn.close()
                conn = None
                self._record(None, f"keepalive: {e!r}")
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:  # noqa: PYI034
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_rollout_through_service_drops_no_request(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "roll.yaml", DEPLOYMENT, "roll v1")
    g = gitship_factory(empty_repo)
    wait_for(lambda: len(g.running_pods("app=roll")) == 4, 30, what="4 v1 pods ready")
    ip = svc(g, "roll")["spec"]["clusterIP"]
    wait_for(
        lambda: len((g.json("get", "ep", "roll").get("subsets") or [{}])[0].get("addresses") or []) == 4,
        10,
        what="4 endpoints",
    )
    with Load(ip, 80) as load:
        wait_for(lambda: load.versions.get("v1", 0) >= 50, 10, what="load running")
        t0 = time.monotonic()
        g.cli("set", "image", "deployment", "roll", "nodejs=qinchaowhut/allen:v2")
        g.wait_applied(git(empty_repo, "rev-parse", "HEAD"))

        def rolled() -> bool:
            d = g.json("get", "deploy", "roll")
            st = d.get("status") or {}
            pods = g.pods("app=roll")
            return (
                st.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and st.get("updatedReplicas") == 4
                and st.get("availableReplicas") == 4
                and len(pods) == 4
                and all(p["spec"]["containers"][0]["image"].endswith(":v2") and ready(p) for p in pods)
            )

        wait_for(rolled, 40, interval=0.2, what="the rollout to complete")
        took = time.monotonic() - t0
        n = load.versions.get("v2", 0)
        wait_for(lambda: load.versions.get("v2", 0) >= n + 50, 10, what="load on v2")
        # `gitship delete pod` under load: the pod leaves the endpoints before SIGTERM too
        victim = g.running_pods("app=roll")[0]["metadata"]["name"]
        g.cli("delete", "pod", victim)
        wait_for(
            lambda: (
                len(g.running_pods("app=roll")) == 4
                and victim not in {p["metadata"]["name"] for p in g.pods("app=roll")}
            ),
            30,
            what="the deleted pod replaced",
        )
        n = load.versions.get("v2", 0)
        wait_for(lambda: load.versions.get("v2", 0) >= n + 50, 10, what="load after the delete")
    print(
        f"rollout load: sent={load.sent} failed={len(load.failures)} keep-alive retries={load.retries} "
        f"versions={load.versions} rollout took {took:.1f}s"
    )
    assert not load.failures, (len(load.failures), load.sent, load.failures[:10])
    assert load.versions.get("v1") and load.versions.get("v2")
    assert set(load.versions) == {"v1", "v2"}


def bare_pod(name: str, image: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: bare}}
spec:
  containers:
  - name: app
    image: {image}
    ports: [{{containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /, port: 8080}}
      periodSeconds: 1
"""


def test_replaced_bare_pod_drops_no_request(empty_repo: Path, gitship_factory) -> None:
    """A bare pod whose spec changes in git is replaced: the old one leaves the endpoints first."""
    commit_file(empty_repo, "a.yaml", bare_pod("bare-a", "kubia:v1"), "a")
    commit_file(empty_repo, "b.yaml", bare_pod("bare-b", "kubia:v1"), "b")
    commit_file(
        empty_repo,
        "svc.yaml",
        """apiVersion: v1
kind: Service
metadata: {name: bare}
spec:
  selector: {app: bare}
  ports: [{port: 80, targetPort: 8080}]
""",
        "svc",
    )
    g = gitship_factory(empty_repo)
    wait_for(lambda: len(g.running_pods("app=bare")) == 2, 30, what="2 bare pods ready")
    ip = svc(g, "bare")["spec"]["clusterIP"]
    reach_all(ip, 80, {"bare-a", "bare-b"})
    with Load(ip, 80) as load:
        wait_for(lambda: load.sent >= 50, 10, what="load running")
        sha = commit_file(empty_repo, "a.yaml", bare_pod("bare-a", "kubia:v2"), "a: v2")
        g.wait_applied(sha)
        wait_for(lambda: load.versions.get("v2", 0) >= 50, 30, what="v2 of bare-a answering")
    print(f"bare pod replacement load: sent={load.sent} failed={len(load.failures)}")
    assert not load.failures, (len(load.failures), load.sent, load.failures[:10])
