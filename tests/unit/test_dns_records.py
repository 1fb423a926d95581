"""runtime.net.dns.build_zone / Zone.answer: the Kubernetes DNS records table (docs/kubernetes.md §6)."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RCODE

from runtime.net.dns import build_zone

SERVICES = [
    {
        "metadata": {"name": "test-svc", "namespace": "default"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "127.96.1.2",
            "clusterIPs": ["127.96.1.2"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}],
        },
    },
    {
        "metadata": {"name": "db", "namespace": "prod"},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]},
    },
    {"metadata": {"name": "empty", "namespace": "prod"}, "spec": {"clusterIP": "None"}},
    {
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "example.com"},
    },
]
ENDPOINTS = [
    {
        "metadata": {"name": "db", "namespace": "prod"},
        "subsets": [
            {
                "addresses": [{"ip": "127.244.0.7"}, {"ip": "127.244.0.8", "hostname": "db-0"}],
                "notReadyAddresses": [{"ip": "127.244.0.9"}],
                "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}],
            }
        ],
    },
    {"metadata": {"name": "empty", "namespace": "prod"}, "subsets": [{"notReadyAddresses": [{"ip": "127.244.0.10"}]}]},
]
PODS = [{"metadata": {"name": "p", "namespace": "prod"}, "status": {"podIP": "127.244.0.7"}}]
ZONE = build_zone(SERVICES, ENDPOINTS, PODS)
Z = "svc.cluster.local"


def rdatas(qname, qtype):
    rcode, rrs = ZONE.answer(qname, qtype)
    return rcode, sorted(str(r.rdata) for r in rrs)


@pytest.mark.parametrize(
    "qname,qtype,rcode,answers",
    [
        (f"test-svc.default.{Z}", "A", RCODE.NOERROR, ["127.96.1.2"]),
        (f"TEST-SVC.Default.{Z.upper()}.", "A", RCODE.NOERROR, ["127.96.1.2"]),
        (f"test-svc.default.{Z}", "AAAA", RCODE.NOERROR, []),
        (f"_http._tcp.test-svc.default.{Z}", "SRV", RCODE.NOERROR, [f"0 100 80 test-svc.default.{Z}."]),
        (f"_81._tcp.test-svc.default.{Z}", "SRV", RCODE.NXDOMAIN, []),  # unnamed port: no SRV
        (f"db.prod.{Z}", "A", RCODE.NOERROR, ["127.244.0.7", "127.244.0.8"]),  # ready only
        (f"127-244-0-7.db.prod.{Z}", "A", RCODE.NOERROR, ["127.244.0.7"]),
        (f"db-0.db.prod.{Z}", "A", RCODE.NOERROR, ["127.244.0.8"]),
        (f"127-244-0-9.db.prod.{Z}", "A", RCODE.NXDOMAIN, []),  # not ready
        (
            f"_pg._tcp.db.prod.{Z}",
            "SRV",
            RCODE.NOERROR,
            [f"0 50 5433 127-244-0-7.db.prod.{Z}.", f"0 50 5433 db-0.db.prod.{Z}."],
        ),
        (f"empty.prod.{Z}", "A", RCODE.NXDOMAIN, []),  # headless, nothing ready
        (f"ext.default.{Z}", "A", RCODE.NOERROR, ["example.com."]),
        (f"ext.default.{Z}", "CNAME", RCODE.NOERROR, ["example.com."]),
        (f"nope.default.{Z}", "A", RCODE.NXDOMAIN, []),
        (f"default.{Z}", "A", RCODE.NOERROR, []),  # existing name, no records of that type
        (f"prod.{Z}", "A", RCODE.NOERROR, []),
        ("127-244-0-7.prod.pod.cluster.local", "A", RCODE.NOERROR, ["127.244.0.7"]),
        ("127-244-0-99.prod.pod.cluster.local", "A", RCODE.NXDOMAIN, []),
        ("dns-version.cluster.local", "TXT", RCODE.NOERROR, ['"1.1.0"']),
        ("2.1.96.127.in-addr.arpa", "PTR", RCODE.NOERROR, [f"test-svc.default.{Z}."]),
        ("7.0.244.127.in-addr.arpa", "PTR", RCODE.NOERROR, [f"127-244-0-7.db.prod.{Z}."]),
        ("example.com", "A", RCODE.REFUSED, []),
        # short forms, as a pod in namespace default would resolve them
        ("test-svc", "A", RCODE.NOERROR, ["127.96.1.2"]),
        ("test-svc.default", "A", RCODE.NOERROR, ["127.96.1.2"]),
        ("test-svc.default.svc.", "A", RCODE.NOERROR, ["127.96.1.2"]),
        ("db.prod", "A", RCODE.NOERROR, ["127.244.0.7", "127.244.0.8"]),
        ("nosuch", "A", RCODE.REFUSED, []),
    ],
)
def test_answers(qname, qtype, rcode, answers):
    assert rdatas(qname, qtype) == (rcode, answers)


def test_owner_name_and_ttl():
    rcode, [rr] = ZONE.answer("Test-Svc", "A")
    assert str(rr.rname) == "Test-Svc."
    assert rr.ttl == 5 and rr.rtype == QTYPE.A
    zone = build_zone(SERVICES, ENDPOINTS, PODS, domain="example.internal", ttl=30)
    rcode, [rr] = zone.answer("test-svc.default.svc.example.internal", "A")
    assert rr.ttl == 30 and zone.soa().rdata.times[-1] == 30
