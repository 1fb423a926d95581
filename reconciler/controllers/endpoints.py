"""The Endpoints of a selector Service, as the endpoints controller writes them (docs/kubernetes.md §5.6).

Kubernetes: kubernetes/kubernetes pkg/controller/endpoint/endpoints_controller.go (``syncService``)
and ``podutil.FindPort`` (pkg/api/v1/pod/util.go) for named target ports (docs/kubernetes.md §5.2).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from reconciler.controllers.service_util import meta, ports, protocol, service_key, spec, svc_type
from reconciler.types import Obj

ENDPOINTS_CAPACITY = 1000
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"

PortTuple = tuple[tuple[str, int, str], ...]
"""The ports one pod resolves: (port name, number, protocol) per service port."""


def _pod_active(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    if not status.get("podIP"):
        return False
    if meta(pod).get("deletionTimestamp") and not include_terminating:
        return False
    return True


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _resolve_target_port(pod: Mapping[str, Any], port: Mapping[str, Any]) -> int | None:
    """A number is used as is; a name is the first container port of the pod with
    that name and the same protocol (None when the pod has none)."""
    target = port.get("targetPort")
    if target in (None, 0, ""):
        return int(port["port"])
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    proto = protocol(port)
    for c in spec(pod).get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == target and (cp.get("protocol") or "TCP") == proto:
                return int(cp["containerPort"])
    return None


def _selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _resolved_ports(pod: Mapping[str, Any], svc_ports: list[Mapping[str, Any]]) -> PortTuple:
    resolved: list[tuple[str, int, str]] = []
    for p in svc_ports:
        num = _resolve_target_port(pod, p)
        if num is not None:
            resolved.append((p.get("name") or "", num, protocol(p)))
    return tuple(resolved)


def _address(pod: Obj, ns: str, service_name: str) -> Obj:
    """An ``EndpointAddress`` of the pod: IP, targetRef, nodeName, hostname (subdomain = the Service)."""
    pm = meta(pod)
    address: Obj = {
        "ip": pod["status"]["podIP"],
        "targetRef": {"kind": "Pod", "name": pm.get("name"), "namespace": ns, "uid": pm.get("uid")},
    }
    pspec = spec(pod)
    if pspec.get("nodeName"):
        address["nodeName"] = pspec["nodeName"]
    if pspec.get("hostname") and pspec.get("subdomain") == service_name:
        address["hostname"] = pspec["hostname"]
    return address


def _group_pods(service: Obj, pods: list[Obj]) -> dict[PortTuple, tuple[list[Obj], list[Obj]]]:
    """The selected pods' addresses, grouped by the ports they resolve: (ready, not ready)."""
    ns, name = service_key(service)
    selector = spec(service).get("selector") or {}
    publish_not_ready = bool(spec(service).get("publishNotReadyAddresses"))
    svc_ports = ports(service)
    groups: dict[PortTuple, tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        pm = meta(pod)
        if (pm.get("namespace") or "default") != ns:
            continue
        if not _selector_matches(selector, pm.get("labels") or {}):
            continue
        if not _pod_active(pod, include_terminating=publish_not_ready):
            continue
        resolved = _resolved_ports(pod, svc_ports)
        if svc_ports and not resolved:
            continue
        ready, not_ready = groups.setdefault(resolved, ([], []))
        (ready if publish_not_ready or pod_ready(pod) else not_ready).append(_address(pod, ns, name))
    return groups


def _ip_sort(a: Obj) -> tuple[Any, ...]:
    try:
        return (0, int(ipaddress.ip_address(a["ip"])), a["targetRef"].get("uid") or "")
    except ValueError:
        return (1, a["ip"], "")


def _subsets(groups: dict[PortTuple, tuple[list[Obj], list[Obj]]]) -> tuple[list[Obj], bool]:
    """The subsets in port-tuple order, addresses by IP, at most ENDPOINTS_CAPACITY; (subsets, truncated)."""
    subsets: list[Obj] = []
    budget = ENDPOINTS_CAPACITY
    truncated = False
    for port_tuple in sorted(groups):
        ready, not_ready = groups[port_tuple]
        ready.sort(key=_ip_sort)
        not_ready.sort(key=_ip_sort)
        if len(ready) > budget:
            ready, truncated = ready[:budget], True
        budget -= len(ready)
        if len(not_ready) > budget:
            not_ready, truncated = not_ready[:budget], True
        budget -= len(not_ready)
        if not ready and not not_ready:
            continue
        subset: Obj = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if port_tuple:
            subset["ports"] = [
                ({"name": pname} if pname else {}) | {"port": num, "protocol": proto}
                for pname, num, proto in port_tuple
            ]
        subsets.append(subset)
    return subsets, truncated


def endpoints_for(service: Obj, pods: list[Obj]) -> Obj | None:
    """The ``v1/Endpoints`` object for a selector Service, or None.

    None for ExternalName Services and Services without a (non-empty) selector. Pods
    must be in the Service's namespace, match the selector, have a pod IP and not be
    Succeeded/Failed; terminating pods (``metadata.deletionTimestamp``) are left out
    unless ``publishNotReadyAddresses`` (which also puts not-ready pods into
    ``addresses``). Pods are grouped into subsets by the set of ports they resolve
    (named targetPorts resolve per pod); a pod resolving none of a ported Service's
    ports is left out. Addresses are sorted by IP; more than 1000 are truncated with
    the ``endpoints.kubernetes.io/over-capacity: truncated`` annotation.
    """
    if svc_type(service) == "ExternalName":
        return None
    if not (spec(service).get("selector") or {}):
        return None
    ns, name = service_key(service)
    subsets, truncated = _subsets(_group_pods(service, pods))
    metadata: Obj = {"name": name, "namespace": ns, "labels": dict(meta(service).get("labels") or {})}
    if truncated:
        metadata["annotations"] = {OVER_CAPACITY_ANNOTATION: "truncated"}
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata, "subsets": subsets}
