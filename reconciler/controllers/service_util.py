"""Accessors of Service and Pod dicts shared by the Service modules (pure, read-only).

``service.py`` (env vars, the view), ``endpoints.py`` (the Endpoints of a selector Service)
and ``service_alloc.py`` (ClusterIP and nodePort allocation) read Services through these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.types import NsName


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def service_key(service: Mapping[str, Any]) -> NsName:
    m = meta(service)
    return (m.get("namespace") or "default", m["name"])


def svc_type(service: Mapping[str, Any]) -> str:
    return spec(service).get("type") or "ClusterIP"


def ports(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(spec(service).get("ports") or [])


def port_key(port: Mapping[str, Any]) -> str | int:
    """The key of a service port in ``Allocation.node_ports``: its name, else its number."""
    return port.get("name") or int(port["port"])


def protocol(port: Mapping[str, Any]) -> str:
    return port.get("protocol") or "TCP"


def wants_node_ports(service: Mapping[str, Any]) -> bool:
    """NodePort, and LoadBalancer unless ``allocateLoadBalancerNodePorts: false``."""
    t = svc_type(service)
    if t == "NodePort":
        return True
    if t == "LoadBalancer":
        return spec(service).get("allocateLoadBalancerNodePorts", True) is not False
    return False
