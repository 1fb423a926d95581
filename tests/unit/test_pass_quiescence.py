"""Passes are event-driven (reconciler/reconcile.py): between events the loop sleeps until the
pass's ``requeue_after`` (or a long backstop). That is only right if the pass depends on the clock
through its requeue alone: once the pass has settled, a pass at any time before the requested
requeue must change nothing. This checks it for every rule that depends on time (minReadySeconds,
progressDeadlineSeconds, Job deadlines and back-off, TTLs, CronJob schedules, grace periods).

The runtime and the clock are the FAKES of test_reconcile_pass.py (a pure pass needs no real one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.controllers.podutil import to_rfc3339
from reconciler.manifests.validate import default_and_validate
from reconciler.sync import Changes, decide, what_changes
from tests.unit.test_jobs_pass import cronjob, finish, job, pods_of
from tests.unit.test_reconcile_pass import World

HORIZON = 7 * 24 * 3600.0  # with no requeue, a week of nothing
# a requeue may wake a little after the moment it waits for: CronJobs add 100 ms, a progress
# deadline a second (kubernetes/kubernetes pkg/controller/deployment/progress.go requeueStuckDeployment)
SLACK = 1.0


def _obj(doc: dict[str, Any]) -> dict[str, Any]:
    out, errors = default_and_validate(doc, "x.yaml", 0)
    assert not errors, errors
    return out


def deployment(replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "web:1"}]},
                },
                **spec,
            },
        }
    )


def statefulset(**spec: Any) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "c", "image": "db:1"}]},
                },
                **spec,
            },
        }
    )


def daemonset(**spec: Any) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "c", "image": "agent:1"}]},
                },
                **spec,
            },
        }
    )


def settle(w: World, passes: int = 12) -> Changes:
    """Passes at the same instant until one changes nothing; that last pass's answer."""
    for _ in range(passes):
        ch = w.step()
        if not what_changes(ch):
            return ch
    raise AssertionError(f"no settled pass after {passes}: {what_changes(ch)}")


def assert_quiet_until_requeue(w: World) -> float | None:
    """After settling: passes at instants up to the requeue change nothing. Returns the requeue."""
    ch = settle(w)
    span = HORIZON if ch.requeue_after is None else ch.requeue_after
    for frac in (0.0001, 0.01, 0.25, 0.5, 0.9, 0.999):
        after = min(span * frac, span - SLACK)
        if after <= 0:
            continue
        later = decide(dataclasses.replace(w.input(), now=w.now + after))
        assert not what_changes(later), (
            f"a pass {after:.3f} s later changed {what_changes(later)} before its requeue ({ch.requeue_after})"
        )
    return ch.requeue_after


def not_ready(w: World) -> None:
    """The fake runtime reports every pod running but not ready."""
    for st in w.running.values():
        st["conditions"] = [{"type": "Ready", "status": "False", "lastTransitionTime": to_rfc3339(w.now)}]
        for c in st["containerStatuses"]:
            c["ready"] = False


def _run_until_quiet_then_past_requeue(w: World, rounds: int = 6) -> list[float | None]:
    """Check quiescence, then move past the requeue and check again, a few times."""
    requeues = []
    for _ in range(rounds):
        r = assert_quiet_until_requeue(w)
        requeues.append(r)
        if r is None:
            break
        w.now += r + 0.001
    return requeues


SCENARIOS: dict[str, Callable[[], World]] = {}


def scenario(fn: Callable[[], World]) -> Callable[[], World]:
    SCENARIOS[fn.__name__] = fn
    return fn


@scenario
def deployment_ready() -> World:
    return World(deployment())


@scenario
def deployment_min_ready() -> World:
    return World(deployment(minReadySeconds=10))


@scenario
def deployment_never_ready_hits_progress_deadline() -> World:
    w = World(deployment(progressDeadlineSeconds=30))
    for _ in range(4):  # the pods start and never become ready
        w.step()
        not_ready(w)
    return w


@scenario
def deployment_rollout_stuck() -> World:
    w = World(deployment(progressDeadlineSeconds=20, minReadySeconds=5))
    settle(w)
    w.now += 60
    settle(w)
    w.desired[("Deployment", "default", "web")]["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    settle(w)
    not_ready(w)
    return w


@scenario
def deployment_paused() -> World:
    w = World(deployment(progressDeadlineSeconds=10))
    settle(w)
    not_ready(w)
    w.desired[("Deployment", "default", "web")]["spec"]["paused"] = True
    return w


@scenario
def statefulset_min_ready() -> World:
    return World(statefulset(minReadySeconds=7))


@scenario
def daemonset_min_ready() -> World:
    return World(daemonset(minReadySeconds=4))


@scenario
def job_running_with_deadline() -> World:
    return World(job(activeDeadlineSeconds=45))


@scenario
def job_failed_pod_back_off() -> World:
    w = World(job(backoffLimit=4))
    settle(w)
    for p in pods_of(w, "pi"):
        finish(w, p, 1)
    return w


@scenario
def job_done_with_ttl() -> World:
    w = World(job(ttlSecondsAfterFinished=100))
    settle(w)
    for p in pods_of(w, "pi"):
        finish(w, p, 0)
    return w


@scenario
def cronjob_every_five_minutes() -> World:
    return World(cronjob(schedule="*/5 * * * *"))


@scenario
def cronjob_with_deadline_and_history() -> World:
    return World(cronjob(schedule="*/1 * * * *", startingDeadlineSeconds=20, successfulJobsHistoryLimit=1))


@scenario
def terminating_pods_held() -> World:
    w = World(deployment(replicas=2))
    settle(w)
    w.hold_stops = True
    w.desired[("Deployment", "default", "web")]["spec"]["replicas"] = 0
    return w


NO_TIME_RULE = {"deployment_ready", "deployment_paused", "terminating_pods_held"}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_settled_pass_changes_nothing_before_its_requeue(name: str) -> None:
    requeues = _run_until_quiet_then_past_requeue(SCENARIOS[name]())
    # the scenario really reaches its time rule (or really has none)
    assert (requeues[0] is None) == (name in NO_TIME_RULE), requeues


def test_a_time_rule_without_a_requeue_is_caught() -> None:
    """The check itself can fail: minReadySeconds pods become available at +10 s, so a pass that
    ignored the requeue and looked at +11 s changes the Deployment's status."""
    w = World(deployment(minReadySeconds=10))
    ch = settle(w)
    assert ch.requeue_after is not None and 0 < ch.requeue_after <= 10 + SLACK
    later = decide(dataclasses.replace(w.input(), now=w.now + 11))
    assert "Deployment/default/web" in what_changes(later).get("put", [])
