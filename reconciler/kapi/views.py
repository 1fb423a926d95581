"""Pure pieces of the API's answers: Status bodies, field selectors, server-side Tables, Event objects.

No I/O; the clock is a parameter.
"""

from __future__ import annotations

import datetime
from typing import Any

from reconciler.printers import TableOptions, age, table_rows
from reconciler.types import Obj

from .resources import Resource

TABLE_ACCEPT = "as=Table"


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Kubernetes ``Status`` (metav1.Status) failure body."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def qualified(r: Resource) -> str:
    """``pods``, ``deployments.apps``: the resource as kubectl's messages name it."""
    return f"{r.plural}.{r.group}" if r.group else r.plural


def not_found(r: Resource, name: str) -> dict[str, Any]:
    return status(404, "NotFound", f'{qualified(r)} "{name}" not found', {"name": name, "kind": r.plural})


# The one node's name (gitship prints it as NODE of `get pods -o wide`, reconciler/printers.py)
NODE_NAME = "localhost"


def _field(obj: Obj, path: str) -> str | None:
    if path == "spec.nodeName" and obj.get("kind") == "Pod" and not (obj.get("spec") or {}).get("nodeName"):
        phase = (obj.get("status") or {}).get("phase")
        return NODE_NAME if phase and phase != "Pending" else ""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    if cur is None:
        return "" if path in ("spec.nodeName", "status.phase", "metadata.namespace") else None
    return str(cur)


def parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    """``a=b,c!=d`` -> [(field, equal, value)]. Raises ValueError on an unreadable term.

    A term splits at its first operator, as apimachinery's fields.splitTerm does (``a=b!=c`` is a = "b!=c")."""
    out: list[tuple[str, bool, str]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        split = next(((i, op) for i in range(len(term)) for op in ("!=", "==", "=") if term.startswith(op, i)), None)
        if split is None:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{term}'")
        i, op = split
        out.append((term[:i].strip(), op != "!=", term[i + len(op) :].strip()))
    return out


SUPPORTED_FIELDS: tuple[str, ...] = ("metadata.name", "metadata.namespace", "status.phase", "spec.nodeName")
SUPPORTED_FIELDS += ("spec.restartPolicy",)
SUPPORTED_FIELDS += ("spec.schedulerName", "spec.serviceAccountName", "status.podIP", "involvedObject.name")
SUPPORTED_FIELDS += ("involvedObject.kind", "involvedObject.namespace", "reason", "type", "spec.unschedulable")


def check_fields(terms: list[tuple[str, bool, str]], kind: str) -> str | None:
    """kubectl's error for a field the kind cannot be selected on, or None."""
    for f, _, _ in terms:
        if f not in SUPPORTED_FIELDS or (f.startswith(("status.", "spec.")) and kind not in ("Pod", "Node")):
            if f not in ("metadata.name", "metadata.namespace"):
                return f"field label not supported: {f}"
    return None


def field_matches(obj: Obj, terms: list[tuple[str, bool, str]]) -> bool:
    return all((_field(obj, f) == v) == eq for f, eq, v in terms)


def wants_table(accept: str) -> bool:
    return TABLE_ACCEPT in accept.replace(" ", "")


def _event_rows(objs: list[Obj], now: float) -> tuple[list[str], list[list[Any]]]:
    """kubectl's columns of events (k8s.io/kubernetes pkg/printers/internalversion printEvent)."""
    rows = []
    for e in objs:
        inv = e.get("involvedObject") or e.get("regarding") or {}
        last = e.get("lastTimestamp") or e.get("deprecatedLastTimestamp") or e["metadata"].get("creationTimestamp")
        obj = f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"
        rows.append([age(last, now), e.get("type", ""), e.get("reason", ""), obj, e.get("message") or e.get("note")])
    return ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], rows


def _slice_rows(objs: list[Obj], now: float) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for o in objs:
        ports = ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>"
        addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
        shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
        rows.append([o["metadata"]["name"], o["addressType"], ports, shown or "<unset>",
                     age(o["metadata"].get("creationTimestamp"), now)])  # fmt: skip
    return ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], rows


def table(kind: str, objs: list[Obj], now: float, resource_version: str, include_object: str = "Metadata") -> Obj:
    """A meta.k8s.io/v1 Table with gitship's own `get` columns (reconciler/printers.py)."""
    wide: list[str] = []
    if kind == "Event":
        headers, rows = _event_rows(objs, now)
    elif kind == "EndpointSlice":
        headers, rows = _slice_rows(objs, now)
    elif kind == "Node":
        headers, rows = _node_rows(objs, now)
    else:
        headers, rows = table_rows(kind, objs, now, TableOptions())
        wide = [h for h in table_rows(kind, objs, now, TableOptions(wide=True))[0] if h not in headers]
    if wide:
        _, wide_rows = table_rows(kind, objs, now, TableOptions(wide=True))
        rows = wide_rows
    columns = [
        {
            "name": h.title() if h != "NAME" else "Name",
            "type": "string",
            "format": "name" if h == "NAME" else "",
            "description": h,
            "priority": 1 if h in wide else 0,
        }
        for h in [*headers, *wide]
    ]
    out_rows = []
    for row, obj in zip(rows, objs):
        o: Any = None
        if include_object == "Object":
            o = obj
        elif include_object != "None":
            o = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}
        out_rows.append({"cells": row, "object": o})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": out_rows,
    }


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_object(row: dict[str, Any], index: int, api_version: str = "v1") -> Obj:
    """A row of the store's events as a core/v1 (or events.k8s.io/v1) Event."""
    ts = rfc3339(float(row.get("time") or 0))
    ns = row.get("namespace") or "default"
    name = f"{row.get('name') or 'gitship'}.{index:016x}"
    involved = {"kind": row.get("kind") or "", "namespace": row.get("namespace") or "", "name": row.get("name") or ""}
    meta = {"name": name, "namespace": ns, "creationTimestamp": ts, "uid": f"event-{index}"}
    if api_version == "events.k8s.io/v1":
        return {
            "apiVersion": api_version,
            "kind": "Event",
            "metadata": meta,
            "eventTime": None,
            "regarding": involved,
            "reason": row.get("reason") or "",
            "note": row.get("message") or "",
            "type": row.get("type") or "Normal",
            "reportingController": "gitship",
            "deprecatedFirstTimestamp": ts,
            "deprecatedLastTimestamp": ts,
            "deprecatedCount": 1,
        }
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta,
        "involvedObject": involved,
        "reason": row.get("reason") or "",
        "message": row.get("message") or "",
        "type": row.get("type") or "Normal",
        "source": {"component": "gitship"},
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }


def api_object(api_version: str, o: Obj) -> Obj:
    """A live object as the API serves it: its apiVersion as asked, and the fields Kubernetes always
    fills (a container status's ``imageID``, which typed clients require) filled."""
    out = o if o.get("apiVersion") == api_version else {**o, "apiVersion": api_version}
    if o.get("kind") != "Pod":
        return out
    st = o.get("status") or {}
    lists = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
    if not any("imageID" not in cs for k in lists for cs in st.get(k) or []):
        return out
    fixed = {k: [{"imageID": "", **cs} for cs in st[k]] for k in lists if st.get(k)}
    return {**out, "status": {**st, **fixed}}


def endpoint_slice(ep: Obj) -> Obj:
    """The discovery.k8s.io/v1 EndpointSlice Kubernetes' EndpointSlice controller would make for a
    Service whose Endpoints are ``ep`` (gitship keeps Endpoints; the slice is derived when read)."""
    meta = ep.get("metadata") or {}
    svc = meta.get("name", "")
    endpoints: list[Obj] = []
    ports: list[Obj] = []
    for subset in ep.get("subsets") or []:
        for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
            for a in subset.get(key) or []:
                e: Obj = {"addresses": [a.get("ip", "")], "conditions": {"ready": ready, "serving": ready,
                                                                          "terminating": False}}  # fmt: skip
                if a.get("targetRef"):
                    e["targetRef"] = a["targetRef"]
                e["nodeName"] = a.get("nodeName") or NODE_NAME
                endpoints.append(e)
        for p in subset.get("ports") or []:
            port = {"name": p.get("name", ""), "port": p.get("port"), "protocol": p.get("protocol", "TCP")}
            if p.get("appProtocol"):
                port["appProtocol"] = p["appProtocol"]
            if port not in ports:  # every field set: kubectl describe reads them through pointers
                ports.append(port)
    labels = {"kubernetes.io/service-name": svc, "endpointslice.kubernetes.io/managed-by": "gitship"}
    out_meta = {
        "name": f"{svc}-gs",
        "namespace": meta.get("namespace", "default"),
        "labels": labels,
        "creationTimestamp": meta.get("creationTimestamp"),
        "uid": f"{meta.get('uid', svc)}-slice",
        "resourceVersion": meta.get("resourceVersion", ""),
        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc, "uid": "", "controller": True}],
    }
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": out_meta,
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def node_object(started: float, kubelet_version: str, pods: int, cpus: int = 1, memory_kib: int = 0) -> Obj:
    """The one node gitship runs pods on (pods' NODE, ``spec.nodeName`` selections): Ready since the
    daemon started."""
    ts = rfc3339(started)
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "gitship is running pods",
             "lastHeartbeatTime": ts, "lastTransitionTime": ts}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "uid": "gitship-node-localhost",
            "creationTimestamp": ts,
            "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                       "node-role.kubernetes.io/control-plane": ""},  # fmt: skip
        },
        "spec": {},
        "status": {
            "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
            "nodeInfo": {"kubeletVersion": kubelet_version, "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "gitship", "kubeProxyVersion": kubelet_version,
                         "osImage": "", "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
            "capacity": {"cpu": str(cpus), "memory": f"{memory_kib}Ki", "ephemeral-storage": "0",
                         "pods": str(max(110, pods))},
            "allocatable": {"cpu": str(cpus), "memory": f"{memory_kib}Ki", "ephemeral-storage": "0",
                            "pods": str(max(110, pods))},
        },
    }  # fmt: skip


def _node_rows(objs: list[Obj], now: float) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [o["metadata"]["name"], "Ready" if o["status"]["conditions"][0]["status"] == "True" else "NotReady",
         o["metadata"].get("annotations", {}).get("gitship.io/roles", "control-plane"),
         age(o["metadata"]["creationTimestamp"], now),
         o["status"]["nodeInfo"]["kubeletVersion"]]
        for o in objs
    ]  # fmt: skip
    return ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], rows
