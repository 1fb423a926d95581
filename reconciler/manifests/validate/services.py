"""Services and Endpoints (docs/kubernetes.md §7.4, §8).

The rules and messages are those of kubernetes/kubernetes pkg/apis/core/validation
(validation.go: ValidateService, validateServicePort, ValidateEndpoints).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from reconciler.manifests.validate.common import PROTOCOLS, Ctx, is_dict, is_int, is_list, supported, type_name
from reconciler.manifests.validate.names import (
    DNS1123_LABEL_MSG,
    dns1123_label_error,
    dns1123_subdomain_error,
    unique_name,
    validate_labels,
    validate_port_ref,
)
from reconciler.types import Obj

_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NODE_PORT_RANGE = (30000, 32767)

_Seen = set[tuple[Any, Any]]


def _validate_cluster_ip(ctx: Ctx, cip: Any, stype: str) -> None:
    headless = cip == "None"
    if cip is not None and cip != "" and not headless:
        if not isinstance(cip, str):
            ctx.err("spec.clusterIP", f"must be a string, not {type_name(cip)} {cip!r}")
        else:
            try:
                ipaddress.ip_address(cip)
            except ValueError:
                ctx.err("spec.clusterIP", f"Invalid value: {cip!r}: must be a valid IP address or 'None'")
    if headless and stype in ("NodePort", "LoadBalancer"):
        ctx.err("spec.clusterIP", f"Invalid value: 'None': may not be set to 'None' for {stype} services")


def _validate_external_name(ctx: Ctx, spec: Obj) -> None:
    en = spec.get("externalName")
    if en is None or en == "":
        ctx.err("spec.externalName", "Required value")
    elif not isinstance(en, str):
        ctx.err("spec.externalName", f"must be a string, not {type_name(en)} {en!r}")
    else:
        e = dns1123_subdomain_error(en[:-1] if en.endswith(".") else en)
        if e:
            ctx.err("spec.externalName", f"Invalid value: {en!r}: {e}")
    if spec.get("clusterIP") not in (None, ""):
        ctx.err("spec.clusterIP", "Forbidden: may not be set for ExternalName services")
    for key in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if spec.get(key):
            ctx.err(f"spec.{key}", "Forbidden: may not be set for ExternalName services")


def _validate_session_affinity(ctx: Ctx, spec: Obj) -> None:
    sa = spec.get("sessionAffinity")
    if sa not in ("None", "ClientIP"):
        ctx.err("spec.sessionAffinity", supported(sa, ("None", "ClientIP")))
    elif sa == "ClientIP":
        cfg = spec.get("sessionAffinityConfig")
        t = None
        if is_dict(cfg) and is_dict(cfg.get("clientIP")):
            t = cfg["clientIP"].get("timeoutSeconds")
        if not is_int(t) or not 1 <= t <= 86400:
            ctx.err(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                f"Invalid value: {t!r}: must be greater than 0 and less than 86400",
            )
    elif spec.get("sessionAffinityConfig") is not None:
        ctx.err("spec.sessionAffinityConfig", "Forbidden: must not be set when `sessionAffinity` is None")


def _validate_traffic(ctx: Ctx, spec: Obj, stype: str) -> None:
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        v = spec.get(key)
        if v is not None and v not in ("Cluster", "Local"):
            ctx.err(f"spec.{key}", supported(v, ("Cluster", "Local")))
    if stype != "LoadBalancer":
        for key in ("loadBalancerSourceRanges", "allocateLoadBalancerNodePorts", "loadBalancerIP"):
            if spec.get(key) is not None:
                ctx.err(f"spec.{key}", "Forbidden: may only be used when `type` is 'LoadBalancer'")


def _validate_node_port(ctx: Ctx, np: Any, pp: str, stype: str, proto: Any, seen: _Seen) -> None:
    if np is None or np == 0:
        return
    if stype == "ClusterIP":
        ctx.err(f"{pp}.nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")
    elif not is_int(np):
        ctx.err(f"{pp}.nodePort", f"must be an integer, not {type_name(np)} {np!r}")
    elif not NODE_PORT_RANGE[0] <= np <= NODE_PORT_RANGE[1]:
        ctx.err(
            f"{pp}.nodePort",
            f"Invalid value: {np}: provided port is not in the valid range. "
            f"The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}",
        )
    else:
        if (np, proto) in seen:
            ctx.err(f"{pp}.nodePort", f"Duplicate value: {np}")
        seen.add((np, proto))


def _validate_service_port(
    ctx: Ctx, p: Obj, pp: str, stype: str, many: bool, names: set[str], seen: _Seen, seen_node: _Seen
) -> None:
    name = p.get("name")
    if name is None or name == "":
        if many:
            ctx.err(f"{pp}.name", "Required value")
    else:
        unique_name(ctx, name, f"{pp}.name", names, dns1123_label_error)
    port = p.get("port")
    if port is None:
        ctx.err(f"{pp}.port", "Required value")
    else:
        port = ctx.int_field(p, "port", pp, minimum=1, maximum=65535)
    proto = p.get("protocol")
    if proto not in PROTOCOLS:
        ctx.err(f"{pp}.protocol", supported(proto, PROTOCOLS))
    if port is not None:
        if (port, proto) in seen:
            ctx.err(pp, f"Duplicate value: {{port: {port}, protocol: {proto}}}")
        seen.add((port, proto))
        if stype == "LoadBalancer" and port == 10250:
            ctx.err(
                f"{pp}.port",
                "Invalid value: 10250: may not expose port 10250 externally since it is used by kubelet",
            )
    if stype != "ExternalName":
        validate_port_ref(ctx, p.get("targetPort"), f"{pp}.targetPort")
    _validate_node_port(ctx, p.get("nodePort"), pp, stype, proto, seen_node)


def _validate_service_ports(ctx: Ctx, ports: Any, stype: str, headless: bool) -> None:
    if ports is None or ports == []:
        if stype != "ExternalName" and not headless:
            ctx.err("spec.ports", "Required value")
        return
    if not is_list(ports):
        ctx.err("spec.ports", f"must be a list, not {type_name(ports)}")
        return
    names: set[str] = set()
    seen: _Seen = set()
    seen_node: _Seen = set()
    for i, p in enumerate(ports):
        pp = f"spec.ports[{i}]"
        if not is_dict(p):
            ctx.err(pp, f"must be an object, not {type_name(p)}")
            continue
        _validate_service_port(ctx, p, pp, stype, len(ports) > 1, names, seen, seen_node)


def validate_service(ctx: Ctx, obj: Obj) -> None:
    spec = obj.get("spec")
    if not is_dict(spec):
        ctx.err("spec", f"must be an object, not {type_name(spec)}")
        return
    stype = spec.get("type")
    if stype not in _SERVICE_TYPES:
        ctx.err("spec.type", supported(stype, _SERVICE_TYPES))
        return
    _validate_cluster_ip(ctx, spec.get("clusterIP"), stype)
    if stype == "ExternalName":
        _validate_external_name(ctx, spec)
    _validate_session_affinity(ctx, spec)
    _validate_traffic(ctx, spec, stype)
    sel = spec.get("selector")
    if sel is not None:
        validate_labels(ctx, sel, "spec.selector")
    _validate_service_ports(ctx, spec.get("ports"), stype, spec.get("clusterIP") == "None")


# --------------------------------------------------------------------------- Endpoints


def _validate_addresses(ctx: Ctx, s: Obj, sp: str) -> None:
    for key in ("addresses", "notReadyAddresses"):
        addrs = ctx.list_field(s, key, sp)
        for j, a in enumerate(addrs or ()):
            ap = f"{sp}.{key}[{j}]"
            if not is_dict(a):
                ctx.err(ap, f"must be an object, not {type_name(a)}")
                continue
            ip = a.get("ip")
            if ip is None or ip == "":
                ctx.err(f"{ap}.ip", "Required value")
                continue
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                ctx.err(f"{ap}.ip", f"Invalid value: {ip!r}: must be a valid IP address")
            ctx.str_field(a, "hostname", ap)


def _validate_endpoint_port(ctx: Ctx, p: Obj, pp: str, many: bool, names: set[str]) -> None:
    if p.get("port") is None:
        ctx.err(f"{pp}.port", "Required value")
    else:
        ctx.int_field(p, "port", pp, minimum=1, maximum=65535)
    proto = p.get("protocol")
    if proto not in PROTOCOLS:
        ctx.err(f"{pp}.protocol", supported(proto, PROTOCOLS))
    name = p.get("name")
    if name:
        if not isinstance(name, str) or dns1123_label_error(name):
            ctx.err(f"{pp}.name", f"Invalid value: {name!r}: {DNS1123_LABEL_MSG}")
        elif name in names:
            ctx.err(f"{pp}.name", f"Duplicate value: {name!r}")
        else:
            names.add(name)
    elif many:
        ctx.err(f"{pp}.name", "Required value")


def validate_endpoints(ctx: Ctx, obj: Obj) -> None:
    subsets = obj.get("subsets")
    if not is_list(subsets):
        ctx.err("subsets", f"must be a list, not {type_name(subsets)}")
        return
    for i, s in enumerate(subsets):
        sp = f"subsets[{i}]"
        if not is_dict(s):
            ctx.err(sp, f"must be an object, not {type_name(s)}")
            continue
        _validate_addresses(ctx, s, sp)
        ports = ctx.list_field(s, "ports", sp)
        names: set[str] = set()
        for j, p in enumerate(ports or ()):
            pp = f"{sp}.ports[{j}]"
            if not is_dict(p):
                ctx.err(pp, f"must be an object, not {type_name(p)}")
                continue
            _validate_endpoint_port(ctx, p, pp, len(ports or ()) > 1, names)
