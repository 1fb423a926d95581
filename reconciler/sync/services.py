"""The Service step of a pass: allocations, service views, Endpoints, the proxy table, the DNS
zone's inputs; and the Services' environment variables a pod starts with. Pure.

The proxy table is complete each pass: every ClusterIP Service port listens on
``clusterIP:port``; a NodePort (or LoadBalancer) port also on ``node:nodePort``; a
LoadBalancer port also on ``node:port``. Its backends are the ready addresses of the
Service's Endpoints for that port (matched by port name; a subset with one port matches
any). TCP and UDP ports are proxied; an SCTP port is not (netstatus.py warns). What the
proxy could not bind comes back in the next pass's input (netstatus.py): a LoadBalancer
shows its address only once its ports are bound.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..cluster import key_of
from ..controllers import service as svcctl
from ..controllers.podutil import to_rfc3339
from ..errors import ManifestError
from ..types import Key, Obj
from .model import Allocations, ProxyRule, Settings, ZoneInput
from .netstatus import lb_ingress, port_listeners, proxied, warn_network
from .work import Work

if TYPE_CHECKING:
    from ..manifests.model import Manifest


def sync_services(w: Work) -> tuple[dict[Any, svcctl.Allocation], list[ProxyRule], list[str], ZoneInput, set[str]]:
    """Returns (allocations, proxy rules, ClusterIPs to expose, zone inputs, ready backend pods)."""
    c, settings = w.cluster, w.inp.settings
    services = c.of_kind("Service")
    allocs, errors = svcctl.allocate(
        services, w.inp.memory.allocations, settings.service_cidr, reserved_ips=settings.reserved_ips
    )
    for key, fld, msg in errors:
        w.problem("warning", "service_allocation_failed", service="/".join(key), field=fld, error=msg)
    views: list[Obj] = []
    wanted_ep: set[Key] = set()
    backend_pods: set[str] = set()
    for svc in services:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        alloc = allocs.get((ns, name))
        if alloc is None:
            continue
        view = _view(w, svc, alloc)
        if view != svc:
            c.put(view)
        views.append(view)
        ep = svcctl.endpoints_for(view, c.of_kind("Pod", ns))
        if ep is None:
            continue
        wanted_ep.add(key_of(ep))
        backend_pods |= ready_pods(ep)
        c.put(merge_endpoints(ep, c.get(key_of(ep)), w.now, w.inp.ids.new_uid))
    for ep in c.of_kind("Endpoints"):
        k = key_of(ep)
        if k not in wanted_ep and k not in w.inp.desired:
            c.delete(k)
    endpoints = c.of_kind("Endpoints")
    rules, ips = proxy_table(views, {key_of(e): e for e in endpoints}, settings.node_listen)
    w.net_warned = warn_network(w, views)
    zone = ZoneInput(tuple(views), tuple(endpoints), tuple(c.of_kind("Pod")))
    return allocs, rules, ips, zone, backend_pods


def _view(w: Work, svc: Obj, alloc: svcctl.Allocation) -> Obj:
    """The Service as it shows: a LoadBalancer's address only once the proxy holds its ports."""
    settings = w.inp.settings
    view = svcctl.service_view(svc, alloc, None)
    if view["spec"].get("type") != "LoadBalancer":
        return view
    live = w.inp.live.get(key_of(svc))
    ip = lb_ingress(view, live, w.inp.observed, settings)
    if ip is None:
        return view
    view["status"]["loadBalancer"] = {"ingress": [{"ip": ip}]}
    if not ((((live or {}).get("status") or {}).get("loadBalancer")) or {}).get("ingress"):
        m = svc["metadata"]
        w.event("Normal", "EnsuredLoadBalancer", "Service", m["namespace"], m["name"], f"Ensured load balancer: {ip}")
    return view


def ready_pods(ep: Obj) -> set[str]:
    """The uids of the pods among an Endpoints' ready addresses."""
    return {
        a["targetRef"]["uid"]
        for subset in ep.get("subsets") or []
        for a in subset.get("addresses") or []
        if (a.get("targetRef") or {}).get("uid")
    }


def merge_endpoints(ep: Obj, live: Obj | None, now: float, new_uid: Callable[[], str]) -> Obj:
    """The Endpoints object to keep: a new one gets a uid and a creation time; an existing one
    keeps its own (an unchanged one then compares equal and is not written)."""
    if live is None:
        return {**ep, "metadata": {**ep["metadata"], "uid": new_uid(), "creationTimestamp": to_rfc3339(now)}}
    lm = live["metadata"]
    return {
        **ep,
        "metadata": {**ep["metadata"], "uid": lm.get("uid"), "creationTimestamp": lm.get("creationTimestamp")},
    }


def listeners(spec: Mapping[str, Any], port: Mapping[str, Any], node: str) -> tuple[tuple[str, int], ...]:
    """Where one Service port listens."""
    return tuple(addr for _role, addr in port_listeners(spec, port, node))


def proxy_table(views: Iterable[Obj], endpoints: Mapping[Key, Obj], node: str) -> tuple[list[ProxyRule], list[str]]:
    """Every proxied Service port (TCP and UDP ones), and the ClusterIPs they listen on."""
    rules: list[ProxyRule] = []
    ips: list[str] = []
    for svc in views:
        spec = svc["spec"]
        ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not ip or ip == "None":
            continue
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        ep = endpoints.get(("Endpoints", ns, name))
        ips.append(ip)
        client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        for port in spec.get("ports", []):
            if not proxied(port):
                continue
            rules.append(
                ProxyRule(
                    key=f"{ns}/{name}:{port.get('name') or port['port']}",
                    cluster_ip=ip,
                    listen=listeners(spec, port, node),
                    backends=tuple(backends_for(ep, port)),
                    affinity=spec.get("sessionAffinity", "None"),
                    affinity_timeout=int(client_ip.get("timeoutSeconds", 10800)),
                    protocol=port.get("protocol") or "TCP",
                )
            )
    return rules, ips


def backends_for(ep: Obj | None, port: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The (ip, port) backends of one Service port: its Endpoints' ready addresses, on the
    subset port of the same name (a subset with one port serves any)."""
    if not ep:
        return []
    out = []
    pname = port.get("name") or ""
    for subset in ep.get("subsets") or []:
        ports = subset.get("ports") or []
        match = next((p for p in ports if (p.get("name") or "") == pname), ports[0] if len(ports) == 1 else None)
        if match is None:
            continue
        for a in subset.get("addresses") or []:
            out.append((a["ip"], int(match["port"])))
    return out


def pod_for_runtime(pod: Obj, services: list[Obj], allocations: Allocations) -> Obj:
    """The pod as the runtime starts it: the Services' environment variables of its namespace
    first, the container's own after them (an own variable of the same name wins)."""
    p = copy.deepcopy(pod)
    env = svcctl.service_env(services, allocations, p["metadata"]["namespace"])
    if env:
        for c in [*(p["spec"].get("initContainers") or []), *p["spec"].get("containers", [])]:
            own = {e["name"] for e in c.get("env") or []}
            c["env"] = [e for e in env if e["name"] not in own] + list(c.get("env") or [])
    return p


def allocation_errors(
    manifests: Iterable["Manifest"], allocations: Allocations, settings: Settings
) -> list[ManifestError]:
    """The errors a revision's Services would meet against the addresses already handed out."""
    services = [m for m in manifests if m.obj["kind"] == "Service"]
    _, errors = svcctl.allocate(
        [m.obj for m in services], allocations, settings.service_cidr, reserved_ips=settings.reserved_ips
    )
    by_key = {(m.obj["metadata"]["namespace"], m.obj["metadata"]["name"]): m for m in services}
    out = []
    for key, fld, msg in errors:
        src = m.source if (m := by_key.get((key[0], key[1]))) else None
        out.append(
            ManifestError(
                src.file if src else "?",
                msg,
                line=src.line if src else 0,
                document=src.document if src else 0,
                field=fld,
            )
        )
    return out
