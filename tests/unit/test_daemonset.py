"""The DaemonSet controller (reconciler/controllers/daemonset.py) through the pure pass over a list of
nodes, with a FAKE runtime and clock (tests/unit/test_reconcile_pass.py World): pods start Running
but not Ready; the test makes them Ready. Worked examples after Kubernetes' "Perform a Rolling
Update on a DaemonSet" (maxUnavailable 1; maxSurge with maxUnavailable 0) and "DaemonSet: Running
Pods on select Nodes" (nodeSelector).
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.controllers import daemonset as dsctl
from reconciler.controllers import history
from reconciler.manifests.validate import default_and_validate
from reconciler.sync import Changes, PassInput, Settings
from tests.unit.test_reconcile_pass import World, ready_status


def agent(image: str = "agent:1", node_selector: dict | None = None, **spec: Any) -> dict:
    raw: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": image}]},
            },
            **spec,
        },
    }
    if node_selector:
        raw["spec"]["template"]["spec"]["nodeSelector"] = node_selector
    obj, errors = default_and_validate(raw, "ds.yaml", 0)
    assert errors == []
    return obj


def node(name: str, **labels: str) -> dict:
    n = dsctl.node_object(name)
    n["metadata"]["labels"].update(labels)
    return n


class DSWorld(World):
    def __init__(self, *desired: dict, nodes: tuple[dict, ...] = (), **kw: Any) -> None:
        super().__init__(*desired, **kw)
        self.nodes = nodes

    def input(self, **kw: Any) -> PassInput:
        inp = super().input(**kw)
        settings = Settings(service_cidr="127.96.0.0/16", reserved_ips=("127.96.0.10",), nodes=self.nodes)
        return PassInput(
            desired=inp.desired,
            live=inp.live,
            observed=inp.observed,
            memory=inp.memory,
            settings=settings,
            ids=inp.ids,
            now=inp.now,
            **kw,
        )

    def step(self, **kw: Any) -> Changes:
        ch = super().step(**kw)
        for s in ch.start:
            st = ready_status("127.244.0.10", self.now)
            st["conditions"] = [{"type": "Ready", "status": "False"}]
            self.running[s.uid] = st
        return ch

    def ready_all(self) -> None:
        for p in self.of_kind("Pod"):
            if p["metadata"]["uid"] in self.running and not p["metadata"].get("deletionTimestamp"):
                self.running[p["metadata"]["uid"]] = ready_status("127.244.0.10", self.now)

    def converge(self, n: int = 6) -> None:
        for _ in range(n):
            self.step()
            self.ready_all()

    def release(self) -> None:
        """Stops in flight finish."""
        self.hold_stops = False
        for p in self.of_kind("Pod"):
            if p["metadata"]["uid"] in self.terminating:
                self.running.pop(p["metadata"]["uid"], None)
                self.launched.discard(p["metadata"]["uid"])
                del self.live[("Pod", "default", p["metadata"]["name"])]
        self.terminating.clear()

    def pods(self) -> list[dict]:
        return [p for p in self.of_kind("Pod") if not p["metadata"].get("deletionTimestamp")]

    def by_node(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.pods():
            out.setdefault(p["spec"]["nodeName"], []).append(p["spec"]["containers"][0]["image"])
        return {k: sorted(v) for k, v in sorted(out.items())}

    def terminating_pods(self) -> list[str]:
        return sorted(p["spec"]["nodeName"] for p in self.of_kind("Pod") if p["metadata"].get("deletionTimestamp"))

    def unavailable_nodes(self) -> int:
        def ready(p: dict) -> bool:
            st = self.running.get(p["metadata"]["uid"]) or {}
            return any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])

        return sum(
            1
            for n in self.nodes
            if not any(ready(p) and p["spec"]["nodeName"] == n["metadata"]["name"] for p in self.pods())
        )

    def ds(self) -> dict:
        return self.live[("DaemonSet", "default", "agent")]


NODES = (node("n1"), node("n2"), node("n3"))


def test_defaults() -> None:
    spec = agent()["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10
    bad = copy.deepcopy(agent())
    bad["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": 0}
    _, errors = default_and_validate(bad, "ds.yaml", 0)
    assert [e.field for e in errors] == ["spec.updateStrategy.rollingUpdate.maxUnavailable"]


def test_one_pod_on_the_one_node_with_its_identity_and_status() -> None:
    w = DSWorld(agent())
    w.step()
    (p,) = w.pods()
    assert p["spec"]["nodeName"] == "node"
    assert p["metadata"]["name"].startswith("agent-") and p["metadata"]["generateName"] == "agent-"
    rev = w.of_kind("ControllerRevision")[0]
    assert p["metadata"]["labels"][history.HASH_LABEL] == rev["metadata"]["labels"][history.CR_HASH_LABEL]
    assert rev["metadata"]["name"] == f"agent-{p['metadata']['labels'][history.HASH_LABEL]}" and rev["revision"] == 1
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} in p["spec"][
        "tolerations"
    ]
    w.ready_all()
    w.step()
    st = w.ds()["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"]) == (1, 1, 1)
    assert (st["updatedNumberScheduled"], st["numberAvailable"], st["numberMisscheduled"]) == (1, 1, 0)


def test_node_selector_picks_nodes_and_a_change_removes_misscheduled_pods() -> None:
    nodes = (node("n1", disktype="ssd"), node("n2"), node("n3", disktype="ssd"))
    w = DSWorld(agent(node_selector={"disktype": "ssd"}), nodes=nodes)
    w.converge(3)
    assert sorted(w.by_node()) == ["n1", "n3"]
    assert w.ds()["status"]["desiredNumberScheduled"] == 2
    w.desired[("DaemonSet", "default", "agent")] = agent(node_selector={"kubernetes.io/hostname": "n2"})
    w.converge(8)
    assert sorted(w.by_node()) == ["n2"]
    assert w.ds()["status"]["numberMisscheduled"] == 0


def test_rolling_update_max_unavailable_one_at_a_time() -> None:
    w = DSWorld(agent(), nodes=NODES)
    w.converge(3)
    w.desired[("DaemonSet", "default", "agent")] = agent("agent:2")
    w.hold_stops = True
    w.step()
    assert len(w.terminating_pods()) == 1  # maxUnavailable 1: one old pod goes
    w.step()
    assert len(w.terminating_pods()) == 1  # and no other while it is unavailable
    w.release()
    for _ in range(12):
        w.step()
        assert w.unavailable_nodes() <= 1  # never more than maxUnavailable nodes without a Ready pod
        w.ready_all()
    assert w.by_node() == {"n1": ["agent:2"], "n2": ["agent:2"], "n3": ["agent:2"]}
    assert w.ds()["status"]["updatedNumberScheduled"] == 3
    assert sorted(r["revision"] for r in w.of_kind("ControllerRevision")) == [1, 2]


def test_rolling_update_max_unavailable_two() -> None:
    ru = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}}
    w = DSWorld(agent(updateStrategy=ru), nodes=NODES)
    w.converge(3)
    w.desired[("DaemonSet", "default", "agent")] = agent("agent:2", updateStrategy=ru)
    w.hold_stops = True
    w.step()
    assert len(w.terminating_pods()) == 2


def test_max_surge_starts_the_new_pod_beside_the_old_one() -> None:
    ru = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    w = DSWorld(agent(updateStrategy=ru), nodes=NODES)
    w.converge(3)
    w.desired[("DaemonSet", "default", "agent")] = agent("agent:2", updateStrategy=ru)
    w.step()
    surged = {n: imgs for n, imgs in w.by_node().items() if len(imgs) == 2}
    assert list(surged.values()) == [["agent:1", "agent:2"]]  # one node at a time, old kept
    assert w.terminating_pods() == []
    w.step()  # the new pod is not Ready yet: the old one stays
    assert w.terminating_pods() == [] and len(w.pods()) == 4
    w.converge(12)
    assert w.by_node() == {"n1": ["agent:2"], "n2": ["agent:2"], "n3": ["agent:2"]}


def test_on_delete_replaces_only_deleted_pods() -> None:
    od = {"type": "OnDelete"}
    w = DSWorld(agent(updateStrategy=od), nodes=NODES)
    w.converge(3)
    w.desired[("DaemonSet", "default", "agent")] = agent("agent:2", updateStrategy=od)
    w.converge(4)
    assert w.by_node() == {"n1": ["agent:1"], "n2": ["agent:1"], "n3": ["agent:1"]}
    victim = next(p for p in w.pods() if p["spec"]["nodeName"] == "n2")
    w.step(delete_requests={victim["metadata"]["uid"]: 0})
    w.converge(4)
    assert w.by_node() == {"n1": ["agent:1"], "n2": ["agent:2"], "n3": ["agent:1"]}
    assert w.ds()["status"]["updatedNumberScheduled"] == 1


def test_node_object_labels() -> None:
    n = dsctl.node_object("box", "aarch64")
    assert n["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert n["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert n["metadata"]["labels"]["kubernetes.io/hostname"] == "box"
