"""The Job and CronJob controllers as pure functions on a fake clock (controllers/job.py,
job_util.py, cronjob.py): back-off delays, OnFailure restarts, the missed-schedule rules (the
100 rule, startingDeadlineSeconds), concurrency policies, history limits."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from reconciler.controllers import cronjob as cronctl
from reconciler.controllers import job as jobctl
from reconciler.controllers import job_util as ju
from reconciler.controllers.podutil import from_rfc3339, to_rfc3339
from reconciler.manifests.validate import default_and_validate

T0 = from_rfc3339("2026-11-30T12:00:00Z")


def new_pod() -> Any:
    n = itertools.count(1)
    return lambda: (f"p{next(n)}", f"pod-uid-{next(n)}")


def job(**spec: Any) -> dict:
    obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "default", "uid": "job-uid", "creationTimestamp": to_rfc3339(T0)},
        "spec": {
            "template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}},
            **spec,
        },
    }
    out, errors = default_and_validate(obj, "j.yaml", 0)
    assert not errors
    out["metadata"]["uid"] = "job-uid"
    return jobctl.generate_selector(out) or out


def owned_pod(name: str, phase: str, finished: float | None = None, code: int = 0, restarts: int = 0) -> dict:
    state: dict = {"running": {}}
    if finished is not None:
        state = {"terminated": {"exitCode": code, "finishedAt": to_rfc3339(finished)}}
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "ownerReferences": [{"kind": "Job", "name": "j", "uid": "job-uid", "controller": True}],
            "finalizers": [ju.TRACKING_FINALIZER],
            "creationTimestamp": to_rfc3339(T0),
        },
        "spec": {},
        "status": {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts, "state": state}]},
    }


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0), (1, 10), (2, 20), (3, 40), (5, 160), (6, 320), (7, 360), (20, 360)]
)
def test_backoff_delay_doubles_from_ten_seconds_capped_at_six_minutes(failures: int, delay: float) -> None:
    assert ju.backoff_delay(failures) == delay


def test_backoff_counts_failures_since_the_last_success() -> None:
    assert ju.backoff_remaining([(100.0, True), (110.0, True)], 115.0) == 15.0  # 2 failures: 20 s from 110
    assert ju.backoff_remaining([(100.0, True), (105.0, False), (110.0, True)], 115.0) == 5.0  # reset: 10 s
    assert ju.backoff_remaining([(100.0, True), (105.0, False)], 106.0) == 0.0


def test_failed_pod_replaced_only_after_its_backoff() -> None:
    j = job(backoffLimit=6)
    pods = [owned_pod("a", "Failed", T0 + 5, code=1)]
    res = jobctl.sync_job(j, pods, T0 + 8, new_pod())
    assert not res.create and res.requeue_after == pytest.approx(7.0)
    assert res.status["failed"] == 1 and [p["metadata"]["name"] for p in res.counted] == ["a"]
    counted = res.counted
    j2 = {**j, "status": res.status}
    res = jobctl.sync_job(j2, counted, T0 + 15, new_pod())
    assert len(res.create) == 1 and res.status["failed"] == 1  # counted once


def test_on_failure_counts_container_restarts() -> None:
    j = job(backoffLimit=2)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    res = jobctl.sync_job(j, [owned_pod("a", "Running", restarts=1)], T0, new_pod())
    assert not ju.has_condition({"status": res.status}, "FailureTarget")
    res = jobctl.sync_job(j, [owned_pod("a", "Running", restarts=2)], T0, new_pod())
    assert ju.condition({"status": res.status}, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert res.delete == ["uid-a"]


def test_work_queue_job_without_completions() -> None:
    j = job(parallelism=3)
    assert j["spec"].get("completions") is None
    res = jobctl.sync_job(j, [], T0, new_pod())
    assert len(res.create) == 3
    pods = [owned_pod("a", "Succeeded", T0), owned_pod("b", "Running"), owned_pod("c", "Running")]
    res = jobctl.sync_job(j, pods, T0, new_pod())
    assert not res.create and not res.delete  # no new pods once one succeeded; the others finish
    done = [owned_pod(n, "Succeeded", T0) for n in "abc"]
    res = jobctl.sync_job(j, done, T0 + 1, new_pod())
    assert ju.has_condition({"status": res.status}, "Complete")


def test_parallelism_lowered_deletes_extra_pods() -> None:
    j = job(completions=5, parallelism=1)
    pods = [owned_pod("a", "Running"), owned_pod("b", "Running")]
    res = jobctl.sync_job(j, pods, T0, new_pod())
    assert len(res.delete) == 1 and not res.create and res.status["active"] == 1
    # the deleted pod leaves the count without being a failure
    (dropped,) = res.counted
    dropped["metadata"]["deletionTimestamp"] = to_rfc3339(T0)
    kept = next(p for p in pods if p["metadata"]["uid"] != dropped["metadata"]["uid"])
    again = jobctl.sync_job({**j, "status": res.status}, [dropped, kept], T0 + 1, new_pod())
    assert again.status["failed"] == 0 and not again.create


def test_status_active_counts_the_pods_just_created() -> None:
    assert jobctl.sync_job(job(completions=4, parallelism=2), [], T0, new_pod()).status["active"] == 2


def test_pod_deleted_by_the_user_counts_as_failed() -> None:
    p = owned_pod("a", "Running")
    p["metadata"]["deletionTimestamp"] = to_rfc3339(T0)
    res = jobctl.sync_job(job(), [p], T0 + 1, new_pod())
    assert res.status["failed"] == 1 and len(res.create) == 1  # replaced


def test_pod_failure_policy_on_pod_condition_ignores_a_disruption() -> None:
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    j = job(podFailurePolicy=policy, backoffLimit=0)
    p = owned_pod("a", "Failed", T0, code=137)
    p["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    res = jobctl.sync_job(j, [p], T0 + 1, new_pod())
    assert res.status["failed"] == 0 and len(res.create) == 1  # not counted, no back-off


def test_pod_failure_policy_count_and_not_in() -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]}
    j = job(podFailurePolicy=policy)
    assert ju.match_pod_failure_policy(j, owned_pod("a", "Failed", T0, code=2)).action is None
    m = ju.match_pod_failure_policy(j, owned_pod("a", "Failed", T0, code=5))
    assert m.action == "FailJob" and m.count and "exit code 5" in m.message
    count = job(podFailurePolicy={"rules": [{"action": "Count", "onExitCodes": {"operator": "In", "values": [5]}}]})
    assert ju.match_pod_failure_policy(count, owned_pod("a", "Failed", T0, code=5)).count


def test_suspended_from_the_start_creates_nothing_and_has_no_start_time() -> None:
    res = jobctl.sync_job(job(suspend=True), [], T0, new_pod())
    assert not res.create and "startTime" not in res.status
    assert ju.condition({"status": res.status}, "Suspended")["reason"] == "JobSuspended"


def test_ttl_zero_deletes_at_once_and_ttl_waits() -> None:
    j = job(ttlSecondsAfterFinished=0)
    j["status"] = {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": to_rfc3339(T0)}]}
    assert jobctl.sync_job(j, [], T0, new_pod()).expired
    j["spec"]["ttlSecondsAfterFinished"] = 100
    res = jobctl.sync_job(j, [], T0 + 40, new_pod())
    assert not res.expired and res.requeue_after == 60


def test_generated_selector_and_labels() -> None:
    j = job()
    labels = j["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "controller-uid": "job-uid",
        "batch.kubernetes.io/controller-uid": "job-uid",
        "job-name": "j",
        "batch.kubernetes.io/job-name": "j",
    }
    assert jobctl.generate_selector(j) is None  # once only
    plain = jobctl.without_generated(j)
    assert "selector" not in plain["spec"] and "labels" not in plain["spec"]["template"]["metadata"]


# -- CronJobs ------------------------------------------------------------------------------------


def cronjob(schedule: str = "0 * * * *", created: float = T0, **spec: Any) -> dict:
    obj = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj", "namespace": "default"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}
            },
            **spec,
        },
    }
    out, errors = default_and_validate(obj, "cj.yaml", 0)
    assert not errors, errors
    out["metadata"].update(uid="cj-uid", creationTimestamp=to_rfc3339(created))
    return out


def uids() -> Any:
    n = itertools.count(1)
    return lambda: f"job-uid-{next(n)}"


def run(cj: dict, now: float, jobs: list[dict] | None = None) -> cronctl.CronResult:
    return cronctl.sync_cronjob(cj, jobs or [], now, uids())


def reasons(res: cronctl.CronResult) -> list[str]:
    return [e.reason for e in res.events]


def test_nothing_before_the_first_time_and_wakes_at_it() -> None:
    res = run(cronjob(), T0 + 600)
    assert not res.create and res.requeue_after == pytest.approx(3000.1)


def test_job_at_the_schedule_time_named_by_minutes() -> None:
    res = run(cronjob(), T0 + 3600 + 2)
    (j,) = res.create
    assert j["metadata"]["name"] == f"cj-{int(T0 + 3600) // 60}"
    assert j["metadata"]["annotations"][cronctl.SCHEDULED_TIMESTAMP] == to_rfc3339(T0 + 3600)
    assert res.status["lastScheduleTime"] == to_rfc3339(T0 + 3600)
    assert res.requeue_after == pytest.approx(3600 - 2 + 0.1)
    assert reasons(res) == ["SuccessfulCreate"]


def test_scheduled_timestamp_in_the_time_zone() -> None:
    res = run(cronjob(timeZone="Europe/Berlin"), T0 + 3600 + 2)
    assert res.create[0]["metadata"]["annotations"][cronctl.SCHEDULED_TIMESTAMP] == "2026-11-30T14:00:00+01:00"


def test_after_downtime_only_the_most_recent_missed_time_runs_once() -> None:
    now = T0 + 5 * 3600 + 30  # five hourly times missed
    res = run(cronjob(), now)
    assert [j["metadata"]["name"] for j in res.create] == [f"cj-{int(T0 + 5 * 3600) // 60}"]
    assert "TooManyMissedTimes" not in reasons(res)
    cj = {**cronjob(), "status": res.status}
    again = run(cj, now + 5, res.create)  # a restart later: the Job exists, nothing new
    assert not again.create


def test_more_than_100_missed_times_warns_and_still_runs_one() -> None:
    now = T0 + 101 * 3600 + 30
    res = run(cronjob(), now)
    assert reasons(res) == ["TooManyMissedTimes", "SuccessfulCreate"] and len(res.create) == 1
    assert res.create[0]["metadata"]["name"] == f"cj-{int(T0 + 101 * 3600) // 60}"
    exactly = run(cronjob(), T0 + 100 * 3600 + 30)
    assert "TooManyMissedTimes" not in reasons(exactly)


def test_starting_deadline_limits_the_catch_up() -> None:
    # missed at T0+5h, now 10 minutes later with a 5 minute deadline: skipped, no warning burst
    res = run(cronjob(startingDeadlineSeconds=300), T0 + 5 * 3600 + 600)
    assert not res.create
    # inside the deadline: runs
    res = run(cronjob(startingDeadlineSeconds=300), T0 + 5 * 3600 + 200)
    assert len(res.create) == 1
    # with a deadline the 100 rule counts only inside it: a long outage brings no warning
    res = run(cronjob(startingDeadlineSeconds=3600 * 2), T0 + 500 * 3600 + 30)
    assert "TooManyMissedTimes" not in reasons(res) and len(res.create) == 1


def test_skip_is_reported_once_per_schedule_time() -> None:
    # the pass runs every second; Kubernetes' controller looks once per schedule time
    running = active_job("old")
    cj = with_active(cronjob(concurrencyPolicy="Forbid"), running)
    res = run(cj, T0 + 3600 + 1, [running])
    assert reasons(res) == ["JobAlreadyActive"] and res.reported
    marked = {**cj, "metadata": {**cj["metadata"], "annotations": {cronctl.REPORTED: ";".join(res.reported)}}}
    assert reasons(run(marked, T0 + 3600 + 2, [running])) == []
    assert reasons(run(marked, T0 + 7200 + 1, [running])) == ["JobAlreadyActive"]  # the next time: again


def test_deadline_window_skips_missed_times_silently() -> None:
    # startingDeadlineSeconds 0: a time is never caught up after it passed (mostRecentScheduleTime
    # looks only inside the deadline)
    res = run(cronjob(schedule="* * * * *", startingDeadlineSeconds=0), T0 + 60 + 5)
    assert not res.create and not res.events and res.requeue_after == pytest.approx(55.1)


def active_job(name: str, finished: str | None = None) -> dict:
    status: dict = {"startTime": to_rfc3339(T0)}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
        status["completionTime"] = to_rfc3339(T0 + 10)
    return {
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "ownerReferences": [{"kind": "CronJob", "name": "cj", "uid": "cj-uid", "controller": True}],
        },
        "status": status,
    }


def with_active(cj: dict, *jobs: dict) -> dict:
    refs = [{"name": j["metadata"]["name"], "uid": j["metadata"]["uid"]} for j in jobs]
    return {**cj, "status": {"active": refs, "lastScheduleTime": to_rfc3339(T0)}}


def test_forbid_skips_while_a_job_runs() -> None:
    running = active_job("old")
    res = run(with_active(cronjob(concurrencyPolicy="Forbid"), running), T0 + 3600 + 1, [running])
    assert not res.create and reasons(res) == ["JobAlreadyActive"]


def test_replace_deletes_the_running_job_and_starts_the_new_one() -> None:
    running = active_job("old")
    res = run(with_active(cronjob(concurrencyPolicy="Replace"), running), T0 + 3600 + 1, [running])
    assert res.delete == ["old"] and len(res.create) == 1
    assert [a["name"] for a in res.status["active"]] == [res.create[0]["metadata"]["name"]]


def test_allow_runs_side_by_side() -> None:
    running = active_job("old")
    res = run(with_active(cronjob(), running), T0 + 3600 + 1, [running])
    assert not res.delete and len(res.create) == 1 and len(res.status["active"]) == 2


def test_finished_job_leaves_active_and_sets_last_successful_time() -> None:
    done = active_job("old", "Complete")
    res = run(with_active(cronjob(), done), T0 + 60, [done])
    assert "active" not in res.status and res.status["lastSuccessfulTime"] == to_rfc3339(T0 + 10)
    assert reasons(res) == ["SawCompletedJob"]


def test_history_limits_delete_the_oldest_finished_jobs() -> None:
    jobs = []
    for i in range(5):
        j = active_job(f"ok{i}", "Complete")
        j["status"]["startTime"] = to_rfc3339(T0 + i)
        jobs.append(j)
    for i in range(3):
        j = active_job(f"bad{i}", "Failed")
        j["status"]["startTime"] = to_rfc3339(T0 + i)
        jobs.append(j)
    cj = {**cronjob(), "status": {"lastScheduleTime": to_rfc3339(T0)}}
    res = run(cj, T0 + 60, jobs)
    assert sorted(res.delete) == ["bad0", "bad1", "ok0", "ok1"]  # keeps 3 successful, 1 failed


def test_suspended_cronjob_makes_nothing_and_asks_no_wake_up() -> None:
    res = run(cronjob(suspend=True), T0 + 3600 + 1)
    assert not res.create and res.requeue_after is None


def test_manual_job_is_annotated_and_owned() -> None:
    job_obj, event = cronctl.manual_job(cronjob(), cronctl.JobRequest("default", "cj", "now"), "u1", T0)
    assert job_obj["metadata"]["annotations"][cronctl.INSTANTIATE] == "manual"
    assert job_obj["metadata"]["ownerReferences"][0]["uid"] == "cj-uid" and event.reason == "SuccessfulCreate"


def test_a_job_of_the_same_name_not_owned_is_left_alone() -> None:
    stranger = active_job(f"cj-{int(T0 + 3600) // 60}")
    stranger["metadata"]["ownerReferences"] = []
    res = run(cronjob(), T0 + 3600 + 1, [stranger])
    assert not res.create and "lastScheduleTime" not in res.status


def test_exit_unknown_after_a_gitship_restart_is_not_a_failure() -> None:
    p = owned_pod("a", "Failed", T0, code=137)
    p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "ContainerStatusUnknown"
    res = jobctl.sync_job(job(backoffLimit=0), [p], T0 + 1, new_pod())
    assert res.status["failed"] == 0 and len(res.create) == 1  # replaced at once, the Job not failed
    assert not ju.has_condition({"status": res.status}, "FailureTarget")
