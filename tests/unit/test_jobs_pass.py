"""Jobs and CronJobs through the pure reconcile pass, with the fake runtime and the fake clock of
test_reconcile_pass.py: git's Job -> live Job (generated selector) -> pods -> status; the TTL
and its tombstone; CronJobs making Jobs at their schedule times; `create job --from=cronjob`."""

from __future__ import annotations

import copy
from typing import Any

from reconciler.controllers.cronjob import JobRequest
from reconciler.controllers.podutil import to_rfc3339
from reconciler.manifests.validate import default_and_validate
from reconciler.sync.immutable import immutable_field_errors
from reconciler.manifests.model import Manifest, Source
from tests.unit.test_reconcile_pass import T0, World, key, reasons


def job(name: str = "pi", **spec: Any) -> dict:
    obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"},
            },
            **spec,
        },
    }
    out, errors = default_and_validate(obj, "job.yaml", 0)
    assert not errors, errors
    return out


def cronjob(name: str = "tick", schedule: str = "*/5 * * * *", **spec: Any) -> dict:
    obj = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}
                    }
                }
            },
            **spec,
        },
    }
    out, errors = default_and_validate(obj, "cron.yaml", 0)
    assert not errors, errors
    return out


def pods_of(w: World, job_name: str) -> list[dict]:
    return [
        p
        for p in w.of_kind("Pod")
        if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == job_name
    ]


def finish(w: World, pod: dict, code: int) -> None:
    """The fake runtime reports the pod's container exited with ``code``."""
    t = to_rfc3339(w.now)
    w.running[pod["metadata"]["uid"]] = {
        "phase": "Succeeded" if code == 0 else "Failed",
        "startTime": t,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": t}],
        "containerStatuses": [
            {
                "name": "c",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "finishedAt": t, "startedAt": t}},
            }
        ],
    }


def live_job(w: World, name: str = "pi") -> dict:
    return w.live[("Job", "default", name)]


def test_job_completions_three_parallelism_two() -> None:
    w = World(job(completions=3, parallelism=2))
    ch = w.step()
    j = live_job(w)
    uid = j["metadata"]["uid"]
    assert j["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pods = pods_of(w, "pi")
    assert len(pods) == 2 and all(p["metadata"]["name"].startswith("pi-") for p in pods)
    assert all(p["metadata"]["labels"]["controller-uid"] == uid for p in pods)
    assert ("SuccessfulCreate", "Job", "pi") in reasons(ch)
    assert len(ch.start) == 2
    w.step()
    assert live_job(w)["status"]["active"] == 2 and live_job(w)["status"]["ready"] == 2
    w.now += 5
    finish(w, pods[0], 0)
    w.step()
    assert len(pods_of(w, "pi")) == 3  # the finished pod stays; one more starts
    assert live_job(w)["status"]["succeeded"] == 1
    for p in pods_of(w, "pi"):
        if w.running[p["metadata"]["uid"]]["phase"] == "Running":
            finish(w, p, 0)
    w.now += 5
    ch = w.step()
    st = live_job(w)["status"]
    assert st["succeeded"] == 3 and st["active"] == 0
    assert {c["type"] for c in st["conditions"]} == {"SuccessCriteriaMet", "Complete"}
    assert st["completionTime"] == to_rfc3339(w.now)
    assert ("Completed", "Job", "pi") in reasons(ch)
    assert len(pods_of(w, "pi")) == 3  # Completed pods stay until the Job goes
    again = w.step()
    assert again.put == [] and again.start == [] and again.events == []


def test_git_job_unchanged_is_not_updated_and_template_change_is_refused() -> None:
    d = job()
    w = World(d)
    w.step()
    w.step()
    assert w.step().put == []  # the generated selector does not look like a change from git
    assert live_job(w)["metadata"]["labels"]["job-name"] == "pi"  # a Job without labels shows its template's
    changed = copy.deepcopy(d)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    errors = immutable_field_errors([Manifest(changed, Source("job.yaml", 1, 0))], w.live)
    assert [e.field for e in errors] == ["spec.template"]
    more = copy.deepcopy(d)
    more["spec"]["parallelism"] = 3  # parallelism may change
    assert immutable_field_errors([Manifest(more, Source("job.yaml", 1, 0))], w.live) == []


def test_backoff_limit_one_fails_after_two_failures_with_backoff_between() -> None:
    w = World(job(backoffLimit=1))
    w.step()
    (p1,) = pods_of(w, "pi")
    finish(w, p1, 1)
    ch = w.step()
    assert live_job(w)["status"]["failed"] == 1
    assert len(pods_of(w, "pi")) == 1 and ch.requeue_after is not None and 9 < ch.requeue_after <= 10
    w.now += 10
    w.step()
    p2 = [p for p in pods_of(w, "pi") if p["metadata"]["uid"] != p1["metadata"]["uid"]]
    assert len(p2) == 1
    finish(w, p2[0], 1)
    ch = w.step()
    st = live_job(w)["status"]
    assert st["failed"] == 2
    failed = [c for c in st["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "BackoffLimitExceeded"
    assert ("BackoffLimitExceeded", "Job", "pi") in reasons(ch)


def test_indexed_job_pods_carry_their_index() -> None:
    w = World(job(completions=3, parallelism=3, completionMode="Indexed"))
    w.step()
    pods = sorted(pods_of(w, "pi"), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods] == ["0", "1", "2"]
    assert [p["metadata"]["name"][:5] for p in pods] == ["pi-0-", "pi-1-", "pi-2-"]
    env = pods[1]["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "JOB_COMPLETION_INDEX"
    assert pods[1]["spec"]["hostname"] == "pi-1"
    finish(w, pods[0], 0)
    finish(w, pods[2], 0)
    w.step()
    assert live_job(w)["status"]["completedIndexes"] == "0,2"
    finish(w, pods[1], 0)
    w.step()
    assert live_job(w)["status"]["completedIndexes"] == "0-2"
    assert any(c["type"] == "Complete" for c in live_job(w)["status"]["conditions"])


def test_deadline_kills_running_pods_and_fails() -> None:
    w = World(job(activeDeadlineSeconds=30))
    ch = w.step()
    w.step()
    assert ch.requeue_after is not None
    w.now += 31
    ch = w.step()
    st = live_job(w)["status"]
    assert any(c["type"] == "FailureTarget" and c["reason"] == "DeadlineExceeded" for c in st["conditions"])
    assert len(ch.stop) == 1  # the running pod is killed
    w.step()
    st = live_job(w)["status"]
    assert any(c["type"] == "Failed" and c["reason"] == "DeadlineExceeded" for c in st["conditions"])
    assert st["failed"] == 1


def test_suspend_deletes_pods_and_resume_starts_again() -> None:
    d = job()
    w = World(d)
    w.step()
    s = copy.deepcopy(d)
    s["spec"]["suspend"] = True
    w.desired = {key(s): s}
    ch = w.step()
    assert len(ch.stop) == 1
    st = live_job(w)["status"]
    assert any(c["type"] == "Suspended" and c["status"] == "True" for c in st["conditions"])
    assert st["active"] == 0 and st.get("failed", 0) == 0
    w.desired = {key(d): d}
    w.now += 60
    ch = w.step()
    assert len(ch.start) == 1
    st = live_job(w)["status"]
    assert any(c["type"] == "Suspended" and c["status"] == "False" for c in st["conditions"])
    assert st["startTime"] == to_rfc3339(w.now)


def test_ttl_deletes_job_and_pods_and_git_does_not_bring_it_back() -> None:
    d = job(ttlSecondsAfterFinished=60)
    w = World(d)
    w.step()
    finish(w, pods_of(w, "pi")[0], 0)
    ch = w.step()
    assert ch.requeue_after is not None and 59 < ch.requeue_after <= 60
    w.now += 61
    w.step()
    assert ("Job", "default", "pi") not in w.live
    w.step()
    assert not pods_of(w, "pi")
    for _ in range(3):
        w.now += 10
        ch = w.step()
        assert ("Job", "default", "pi") not in w.live and not ch.start
    changed = copy.deepcopy(d)
    changed["metadata"]["labels"] = {"run": "2"}
    w.desired = {key(changed): changed}
    w.step()
    assert ("Job", "default", "pi") in w.live  # a changed declaration runs again


def test_pod_failure_policy_fail_job_and_ignore() -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}},
        ]
    }
    w = World(job(podFailurePolicy=policy))
    w.step()
    (p1,) = pods_of(w, "pi")
    finish(w, p1, 42)
    ch = w.step()
    assert live_job(w)["status"]["failed"] == 0 and len(ch.start) == 1  # ignored: replaced at once
    p2 = next(p for p in pods_of(w, "pi") if p["metadata"]["uid"] != p1["metadata"]["uid"])
    finish(w, p2, 3)
    ch = w.step()
    st = live_job(w)["status"]
    failed = [c for c in st["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "PodFailurePolicy"
    assert "exit code 3" in failed[0]["message"]


def test_cronjob_makes_the_job_at_its_schedule_time_once() -> None:
    w = World(cronjob(), now=T0 + 60)  # T0 is 20:00:00
    ch = w.step()
    assert ch.requeue_after is not None and abs(ch.requeue_after - (240 + 0.1)) < 0.01
    assert not w.of_kind("Job")
    w.now = T0 + 300.1
    ch = w.step()
    (j,) = w.of_kind("Job")
    assert j["metadata"]["name"] == f"tick-{int(T0 + 300) // 60}"
    assert j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == to_rfc3339(T0 + 300)
    cj = w.live[("CronJob", "default", "tick")]
    assert cj["status"]["lastScheduleTime"] == to_rfc3339(T0 + 300)
    assert [a["name"] for a in cj["status"]["active"]] == [j["metadata"]["name"]]
    w.now += 1
    w.step()
    assert len(w.of_kind("Job")) == 1  # no second Job for the same time


def test_create_job_from_cronjob_request() -> None:
    w = World(cronjob(), now=T0 + 60)
    w.step()
    ch = w.step(job_requests=[JobRequest("default", "tick", "tick-manual")])
    j = w.live[("Job", "default", "tick-manual")]
    assert j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert ("SuccessfulCreate", "CronJob", "tick") in reasons(ch)
    assert not [r for r in reasons(ch) if r[0] == "UnexpectedJob"]
    assert [a["name"] for a in w.live[("CronJob", "default", "tick")]["status"]["active"]] == ["tick-manual"]
    assert pods_of(w, "tick-manual")


def test_cronjob_forbid_skip_reported_once_and_git_sees_no_change() -> None:
    d = cronjob(concurrencyPolicy="Forbid")
    w = World(d, now=T0 + 60)
    w.step()
    w.now = T0 + 300.1
    w.step()
    (j,) = w.of_kind("Job")
    w.now = T0 + 600.1  # the Job still runs at the next time
    ch = w.step()
    assert ("JobAlreadyActive", "CronJob", "tick") in reasons(ch)
    for _ in range(3):
        w.now += 1
        ch = w.step()
        assert not [e for e in ch.events if e["reason"] == "JobAlreadyActive"]
    cj = w.live[("CronJob", "default", "tick")]
    assert cj["metadata"]["generation"] == 1  # gitship's annotation is not a change from git
    assert len(w.of_kind("Job")) == 1


def test_cronjob_replace_and_history_through_the_pass() -> None:
    w = World(cronjob(concurrencyPolicy="Replace"), now=T0 + 60)
    w.step()
    w.now = T0 + 300.1
    w.step()
    (first,) = w.of_kind("Job")
    w.now = T0 + 600.1
    w.step()
    (second,) = w.of_kind("Job")
    assert second["metadata"]["name"] != first["metadata"]["name"]
    w.step()
    assert all(p["metadata"]["labels"]["job-name"] == second["metadata"]["name"] for p in w.of_kind("Pod"))


def test_logs_pick_running_before_finished_then_oldest() -> None:
    from reconciler.sync.jobs import job_pods

    owner = {"metadata": {"name": "pi", "uid": "j1"}}

    def p(name: str, phase: str, created: str) -> dict:
        return {
            "metadata": {"name": name, "creationTimestamp": created, "ownerReferences": [{"uid": "j1"}]},
            "status": {"phase": phase},
        }

    pods = [
        p("a", "Succeeded", "2026-01-01T00:00:01Z"),
        p("b", "Running", "2026-01-01T00:00:03Z"),
        p("c", "Succeeded", "2026-01-01T00:00:00Z"),
    ]
    assert [x["metadata"]["name"] for x in job_pods(pods, owner)] == ["b", "c", "a"]
