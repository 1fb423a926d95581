"""kubectl's tables and describe pages, as pure functions of objects and a clock.

Where it sits: the CLI's output layer. Nothing here reads the store or the
network; ``now`` is a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .annotation_keys import REVISION
from .controllers.podutil import from_rfc3339, to_rfc3339
from .gofmt import human_duration
from .printers_storage import STORAGE_COLUMNS, STORAGE_DESCRIBE
from .manifests.model import CLUSTER_SCOPED, namespace_of
from .printers_apps import APPS_COLUMNS, APPS_DESCRIBE
from .printers_batch import BATCH_COLUMNS, BATCH_DESCRIBE
from .printers_ingress import INGRESS_COLUMNS, INGRESS_DESCRIBE
from .printers_kinds import CUSTOM_COLUMNS, KIND_COLUMNS, KIND_DESCRIBE
from .printers_kinds import Row as KindRow
from .printers_ns import NS_COLUMNS, NS_DESCRIBE
from .printers_pods import pod_ready, pod_restarts, pod_status
from .redact import decoded_size, secret_sizes
from .types import Obj

# the pod kernel is pure: describe reads its rule for the not-enforced condition
from runtime.kernel.resources import not_enforced_note


def age(ts: str | None, now: float) -> str:
    """kubectl's AGE of a timestamp (apimachinery's HumanDuration)."""
    return human_duration(now - from_rfc3339(ts)) if ts else "<unknown>"


# kubectl's tabwriter (k8s.io/cli-runtime pkg/printers/tabwriter.go): 3 spaces between columns, and a
# column with its padding at least 6 wide (``MIN_CELL``: a cell of 3); ``table`` keeps no minimum.
_PADDING = 3
MIN_CELL = 3


def column_widths(rows: Sequence[Sequence[Any]], widths: Sequence[int] = (), min_cell: int = 0) -> list[int]:
    """Each column's width: its widest cell, at least ``widths`` (the widths remembered so far) and ``min_cell``."""
    n = max([len(widths), *(len(r) for r in rows)])
    out = [max(list(widths[i : i + 1]) + [len(str(r[i])) for r in rows if i < len(r)]) for i in range(n)]
    return [max(w, min_cell) for w in out]


def table_lines(rows: Sequence[Sequence[Any]], widths: Sequence[int]) -> list[str]:
    """Rows aligned to ``widths``, as kubectl's tabwriter aligns them (no trailing spaces)."""
    return [(" " * _PADDING).join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    all_rows = [headers, *rows]
    return "\n".join(table_lines(all_rows, column_widths(all_rows)))


def selector_text(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op = e["operator"]
        if op == "In":
            parts.append(f"{e['key']} in ({','.join(e.get('values', []))})")
        elif op == "NotIn":
            parts.append(f"{e['key']} notin ({','.join(e.get('values', []))})")
        elif op == "Exists":
            parts.append(e["key"])
        else:
            parts.append(f"!{e['key']}")
    return ",".join(parts) or "<none>"


def _containers(template_spec: Obj) -> tuple[str, str]:
    cs = template_spec.get("containers", [])
    return ",".join(c["name"] for c in cs), ",".join(c.get("image", "") for c in cs)


def labels_text(labels: Obj | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or "<none>"


def format_labels(labels: Obj | None) -> str:
    """The LABELS column of --show-labels: ``k=v`` sorted by key (apimachinery's labels.FormatLabels)."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def label_header(key: str) -> str:
    """The header of a -L KEY column: the key's name after any prefix, upper-cased."""
    return key.split("/")[-1].upper()


def ports_text(svc: Obj) -> str:
    out = []
    for p in svc["spec"].get("ports") or []:
        s = str(p["port"])
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def external_ip(svc: Obj) -> str:
    spec = svc["spec"]
    if spec.get("type") == "ExternalName":
        name: str = spec.get("externalName", "<none>")
        return name
    ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ing:
        return ",".join(i.get("ip") or i.get("hostname", "") for i in ing)
    if spec.get("externalIPs"):
        return ",".join(spec["externalIPs"])
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def endpoints_text(ep: Obj) -> str:
    addrs = []
    for s in ep.get("subsets") or []:
        for a in s.get("addresses") or []:
            for p in s.get("ports") or [{}]:
                addrs.append(f"{a['ip']}:{p.get('port')}" if p.get("port") else a["ip"])
    if not addrs:
        return "<none>"
    more = len(addrs) - 3
    return ",".join(addrs[:3]) + (f" + {more} more..." if more > 0 else "")


def _age_of(o: Obj, now: float) -> str:
    return age(o["metadata"].get("creationTimestamp"), now)


def _pod_row(p: Obj, now: float) -> list[Any]:
    return [p["metadata"]["name"], pod_ready(p), pod_status(p), pod_restarts(p), _age_of(p, now)]


def _pod_wide(p: Obj) -> list[Any]:
    st = p.get("status") or {}  # a multi-node runtime (swarm) names the node it placed the pod on
    node = (p.get("spec") or {}).get("nodeName") or st.get("nominatedNodeName") or "localhost"
    return [st.get("podIP") or "<none>", node]


def _rs_row(o: Obj, now: float) -> list[Any]:
    st = o.get("status") or {}
    return [
        o["metadata"]["name"],
        o["spec"].get("replicas", 1),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        _age_of(o, now),
    ]


def _deploy_row(o: Obj, now: float) -> list[Any]:
    st = o.get("status") or {}
    return [
        o["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        _age_of(o, now),
    ]


def _workload_wide(o: Obj) -> list[Any]:
    return [*_containers(o["spec"]["template"]["spec"]), selector_text(o["spec"].get("selector"))]


def _svc_row(o: Obj, now: float) -> list[Any]:
    spec = o["spec"]
    return [
        o["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external_ip(o),
        ports_text(o),
        _age_of(o, now),
    ]


def _svc_wide(o: Obj) -> list[Any]:
    return [labels_text(o["spec"].get("selector"))]


def _ep_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], endpoints_text(o), _age_of(o, now)]


def _cm_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age_of(o, now)]


def _secret_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], o.get("type") or "Opaque", len(o.get("data") or {}), _age_of(o, now)]


def _no_wide(o: Obj) -> list[Any]:
    return []


@dataclass(frozen=True)
class _Columns:
    """One kind's `get` table: its columns and, for -o wide, the ones added after them."""

    headers: list[str]
    row: Callable[[Obj, float], list[Any]]
    wide_headers: list[str]
    wide: Callable[[Obj], list[Any]]


_WORKLOAD_WIDE = ["CONTAINERS", "IMAGES", "SELECTOR"]
_TABLES: dict[str, _Columns] = {
    "Pod": _Columns(["NAME", "READY", "STATUS", "RESTARTS", "AGE"], _pod_row, ["IP", "NODE"], _pod_wide),
    "ReplicaSet": _Columns(["NAME", "DESIRED", "CURRENT", "READY", "AGE"], _rs_row, _WORKLOAD_WIDE, _workload_wide),
    "Deployment": _Columns(
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], _deploy_row, _WORKLOAD_WIDE, _workload_wide
    ),
    "Service": _Columns(
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], _svc_row, ["SELECTOR"], _svc_wide
    ),
    "Endpoints": _Columns(["NAME", "ENDPOINTS", "AGE"], _ep_row, [], _no_wide),
    "ConfigMap": _Columns(["NAME", "DATA", "AGE"], _cm_row, [], _no_wide),
    "Secret": _Columns(["NAME", "TYPE", "DATA", "AGE"], _secret_row, [], _no_wide),
}


def _with_age(row: Callable[[Obj], list[Any]]) -> Callable[[Obj, float], list[Any]]:
    return lambda o, now: [*row(o), _age_of(o, now)]


# PersistentVolume, PersistentVolumeClaim, StorageClass (printers_storage.py): AGE added here
_TABLES.update(
    {kind: _Columns([*h, "AGE"], _with_age(row), wh, wide) for kind, (h, row, wh, wide) in STORAGE_COLUMNS.items()}
)


def _rc_wide(o: Obj) -> list[Any]:
    return [*_containers(o["spec"]["template"]["spec"]), labels_text(o["spec"].get("selector"))]


def _aged(row: KindRow) -> Callable[[Obj, float], list[Any]]:
    return lambda o, now: row(o, _age_of(o, now))


# ReplicationController; the kinds stored without effect (printers_kinds.py: AGE placed by their rows)
_TABLES["ReplicationController"] = _Columns(_TABLES["ReplicaSet"].headers, _rs_row, _WORKLOAD_WIDE, _rc_wide)
_TABLES.update({kind: _Columns(h, _aged(row), wh, wide) for kind, (h, row, wh, wide) in KIND_COLUMNS.items()})
_TABLES.update({kind: _Columns(h, _aged(row), wh, wide) for kind, (h, row, wh, wide) in APPS_COLUMNS.items()})
_TABLES.update({kind: _Columns(h, _aged(row), wh, wide) for kind, (h, row, wh, wide) in NS_COLUMNS.items()})
_TABLES.update({kind: _Columns(*columns) for kind, columns in BATCH_COLUMNS.items()})  # Job, CronJob
_TABLES.update({kind: _Columns(h, _aged(row), wh, wide) for kind, (h, row, wh, wide) in INGRESS_COLUMNS.items()})


@dataclass(frozen=True)
class TableOptions:
    """How `get` decorates a kind's table: -o wide, --show-labels, -A, -L KEY..., and the kind prefix
    of NAME (``replicaset.apps/``) that kubectl adds when one listing holds objects of several kinds."""

    wide: bool = False
    show_labels: bool = False
    all_namespaces: bool = False
    label_columns: tuple[str, ...] = ()
    name_prefix: str = ""


def table_rows(kind: str, objs: list[Obj], now: float, opts: TableOptions) -> tuple[list[str], list[list[Any]]]:
    """The header and the rows of the `get` table of objects of one kind."""
    cols = _TABLES.get(kind)
    if cols is None:  # a custom resource (its CRD is in the store): NAME and AGE, as kubectl's default
        h, row, wh, wide = CUSTOM_COLUMNS
        cols = _Columns(h, _aged(row), wh, wide)
    headers = [*cols.headers, *(cols.wide_headers if opts.wide else [])]
    rows = [cols.row(o, now) + (cols.wide(o) if opts.wide else []) for o in objs]
    if opts.name_prefix:
        rows = [[opts.name_prefix + str(r[0]), *r[1:]] for r in rows]
    if opts.label_columns:
        headers = [*headers, *(label_header(k) for k in opts.label_columns)]
        rows = [
            r + [(o["metadata"].get("labels") or {}).get(k, "") for k in opts.label_columns] for r, o in zip(rows, objs)
        ]
    if opts.show_labels:
        headers = [*headers, "LABELS"]
        rows = [r + [format_labels(o["metadata"].get("labels"))] for r, o in zip(rows, objs)]
    if opts.all_namespaces and kind not in CLUSTER_SCOPED and not (objs and namespace_of(objs[0]) == ""):
        headers = ["NAMESPACE", *headers]
        rows = [[o["metadata"]["namespace"], *r] for r, o in zip(rows, objs)]
    return headers, rows


def rows_for(
    kind: str, objs: list[Obj], now: float, wide: bool, show_labels: bool = False, all_namespaces: bool = False
) -> str:
    """The `get` table of objects of one kind (kubectl's columns; -o wide, --show-labels, -A)."""
    return table(*table_rows(kind, objs, now, TableOptions(wide, show_labels, all_namespaces)))


def as_list(objs: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": objs}


def dump(obj: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4)
    text: str = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
    return text.rstrip("\n")


def _describe_pod(obj: Obj) -> list[str]:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    lines = [
        f"Status:         {pod_status(obj)}",
        f"IP:             {st.get('podIP', '')}",
        f"Start Time:     {st.get('startTime', '<none>')}",
        "Containers:",
    ]
    statuses = {c["name"]: c for c in st.get("containerStatuses") or []}
    for c in spec.get("containers", []):
        lines += _describe_container(c, statuses.get(c["name"], {}), not_enforced_note(st))
    lines.append("Conditions:")
    lines.append("  Type              Status")
    for cond in st.get("conditions") or []:
        lines.append(f"  {cond['type']:<17} {cond['status']}")
    if st.get("qosClass"):  # the runtime's (runtime/kernel/resources.py qos_class)
        lines.append(f"QoS Class:       {st['qosClass']}")
    return lines


def _describe_container(c: Obj, cs: Obj, not_enforced: str | None = None) -> list[str]:
    state, detail = next(iter((cs.get("state") or {"waiting": {}}).items()))
    lines = [
        f"  {c['name']}:",
        f"    Image:          {c.get('image', '')}",
        f"    Command:        {' '.join(c.get('command') or []) or '<image default>'}",
        f"    State:          {state.capitalize()}" + (f" ({detail.get('reason')})" if detail.get("reason") else ""),
        f"    Ready:          {cs.get('ready', False)}",
        f"    Restart Count:  {cs.get('restartCount', 0)}",
    ]
    lines += describe_container_resources(c, not_enforced)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(probe):
            lines.append(f"    {probe[:-5].capitalize()}:     {_probe_text(c[probe])}")
    return lines


def describe_container_resources(c: Obj, not_enforced: str | None = None) -> list[str]:
    """kubectl's Limits and Requests blocks of a container; under Limits, when the runtime could
    not enforce them (the pod's gitship.io/ResourcesEnforced condition), a line saying so and why."""
    res = c.get("resources") or {}
    lines: list[str] = []
    for title, key in (("Limits", "limits"), ("Requests", "requests")):
        values = res.get(key) or {}
        if not isinstance(values, dict) or not values:
            continue
        width = max(len(str(k)) for k in values) + 3  # the key, its colon, two spaces
        lines.append(f"    {title}:")
        lines += [f"      {str(k) + ':':<{width}}{v}" for k, v in sorted(values.items())]
        if key == "limits" and not_enforced:
            lines.append(f"      (not enforced: {not_enforced})")
    return lines


def _describe_deployment_spec(spec: Obj, st: Obj) -> list[str]:
    lines = [
        f"Replicas:       {spec.get('replicas')} desired | {st.get('updatedReplicas', 0)} updated | "
        f"{st.get('replicas', 0)} total | {st.get('availableReplicas', 0)} available | "
        f"{st.get('unavailableReplicas', 0)} unavailable"
    ]
    strat = spec.get("strategy") or {}
    lines.append(f"StrategyType:   {strat.get('type')}")
    lines.append(f"MinReadySeconds: {spec.get('minReadySeconds', 0)}")
    ru = strat.get("rollingUpdate")
    if ru:
        lines.append(
            f"RollingUpdateStrategy:  {ru.get('maxUnavailable')} max unavailable, {ru.get('maxSurge')} max surge"
        )
    if spec.get("paused"):
        lines.append("Paused:         true")
    return lines


def _describe_workload(obj: Obj) -> list[str]:
    """ReplicaSet and Deployment: selector, replicas, the pod template, conditions."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    lines = [f"Selector:       {selector_text(spec.get('selector'))}"]
    if obj["kind"] == "Deployment":
        lines += _describe_deployment_spec(spec, st)
    else:
        lines.append(f"Replicas:       {st.get('replicas', 0)} current / {spec.get('replicas')} desired")
        lines.append(f"Pods Status:    {st.get('readyReplicas', 0)} Ready / {st.get('availableReplicas', 0)} Available")
    tmpl = spec.get("template") or {}
    lines.append("Pod Template:")
    lines.append(f"  Labels:  {_kv_block(tmpl.get('metadata', {}).get('labels'))}")
    for c in tmpl.get("spec", {}).get("containers", []):
        lines.append(f"  {c['name']}:  Image: {c.get('image')}")
    if st.get("conditions"):
        lines.append("Conditions:")
        lines.append("  Type           Status  Reason")
        for cond in st["conditions"]:
            lines.append(f"  {cond['type']:<14} {cond['status']:<7} {cond.get('reason', '')}")
    return lines


def _describe_service(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    lines = [
        f"Selector:       {labels_text(spec.get('selector'))}",
        f"Type:           {spec.get('type')}",
        f"IP:             {spec.get('clusterIP', '')}",
    ]
    if spec.get("type") == "LoadBalancer":
        lines.append(f"LoadBalancer Ingress: {external_ip(obj)}")
    for p in spec.get("ports") or []:
        proto = p.get("protocol", "TCP")
        lines.append(f"Port:           {p.get('name') or '<unset>'}  {p['port']}/{proto}")
        lines.append(f"TargetPort:     {p.get('targetPort')}/{proto}")
        if p.get("nodePort"):
            lines.append(f"NodePort:       {p.get('name') or '<unset>'}  {p['nodePort']}/{proto}")
    lines.append(f"Session Affinity: {spec.get('sessionAffinity', 'None')}")
    return lines


def _describe_configmap(obj: Obj) -> list[str]:
    """kubectl's ConfigMapDescriber: each data key and its value, binaryData keys with their size."""
    lines = ["", "Data", "===="]
    data = obj.get("data") or {}
    for k in sorted(data):
        lines += [f"{k}:", "----", str(data[k]), ""]
    lines += ["", "BinaryData", "===="]
    binary = obj.get("binaryData") or {}
    lines += [f"{k}: {decoded_size(binary[k])} bytes" for k in sorted(binary)]
    lines.append("")
    return lines


def _describe_secret(obj: Obj) -> list[str]:
    """kubectl's SecretDescriber: the type, then each key with its size, never its value."""
    lines = ["", f"Type:  {obj.get('type') or 'Opaque'}", "", "Data", "===="]
    sizes = secret_sizes(obj)
    width = max((len(k) for k in sizes), default=0) + 2
    lines += [f"{k + ':':<{width}}{n} bytes" for k, n in sizes.items()]
    return lines


_DESCRIBE: dict[str, Callable[[Obj], list[str]]] = {
    "ConfigMap": _describe_configmap,
    "Secret": _describe_secret,
    "Pod": _describe_pod,
    "ReplicaSet": _describe_workload,
    "Deployment": _describe_workload,
    "Service": _describe_service,
    **STORAGE_DESCRIBE,
    "ReplicationController": lambda o: _describe_workload(
        {**o, "spec": {**o["spec"], "selector": {"matchLabels": o["spec"].get("selector") or {}}}}
    ),
    **KIND_DESCRIBE,
    **APPS_DESCRIBE,
    **NS_DESCRIBE,
    **BATCH_DESCRIBE,
    **INGRESS_DESCRIBE,
}


def describe(obj: Obj, events: list[Obj], now: float, extra: list[tuple[str, Any]] | None = None) -> str:
    """A describe page: the object's fields in kubectl's order, then its events."""
    m = obj["metadata"]
    lines = [f"Name:           {m['name']}"]
    if namespace_of(obj) != "":
        lines.append(f"Namespace:      {m.get('namespace', 'default')}")
    if m.get("creationTimestamp"):
        lines.append(f"CreationTimestamp: {m['creationTimestamp']}")
    lines.append(f"Labels:         {_kv_block(m.get('labels'))}")
    lines.append(f"Annotations:    {_kv_block(m.get('annotations'))}")
    for ref in m.get("ownerReferences") or []:
        lines.append(f"Controlled By:  {ref['kind']}/{ref['name']}")
    section = _DESCRIBE.get(obj["kind"])
    if section is not None:
        lines += section(obj)
    for k, v in extra or []:
        lines.append(f"{k}:{' ' * max(1, 15 - len(k))}{v}")
    lines.append("Events:" + ("         <none>" if not events else ""))
    if events:
        rows = [[e["type"], e["reason"], age_from_epoch(e["time"], now), "gitship", e["message"]] for e in events]
        lines += ["  " + line for line in table(["Type", "Reason", "Age", "From", "Message"], rows).splitlines()]
    return "\n".join(lines)


def deployment_replicasets(deploy: Obj, rss: list[Obj]) -> list[tuple[str, Any]]:
    """describe deployment's OldReplicaSets and NewReplicaSet lines: the RSs it owns, split by revision."""
    uid = deploy["metadata"]["uid"]
    owned = [r for r in rss if any(ref.get("uid") == uid for ref in r["metadata"].get("ownerReferences") or [])]
    revision = deploy["metadata"].get("annotations", {}).get(REVISION)
    new = [r for r in owned if r["metadata"].get("annotations", {}).get(REVISION) == revision]

    def summary(group: list[Obj]) -> str:
        return (
            ", ".join(
                f"{r['metadata']['name']} ({(r.get('status') or {}).get('replicas', 0)}"
                f"/{r['spec'].get('replicas')} replicas created)"
                for r in group
            )
            or "<none>"
        )

    return [("OldReplicaSets", summary([r for r in owned if r not in new])), ("NewReplicaSet", summary(new))]


def age_from_epoch(t: float, now: float) -> str:
    return age(to_rfc3339(t), now)


def _kv_block(d: Obj | None) -> str:
    if not d:
        return "<none>"
    return ("\n" + " " * 16).join(f"{k}={v}" for k, v in d.items())


def _probe_text(p: Obj) -> str:
    if "httpGet" in p:
        h = p["httpGet"]
        what = f"http-get {h.get('scheme', 'HTTP').lower()}://:{h.get('port')}{h.get('path', '/')}"
    elif "tcpSocket" in p:
        what = f"tcp-socket :{p['tcpSocket'].get('port')}"
    else:
        what = "exec [" + " ".join((p.get("exec") or {}).get("command", [])) + "]"
    return (
        f"{what} delay={p.get('initialDelaySeconds', 0)}s timeout={p.get('timeoutSeconds', 1)}s "
        f"period={p.get('periodSeconds', 10)}s #success={p.get('successThreshold', 1)} "
        f"#failure={p.get('failureThreshold', 3)}"
    )
