"""A pod's hostname, /etc/resolv.conf and /etc/hosts, as the kubelet makes them.

Where it sits: a runtime that gives a pod its own UTS and mount namespaces (the in-process
runtime's sandboxes, runtime/inprocess/sandbox.py) asks this module what the pod's
hostname is and what its two files say, then writes them. Pure: the host's resolv.conf
comes in as text, nothing is read here. See docs/kubernetes.md §6.3.

Kubernetes sources:

* hostname and domain: pkg/kubelet/kubelet_pods.go ``GeneratePodHostNameAndDomain`` and
  ``truncatePodHostnameIfNeeded`` (63 characters, no trailing ``-`` or ``.``);
  pkg/kubelet/util/util.go ``GetNodenameForKernel`` (``setHostnameAsFQDN``, 64 characters);
* resolv.conf: pkg/kubelet/network/dns/dns.go ``GetPodDNS``, ``getPodDNSType``,
  ``generateSearchesForDNSClusterFirst``, ``appendDNSConfig``, ``mergeDNSOptions``,
  ``parseResolvConf`` and ``formDNSConfigFitsLimits``; the file's layout is the CRI
  runtime's (containerd internal/cri/server ``parseDNSOptions``: ``search``, then one
  ``nameserver`` line each, then ``options``);
* hosts: pkg/kubelet/kubelet_pods.go ``managedHostsFileContent`` and
  ``hostsEntriesFromHostAliases``.

Where gitship differs: Go iterates a map to merge DNS options, so their order is random
there; here the first mention of a name keeps its place and the last value wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOSTNAME_MAX_LEN = 63
FQDN_MAX_LEN = 64
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_LIST_CHARS = 2048
DNS1123_SUBDOMAIN_MAX_LEN = 253
DEFAULT_DNS_OPTIONS = ("ndots:5",)

MANAGED_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
_LOCALHOST_LINES = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class PodFilesError(ValueError):
    """The pod's hostname cannot be made (the kubelet then fails to create the pod's sandbox)."""


@dataclass(frozen=True)
class PodHostname:
    """``hostname``: the pod's host name; ``domain``: ``<subdomain>.<ns>.svc.<zone>`` or "";
    ``kernel``: what the pod's UTS namespace is set to (``hostname`` prints it)."""

    hostname: str
    domain: str
    kernel: str

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}" if self.domain else self.hostname


@dataclass(frozen=True)
class DNSConfig:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def _label(value: str, what: str) -> str:
    if len(value) > HOSTNAME_MAX_LEN or not _DNS1123_LABEL.match(value):
        raise PodFilesError(f"pod {what} {value!r} is not a valid DNS label")
    return value


def pod_hostname(pod: Mapping[str, Any], cluster_domain: str) -> PodHostname:
    """The pod's hostname: ``spec.hostname`` or the pod name, cut to 63 characters; with
    ``spec.subdomain`` its domain is ``<subdomain>.<namespace>.svc.<cluster_domain>``."""
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    name = str(md.get("name") or "")
    namespace = str(md.get("namespace") or "default")
    hostname = _label(str(spec["hostname"]), "hostname") if spec.get("hostname") else name
    if len(hostname) > HOSTNAME_MAX_LEN:
        hostname = hostname[:HOSTNAME_MAX_LEN].rstrip("-.")
    if not hostname:
        raise PodFilesError(f"hostname for pod {name!r} was invalid: {hostname!r}")
    domain = ""
    if spec.get("subdomain"):
        domain = f"{_label(str(spec['subdomain']), 'subdomain')}.{namespace}.svc.{cluster_domain}"
    kernel = hostname
    if domain and spec.get("setHostnameAsFQDN") is True:
        kernel = f"{hostname}.{domain}"
        if len(kernel) > FQDN_MAX_LEN:
            raise PodFilesError(
                f"failed to construct FQDN from pod hostname and cluster domain, FQDN {kernel} is too long "
                f"({FQDN_MAX_LEN} characters is the max, {len(kernel)} characters requested)"
            )
    return PodHostname(hostname, domain, kernel)


# --- resolv.conf ----------------------------------------------------------------------------


def _dedup(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return tuple(seen)


def _merge_options(existing: Iterable[str], new: Iterable[tuple[str, str | None]]) -> tuple[str, ...]:
    """Options by name; a later value of the same name wins (dns.go mergeDNSOptions)."""
    by_name: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        by_name[name] = value
    for new_name, new_value in new:
        by_name[new_name] = new_value or ""
    return tuple(f"{k}:{v}" if v else k for k, v in by_name.items())


def _split_option(op: str) -> tuple[str, str | None]:
    name, sep, value = op.partition(":")
    return name, value if sep else None


def parse_resolv_conf(text: str) -> DNSConfig:
    """The host's resolv.conf as the kubelet reads it: nameservers add up, the last ``search``
    line wins (trailing dots dropped, "." ignored), options merge by name."""
    servers: list[str] = []
    searches: list[str] = []
    options: tuple[str, ...] = ()
    for line in text.splitlines():
        fields = line.strip().split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options = _merge_options(options, (_split_option(o) for o in fields[1:]))
    return DNSConfig(tuple(servers), tuple(searches), options)


def dns_type(pod: Mapping[str, Any]) -> str:
    """ "cluster", "host" or "none" (dns.go getPodDNSType): ClusterFirst of a hostNetwork pod is Default."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "ClusterFirst" and not spec.get("hostNetwork"):
        return "cluster"
    return "host"


def _opt_value(o: Mapping[str, Any]) -> str | None:
    return None if o.get("value") is None else str(o["value"])


def _fit_searches(searches: Sequence[str]) -> tuple[str, ...]:
    """dns.go formDNSSearchFitsLimits: at most 32 paths, none over 253 characters, the line at most 2048."""
    out = [s for s in searches[:MAX_DNS_SEARCH_PATHS] if len(s) <= DNS1123_SUBDOMAIN_MAX_LEN]
    while out and len(" ".join(out)) > MAX_DNS_SEARCH_LIST_CHARS:
        out.pop()
    return tuple(out)


def pod_dns_config(
    pod: Mapping[str, Any], *, cluster_dns: Sequence[str], cluster_domain: str, host: DNSConfig
) -> DNSConfig:
    """What the pod's resolv.conf says, per ``dnsPolicy`` and ``dnsConfig`` (dns.go GetPodDNS).

    ClusterFirst with no cluster DNS known falls back to Default, as the kubelet does.
    """
    kind = dns_type(pod)
    cfg = host
    if kind == "none":
        cfg = DNSConfig()
    elif kind == "cluster" and cluster_dns:
        ns = str((pod.get("metadata") or {}).get("namespace") or "default")
        cluster = (f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain) if cluster_domain else ()
        cfg = DNSConfig(tuple(cluster_dns), _dedup((*cluster, *host.searches)), DEFAULT_DNS_OPTIONS)
    extra = (pod.get("spec") or {}).get("dnsConfig") or {}
    if extra:
        opts = [(str(o.get("name", "")), _opt_value(o)) for o in extra.get("options") or []]
        cfg = DNSConfig(
            _dedup((*cfg.servers, *(str(s) for s in extra.get("nameservers") or []))),
            _dedup((*cfg.searches, *(str(s) for s in extra.get("searches") or []))),
            _merge_options(cfg.options, opts),
        )
    return DNSConfig(cfg.servers[:MAX_DNS_NAMESERVERS], _fit_searches(cfg.searches), cfg.options)


def render_resolv_conf(cfg: DNSConfig) -> str:
    """The file: ``search``, one ``nameserver`` line each, ``options`` (the CRI runtime's layout)."""
    out = ""
    if cfg.searches:
        out += f"search {' '.join(cfg.searches)}\n"
    for s in cfg.servers:
        out += f"nameserver {s}\n"
    if cfg.options:
        out += f"options {' '.join(cfg.options)}\n"
    return out


# --- hosts ------------------------------------------------------------------------------------


def render_hosts(pod_ips: Sequence[str], name: PodHostname, host_aliases: Iterable[Mapping[str, Any]] = ()) -> str:
    """The pod's /etc/hosts (kubelet_pods.go managedHostsFileContent): header, localhost lines,
    each pod IP with ``<fqdn> <hostname>`` (or the hostname alone), then the ``hostAliases``."""
    out = MANAGED_HOSTS_HEADER + _LOCALHOST_LINES
    for ip in pod_ips:
        out += f"{ip}\t{name.fqdn}\t{name.hostname}\n" if name.domain else f"{ip}\t{name.hostname}\n"
    aliases = list(host_aliases)
    if aliases:
        out += "\n# Entries added by HostAliases.\n"
        for a in aliases:
            names = "\t".join(str(h) for h in a.get("hostnames") or [])
            out += f"{a.get('ip', '')}\t{names}\n"
    return out
