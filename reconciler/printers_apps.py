"""kubectl's `get` columns and describe sections of StatefulSets, DaemonSets and ControllerRevisions
(kubernetes/kubernetes pkg/printers/internalversion/printers.go printStatefulSet, printDaemonSet,
printControllerRevision; staging/src/k8s.io/kubectl/pkg/describe StatefulSetDescriber,
DaemonSetDescriber). Pure, beside printers.py, which adds these tables to its own (rows take the
AGE text, as printers_kinds.py's do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .printers_kinds import KindColumns
from .types import Obj


def _selector(sel: Obj | None) -> str:
    """``metav1.FormatLabelSelector``: ``k=v,k in (a,b)``, ``<none>`` for none."""
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": str(key)}.get(
                str(op), f"!{key}"
            )
        )
    return ",".join(parts) or "<none>"


def _labels(labels: Obj | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _containers(o: Obj) -> list[str]:
    cs = ((o.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)]


def _sts_row(o: Obj, age: str) -> list[Any]:
    st = o.get("status") or {}
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}", age]


def _ds_row(o: Obj, age: str) -> list[Any]:
    st = o.get("status") or {}
    node_selector = ((o["spec"].get("template") or {}).get("spec") or {}).get("nodeSelector")
    return [
        o["metadata"]["name"],
        st.get("desiredNumberScheduled", 0),
        st.get("currentNumberScheduled", 0),
        st.get("numberReady", 0),
        st.get("updatedNumberScheduled", 0),
        st.get("numberAvailable", 0),
        _labels(node_selector),
        age,
    ]


def _ds_wide(o: Obj) -> list[Any]:
    return [*_containers(o), _selector(o["spec"].get("selector"))]


def controller_of(o: Obj) -> str:
    """The CONTROLLER column: ``statefulset.apps/web``, ``<none>`` for an orphan."""
    for ref in o["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            group = str(ref.get("apiVersion", "")).split("/")[0] if "/" in str(ref.get("apiVersion", "")) else ""
            return f"{str(ref.get('kind', '')).lower()}{'.' + group if group else ''}/{ref.get('name')}"
    return "<none>"


def _cr_row(o: Obj, age: str) -> list[Any]:
    return [o["metadata"]["name"], controller_of(o), o.get("revision", 0), age]


def _no_wide(o: Obj) -> list[Any]:
    return []


APPS_COLUMNS: dict[str, KindColumns] = {
    "StatefulSet": KindColumns(["NAME", "READY", "AGE"], _sts_row, ["CONTAINERS", "IMAGES"], _containers),
    "DaemonSet": KindColumns(
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        _ds_row,
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _ds_wide,
    ),
    "ControllerRevision": KindColumns(["NAME", "CONTROLLER", "REVISION", "AGE"], _cr_row, [], _no_wide),
}


def _template_lines(o: Obj) -> list[str]:
    tmpl = (o.get("spec") or {}).get("template") or {}
    lines = ["Pod Template:", f"  Labels:  {_labels((tmpl.get('metadata') or {}).get('labels'))}", "  Containers:"]
    for c in (tmpl.get("spec") or {}).get("containers") or []:
        lines += [f"   {c['name']}:", f"    Image:        {c.get('image')}"]
        for m in c.get("volumeMounts") or []:
            lines.append(f"    Mounts:       {m.get('mountPath')} from {m.get('name')}")
    return lines


def describe_statefulset(o: Obj) -> list[str]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    lines = [
        f"Selector:           {_selector(spec.get('selector'))}",
        f"Replicas:           {spec.get('replicas', 1)} desired | {st.get('replicas', 0)} total",
        f"Update Strategy:    {strategy.get('type', 'RollingUpdate')}",
    ]
    ru = strategy.get("rollingUpdate") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        lines.append(f"  Partition:        {ru.get('partition', 0)}")
    lines.append(
        f"Pods Status:        {st.get('readyReplicas', 0)} Ready / {st.get('updatedReplicas', 0)} Updated / "
        f"{st.get('availableReplicas', 0)} Available"
    )
    lines += _template_lines(o)
    vcts = spec.get("volumeClaimTemplates") or []
    lines.append("Volume Claims:" + ("  <none>" if not vcts else ""))
    for t in vcts:
        ts = t.get("spec") or {}
        lines += [
            f"  Name:          {t['metadata']['name']}",
            f"  StorageClass:  {ts.get('storageClassName') or ''}",
            f"  Labels:        {_labels((t.get('metadata') or {}).get('labels'))}",
            f"  Capacity:      {((ts.get('resources') or {}).get('requests') or {}).get('storage', '')}",
            f"  Access Modes:  [{' '.join(ts.get('accessModes') or [])}]",
        ]
    return lines


def describe_daemonset(o: Obj) -> list[str]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    lines = [
        f"Selector:       {_selector(spec.get('selector'))}",
        f"Node-Selector:  {_labels(node_selector)}",
        f"Desired Number of Nodes Scheduled: {st.get('desiredNumberScheduled', 0)}",
        f"Current Number of Nodes Scheduled: {st.get('currentNumberScheduled', 0)}",
        f"Number of Nodes Scheduled with Up-to-date Pods: {st.get('updatedNumberScheduled', 0)}",
        f"Number of Nodes Scheduled with Available Pods: {st.get('numberAvailable', 0)}",
        f"Number of Nodes Misscheduled: {st.get('numberMisscheduled', 0)}",
        f"Pods Status:  {st.get('numberReady', 0)} Ready / {st.get('numberAvailable', 0)} Available",
    ]
    return lines + _template_lines(o)


def describe_revision(o: Obj) -> list[str]:
    return [f"Controller:     {controller_of(o)}", f"Revision:       {o.get('revision', 0)}"]


APPS_DESCRIBE: dict[str, Callable[[Obj], list[str]]] = {
    "StatefulSet": describe_statefulset,
    "DaemonSet": describe_daemonset,
    "ControllerRevision": describe_revision,
}
