"""runtime.net.dns.DNSServer: real UDP and TCP queries (dnslib client, raw sockets, dig)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from runtime.net.dns import DNSServer, build_zone

SERVICES = [
    {
        "metadata": {"name": "test-svc", "namespace": "default"},
        "spec": {"clusterIP": "127.96.1.2", "ports": [{"name": "http", "port": 80}]},
    },
    {"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None"}},
]
ENDPOINTS = [
    {
        "metadata": {"name": "db", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": f"127.244.1.{i}"} for i in range(1, 61)]}],
    }
]
ZONE = build_zone(SERVICES, ENDPOINTS, [])


def serve(check):
    """Start a server on 127.0.0.1:0, run the blocking check(host, port) in a thread."""

    async def main():
        server = await DNSServer.start("127.0.0.1", 0, lambda: ZONE)
        try:
            host, port = server.address
            assert port != 0
            await asyncio.wait_for(asyncio.to_thread(check, host, port), 30)
        finally:
            server.close()

    asyncio.run(main())


def test_udp_and_tcp_queries():
    def check(host, port):
        for tcp in (False, True):
            reply = DNSRecord.parse(
                DNSRecord.question("test-svc.default.svc.cluster.local", "A").send(host, port, tcp=tcp, timeout=5)
            )
            assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
            assert [str(r.rdata) for r in reply.rr] == ["127.96.1.2"]
            nx = DNSRecord.parse(
                DNSRecord.question("nope.default.svc.cluster.local", "A").send(host, port, tcp=tcp, timeout=5)
            )
            assert nx.header.rcode == RCODE.NXDOMAIN
            assert nx.auth and nx.auth[0].rtype == QTYPE.SOA  # negative caching
            out = DNSRecord.parse(DNSRecord.question("example.com", "A").send(host, port, tcp=tcp, timeout=5))
            assert out.header.rcode == RCODE.REFUSED
            srv = DNSRecord.parse(
                DNSRecord.question("_http._tcp.test-svc.default.svc.cluster.local", "SRV").send(
                    host, port, tcp=tcp, timeout=5
                )
            )
            assert str(srv.rr[0].rdata) == "0 100 80 test-svc.default.svc.cluster.local."

    serve(check)


def test_large_answer_truncated_over_udp_full_over_tcp():
    def check(host, port):
        q = DNSRecord.question("db.default.svc.cluster.local", "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(q.pack(), (host, port))
            udp = DNSRecord.parse(s.recv(65535))
        assert udp.header.tc == 1  # 60 A records do not fit in 512 bytes
        tcp = DNSRecord.parse(q.send(host, port, tcp=True, timeout=5))
        assert tcp.header.tc == 0 and len(tcp.rr) == 60
        # two queries on one TCP connection, and a garbage datagram does not kill the server
        with socket.create_connection((host, port), timeout=5) as c:
            for name in ("test-svc", "db"):
                msg = DNSRecord.question(name, "A").pack()
                c.sendall(len(msg).to_bytes(2, "big") + msg)
                n = int.from_bytes(c.recv(2), "big")
                data = b""
                while len(data) < n:
                    data += c.recv(n - len(data))
                assert DNSRecord.parse(data).header.rcode == RCODE.NOERROR
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00", (host, port))
        again = DNSRecord.parse(DNSRecord.question("test-svc", "A").send(host, port, timeout=5))
        assert str(again.rr[0].rdata) == "127.96.1.2"

    serve(check)


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig (dnsutils) not installed")
def test_dig_short_name():
    def check(host, port):
        for extra in ([], ["+tcp"]):
            out = subprocess.run(
                ["dig", f"@{host}", "-p", str(port), "test-svc", "+short", "+time=3", "+tries=1", *extra],
                capture_output=True,
                text=True,
                timeout=15,
            )
            assert out.stdout.strip() == "127.96.1.2", out

    serve(check)
