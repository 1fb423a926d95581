"""The object tree the Objects page draws, and the counts the Overview shows.

PURE: live objects, the keys git declares and their manifest positions in; ``Node`` trees out.
Children hang under their controller (``metadata.ownerReferences`` with ``controller: true``):
Deployment -> ReplicaSets -> Pods, StatefulSet / DaemonSet / Job -> Pods, CronJob -> Jobs; a Service
gets its Endpoints' addresses as children. Objects declared in git that are not live are Missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.types import Key, Obj

from .health import MISSING, health, worst

HIDDEN = frozenset({"Endpoints", "EndpointSlice", "ControllerRevision", "Event", "Node"})
KIND_ORDER = (
    "Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "ReplicaSet", "Pod", "Service",
    "Ingress", "ConfigMap", "Secret", "PersistentVolumeClaim", "PersistentVolume", "Namespace",
)  # fmt: skip


@dataclass
class Node:
    kind: str
    namespace: str
    name: str
    health: str = ""
    message: str = ""
    summary: str = ""
    source: tuple[str, int] | None = None
    children: list[Node] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return (self.kind, self.namespace, self.name)

    def count(self) -> int:
        """This node and everything under it."""
        return 1 + sum(c.count() for c in self.children)


def _meta(o: Obj) -> Obj:
    m: Obj = o.get("metadata") or {}
    return m


def key_of(o: Obj) -> Key:
    m = _meta(o)
    return (str(o.get("kind") or ""), str(m.get("namespace") or ""), str(m.get("name") or ""))


def controller_uid(o: Obj) -> str | None:
    for ref in _meta(o).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _sort_key(n: Node) -> tuple[bool, str, int, str]:
    """Namespaced objects first (by namespace, kind, name), then cluster-scoped ones."""
    order = KIND_ORDER.index(n.kind) if n.kind in KIND_ORDER else len(KIND_ORDER)
    return (not n.namespace, n.namespace, order, n.name)


def pod_summary(o: Obj) -> str:
    st = o.get("status") or {}
    statuses = st.get("containerStatuses") or []
    containers = (o.get("spec") or {}).get("containers") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    images = ", ".join(str(c.get("image")) for c in containers)
    phase = "Terminating" if _meta(o).get("deletionTimestamp") else st.get("phase") or "Pending"
    ip = f" {st['podIP']}" if st.get("podIP") else ""
    return f"{phase} {ready}/{len(containers)} ready, {restarts} restarts,{ip} {images}".replace(",  ", ", ")


def workload_summary(o: Obj) -> str:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    kind = o.get("kind")
    if kind == "DaemonSet":
        return f"{st.get('numberReady', 0)}/{st.get('desiredNumberScheduled', 0)} ready"
    if kind == "Job":
        return f"{st.get('succeeded', 0)} succeeded, {st.get('failed', 0)} failed, {st.get('active', 0)} active"
    want = spec.get("replicas", 1)
    text = f"{st.get('readyReplicas', 0)}/{want} ready"
    if kind == "Deployment":
        text += f", {st.get('updatedReplicas', 0)} up to date, {st.get('availableReplicas', 0)} available"
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    if containers:
        text += " · " + ", ".join(str(c.get("image")) for c in containers)
    return text


def service_summary(o: Obj) -> str:
    spec = o.get("spec") or {}
    ports = ", ".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return f"{spec.get('type', 'ClusterIP')} {spec.get('clusterIP') or ''} {ports}".strip()


def summary(o: Obj) -> str:
    kind = o.get("kind")
    if kind == "Pod":
        return pod_summary(o)
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
        return workload_summary(o)
    if kind == "Service":
        return service_summary(o)
    return ""


def endpoint_nodes(ep: Obj | None) -> list[Node]:
    """A Service's Endpoints as leaf nodes: one per address (ready or not), named ip:ports."""
    out: list[Node] = []
    for subset in (ep or {}).get("subsets") or []:
        ports = ",".join(str(p.get("port")) for p in subset.get("ports") or [])
        for field_name, status in (("addresses", "Healthy"), ("notReadyAddresses", "Progressing")):
            for a in subset.get(field_name) or []:
                target = (a.get("targetRef") or {}).get("name") or ""
                name = f"{a.get('ip')}:{ports}" if ports else str(a.get("ip"))
                out.append(
                    Node("Endpoint", key_of(ep or {})[1], name, status, "", f"-> pod {target}" if target else "")
                )
    return out


def make_node(o: Obj, sources: Mapping[Key, tuple[str, int]]) -> Node:
    k = key_of(o)
    h = health(o)
    return Node(k[0], k[1], k[2], h.status if h else "", h.message if h else "", summary(o), sources.get(k))


def build(
    objects: Iterable[Obj], declared: Iterable[Key] = (), sources: Mapping[Key, tuple[str, int]] | None = None
) -> list[Node]:
    """The forest: every live object not owned by another live object at the top, sorted by
    namespace, kind, name; declared objects that are not live as Missing top-level nodes."""
    sources = sources or {}
    nodes: dict[str, Node] = {}
    parents: dict[str, str] = {}
    endpoints: dict[tuple[str, str], Obj] = {}
    order: list[tuple[str, Node]] = []
    live: set[Key] = set()
    for o in objects:
        k = key_of(o)
        live.add(k)
        if k[0] == "Endpoints":
            endpoints[(k[1], k[2])] = o
        if k[0] in HIDDEN:
            continue
        uid = str(_meta(o).get("uid") or f"{k}")
        node = make_node(o, sources)
        nodes[uid] = node
        order.append((uid, node))
        owner = controller_uid(o)
        if owner:
            parents[uid] = owner
    top: list[Node] = []
    for uid, node in order:
        parent = nodes.get(parents.get(uid, ""))
        (parent.children if parent is not None else top).append(node)
        if node.kind == "Service":
            node.children.extend(endpoint_nodes(endpoints.get((node.namespace, node.name))))
    for k in declared:
        if k not in live and k[0] not in HIDDEN:
            top.append(Node(k[0], k[1], k[2], MISSING, "declared in git, not in the cluster", "", sources.get(k)))
    _sort(top)
    return top


def _sort(nodes: list[Node]) -> None:
    nodes.sort(key=_sort_key)
    for n in nodes:
        _sort(n.children)


def counts(objects: Iterable[Obj], declared: Iterable[Key] = ()) -> dict[str, dict[str, int]]:
    """{kind: {health status ("" for kinds without a check): count}}, Missing declared objects included."""
    out: dict[str, dict[str, int]] = {}
    live: set[Key] = set()
    for o in objects:
        k = key_of(o)
        live.add(k)
        if k[0] in HIDDEN:
            continue
        h = health(o)
        row = out.setdefault(k[0], {})
        row[h.status if h else ""] = row.get(h.status if h else "", 0) + 1
    for k in declared:
        if k not in live and k[0] not in HIDDEN:
            row = out.setdefault(k[0], {})
            row[MISSING] = row.get(MISSING, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: KIND_ORDER.index(kv[0]) if kv[0] in KIND_ORDER else 99))


def health_totals(table: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Objects per health status over every kind (kinds without a check left out)."""
    out: dict[str, int] = {}
    for row in table.values():
        for status, n in row.items():
            if status:
                out[status] = out.get(status, 0) + n
    return out


def rollup(node: Node) -> str:
    """The worst health in a subtree (a collapsed node's badge)."""
    return worst([node.health, *(rollup(c) for c in node.children)])


def find(nodes: list[Node], key: Key) -> Node | None:
    for n in nodes:
        if n.key == key:
            return n
        hit = find(n.children, key)
        if hit is not None:
            return hit
    return None
