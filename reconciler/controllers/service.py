"""Services, purely: Endpoints from pods, ClusterIP / nodePort allocation, env vars, the view.

Pure module (no socket, time or I/O): every function takes Kubernetes-shaped dicts and
returns new ones. The rules are those of docs/spec kubernetes-semantics.md §5:

* ``endpoints_for(service, pods)`` -- the ``v1/Endpoints`` object the endpoints
  controller would write for a *selector* Service (§5.6). ``None`` for selectorless
  Services (the user's own Endpoints from git are used) and for ExternalName.
* ``allocate(services, previous, ...)`` -- stable ClusterIP and nodePort allocation (§5.4).
* ``service_env(services, allocations, namespace)`` -- the env vars of §5.7.
* ``service_view(service, allocation, lb_ingress_ip)`` -- what ``gitship get svc -o json`` prints.

Allocation policy (deterministic, documented choice): an automatic ClusterIP is
``hash(namespace/name)`` into the *upper* band of the service CIDR, then linear probing
to the next free address; only when the upper band is full is the lower (static) band
used, the same way. Automatic nodePorts work the same way with ``hash(namespace/name/port)``
over the upper band of the node-port range, then the lower band (30000-30085 by default).
Hashing (rather than "lowest free") makes a Service's address independent of which other
Services happen to exist, so re-creating a repository on another machine tends to give the
same addresses. Collisions are resolved in sorted (namespace, name) order, so the result
never depends on the order of the input list.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

ENDPOINTS_CAPACITY = 1000
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
DEFAULT_SERVICE_CIDR = "127.96.0.0/16"
DEFAULT_NODE_PORT_RANGE = (30000, 32767)


@dataclass(frozen=True)
class Allocation:
    """What a Service got: its ClusterIP (None: headless or ExternalName) and one nodePort
    per service port, keyed by the port's name, or its number when unnamed."""

    cluster_ip: str | None
    node_ports: Mapping[str | int, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def service_key(service: Mapping[str, Any]) -> Key:
    m = _meta(service)
    return (m.get("namespace") or "default", m["name"])


def _svc_type(service: Mapping[str, Any]) -> str:
    return _spec(service).get("type") or "ClusterIP"


def _ports(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(_spec(service).get("ports") or [])


def port_key(port: Mapping[str, Any]) -> str | int:
    """The key of a service port in ``Allocation.node_ports``: its name, else its number."""
    return port.get("name") or int(port["port"])


def _protocol(port: Mapping[str, Any]) -> str:
    return port.get("protocol") or "TCP"


def _is_headless(service: Mapping[str, Any]) -> bool:
    return _spec(service).get("clusterIP") == "None"


def _wants_node_ports(service: Mapping[str, Any]) -> bool:
    t = _svc_type(service)
    if t == "NodePort":
        return True
    if t == "LoadBalancer":
        return _spec(service).get("allocateLoadBalancerNodePorts", True) is not False
    return False


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


# --------------------------------------------------------------------------- endpoints


def _pod_active(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    if not status.get("podIP"):
        return False
    if _meta(pod).get("deletionTimestamp") and not include_terminating:
        return False
    return True


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _resolve_target_port(pod: Mapping[str, Any], port: Mapping[str, Any]) -> int | None:
    """§5.2: a number is used as is; a name is the first container port of the pod with
    that name and the same protocol (None when the pod has none)."""
    target = port.get("targetPort")
    if target in (None, 0, ""):
        return int(port["port"])
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    proto = _protocol(port)
    for c in _spec(pod).get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == target and (cp.get("protocol") or "TCP") == proto:
                return int(cp["containerPort"])
    return None


def _selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def endpoints_for(service: Obj, pods: list[Obj]) -> Obj | None:
    """The ``v1/Endpoints`` object for a selector Service (§5.6), or None.

    None for ExternalName Services and Services without a (non-empty) selector. Pods
    must be in the Service's namespace, match the selector, have a pod IP and not be
    Succeeded/Failed; terminating pods (``metadata.deletionTimestamp``) are left out
    unless ``publishNotReadyAddresses`` (which also puts not-ready pods into
    ``addresses``). Pods are grouped into subsets by the set of ports they resolve
    (named targetPorts resolve per pod); a pod resolving none of a ported Service's
    ports is left out. Addresses are sorted by IP; more than 1000 are truncated with
    the ``endpoints.kubernetes.io/over-capacity: truncated`` annotation.
    """
    spec = _spec(service)
    if _svc_type(service) == "ExternalName":
        return None
    selector = spec.get("selector") or {}
    if not selector:
        return None
    ns, name = service_key(service)
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    ports = _ports(service)

    # port-tuple -> (ready addresses, not-ready addresses)
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        pm = _meta(pod)
        if (pm.get("namespace") or "default") != ns:
            continue
        if not _selector_matches(selector, pm.get("labels") or {}):
            continue
        if not _pod_active(pod, include_terminating=publish_not_ready):
            continue
        resolved: list[tuple[str, int, str]] = []
        for p in ports:
            num = _resolve_target_port(pod, p)
            if num is not None:
                resolved.append((p.get("name") or "", num, _protocol(p)))
        if ports and not resolved:
            continue
        address: Obj = {
            "ip": pod["status"]["podIP"],
            "targetRef": {"kind": "Pod", "name": pm.get("name"), "namespace": ns, "uid": pm.get("uid")},
        }
        pspec = _spec(pod)
        if pspec.get("nodeName"):
            address["nodeName"] = pspec["nodeName"]
        if pspec.get("hostname") and pspec.get("subdomain") == name:
            address["hostname"] = pspec["hostname"]
        ready, not_ready = groups.setdefault(tuple(resolved), ([], []))
        (ready if publish_not_ready or pod_ready(pod) else not_ready).append(address)

    def ip_sort(a: Obj) -> tuple[Any, ...]:
        try:
            return (0, int(ipaddress.ip_address(a["ip"])), a["targetRef"].get("uid") or "")
        except ValueError:
            return (1, a["ip"], "")

    subsets: list[Obj] = []
    budget = ENDPOINTS_CAPACITY
    truncated = False
    for port_tuple in sorted(groups):
        ready, not_ready = groups[port_tuple]
        ready.sort(key=ip_sort)
        not_ready.sort(key=ip_sort)
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

    metadata: Obj = {"name": name, "namespace": ns, "labels": dict(_meta(service).get("labels") or {})}
    if truncated:
        metadata["annotations"] = {OVER_CAPACITY_ANNOTATION: "truncated"}
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata, "subsets": subsets}


# --------------------------------------------------------------------------- allocation


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class _Pool:
    """Integers in [lo, hi] split into a lower (static) band and an upper band; owners
    recorded per value; automatic picks hash into the upper band, then the lower one."""

    def __init__(self, lo: int, hi: int, lower_band: int):
        self.lo, self.hi = lo, hi
        self.split = min(hi + 1, lo + lower_band)  # first value of the upper band
        self.owner: dict[int, Any] = {}

    def contains(self, v: int) -> bool:
        return self.lo <= v <= self.hi

    def free_for(self, v: int, who: Any) -> bool:
        o = self.owner.get(v)
        return o is None or o == who

    def claim(self, v: int, who: Any) -> None:
        self.owner[v] = who

    def pick(self, seed: str, who: Any) -> int | None:
        for lo, hi in ((self.split, self.hi), (self.lo, self.split - 1)):
            size = hi - lo + 1
            if size <= 0:
                continue
            start = _hash(seed) % size
            for i in range(size):
                v = lo + (start + i) % size
                if v not in self.owner:
                    self.owner[v] = who
                    return v
        return None


def _ip_pool(cidr: str, reserved: Iterable[str]) -> tuple[_Pool, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    net = ipaddress.ip_network(cidr, strict=False)
    size = net.num_addresses
    base = int(net.network_address)
    # usable: network+1 .. broadcast-1 (IPv4); lower band min(max(16, size/16), 256)
    lo, hi = base + 1, base + size - (2 if net.version == 4 else 1)
    lower = min(max(16, size // 16), 256)
    pool = _Pool(lo, hi, lower)
    for r in reserved:
        pool.claim(int(ipaddress.ip_address(r)), ("<reserved>", r))
    return pool, net


def allocate(
    services: list[Obj],
    previous: Mapping[Key, Allocation],
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE,
    reserved_ips: Iterable[str] = (),
) -> tuple[dict[Key, Allocation], list[tuple[Key, str, str]]]:
    """Allocate ClusterIPs and nodePorts for ``services``, keeping ``previous`` ones.

    Returns ``(allocations, errors)``; errors are ``(key, field, message)`` with
    ``field`` a Kubernetes field path (``spec.clusterIP``, ``spec.ports[1].nodePort``).
    A Service with an error keeps its previous allocation if it had one, else it is
    absent from the result (it cannot be applied). Rules (§5.4):

    * previous allocations are kept: an omitted ``spec.clusterIP`` / ``nodePort`` keeps the
      previous value (node ports matched by port name, or number when unnamed);
    * ``spec.clusterIP: "None"`` is headless (cluster_ip None), ExternalName gets nothing;
    * a given ``spec.clusterIP`` must lie in ``service_cidr`` and be free; a ClusterIP, once
      allocated, may not change (except by switching to ExternalName);
    * NodePort and LoadBalancer (unless ``allocateLoadBalancerNodePorts: false``) get a
      nodePort per port; a given one must lie in the range and be free;
    * automatic picks are hash-based (see the module docstring); ``reserved_ips`` (e.g. the
      DNS service address) are never handed out.
    """
    ip_pool, net = _ip_pool(service_cidr, reserved_ips)
    lo_p, hi_p = node_port_range
    np_size = hi_p - lo_p + 1
    port_pool = _Pool(lo_p, hi_p, min(max(16, np_size // 32), 128))

    by_key: dict[Key, Obj] = {}
    for svc in services:
        by_key[service_key(svc)] = svc
    keys = sorted(by_key)

    errors: list[tuple[Key, str, str]] = []
    failed: set[Key] = set()
    ips: dict[Key, str | None] = {}
    nports: dict[Key, dict[str | int, int]] = {k: {} for k in keys}

    def err(key: Key, fld: str, msg: str) -> None:
        errors.append((key, fld, msg))
        failed.add(key)

    # What each service wants for its IP: ("none",) | ("auto",) | ("ip", str) | ("keep", str)
    want: dict[Key, tuple[str, ...]] = {}
    for key in keys:
        svc = by_key[key]
        spec = _spec(svc)
        prev = previous.get(key)
        given = spec.get("clusterIP")
        if _svc_type(svc) == "ExternalName":
            want[key] = ("none",)
        elif given == "None":
            if prev is not None and prev.cluster_ip:
                err(
                    key,
                    "spec.clusterIP",
                    f'Invalid value: "None": may not change once set (allocated {prev.cluster_ip})',
                )
                want[key] = ("keep", prev.cluster_ip)
            else:
                want[key] = ("none",)
        elif given in (None, ""):
            want[key] = ("keep", prev.cluster_ip) if prev is not None and prev.cluster_ip else ("auto",)
        else:
            if prev is not None and prev.cluster_ip and prev.cluster_ip != given:
                err(
                    key,
                    "spec.clusterIP",
                    f'Invalid value: "{given}": may not change once set (allocated {prev.cluster_ip})',
                )
                want[key] = ("keep", prev.cluster_ip)
            elif prev is not None and prev.cluster_ip == given:
                want[key] = ("keep", given)
            else:
                want[key] = ("ip", str(given))

    # ---- pass 1: previous allocations still wanted
    for key in keys:
        w = want[key]
        if w[0] == "keep":
            v = int(ipaddress.ip_address(w[1]))
            if ip_pool.free_for(v, key):
                ip_pool.claim(v, key)
                ips[key] = w[1]
            elif key in failed:
                pass
            else:
                want[key] = ("auto",)  # corrupted previous state: two owners; reallocate
        elif w[0] == "none":
            ips[key] = None
        prev = previous.get(key)
        if prev is None or not _wants_node_ports(by_key[key]):
            continue
        for port in _ports(by_key[key]):
            pk = port_key(port)
            given_np = port.get("nodePort")
            old = prev.node_ports.get(pk)
            if old is not None and given_np in (None, 0, old) and port_pool.free_for(old, key):
                port_pool.claim(old, key)
                nports[key][pk] = old

    # ---- pass 2: explicit requests
    for key in keys:
        w = want[key]
        if w[0] == "ip":
            try:
                addr = ipaddress.ip_address(w[1])
            except ValueError:
                err(key, "spec.clusterIP", f'Invalid value: "{w[1]}": must be a valid IP address')
                continue
            v = int(addr)
            if addr not in net or not ip_pool.contains(v):
                err(
                    key,
                    "spec.clusterIP",
                    f'Invalid value: "{w[1]}": failed to allocate IP {w[1]}: the provided IP '
                    f"({w[1]}) is not in the valid range. The range of valid IPs is {service_cidr}",
                )
            elif not ip_pool.free_for(v, key):
                err(
                    key,
                    "spec.clusterIP",
                    f'Invalid value: "{w[1]}": failed to allocate IP {w[1]}: provided IP is already allocated',
                )
            else:
                ip_pool.claim(v, key)
                ips[key] = w[1]
        if not _wants_node_ports(by_key[key]):
            continue
        for i, port in enumerate(_ports(by_key[key])):
            pk = port_key(port)
            given_np = port.get("nodePort")
            if given_np in (None, 0) or nports[key].get(pk) == given_np:
                continue
            fld = f"spec.ports[{i}].nodePort"
            if not isinstance(given_np, int) or not port_pool.contains(given_np):
                err(
                    key,
                    fld,
                    f"Invalid value: {given_np}: provided port is not in the valid "
                    f"range. The range of valid ports is {lo_p}-{hi_p}",
                )
            elif not port_pool.free_for(given_np, key):
                err(key, fld, f"Invalid value: {given_np}: provided port is already allocated")
            else:
                port_pool.claim(given_np, key)
                nports[key][pk] = given_np

    # ---- pass 3: automatic picks
    for key in keys:
        if key in failed:
            continue
        ns, name = key
        if want[key][0] == "auto":
            picked_ip = ip_pool.pick(f"{ns}/{name}", key)
            if picked_ip is None:
                err(key, "spec.clusterIP", f"failed to allocate a serviceIP: range is full ({service_cidr})")
                continue
            ips[key] = str(ipaddress.ip_address(picked_ip))
        if not _wants_node_ports(by_key[key]):
            continue
        for port in _ports(by_key[key]):
            pk = port_key(port)
            if pk in nports[key]:
                continue
            picked_port = port_pool.pick(f"{ns}/{name}/{pk}", key)
            if picked_port is None:
                err(key, "spec.ports.nodePort", f"failed to allocate a nodePort: range is full ({lo_p}-{hi_p})")
                break
            nports[key][pk] = picked_port

    result: dict[Key, Allocation] = {}
    for key in keys:
        if key in failed:
            prev = previous.get(key)
            if prev is not None:
                # keep what it had; its addresses are not handed to anybody else this round
                kept_ports = {pk: p for pk, p in prev.node_ports.items() if port_pool.free_for(p, key)}
                for p in kept_ports.values():
                    port_pool.claim(p, key)
                result[key] = Allocation(prev.cluster_ip, kept_ports)
            continue
        result[key] = Allocation(ips.get(key), dict(nports[key]))
    return result, errors


# --------------------------------------------------------------------------- env vars


def service_env(services: list[Obj], allocations: Mapping[Key, Allocation], namespace: str) -> list[Obj]:
    """§5.7 env vars for a container in ``namespace``: for each Service of that namespace
    with a ClusterIP (and ``default/kubernetes`` always), sorted by service name."""
    chosen: list[tuple[Obj, str]] = []
    for svc in services:
        key = service_key(svc)
        if key[0] != namespace and key != ("default", "kubernetes"):
            continue
        if _svc_type(svc) == "ExternalName":
            continue
        alloc = allocations.get(key)
        if alloc is None or not alloc.cluster_ip or not _ports(svc):
            continue
        chosen.append((svc, alloc.cluster_ip))
    chosen.sort(key=lambda t: (_meta(t[0])["name"], service_key(t[0])[0] != namespace))
    env: list[Obj] = []
    seen: set[str] = set()
    for svc, ip in chosen:
        name = _meta(svc)["name"]
        if name in seen:  # the pod's namespace wins over default/kubernetes
            continue
        seen.add(name)
        prefix = _env_name(name)
        ports = _ports(svc)
        host = f"[{ip}]" if ":" in ip else ip
        first = ports[0]
        env.append({"name": f"{prefix}_SERVICE_HOST", "value": ip})
        env.append({"name": f"{prefix}_SERVICE_PORT", "value": str(first["port"])})
        for p in ports:
            if p.get("name"):
                env.append({"name": f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}", "value": str(p["port"])})
        env.append({"name": f"{prefix}_PORT", "value": f"{_protocol(first).lower()}://{host}:{first['port']}"})
        for p in ports:
            proto = _protocol(p)
            base = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
            env.append({"name": base, "value": f"{proto.lower()}://{host}:{p['port']}"})
            env.append({"name": f"{base}_PROTO", "value": proto.lower()})
            env.append({"name": f"{base}_PORT", "value": str(p["port"])})
            env.append({"name": f"{base}_ADDR", "value": ip})
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
