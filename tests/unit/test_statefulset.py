"""The StatefulSet controller (reconciler/controllers/statefulset.py) through the pure pass, with a
FAKE runtime and clock (tests/unit/test_storage_controller.py StorageWorld: pods start at once,
volumes are provisioned at once). Worked examples after Kubernetes' documentation ("StatefulSet
Basics": the ``web`` StatefulSet of two nginx pods with a ``www`` claim each, governed by the
headless Service ``nginx``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.controllers import history
from reconciler.controllers import statefulset as stsctl
from reconciler.manifests.validate import default_and_validate
from reconciler.sync import Changes
from tests.unit.test_reconcile_pass import ready_status
from tests.unit.test_storage_controller import StorageWorld


def web(replicas: int = 2, image: str = "nginx:1", claims: bool = True, **spec: Any) -> dict:
    raw: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "nginx",
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": image,
                            "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}] if claims else [],
                        }
                    ]
                },
            },
            **spec,
        },
    }
    if claims:
        raw["spec"]["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
        ]
    obj, errors = default_and_validate(raw, "web.yaml", 0)
    assert errors == []
    return obj


def not_ready(now: float, ip: str = "127.244.0.10") -> dict:
    st = ready_status(ip, now)
    st["conditions"] = [{"type": "Ready", "status": "False"}]
    return st


class STSWorld(StorageWorld):
    """Pods start Running but not Ready; ``ready(name)`` makes one Ready."""

    def step(self, **kw: Any) -> Changes:
        if self.hold_stops:  # stops stay in flight: the pods stay, terminating
            running, live = dict(self.running), dict(self.live)
            ch = super().step(**kw)
            for s in ch.stop:
                self.terminating.add(s.uid)
                if s.uid in running:
                    self.running[s.uid] = running[s.uid]
                    self.launched.add(s.uid)
                if s.key is not None and s.key not in self.live and s.key in live:
                    self.live[s.key] = (
                        next(
                            o for o in ch.put if (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) == s.key
                        )
                        if any((o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) == s.key for o in ch.put)
                        else live[s.key]
                    )
        else:
            ch = super().step(**kw)
        for s in ch.start:
            self.running[s.uid] = not_ready(self.now, f"127.244.1.{next(self._ips)}")
        return ch

    def release(self) -> None:
        """The stops in flight finish: their pods are gone."""
        self.hold_stops = False
        for p in self.of_kind("Pod"):
            if p["metadata"]["uid"] in self.terminating:
                self.running.pop(p["metadata"]["uid"], None)
                self.launched.discard(p["metadata"]["uid"])
                del self.live[("Pod", "default", p["metadata"]["name"])]
        self.terminating.clear()

    def pod(self, name: str) -> dict | None:
        return self.get("Pod", name)

    def ready(self, *names: str) -> None:
        for n in names:
            p = self.pod(n)
            assert p is not None, n
            ip = (self.running.get(p["metadata"]["uid"]) or {}).get("podIP") or "127.244.0.10"
            self.running[p["metadata"]["uid"]] = ready_status(ip, self.now)

    def pods(self) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.of_kind("Pod") if not o["metadata"].get("deletionTimestamp"))

    def converge(self, n: int = 6) -> None:
        """Passes until nothing changes, each pod made Ready once it runs."""
        for _ in range(n):
            self.step()
            for p in self.of_kind("Pod"):
                if p["metadata"]["uid"] in self.running:
                    self.ready(p["metadata"]["name"])

    def sts(self) -> dict:
        s = self.get("StatefulSet", "web")
        assert s is not None
        return s


def test_defaults_and_validation() -> None:
    s = web()
    spec = s["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    bad = copy.deepcopy(s)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    bad["spec"]["podManagementPolicy"] = "Sometimes"
    bad["spec"]["updateStrategy"] = {"type": "OnDelete", "rollingUpdate": {"partition": 1}}
    _, errors = default_and_validate(bad, "web.yaml", 0)
    fields = {e.field for e in errors}
    assert {"spec.template.metadata.labels", "spec.podManagementPolicy", "spec.updateStrategy.rollingUpdate"} <= fields


def test_ordered_ready_creates_one_at_a_time_with_identity_and_claims() -> None:
    w = STSWorld(web())
    w.step()
    assert w.pods() == ["web-0"]  # web-1 waits for web-0
    p0 = w.pod("web-0")
    assert p0 is not None
    assert p0["spec"]["hostname"] == "web-0" and p0["spec"]["subdomain"] == "nginx"
    labels = p0["metadata"]["labels"]
    assert labels[stsctl.POD_NAME_LABEL] == "web-0" and labels[stsctl.POD_INDEX_LABEL] == "0"
    assert labels[history.HASH_LABEL].startswith("web-")
    assert {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}} in p0["spec"]["volumes"]
    claim = w.get("PersistentVolumeClaim", "www-web-0")
    assert claim is not None and claim["metadata"]["labels"] == {"app": "nginx"}
    assert not claim["metadata"].get("ownerReferences")  # Retain: nobody owns it
    for _ in range(3):
        w.step()  # the claim binds, web-0 starts: still not Ready, web-1 still waits
    assert w.pods() == ["web-0"]
    w.ready("web-0")
    w.step()
    assert w.pods() == ["web-0", "web-1"]
    w.converge()
    st = w.sts()["status"]
    assert st["replicas"] == 2 and st["readyReplicas"] == 2 and st["currentRevision"] == st["updateRevision"]
    revs = w.of_kind("ControllerRevision")
    assert [(r["metadata"]["name"], r["revision"]) for r in revs] == [(st["updateRevision"], 1)]


def test_parallel_creates_all_at_once() -> None:
    w = STSWorld(web(replicas=3, podManagementPolicy="Parallel"))
    w.step()
    assert w.pods() == ["web-0", "web-1", "web-2"]


def test_scale_down_highest_ordinal_first_one_at_a_time_claims_kept() -> None:
    w = STSWorld(web(replicas=3))
    w.converge(10)
    assert w.pods() == ["web-0", "web-1", "web-2"]
    w.hold_stops = True
    w.desired = {k: v for k, v in w.desired.items()}
    w.desired[("StatefulSet", "default", "web")] = web(replicas=1)
    w.step()
    gone = [p["metadata"]["name"] for p in w.of_kind("Pod") if p["metadata"].get("deletionTimestamp")]
    assert gone == ["web-2"]  # the highest first, and only it while it terminates
    w.step()
    assert [p["metadata"]["name"] for p in w.of_kind("Pod") if p["metadata"].get("deletionTimestamp")] == ["web-2"]
    w.release()
    w.converge()
    assert w.pods() == ["web-0"]
    claims = sorted(c["metadata"]["name"] for c in w.of_kind("PersistentVolumeClaim"))
    assert claims == ["www-web-0", "www-web-1", "www-web-2"]  # Retain: kept
    w.desired[("StatefulSet", "default", "web")] = web(replicas=2)
    w.converge()
    p1 = w.pod("web-1")
    assert p1 is not None
    vols = {v["name"]: v for v in p1["spec"]["volumes"]}
    assert vols["www"]["persistentVolumeClaim"]["claimName"] == "www-web-1"  # the same claim again


def test_retention_delete_when_scaled() -> None:
    policy = {"whenDeleted": "Retain", "whenScaled": "Delete"}
    w = STSWorld(web(replicas=2, persistentVolumeClaimRetentionPolicy=policy))
    w.converge(10)
    w.desired[("StatefulSet", "default", "web")] = web(replicas=1, persistentVolumeClaimRetentionPolicy=policy)
    w.converge(8)
    assert w.pods() == ["web-0"]
    c1 = w.get("PersistentVolumeClaim", "www-web-1")
    assert c1 is None or c1["metadata"].get("deletionTimestamp")
    assert w.get("PersistentVolumeClaim", "www-web-0") is not None


def test_retention_delete_when_deleted_owns_claims() -> None:
    policy = {"whenDeleted": "Delete", "whenScaled": "Retain"}
    w = STSWorld(web(replicas=1, persistentVolumeClaimRetentionPolicy=policy))
    w.converge()
    uid = w.sts()["metadata"]["uid"]
    claim = w.get("PersistentVolumeClaim", "www-web-0")
    assert claim is not None
    assert [r["uid"] for r in claim["metadata"]["ownerReferences"]] == [uid]
    w.desired = {}
    w.converge()
    c = w.get("PersistentVolumeClaim", "www-web-0")
    assert c is None or c["metadata"].get("deletionTimestamp")


def _roll(w: STSWorld, image: str, **spec: Any) -> None:
    w.desired[("StatefulSet", "default", "web")] = web(replicas=3, image=image, **spec)


def _images(w: STSWorld) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
        for p in w.of_kind("Pod")
        if not p["metadata"].get("deletionTimestamp")
    }


def test_rolling_update_highest_ordinal_first() -> None:
    w = STSWorld(web(replicas=3))
    w.converge(10)
    _roll(w, "nginx:2")
    w.hold_stops = True
    w.step()
    deleting = [p["metadata"]["name"] for p in w.of_kind("Pod") if p["metadata"].get("deletionTimestamp")]
    assert deleting == ["web-2"]
    w.release()
    order: list[str] = []
    for _ in range(20):
        before = _images(w)
        w.converge(1)
        for name, image in _images(w).items():
            if image == "nginx:2" and before.get(name) != "nginx:2":
                order.append(name)
    assert order == ["web-2", "web-1", "web-0"]
    st = w.sts()["status"]
    assert st["updatedReplicas"] == 3 and st["currentRevision"] == st["updateRevision"]
    revs = sorted((r["revision"], r["metadata"]["name"]) for r in w.of_kind("ControllerRevision"))
    assert [n for n, _ in revs] == [1, 2] and revs[1][1] == st["updateRevision"]


def test_partition_keeps_lower_ordinals() -> None:
    w = STSWorld(web(replicas=3))
    w.converge(10)
    _roll(w, "nginx:2", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    w.converge(12)
    assert _images(w) == {"web-0": "nginx:1", "web-1": "nginx:1", "web-2": "nginx:2"}
    st = w.sts()["status"]
    assert st["updatedReplicas"] == 1 and st["currentRevision"] != st["updateRevision"]
    # a pod below the partition made again comes back at the current revision
    p0 = w.pod("web-0")
    assert p0 is not None
    w.step(delete_requests={p0["metadata"]["uid"]: 0})
    w.converge(6)
    assert _images(w)["web-0"] == "nginx:1"


def test_on_delete_waits_for_a_deletion() -> None:
    w = STSWorld(web(replicas=2, updateStrategy={"type": "OnDelete"}))
    w.converge(10)
    w.desired[("StatefulSet", "default", "web")] = web(replicas=2, image="nginx:2", updateStrategy={"type": "OnDelete"})
    w.converge(6)
    assert _images(w) == {"web-0": "nginx:1", "web-1": "nginx:1"}
    p1 = w.pod("web-1")
    assert p1 is not None
    w.step(delete_requests={p1["metadata"]["uid"]: 0})
    w.converge(6)
    assert _images(w) == {"web-0": "nginx:1", "web-1": "nginx:2"}


def test_max_unavailable_two() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}
    w = STSWorld(web(replicas=3, podManagementPolicy="Parallel", updateStrategy=strategy))
    w.converge(10)
    _roll(w, "nginx:2", podManagementPolicy="Parallel", updateStrategy=strategy)
    w.hold_stops = True
    w.step()
    deleting = sorted(p["metadata"]["name"] for p in w.of_kind("Pod") if p["metadata"].get("deletionTimestamp"))
    assert deleting == ["web-1", "web-2"]


def test_rollback_reuses_the_old_revision_with_a_new_number() -> None:
    w = STSWorld(web(replicas=1))
    w.converge(8)
    first = w.sts()["status"]["updateRevision"]
    w.desired[("StatefulSet", "default", "web")] = web(replicas=1, image="nginx:2")
    w.converge(8)
    w.desired[("StatefulSet", "default", "web")] = web(replicas=1)
    w.converge(8)
    revs = {r["metadata"]["name"]: r["revision"] for r in w.of_kind("ControllerRevision")}
    assert w.sts()["status"]["updateRevision"] == first and revs[first] == 3 and len(revs) == 2


def test_history_limit_truncates_unused_revisions() -> None:
    w = STSWorld(web(replicas=1, claims=False, revisionHistoryLimit=1))
    w.converge(6)
    for image in ("nginx:2", "nginx:3", "nginx:4"):
        w.desired[("StatefulSet", "default", "web")] = web(
            replicas=1, image=image, claims=False, revisionHistoryLimit=1
        )
        w.converge(8)
    revs = sorted(r["revision"] for r in w.of_kind("ControllerRevision"))
    assert revs == [3, 4]


@pytest.mark.parametrize(("value", "replicas", "want"), [(None, 5, 1), (2, 5, 2), ("50%", 5, 3), ("10%", 5, 1)])
def test_max_unavailable_resolution(value: Any, replicas: int, want: int) -> None:
    ru: dict[str, Any] = {"partition": 0}
    if value is not None:
        ru["maxUnavailable"] = value
    s = {"spec": {"replicas": replicas, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}}}
    assert stsctl.max_unavailable(s) == want


def test_stable_dns_name_through_the_headless_service() -> None:
    from dnslib import QTYPE

    from runtime.net.dns import build_zone

    svc, errors = default_and_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "nginx"},
            "spec": {"clusterIP": "None", "selector": {"app": "nginx"}, "ports": [{"port": 80, "name": "web"}]},
        },
        "svc.yaml",
        0,
    )
    assert errors == []
    w = STSWorld(web(), svc)
    w.converge(10)
    ch = w.step()
    zone = build_zone(ch.zone.services, ch.zone.endpoints, ch.zone.pods)
    ips = set()
    for name in ("web-0", "web-1"):
        pod = w.pod(name)
        assert pod is not None
        ips.add(pod["status"]["podIP"])
        _, rrs = zone.answer(f"{name}.nginx.default.svc.cluster.local", QTYPE.A)
        assert [str(r.rdata) for r in rrs] == [pod["status"]["podIP"]]
    assert len(ips) == 2


def test_parallel_update_replaces_a_stuck_old_pod_first() -> None:
    w = STSWorld(web(replicas=3, podManagementPolicy="Parallel"))
    w.converge(10)
    p0 = w.pod("web-0")
    assert p0 is not None
    w.running[p0["metadata"]["uid"]] = not_ready(w.now)  # web-0 is unavailable on the old revision
    w.step()
    _roll(w, "nginx:2", podManagementPolicy="Parallel")
    w.hold_stops = True
    w.step()
    deleting = [p["metadata"]["name"] for p in w.of_kind("Pod") if p["metadata"].get("deletionTimestamp")]
    assert deleting == ["web-0"]  # the budget (1) is spent by web-0 itself: web-2 waits
