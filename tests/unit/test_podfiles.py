"""A pod's hostname, resolv.conf and hosts file (runtime/kernel/podfiles.py), against the kubelet.

Expected values follow kubernetes/kubernetes pkg/kubelet/network/dns/dns.go (GetPodDNS and
its helpers; dns_test.go's cases) and pkg/kubelet/kubelet_pods.go
(GeneratePodHostNameAndDomain, managedHostsFileContent; kubelet_pods_test.go's
TestManagedHostsFileContent), and docs/kubernetes.md §6.3.
"""

from __future__ import annotations

from typing import Any

import pytest

from runtime.kernel.podfiles import (
    DNSConfig,
    PodFilesError,
    PodHostname,
    dns_type,
    parse_resolv_conf,
    pod_dns_config,
    pod_hostname,
    render_hosts,
    render_resolv_conf,
)

HOST = DNSConfig(("192.0.2.53", "192.0.2.54"), ("corp.example", "example"), ("edns0", "ndots:2"))


def pod(name: str = "web-1", ns: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


# --- hostname -------------------------------------------------------------------------------


def test_hostname_is_the_pod_name_by_default():
    assert pod_hostname(pod(), "cluster.local") == PodHostname("web-1", "", "web-1")


def test_spec_hostname_and_subdomain_make_the_fqdn():
    hn = pod_hostname(pod(hostname="db-0", subdomain="db"), "cluster.local")
    assert hn.hostname == "db-0"
    assert hn.domain == "db.shop.svc.cluster.local"
    assert hn.fqdn == "db-0.db.shop.svc.cluster.local"
    assert hn.kernel == "db-0"  # the UTS name stays short unless setHostnameAsFQDN


def test_set_hostname_as_fqdn():
    hn = pod_hostname(pod(hostname="db-0", subdomain="db", setHostnameAsFQDN=True), "cluster.local")
    assert hn.kernel == "db-0.db.shop.svc.cluster.local"
    with pytest.raises(PodFilesError, match="too long"):
        pod_hostname(pod(hostname="a" * 40, subdomain="db", setHostnameAsFQDN=True), "cluster.local")


def test_long_pod_name_is_cut_to_63_without_trailing_dash_or_dot():
    # truncatePodHostnameIfNeeded: the 63rd and 62nd characters are '-' and '.': both go
    name = "a" * 61 + ".-" + "b" * 10
    assert pod_hostname(pod(name=name), "cluster.local").hostname == "a" * 61


def test_invalid_spec_hostname_fails():
    with pytest.raises(PodFilesError):
        pod_hostname(pod(hostname="Not_A_Label"), "cluster.local")


# --- resolv.conf ----------------------------------------------------------------------------


def test_parse_host_resolv_conf():
    text = """# generated
nameserver 192.0.2.53
search old.example
search corp.example. example .
options ndots:2 edns0
options ndots:3
nameserver 192.0.2.54
domain ignored.example
"""
    cfg = parse_resolv_conf(text)
    assert cfg.servers == ("192.0.2.53", "192.0.2.54")
    assert cfg.searches == ("corp.example", "example")  # last search line wins, trailing dots go
    assert cfg.options == ("ndots:3", "edns0")  # merged by name, the last value wins


@pytest.mark.parametrize(
    ("policy", "host_network", "want"),
    [
        (None, False, "cluster"),
        ("ClusterFirst", False, "cluster"),
        ("ClusterFirst", True, "host"),  # a hostNetwork pod falls back to Default
        ("ClusterFirstWithHostNet", True, "cluster"),
        ("Default", False, "host"),
        ("None", False, "none"),
    ],
)
def test_dns_type(policy, host_network, want):
    spec: dict[str, Any] = {"hostNetwork": host_network}
    if policy:
        spec["dnsPolicy"] = policy
    assert dns_type(pod(**spec)) == want


def test_cluster_first():
    cfg = pod_dns_config(pod(), cluster_dns=["10.96.0.10"], cluster_domain="cluster.local", host=HOST)
    assert cfg.servers == ("10.96.0.10",)
    # the cluster's three search domains first, then the host's
    assert cfg.searches == ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "example")
    assert cfg.options == ("ndots:5",)  # the host's options are not kept
    assert render_resolv_conf(cfg) == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


def test_cluster_first_without_a_cluster_dns_is_default():
    assert pod_dns_config(pod(), cluster_dns=[], cluster_domain="cluster.local", host=HOST) == HOST


def test_default_is_the_hosts():
    cfg = pod_dns_config(
        pod(dnsPolicy="Default"), cluster_dns=["10.96.0.10"], cluster_domain="cluster.local", host=HOST
    )
    assert cfg == HOST


def test_none_uses_dns_config_only():
    p = pod(
        dnsPolicy="None",
        dnsConfig={
            "nameservers": ["192.0.2.1"],
            "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        },
    )
    cfg = pod_dns_config(p, cluster_dns=["10.96.0.10"], cluster_domain="cluster.local", host=HOST)
    assert render_resolv_conf(cfg) == (
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n"
    )


def test_dns_config_merges_into_cluster_first():
    p = pod(
        dnsConfig={
            "nameservers": ["10.96.0.10", "192.0.2.1", "192.0.2.2", "192.0.2.3"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}],
        }
    )
    cfg = pod_dns_config(p, cluster_dns=["10.96.0.10"], cluster_domain="cluster.local", host=DNSConfig())
    assert cfg.servers == ("10.96.0.10", "192.0.2.1", "192.0.2.2")  # duplicates go, at most 3
    assert cfg.searches == ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "extra.example")
    assert cfg.options == ("ndots:1", "single-request")  # the pod's value overrides ndots:5


def test_search_limits():
    many = [f"d{i}.example" for i in range(40)]
    long = ["x" * 254]
    cfg = pod_dns_config(
        pod(dnsPolicy="None", dnsConfig={"searches": long + many}), cluster_dns=[], cluster_domain="c", host=DNSConfig()
    )
    assert cfg.searches == tuple(many[:31])  # 32 paths kept, then the one over 253 characters dropped
    wide = [f"{i:02d}" + "y" * 198 for i in range(12)]  # 12 x 201 characters: the line is over 2048
    cfg = pod_dns_config(
        pod(dnsPolicy="None", dnsConfig={"searches": wide}), cluster_dns=[], cluster_domain="c", host=DNSConfig()
    )
    assert cfg.searches == tuple(wide[:10])
    assert len(" ".join(cfg.searches)) <= 2048


def test_empty_config_renders_an_empty_file():
    assert render_resolv_conf(DNSConfig()) == ""


# --- hosts ----------------------------------------------------------------------------------


LOCALHOST = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def test_hosts_without_domain():
    text = render_hosts(["10.244.0.5"], PodHostname("web-1", "", "web-1"))
    assert text == "# Kubernetes-managed hosts file.\n" + LOCALHOST + "10.244.0.5\tweb-1\n"


def test_hosts_with_domain_and_aliases():
    hn = pod_hostname(pod(hostname="db-0", subdomain="db"), "cluster.local")
    aliases = [{"ip": "192.0.2.7", "hostnames": ["foo.local", "bar.local"]}, {"ip": "192.0.2.8", "hostnames": ["b"]}]
    text = render_hosts(["10.244.0.5"], hn, aliases)
    assert text == (
        "# Kubernetes-managed hosts file.\n"
        + LOCALHOST
        + "10.244.0.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n"
        + "\n# Entries added by HostAliases.\n"
        + "192.0.2.7\tfoo.local\tbar.local\n"
        + "192.0.2.8\tb\n"
    )
