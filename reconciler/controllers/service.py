"""Services, purely: Endpoints from pods, ClusterIP / nodePort allocation, env vars, the view.

Pure module (no socket, time or I/O): every function takes Kubernetes-shaped dicts and
returns new ones. The rules are those of docs/kubernetes.md §5:

* ``endpoints_for(service, pods)`` -- the ``v1/Endpoints`` object the endpoints
  controller would write for a *selector* Service (§5.6; in ``endpoints.py``). ``None`` for
  selectorless Services (the user's own Endpoints from git are used) and for ExternalName.
* ``allocate(services, previous, ...)`` -- stable ClusterIP and nodePort allocation (§5.4;
  in ``service_alloc.py``, which states the allocation policy).
* ``service_env(services, allocations, namespace)`` -- the env vars of §5.7.
* ``service_view(service, allocation, lb_ingress_ip)`` -- what ``gitship get svc -o json`` prints.

Everything callers use is importable from here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from reconciler.controllers.endpoints import ENDPOINTS_CAPACITY, OVER_CAPACITY_ANNOTATION, endpoints_for, pod_ready
from reconciler.controllers.service_alloc import (
    DEFAULT_NODE_PORT_RANGE,
    DEFAULT_SERVICE_CIDR,
    AllocError,
    Allocation,
    allocate,
)
from reconciler.controllers.service_util import meta, port_key, ports, protocol, service_key, svc_type
from reconciler.types import NsName, Obj

__all__ = [
    "DEFAULT_NODE_PORT_RANGE",
    "DEFAULT_SERVICE_CIDR",
    "ENDPOINTS_CAPACITY",
    "OVER_CAPACITY_ANNOTATION",
    "AllocError",
    "Allocation",
    "allocate",
    "endpoints_for",
    "pod_ready",
    "port_key",
    "service_env",
    "service_key",
    "service_view",
]


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


# --------------------------------------------------------------------------- env vars


def _env_services(
    services: list[Obj], allocations: Mapping[NsName, Allocation], namespace: str
) -> list[tuple[Obj, str]]:
    """(service, ClusterIP) of the Services a container in ``namespace`` sees, by name; the
    pod's own namespace before ``default/kubernetes``."""
    chosen: list[tuple[Obj, str]] = []
    for svc in services:
        key = service_key(svc)
        if key[0] != namespace and key != ("default", "kubernetes"):
            continue
        if svc_type(svc) == "ExternalName":
            continue
        alloc = allocations.get(key)
        if alloc is None or not alloc.cluster_ip or not ports(svc):
            continue
        chosen.append((svc, alloc.cluster_ip))
    chosen.sort(key=lambda t: (meta(t[0])["name"], service_key(t[0])[0] != namespace))
    return chosen


def _env_of(name: str, ip: str, svc_ports: list[Mapping[str, Any]]) -> list[Obj]:
    """The Docker-links style variables of one Service."""
    prefix = _env_name(name)
    host = f"[{ip}]" if ":" in ip else ip
    first = svc_ports[0]
    env: list[Obj] = []
    env.append({"name": f"{prefix}_SERVICE_HOST", "value": ip})
    env.append({"name": f"{prefix}_SERVICE_PORT", "value": str(first["port"])})
    for p in svc_ports:
        if p.get("name"):
            env.append({"name": f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}", "value": str(p["port"])})
    env.append({"name": f"{prefix}_PORT", "value": f"{protocol(first).lower()}://{host}:{first['port']}"})
    for p in svc_ports:
        proto = protocol(p)
        base = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
        env.append({"name": base, "value": f"{proto.lower()}://{host}:{p['port']}"})
        env.append({"name": f"{base}_PROTO", "value": proto.lower()})
        env.append({"name": f"{base}_PORT", "value": str(p["port"])})
        env.append({"name": f"{base}_ADDR", "value": ip})
    return env


def service_env(services: list[Obj], allocations: Mapping[NsName, Allocation], namespace: str) -> list[Obj]:
    """Env vars for a container in ``namespace``: for each Service of that namespace with a
    ClusterIP (and ``default/kubernetes`` always), sorted by service name (docs/kubernetes.md §5.7;
    kubernetes/kubernetes pkg/kubelet/envvars/envvars.go)."""
    env: list[Obj] = []
    seen: set[str] = set()
    for svc, ip in _env_services(services, allocations, namespace):
        name = meta(svc)["name"]
        if name in seen:  # the pod's namespace wins over default/kubernetes
            continue
        seen.add(name)
        env.extend(_env_of(name, ip, ports(svc)))
    return env


# --------------------------------------------------------------------------- view


def service_view(service: Obj, allocation: Allocation | None, lb_ingress_ip: str | None) -> Obj:
    """The Service as ``gitship get svc -o json`` prints it: defaults filled, spec.clusterIP
    / clusterIPs / ports[].nodePort from the allocation, and for LoadBalancer
    ``status.loadBalancer.ingress = [{"ip": lb_ingress_ip}]`` (empty -- pending -- when
    ``lb_ingress_ip`` is None, e.g. the host port was busy)."""
    view = copy.deepcopy(service)
    spec = view.setdefault("spec", {})
    stype = spec.setdefault("type", "ClusterIP")
    if stype != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if spec.get("sessionAffinity") == "ClientIP":
            spec.setdefault("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}})
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if p.get("targetPort") in (None, 0, ""):
                p["targetPort"] = p["port"]
    if allocation is not None and stype != "ExternalName":
        if allocation.cluster_ip:
            spec["clusterIP"] = allocation.cluster_ip
            spec["clusterIPs"] = [allocation.cluster_ip]
            fam = "IPv6" if ":" in allocation.cluster_ip else "IPv4"
        else:
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
            fam = "IPv4"
        spec.setdefault("ipFamilies", [fam])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        for p in spec.get("ports") or []:
            np = allocation.node_ports.get(port_key(p))
            if np is not None:
                p["nodePort"] = np
    status = view.setdefault("status", {})
    lb: Obj = {}
    if stype == "LoadBalancer" and lb_ingress_ip:
        lb["ingress"] = [{"ip": lb_ingress_ip}]
    status["loadBalancer"] = lb
    return view
