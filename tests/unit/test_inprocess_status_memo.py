"""The in-process runtime's status memo (runtime/inprocess/state.py Versioned, supervisor.py status):
a pod's status is rebuilt exactly when one of its or its containers' attributes changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.inprocess.state import PodState, Versioned
from runtime.inprocess.supervisor import InProcessRuntime


def _pod(uid: str = "u1", probe: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": "busybox", "command": ["sleep", "1000"]}
    if probe:
        c["readinessProbe"] = {"exec": {"command": ["true"]}}
    return {"metadata": {"name": "p", "namespace": "default", "uid": uid}, "spec": {"containers": [c]}}


def _runtime(tmp_path: Path) -> tuple[InProcessRuntime, PodState]:
    rt = InProcessRuntime(str(tmp_path / "state"), pod_cidr="127.251.0.0/16", isolation="host")
    p = PodState(_pod(probe=True), "127.251.0.2", 1_700_000_000.0, 10.0, 300.0)
    rt._pods[p.uid] = p
    return rt, p


def test_versioned_counts_changing_assignments_only() -> None:
    class V(Versioned):
        pass

    v = V()
    v.a = 1
    before = v.version
    v.a = 1  # the same object: no change
    assert v.version == before
    v.a = 2
    assert v.version == before + 1
    v.status_memo = {"x": 1}  # the memo itself is no input
    assert v.version == before + 1


def test_status_is_rebuilt_when_an_attribute_changes(tmp_path: Path) -> None:
    rt, p = _runtime(tmp_path)
    c = p.containers[0]
    first = rt.status(p.uid)
    assert first is not None and first["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    again = rt.status(p.uid)
    assert again == first and again is not first  # the caller's copy, never the memo
    again["phase"] = "Mutated"
    assert rt.status(p.uid) == first
    c.state = {"running": {"startedAt": "2026-11-30T00:00:00Z"}}
    c.started = True
    running = rt.status(p.uid)
    assert running is not None and running["phase"] == "Running"
    assert [x["status"] for x in running["conditions"] if x["type"] == "Ready"] == ["False"]
    c.readiness = True  # a readiness probe's result
    ready = rt.status(p.uid)
    assert ready is not None
    assert [x["status"] for x in ready["conditions"] if x["type"] == "Ready"] == ["True"]
    assert ready["containerStatuses"][0]["ready"] is True
    c.restart_count += 1
    restarted = rt.status(p.uid)
    assert restarted is not None and restarted["containerStatuses"][0]["restartCount"] == 1


def test_status_memo_follows_the_unavailable_controllers(tmp_path: Path) -> None:
    rt, p = _runtime(tmp_path)
    p.pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": "64Mi"}}
    p.resource_fields = None
    rt.cgroups.unavailable.clear()
    plain = rt.status(p.uid)
    assert plain is not None
    rt.cgroups.unavailable["memory"] = "not delegated"
    changed = rt.status(p.uid)
    assert changed is not None and len(changed["conditions"]) == len(plain["conditions"]) + 1
