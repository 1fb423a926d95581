"""Pod sandboxes of the in-process runtime: real namespaces, a real bridge, real traffic (root only).

Each test gets a bridge, a pod CIDR and a Service CIDR of its own (a random /24 of
10.128.0.0/9 that no address or route of this machine overlaps), and the ``net`` fixture
removes everything it made even when the test fails: the pods' processes (sandbox.sweep),
the bridge, its route and its DOCKER-USER rules (bridge.teardown_host_network). Traffic
goes only to addresses on this machine's bridge or inside the test's own namespaces.
Waiting is by polling with generous deadlines, never by fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from runtime.base import RuntimeError_
from runtime.inprocess import InProcessRuntime, procid, sandbox
from runtime.net import bridge as br
from tests.conformance.crashchild import MARK
from tests.conftest import async_wait_for as wait_for

PY = sys.executable

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="pod sandboxes need root (network namespaces, a bridge, veths)"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("unshare", "nsenter", "ip")),
        reason="pod sandboxes need unshare, nsenter (util-linux) and ip (iproute2)",
    ),
]

# A pod's app as the tutorial has it: 0.0.0.0:8080, answers with its hostname; GET /exit ends it.
APP = textwrap.dedent(
    """
    import http.server, os, socket
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = socket.gethostname().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if self.path == "/exit":
                os._exit(3)
        def log_message(self, *a):
            pass
    http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
    """
)


# --- the test's own network -----------------------------------------------------------------


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    nets = [ipaddress.ip_interface(line.split()[3]).network for line in out.splitlines() if " inet " in line]
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            first = line.split()[1]
        with contextlib.suppress(ValueError):
            if first != "default":
                nets.append(ipaddress.ip_network(first, strict=False))
    return nets


def _free_slash24s(n: int) -> list[str]:
    used = _used_networks()
    rng = random.Random()
    picked: list[str] = []
    while len(picked) < n:
        cand = ipaddress.ip_network(f"10.{rng.randrange(128, 256)}.{rng.randrange(0, 256)}.0/24")
        if not any(cand.overlaps(u) for u in used) and str(cand) not in picked:
            picked.append(str(cand))
    return picked


@dataclass
class Net:
    bridge: str
    pod_cidr: str
    service_cidr: str
    tmp: Any
    states: list[str] = field(default_factory=list)
    uids: set[str] = field(default_factory=set)

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr).network_address + 1)

    @property
    def dns_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_cidr).network_address + 10)

    def state(self, name: str = "state dir") -> str:  # a space: the fstab escapes it
        path = str(self.tmp / name)
        if path not in self.states:
            self.states.append(path)
        return path

    def runtime(self, state: str | None = None, **kw: Any) -> InProcessRuntime:
        kw.setdefault("backoff_base", 0.1)
        kw.setdefault("backoff_max", 0.5)
        return InProcessRuntime(
            state or self.state(),
            pod_cidr=self.pod_cidr,
            bridge=self.bridge,
            service_cidr=self.service_cidr,
            **kw,
        )

    def pod(self, name: str, containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
        uid = str(uuid.uuid4())
        self.uids.add(uid)
        return {
            "metadata": {"name": name, "namespace": "default", "uid": uid, "labels": {"app": "web"}},
            "spec": {
                "containers": containers or [app()],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 2,
                **spec,
            },
        }


def app(**extra: Any) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1}
    return {"name": "app", "image": "tutorial/app:1", "command": [PY, "-c", APP], "readinessProbe": probe, **extra}


def _processes_of(uids: set[str]) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            if any(
                kv.startswith(procid.UID_ENV.encode() + b"=") and kv.split(b"=", 1)[1].decode() in uids for kv in env
            ):
                st = procid.read_stat(int(name))
                if st and st[0] not in ("Z", "X"):
                    out.append(int(name))
    return out


@pytest.fixture
def net(tmp_path):
    pod_cidr, svc_cidr = _free_slash24s(2)
    n = Net("gst" + uuid.uuid4().hex[:10], pod_cidr, svc_cidr, tmp_path)
    yield n
    for state in n.states:
        sandbox.sweep(state)
    leaked = _processes_of(n.uids)
    for pid in leaked:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for uid in n.uids:
        br.delete_link_sync(br.veth_name(uid))
    br.teardown_host_network(n.bridge, n.service_cidr)
    assert not br.link_exists(n.bridge)


# --- helpers ----------------------------------------------------------------------------------


def get(url: str, timeout: float = 3) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


async def aget(url: str) -> str:
    return await asyncio.to_thread(get, url)


def ready(rt: InProcessRuntime, uid: str) -> bool:
    st = rt.status(uid)
    return bool(st) and any(c["type"] == "Ready" and c["status"] == "True" for c in st["conditions"])


def cstatus(rt: InProcessRuntime, uid: str) -> dict[str, Any]:
    st = rt.status(uid)
    assert st is not None
    return st["containerStatuses"][0]


def container_pid(rt: InProcessRuntime, uid: str) -> int:
    cid = cstatus(rt, uid).get("containerID")
    assert cid, cstatus(rt, uid)
    return int(cid.split("//")[1])


def recorded_sandbox(state: str, uid: str) -> sandbox.Sandbox:
    sb = sandbox.Sandbox.from_json(procid.read_states(state)[uid].get("sandbox"))
    assert sb is not None
    return sb


def alive(pid: int) -> bool:
    st = procid.read_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def netns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv)


async def start_pods(rt: InProcessRuntime, pods: list[dict[str, Any]]) -> list[str]:
    for p in pods:
        await rt.create_pod(p)
    uids = [p["metadata"]["uid"] for p in pods]
    await wait_for(lambda: all(ready(rt, u) for u in uids), 30, what="the pods to be ready")
    return uids


async def sh(rt: InProcessRuntime, uid: str, *argv: str) -> str:
    r = await rt.exec(uid, "app", list(argv))
    assert r.exit_code == 0, r
    return r.stdout.decode()


# --- tests ------------------------------------------------------------------------------------


def test_three_replicas_of_the_tutorial_app_each_answer_their_name(net):
    host_resolv = open("/etc/resolv.conf", "rb").read()
    host_hosts = open("/etc/hosts", "rb").read()

    async def main():
        rt = net.runtime(dns_servers=[net.dns_ip])
        try:
            info = rt.info()
            assert info["isolation"] == "sandbox" and info["bridge"] == net.bridge, info
            await rt.start(lambda uid: None)
            pods = [net.pod(f"web-{i}") for i in range(3)]
            uids = await start_pods(rt, pods)
            ips = []
            for pod, uid in zip(pods, uids):
                st = rt.status(uid)
                name = pod["metadata"]["name"]
                assert st["hostIP"] == net.gateway
                assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(net.pod_cidr)
                ips.append(st["podIP"])
                # every replica binds 0.0.0.0:8080 in its own namespace and answers with its pod name
                assert await aget(f"http://{st['podIP']}:8080/") == name
                assert (await sh(rt, uid, "hostname")).strip() == name
                pid = container_pid(rt, uid)
                assert netns(pid) != netns("self")
                assert environ(pid)["HOSTNAME"] == name
                resolv = await sh(rt, uid, "cat", "/etc/resolv.conf")
                assert f"nameserver {net.dns_ip}\n" in resolv
                assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
                assert "options ndots:5" in resolv
                hosts = await sh(rt, uid, "cat", "/etc/hosts")
                assert hosts.startswith("# Kubernetes-managed hosts file.\n")
                assert f"{st['podIP']}\t{name}\n" in hosts
                # the container runs where its spec says, though entering the mount namespace resets cwd
                assert (await sh(rt, uid, "pwd")).strip() == os.getcwd()
            assert len(set(ips)) == 3
            # pod to pod through the bridge (dockerd's FORWARD policy drop notwithstanding)
            url = f"http://{ips[1]}:8080/"
            code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
            assert (await sh(rt, uids[0], PY, "-c", code)).strip() == "web-1"
        finally:
            await rt.close(stop_pods=True)
        assert not br.link_exists(net.bridge)
        if br.docker_user_chain_exists():
            assert not br.docker_user_rules_present(net.bridge)

    asyncio.run(main())
    assert open("/etc/resolv.conf", "rb").read() == host_resolv
    assert open("/etc/hosts", "rb").read() == host_hosts


def test_bridge_route_and_docker_user_rules(net):
    async def main():
        rt = net.runtime()
        await rt.start(lambda uid: None)
        try:
            routes = subprocess.run(["ip", "-4", "route", "show", net.service_cidr], capture_output=True, text=True)
            assert f"dev {net.bridge}" in routes.stdout
            with open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet") as f:
                assert f.read().strip() == "1"
            if br.docker_user_chain_exists():
                assert br.docker_user_rules_present(net.bridge)
                # idempotent: a second start inserts no second copy
                rt2 = net.runtime()
                await rt2.start(lambda uid: None)
                await rt2.close(stop_pods=False)
                rules = subprocess.run(["iptables", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True).stdout
                assert rules.count(f"-i {net.bridge} -j ACCEPT") == 1
        finally:
            await rt.close(stop_pods=True)
        routes = subprocess.run(["ip", "-4", "route", "show", net.service_cidr], capture_output=True, text=True)
        assert net.bridge not in routes.stdout

    asyncio.run(main())


def test_a_restarted_container_rejoins_its_sandbox(net):
    async def main():
        rt = net.runtime()
        try:
            await rt.start(lambda uid: None)
            (uid,) = await start_pods(rt, [net.pod("web-0")])
            ip, pid = rt.status(uid)["podIP"], container_pid(rt, uid)
            ns = netns(pid)
            assert await aget(f"http://{ip}:8080/exit") == "web-0"  # the app exits after answering
            await wait_for(lambda: cstatus(rt, uid)["restartCount"] == 1 and ready(rt, uid), 30, what="a restart")
            new = container_pid(rt, uid)
            assert new != pid and netns(new) == ns
            assert rt.status(uid)["podIP"] == ip
            assert await aget(f"http://{ip}:8080/") == "web-0"
            assert cstatus(rt, uid)["lastState"]["terminated"]["exitCode"] == 3
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_a_dead_sandbox_is_replaced_and_its_containers_restart(net):
    async def main():
        rt = net.runtime()
        try:
            await rt.start(lambda uid: None)
            (uid,) = await start_pods(rt, [net.pod("web-0")])
            holder = recorded_sandbox(net.state(), uid).holder.pid
            ip = rt.status(uid)["podIP"]
            os.kill(holder, signal.SIGKILL)
            await wait_for(lambda: cstatus(rt, uid)["restartCount"] == 1 and ready(rt, uid), 30, what="a new sandbox")
            sb = recorded_sandbox(net.state(), uid)
            assert sb.holder.pid != holder and alive(sb.holder.pid)
            last = cstatus(rt, uid)["lastState"]["terminated"]
            assert last["exitCode"] == 137 and "sandbox changed" in last["message"]
            assert rt.status(uid)["podIP"] == ip
            assert await aget(f"http://{ip}:8080/") == "web-0"
            assert netns(container_pid(rt, uid)) == netns(sb.holder.pid)
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_adoption_keeps_live_sandboxes_and_replaces_dead_ones(net):
    async def main():
        rt = net.runtime()
        await rt.start(lambda uid: None)
        keep, lose = await start_pods(rt, [net.pod("keep"), net.pod("lose")])
        before = {u: (recorded_sandbox(net.state(), u).holder.pid, container_pid(rt, u)) for u in (keep, lose)}
        ips = {u: rt.status(u)["podIP"] for u in (keep, lose)}
        await rt.close(stop_pods=False)  # as a kill -9 of the daemon leaves things
        assert await aget(f"http://{ips[keep]}:8080/") == "keep"  # serving while no daemon runs
        os.kill(before[lose][0], signal.SIGKILL)  # one sandbox dies meanwhile
        await wait_for(lambda: not alive(before[lose][0]), 10, what="the holder to die")

        rt2 = net.runtime()
        try:
            adopted = await rt2.start(lambda uid: None)
            assert set(adopted) == {keep, lose}
            # the live sandbox and its container are adopted untouched
            assert recorded_sandbox(net.state(), keep).holder.pid == before[keep][0]
            assert container_pid(rt2, keep) == before[keep][1]
            assert cstatus(rt2, keep)["restartCount"] == 0
            assert await aget(f"http://{ips[keep]}:8080/") == "keep"
            # the dead one: a new sandbox, the old container killed, a restart
            await wait_for(lambda: ready(rt2, lose), 30, what="the pod with a new sandbox")
            assert not alive(before[lose][1])
            assert recorded_sandbox(net.state(), lose).holder.pid != before[lose][0]
            assert cstatus(rt2, lose)["restartCount"] == 1
            assert rt2.status(lose)["podIP"] == ips[lose]
            assert await aget(f"http://{ips[lose]}:8080/") == "lose"
        finally:
            await rt2.close(stop_pods=True)
        assert not _processes_of(net.uids)
        assert not any(br.link_exists(br.veth_name(u)) for u in (keep, lose))

    asyncio.run(main())


def test_delete_pod_leaves_no_holder_no_veth(net):
    async def main():
        rt = net.runtime()
        try:
            await rt.start(lambda uid: None)
            (uid,) = await start_pods(rt, [net.pod("web-0")])
            sb = recorded_sandbox(net.state(), uid)
            assert br.link_exists(sb.veth)
            await rt.delete_pod(uid)
            assert not alive(sb.holder.pid)
            assert not br.link_exists(sb.veth)
            assert not _processes_of({uid})
            assert not os.path.exists(sandbox.sandbox_dir(net.state(), uid))
            assert rt.status(uid) is None
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_host_network_pod_runs_in_the_hosts_namespace(net):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = APP.replace("8080", str(port))

    async def main():
        rt = net.runtime()
        try:
            await rt.start(lambda uid: None)
            probe = {"tcpSocket": {"port": port}, "periodSeconds": 1}
            c = {"name": "app", "image": "x", "command": [PY, "-c", code], "readinessProbe": probe}
            pod = net.pod("hostnet", [c], hostNetwork=True)
            (uid,) = await start_pods(rt, [pod])
            assert rt.status(uid)["podIP"] == net.gateway
            assert netns(container_pid(rt, uid)) == netns("self")
            assert (
                "sandbox" not in procid.read_states(net.state())[uid]
                or not procid.read_states(net.state())[uid]["sandbox"]
            )
            assert await aget(f"http://127.0.0.1:{port}/") == socket.gethostname()
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


class _DNS(threading.Thread):
    """A tiny cluster DNS stand-in: test-svc in any namespace is 10.0.0.7 (a name only), the rest NXDOMAIN."""

    def __init__(self, ip: str):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 53))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.seen: list[tuple[str, str]] = []

    def run(self) -> None:
        from dnslib import QTYPE, RCODE, RR, A, DNSRecord

        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = DNSRecord.parse(data)
            qname = str(q.q.qname)
            self.seen.append((addr[0], qname))
            reply = q.reply()
            if qname == "test-svc.default.svc.cluster.local." and q.q.qtype == QTYPE.A:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A("10.0.0.7"), ttl=5))
            elif not qname.startswith("test-svc.default.svc"):
                reply.header.rcode = RCODE.NXDOMAIN
            self.sock.sendto(reply.pack(), addr)

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.sock.close()


def test_a_name_lookup_in_a_pod_reaches_the_cluster_dns_through_the_search_path(net):
    async def main():
        rt = net.runtime(dns_servers=[net.dns_ip])
        await rt.start(lambda uid: None)
        await rt.expose_service_ip(net.dns_ip)  # the address goes on the bridge: the host can listen there
        dns = _DNS(net.dns_ip)
        dns.start()
        try:
            (uid,) = await start_pods(rt, [net.pod("dnsutil")])
            ip = rt.status(uid)["podIP"]
            out = await sh(rt, uid, PY, "-c", "import socket; print(socket.gethostbyname('test-svc'))")
            assert out.strip() == "10.0.0.7"
            assert (ip, "test-svc.default.svc.cluster.local.") in dns.seen  # ndots:5: the search path first
        finally:
            dns.close()
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_a_sandbox_that_cannot_be_made_keeps_the_containers_waiting(net):
    async def main():
        rt = net.runtime()
        try:
            await rt.start(lambda uid: None)
            pod = net.pod("bad", hostname="Not_A_DNS_Label")  # the kubelet cannot make its hostname either
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            msg = await wait_for(
                lambda: cstatus(rt, uid)["state"].get("waiting", {}).get("message"), 10, what="the waiting message"
            )
            assert msg.startswith("Failed to create pod sandbox: ")
            assert cstatus(rt, uid)["state"]["waiting"]["reason"] == "ContainerCreating"
            assert rt.status(uid)["phase"] == "Pending"
            with pytest.raises(RuntimeError_):
                await rt.exec(uid, "app", ["true"])
            await rt.delete_pod(uid)
            assert rt.status(uid) is None
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_host_mode_says_why(tmp_path):
    rt = InProcessRuntime(str(tmp_path / "s"), pod_cidr="127.93.0.0/24")
    info = rt.info()
    assert info["isolation"] == "host"
    assert info["isolationReason"] == "pods share the host's network: pod CIDR 127.93.0.0/24 is loopback"
    assert "bridge" not in info
    forced = InProcessRuntime(str(tmp_path / "t"), pod_cidr="127.93.1.0/24", isolation="sandbox")

    async def main():
        with pytest.raises(RuntimeError_, match="loopback"):
            await forced.start(lambda uid: None)

    asyncio.run(main())


def run_and_kill_9(net: Net, pod: dict[str, Any]) -> dict[str, Any]:
    """A separate process (tests/conformance/crashchild.py) runs the runtime, makes ``pod`` and is
    killed with SIGKILL once the pod is ready: a real kill -9 of the daemon. The pod's status."""
    kwargs = {"pod_cidr": net.pod_cidr, "bridge": net.bridge, "service_cidr": net.service_cidr, "backoff_base": 0.1}
    spec = {"harness": "inprocess", "stateDir": net.state(), "kwargs": kwargs, "pod": pod}
    child = subprocess.Popen(
        [PY, "-m", "tests.conformance.crashchild", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        line = ""
        while not line.startswith(MARK):
            line = child.stdout.readline()
            assert line, "the child exited before the pod was ready"
        st = json.loads(line[len(MARK) :])
        assert "error" not in st, st
        return st
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_kill_9_of_the_daemon_leaves_sandboxes_serving_and_a_new_one_adopts_them(net):
    pod = net.pod("web-0")
    uid = pod["metadata"]["uid"]
    ip = run_and_kill_9(net, pod)["podIP"]
    assert get(f"http://{ip}:8080/") == "web-0"  # the daemon is gone; the pod serves on
    holder = recorded_sandbox(net.state(), uid).holder.pid

    async def main():
        rt = net.runtime()
        try:
            assert set(await rt.start(lambda u: None)) == {uid}
            assert recorded_sandbox(net.state(), uid).holder.pid == holder
            assert cstatus(rt, uid)["restartCount"] == 0 and ready(rt, uid)
            assert (await sh(rt, uid, "hostname")).strip() == "web-0"
            assert await aget(f"http://{ip}:8080/") == "web-0"
        finally:
            await rt.close(stop_pods=True)
        assert not alive(holder)

    asyncio.run(main())


def test_sweep_cleans_up_after_a_killed_daemon(net):
    pod = net.pod("web-0")
    uid = pod["metadata"]["uid"]
    run_and_kill_9(net, pod)
    sb = recorded_sandbox(net.state(), uid)
    assert alive(sb.holder.pid) and br.link_exists(sb.veth) and _processes_of({uid})
    killed = sandbox.sweep(net.state())
    assert sb.holder.pid in killed
    assert not _processes_of({uid})
    assert not br.link_exists(sb.veth)


def test_exec_probes_run_in_the_sandbox(net):
    async def main():
        rt = net.runtime()
        try:
            await rt.start(lambda u: None)
            probe = {"exec": {"command": ["sh", "-c", 'test "$(hostname)" = web-0']}, "periodSeconds": 1}
            c = {"name": "app", "image": "x", "command": ["sleep", "infinity"], "readinessProbe": probe}
            await start_pods(rt, [net.pod("web-0", [c])])  # Ready only if the probe sees the pod's hostname
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_deleting_a_pod_while_its_sandbox_is_made(net):
    async def main():
        rt = net.runtime()
        try:
            await rt.start(lambda u: None)
            pods = [
                net.pod(f"web-{i}", [{"name": "app", "image": "x", "command": ["sleep", "infinity"]}]) for i in range(5)
            ]
            for i, pod in enumerate(pods):
                await rt.create_pod(pod)
                for _ in range(i):  # a few loop turns: the sandbox is at a different step each time
                    await asyncio.sleep(0)
                await rt.delete_pod(pod["metadata"]["uid"])
            assert not rt.pods()
            assert not _processes_of(net.uids)
            assert not any(br.link_exists(br.veth_name(u)) for u in net.uids)
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_a_local_service_route_refuses_unserved_cluster_ips_at_once(net):
    """service_route="local": the whole Service CIDR is the host's; pods reach a ClusterIP a host server binds."""
    svc = ipaddress.ip_network(net.service_cidr)
    unserved, served = str(svc.network_address + 20), str(svc.network_address + 21)

    async def main():
        rt = net.runtime(service_route="local")
        try:
            await rt.start(lambda u: None)
            routes = subprocess.run(["ip", "route", "show", "table", "local", str(svc)], capture_output=True, text=True)
            assert f"local {svc} dev {net.bridge}" in routes.stdout and f"src {net.gateway}" in routes.stdout
            with socket.socket() as s, pytest.raises(ConnectionRefusedError):
                s.settimeout(10)  # a black hole would time out; refused comes back at once
                s.connect((unserved, 80))
            with socket.socket() as srv:  # no address was added for it: the local route makes it ours
                srv.bind((served, 0))
                srv.listen()
                port = srv.getsockname()[1]
                (uid,) = await start_pods(rt, [net.pod("client")])
                code = (
                    f"import socket; s = socket.create_connection(({served!r}, {port}), 5); print(s.getsockname()[0])"
                )
                assert (await sh(rt, uid, PY, "-c", code)).strip() == rt.status(uid)["podIP"]
        finally:
            await rt.close(stop_pods=True)
        routes = subprocess.run(["ip", "route", "show", "table", "local", str(svc)], capture_output=True, text=True)
        assert not routes.stdout.strip()

    asyncio.run(main())
