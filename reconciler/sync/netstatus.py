"""What the proxy reported back, in the Services: a LoadBalancer's address, and Warnings. Pure.

The executor programs the proxy with the pass's proxy table; the proxy answers which
listeners it bound and which it could not (a port another program holds: EADDRINUSE,
EACCES), and the next pass gets that as ``Observed.listening`` / ``Observed.listen_failed``.
From it:

* a LoadBalancer shows ``status.loadBalancer.ingress`` only once every one of its
  ``node:port`` listeners is bound; while one could not be bound it shows none (``<pending>``),
  as a k3s ServiceLB pod that cannot get its host port leaves the Service pending; before the
  proxy has tried (a new Service, or the first pass after a restart) it keeps what it showed.
  The executor runs another pass at once when the proxy's answer changes, so the address
  appears as soon as the port is bound;
* each listener that could not be bound gets one Warning event on its Service, naming the
  address and the error: ``SyncLoadBalancerFailed`` for a LoadBalancer port (the reason
  Kubernetes' service controller gives when a load balancer cannot be ensured),
  ``ListenFailed`` for a nodePort or a ClusterIP. A nodePort keeps its allocation; the proxy
  binds it on a later pass once the port is free (a pass runs at least every second);
* a Service port whose protocol the proxy does not carry (SCTP) gets one
  ``UnsupportedProtocol`` Warning and no proxy rule; its TCP and UDP ports work.

A Warning is sent once while its cause lasts (``Memory.net_warned``), and again if the cause
goes away and comes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..controllers.service_util import protocol
from ..types import Obj
from .model import Listener, Observed, Settings
from .work import Work

SUPPORTED_PROTOCOLS = ("TCP", "UDP")

CLUSTER, NODE_PORT, LOAD_BALANCER = "clusterIP", "nodePort", "loadBalancer"


def port_listeners(spec: Mapping[str, Any], port: Mapping[str, Any], node: str) -> list[tuple[str, tuple[str, int]]]:
    """Where one Service port listens, each address with its role: ``clusterIP:port``; a
    NodePort (or LoadBalancer) port also ``node:nodePort``; a LoadBalancer port also ``node:port``."""
    out = [(CLUSTER, (str(spec["clusterIP"]), int(port["port"])))]
    if spec.get("type") in ("NodePort", "LoadBalancer") and port.get("nodePort"):
        out.append((NODE_PORT, (node, int(port["nodePort"]))))
    if spec.get("type") == "LoadBalancer":
        out.append((LOAD_BALANCER, (node, int(port["port"]))))
    return out


def proxied(port: Mapping[str, Any]) -> bool:
    """The proxy carries this Service port's protocol."""
    return protocol(port) in SUPPORTED_PROTOCOLS


def _lb_listeners(svc: Obj, node: str) -> list[Listener]:
    spec = svc.get("spec") or {}
    if spec.get("type") != "LoadBalancer" or not spec.get("clusterIP") or spec["clusterIP"] == "None":
        return []
    return [
        (protocol(p), addr[0], addr[1])
        for p in spec.get("ports") or []
        if proxied(p)
        for role, addr in port_listeners(spec, p, node)
        if role == LOAD_BALANCER
    ]


def lb_ingress(svc: Obj, live: Obj | None, observed: Observed, settings: Settings) -> str | None:
    """The ingress IP a LoadBalancer Service shows (None: ``<pending>``); ``svc`` has its
    clusterIP and nodePorts filled (a service view)."""
    wanted = _lb_listeners(svc, settings.node_listen)
    if not wanted or any(a in observed.listen_failed for a in wanted):
        return None
    if all(a in observed.listening for a in wanted):
        return settings.load_balancer_ip
    shown = (((live or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return settings.load_balancer_ip if shown else None


def _warning(role: str, addr: str, proto: str, port: Mapping[str, Any], why: str) -> tuple[str, str]:
    """(reason, message) for a listener that could not be bound."""
    where = f"{addr}/{proto}"
    if role == LOAD_BALANCER:
        return (
            "SyncLoadBalancerFailed",
            f"Error syncing load balancer: cannot listen on {where}: {why}; "
            "EXTERNAL-IP stays <pending> until the port is free",
        )
    if role == NODE_PORT:
        return (
            "ListenFailed",
            f"cannot listen on nodePort {where}: {why}; nodePort {port.get('nodePort')} stays allocated "
            "and carries traffic once the port is free",
        )
    return "ListenFailed", f"cannot listen on {where}: {why}"


def _service_warnings(svc: Obj, observed: Observed, node: str) -> Iterable[tuple[str, str, str]]:
    """(id, reason, message) of each network Warning one Service (a view) has now."""
    spec = svc.get("spec") or {}
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    for p in spec.get("ports") or []:
        proto = protocol(p)
        label = f"{p['name']} ({p['port']}/{proto})" if p.get("name") else f"{p['port']}/{proto}"
        if not proxied(p):
            yield (
                f"unsupported {ns}/{name} {p.get('name') or ''} {p['port']}/{proto}",
                "UnsupportedProtocol",
                f"port {label}: protocol {proto} is not supported by this runtime's service proxy "
                f"(it carries {' and '.join(SUPPORTED_PROTOCOLS)}); the port is not proxied",
            )
            continue
        if not spec.get("clusterIP") or spec["clusterIP"] == "None":
            continue
        for role, (host, number) in port_listeners(spec, p, node):
            why = observed.listen_failed.get((proto, host, number))
            if why is not None:
                reason, message = _warning(role, f"{host}:{number}", proto, p, why)
                yield f"listen {ns}/{name} {proto} {host}:{number} {why}", reason, message


def warn_network(w: Work, views: Iterable[Obj]) -> frozenset[str]:
    """Send the network Warnings that are new; returns every one in force now."""
    node = w.inp.settings.node_listen
    now: set[str] = set()
    for svc in views:
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            continue
        for wid, reason, message in _service_warnings(svc, w.inp.observed, node):
            now.add(wid)
            if wid not in w.inp.memory.net_warned:
                m = svc["metadata"]
                w.event("Warning", reason, "Service", m["namespace"], m["name"], message)
    return frozenset(now)
