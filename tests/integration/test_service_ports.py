"""Issue 11 items 6 and 7, end to end through a real `gitship up` daemon.

* A LoadBalancer or NodePort whose host port is taken stays ``<pending>`` (no
  status.loadBalancer.ingress) with a Warning event naming the address and the error, and
  gets its address (and carries traffic) once the port is free.
* UDP Service ports carry real datagrams (ClusterIP and NodePort); an SCTP port gets an
  ``UnsupportedProtocol`` Warning and is not proxied, while the Service's other ports work.

Every address is on loopback: the daemon runs with ``--node-address 127.0.0.1``. Waiting is
by polling with deadlines, never by fixed sleeps.
"""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import commit_file, wait_for
from tests.integration.test_services import APP, _free_port, http_get, reach_all, svc

NODE = "127.0.0.1"


def hold(port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket of the test's own on NODE:port (no SO_REUSEPORT, so the proxy cannot share it)."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind((NODE, port))
    if kind == socket.SOCK_STREAM:
        s.listen()
    return s


def svc_row(g, name: str) -> list[str]:
    table = g.cli("get", "svc").stdout.splitlines()
    return next(line.split() for line in table[1:] if line.split()[0] == name)


def described(g, name: str) -> str:
    return g.cli("describe", "svc", name).stdout


# --------------------------------------------------------------------------- item 6: a taken port


def busy_services(lb_port: int, node_port: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: web-lb}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports:
  - {{port: {lb_port}, targetPort: 8080}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-np}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - {{port: 81, targetPort: 8080, nodePort: {node_port}}}
"""


def test_taken_ports_stay_pending_until_free(empty_repo: Path, gitship_factory) -> None:
    lb_port = _free_port(18000, 19000)
    node_port = _free_port(31000, 32700)
    held = [hold(lb_port), hold(node_port)]
    try:
        commit_file(empty_repo, "web.yaml", APP, "web")
        commit_file(empty_repo, "svc.yaml", busy_services(lb_port, node_port), "services on taken ports")
        g = gitship_factory(empty_repo, extra=["--node-address", NODE])
        pods = wait_for(lambda: (ps := g.running_pods("app=web")) and len(ps) == 2 and ps, 30, what="web pods ready")
        names = {p["metadata"]["name"] for p in pods}

        # a Warning that says why, on each Service
        wait_for(lambda: "SyncLoadBalancerFailed" in described(g, "web-lb"), 20, what="the LoadBalancer's Warning")
        wait_for(lambda: "ListenFailed" in described(g, "web-np"), 20, what="the NodePort's Warning")
        lb_text, np_text = described(g, "web-lb"), described(g, "web-np")
        assert f"{NODE}:{lb_port}" in lb_text and "address already in use" in lb_text, lb_text
        assert f"{NODE}:{node_port}" in np_text and "address already in use" in np_text, np_text
        # the LoadBalancer reports no address; the NodePort keeps its nodePort
        lb = svc(g, "web-lb")
        assert not lb["status"]["loadBalancer"].get("ingress"), lb["status"]
        assert svc_row(g, "web-lb")[3] == "<pending>"
        assert svc(g, "web-np")["spec"]["ports"][0]["nodePort"] == node_port
        assert svc_row(g, "web-np")[4] == f"81:{node_port}/TCP"
        # the ClusterIPs of both work meanwhile
        reach_all(lb["spec"]["clusterIP"], lb_port, names)
        reach_all(svc(g, "web-np")["spec"]["clusterIP"], 81, names)
        # still the test's own sockets that hold the ports
        assert held[0].getsockname() == (NODE, lb_port)
    finally:
        for s in held:
            s.close()

    # the ports are free: the address appears and traffic flows (a pass runs at least every second)
    ingress = wait_for(lambda: svc(g, "web-lb")["status"]["loadBalancer"].get("ingress"), 20, what="the LB address")
    assert ingress == [{"ip": NODE}]
    assert svc_row(g, "web-lb")[3] == NODE
    reach_all(NODE, lb_port, names)
    reach_all(NODE, node_port, names)
    assert "EnsuredLoadBalancer" in described(g, "web-lb")
    assert http_get(NODE, node_port).startswith("This is v1")


# --------------------------------------------------------------------------- item 7: UDP (and SCTP)

ECHO = '''"""A UDP (and TCP) echo server: answers "<pod name> <datagram>"."""
import asyncio
import os

NAME = os.environ.get("HOSTNAME", "?").encode()
ADDR = os.environ.get("POD_IP", "127.0.0.1")
PORT = 5353


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(NAME + b" " + data, addr)


async def tcp(reader, writer):
    data = await reader.read(65536)
    writer.write(NAME + b" " + data)
    await writer.drain()
    writer.close()


async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(ADDR, PORT))
    server = await asyncio.start_server(tcp, ADDR, PORT)
    async with server:
        await server.serve_forever()


asyncio.run(main())
'''

ECHO_APP = """apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: echo}
spec:
  replicas: 2
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      containers:
      - name: echo
        image: udpecho:v1
        ports:
        - {name: dns, containerPort: 5353, protocol: UDP}
        - {name: dns-tcp, containerPort: 5353, protocol: TCP}
"""


def echo_services(node_port: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  selector: {{app: echo}}
  ports:
  - {{name: dns, port: 53, targetPort: 5353, protocol: UDP}}
  - {{name: dns-tcp, port: 53, targetPort: 5353, protocol: TCP}}
  - {{name: assoc, port: 9899, targetPort: 9899, protocol: SCTP}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo-np}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports:
  - {{name: dns, port: 54, targetPort: dns, protocol: UDP, nodePort: {node_port}}}
"""


def udp_ask(host: str, port: int, payload: bytes, sock: socket.socket | None = None) -> bytes:
    own = sock is None
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(1.0)
        s.sendto(payload, (host, port))
        data, _ = s.recvfrom(65536)
        return data
    finally:
        if own:
            s.close()


def tcp_ask(host: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_udp_services_carry_datagrams(empty_repo: Path, gitship_factory) -> None:
    (empty_repo / "app" / "udpecho.py").write_text(ECHO)
    cfg = (empty_repo / "gitship.yaml").read_text()
    cfg = cfg.replace("images:\n", 'images:\n  - image: "udpecho:*"\n    command: ["python3", "app/udpecho.py"]\n', 1)
    commit_file(empty_repo, "gitship.yaml", cfg, "the UDP echo image")
    commit_file(empty_repo, "app/udpecho.py", ECHO, "the UDP echo server")
    node_port = _free_port(31000, 32700)
    commit_file(empty_repo, "echo.yaml", ECHO_APP, "echo")
    commit_file(empty_repo, "svc.yaml", echo_services(node_port), "UDP services")
    g = gitship_factory(empty_repo, extra=["--node-address", NODE])
    pods = wait_for(lambda: (ps := g.running_pods("app=echo")) and len(ps) == 2 and ps, 30, what="echo pods ready")
    names = {p["metadata"]["name"] for p in pods}
    cip = svc(g, "echo")["spec"]["clusterIP"]
    np_cip = svc(g, "echo-np")["spec"]["clusterIP"]

    for host, port in ((cip, 53), (NODE, node_port), (np_cip, 54)):
        seen: set[str] = set()

        def probe(host: str = host, port: int = port, seen: set[str] = seen) -> bool:
            # a new client socket is a new session: round robin over the pods
            name, _, rest = udp_ask(host, port, b"hello").partition(b" ")
            assert rest == b"hello", rest
            seen.add(name.decode())
            return names <= seen

        wait_for(probe, 30, interval=0.05, what=f"every echo pod over UDP through {host}:{port} (seen {seen})")
        assert seen <= names

    # one client socket is one session: its datagrams stay on one pod, and replies come back to it
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        answers = {udp_ask(cip, 53, b"ping %d" % i, s).split(b" ")[0] for i in range(5)}
    assert len(answers) == 1, answers

    # the TCP port of the same Service, on the same port number, still works
    reply = wait_for(lambda: tcp_ask(cip, 53, b"over tcp"), 10, what="TCP echo through the ClusterIP")
    assert reply.split(b" ", 1)[1] == b"over tcp" and reply.split(b" ")[0].decode() in names

    # SCTP: a clear Warning, not silence
    wait_for(lambda: "UnsupportedProtocol" in described(g, "echo"), 20, what="the SCTP Warning")
    text = described(g, "echo")
    assert "SCTP" in text and "9899" in text, text
