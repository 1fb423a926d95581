"""The CronJob controller as a pure function (kubernetes/kubernetes pkg/controller/cronjob
cronjob_controllerv2.go syncCronJob and cleanupFinishedJobs; utils.go mostRecentScheduleTime,
nextScheduleTime, nextScheduleTimeDuration, getJobFromTemplate2).

``sync_cronjob(cj, jobs, now, new_uid)`` takes one CronJob, every Job of its namespace and the
clock and returns a ``CronResult``: Jobs to create and to delete, the new status, events and the
seconds until the next schedule time (the pass asks to be woken then).

* The Job of scheduled time T is named ``<cronjob>-<T in minutes since the epoch>``, so a restart
  never makes a second Job for the same time: a Job of that name existing is enough.
* After a gap (gitship was down), only the most recent missed time runs, once, and only when it is
  inside ``startingDeadlineSeconds`` (if set); more than 100 missed times since the last one also
  bring the Warning TooManyMissedTimes. Never a burst.
* concurrencyPolicy: Allow runs Jobs side by side; Forbid skips a time while a Job is active
  (event JobAlreadyActive); Replace deletes the active Jobs and starts the new one.
* Finished Jobs beyond successfulJobsHistoryLimit (3) / failedJobsHistoryLimit (1) go, oldest first.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from reconciler.controllers import cron
from reconciler.controllers import job_util as ju
from reconciler.controllers.podutil import EVENT_NORMAL, EVENT_WARNING, Event, controller_ref, owner_ref, to_rfc3339
from reconciler.controllers.podutil import from_rfc3339
from reconciler.types import Obj

KIND = "CronJob"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
INSTANTIATE = "cronjob.kubernetes.io/instantiate"
TOO_MANY_MISSED = 100
NEXT_SCHEDULE_DELTA = 0.1  # cronjob_controllerv2.go nextScheduleDelta
RFC1123Z = "%a, %d %b %Y %H:%M:%S %z"
REPORTED = "cronjob.gitship.io/reported"
"""The schedule time whose skip (a missed deadline, Forbid, too many missed times) was reported:
Kubernetes' controller looks once per schedule time, gitship's pass every second, so each warning
is recorded once per schedule time. gitship's own annotation (git does not manage it)."""


@dataclass
class CronResult:
    create: list[Obj] = field(default_factory=list)  # new Jobs
    delete: list[str] = field(default_factory=list)  # names of Jobs to delete (with their pods)
    status: Obj = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    reported: list[str] = field(default_factory=list)  # the keys of the REPORTED annotation this pass

    def report(self, cj: Obj, key: str, event: Event) -> None:
        """``event`` once per ``key`` (a schedule time and what was skipped): not again while the
        CronJob's REPORTED annotation lists the key."""
        if key not in reported_keys(cj) and key not in self.reported:
            self.events.append(event)
        if key not in self.reported:
            self.reported.append(key)


def reported_keys(cj: Obj) -> list[str]:
    raw = (cj["metadata"].get("annotations") or {}).get(REPORTED) or ""
    return [k for k in str(raw).split(";") if k]


@dataclass(frozen=True)
class JobRequest:
    """`gitship create job NAME --from=cronjob/CRONJOB`: one Job made from the CronJob now; or
    (``delete``) `gitship delete job NAME` of a Job git does not declare (a CronJob's)."""

    namespace: str
    cronjob: str
    name: str
    delete: bool = False


def _event(cj: Obj, reason: str, message: str, type_: str = EVENT_NORMAL) -> Event:
    m = cj["metadata"]
    return Event(type_, reason, message, KIND, m.get("namespace", "default"), m["name"])


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, cron.UTC)


def schedule_of(cj: Obj) -> cron.Schedule:
    """The CronJob's schedule in its time zone (CronError when either does not parse)."""
    spec = cj.get("spec") or {}
    tz: tzinfo = cron.UTC if spec.get("timeZone") is None else cron.load_zone(str(spec["timeZone"]))
    return cron.parse(str(spec.get("schedule") or ""), tz)


def most_recent_schedule_time(
    cj: Obj, now: float, sched: cron.Schedule, with_deadline: bool
) -> tuple[float, float | None, int]:
    """utils.go mostRecentScheduleTime: (the earliest time looked from, the most recent schedule
    time not after ``now`` or None, how many were missed: 0 none, 1 a few, 2 more than 100)."""
    status, spec = cj.get("status") or {}, cj.get("spec") or {}
    earliest = from_rfc3339(status.get("lastScheduleTime") or cj["metadata"]["creationTimestamp"])
    if with_deadline and spec.get("startingDeadlineSeconds") is not None:
        earliest = max(earliest, now - int(spec["startingDeadlineSeconds"]))
    t1 = sched.next(_dt(earliest))
    if t1 is None or now < t1.timestamp():
        return earliest, None, 0
    t2 = sched.next(t1)
    if t2 is None or now < t2.timestamp():
        return earliest, t1.timestamp(), 0
    between = round((t2 - t1).total_seconds())
    if between < 1:
        return earliest, None, 0
    missed = int((now - t1.timestamp()) // between) + 1
    most_recent: datetime | None = None
    t: datetime | None = sched.next(t1 + timedelta(seconds=(missed - 2) * between))
    while t is not None and t.timestamp() <= now:
        most_recent = t
        t = sched.next(t)
    kind = 2 if missed > TOO_MANY_MISSED else (1 if missed > 1 else 0)
    return earliest, most_recent.timestamp() if most_recent is not None else None, kind


def next_schedule_delay(cj: Obj, now: float, sched: cron.Schedule) -> float | None:
    """utils.go nextScheduleTimeDuration: seconds until the next schedule time (plus 100 ms)."""
    earliest, recent, missed = most_recent_schedule_time(cj, now, sched, False)
    base = recent if recent is not None else (earliest if missed == 0 else now)
    nxt = sched.next(_dt(base))
    return None if nxt is None else nxt.timestamp() + NEXT_SCHEDULE_DELTA - now


def job_name(cj: Obj, scheduled: float) -> str:
    return f"{cj['metadata']['name']}-{int(scheduled) // 60}"


def job_from_template(cj: Obj, name: str, uid: str, now: float, scheduled: float | None) -> Obj:
    """getJobFromTemplate2: the jobTemplate's labels, annotations and spec, owned by the CronJob;
    ``scheduled`` None: a manual run (`create job --from=cronjob/...`)."""
    tmpl = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = tmpl.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    if scheduled is None:
        annotations[INSTANTIATE] = "manual"
    else:
        spec = cj.get("spec") or {}
        tz = cron.UTC if spec.get("timeZone") is None else cron.load_zone(str(spec["timeZone"]))
        annotations[SCHEDULED_TIMESTAMP] = _dt(scheduled).astimezone(tz).isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cj["metadata"].get("namespace", "default"),
            "uid": uid,
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_ref({"apiVersion": "batch/v1", **cj, "kind": KIND})],
            "creationTimestamp": to_rfc3339(now),
            "generation": 1,
        },
        "spec": copy.deepcopy(tmpl.get("spec") or {}),
        "status": {},
    }


def _ref(job: Obj) -> Obj:
    m = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": m["name"],
        "namespace": m.get("namespace", "default"),
        "uid": m.get("uid"),
    }


def _owned(cj: Obj, jobs: list[Obj]) -> list[Obj]:
    uid = cj["metadata"].get("uid")
    return [j for j in jobs if (ref := controller_ref(j)) is not None and ref.get("uid") == uid]


def _sync_active(cj: Obj, owned: list[Obj], status: Obj, res: CronResult) -> None:
    """The active list against the Jobs that exist: finished ones leave it (lastSuccessfulTime for
    a Complete one), unknown running ones join it, vanished ones are dropped."""
    active = list(status.get("active") or [])
    by_uid = {j["metadata"].get("uid"): j for j in owned}
    listed = {a.get("uid") for a in active}
    for job in owned:
        uid = job["metadata"].get("uid")
        if uid not in listed and not ju.is_finished(job):
            if (job["metadata"].get("annotations") or {}).get(
                INSTANTIATE
            ) != "manual":  # `create job --from`: its own event
                res.events.append(
                    _event(
                        cj,
                        "UnexpectedJob",
                        f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}",
                        EVENT_WARNING,
                    )
                )
            active.append(_ref(job))  # once: Kubernetes' controller leaves it out and warns on every sync
    kept = []
    for ref in active:
        found = by_uid.get(ref.get("uid"))
        if found is None:
            res.events.append(_event(cj, "MissingJob", f"Active job went missing: {ref.get('name')}"))
            continue
        if ju.is_finished(found):
            cond = ju.COND_COMPLETE if ju.has_condition(found, ju.COND_COMPLETE) else ju.COND_FAILED
            res.events.append(_event(cj, "SawCompletedJob", f"Saw completed job: {ref.get('name')}, condition: {cond}"))
            if cond == ju.COND_COMPLETE:
                done = (found.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done and (not last or from_rfc3339(done) > from_rfc3339(last)):
                    status["lastSuccessfulTime"] = done
            continue
        kept.append(ref)
    if kept:
        status["active"] = kept
    else:
        status.pop("active", None)


def _cleanup(cj: Obj, owned: list[Obj], deleting: set[str], res: CronResult) -> None:
    """cleanupFinishedJobs: the oldest finished Jobs beyond the history limits go."""
    spec = cj.get("spec") or {}
    for cond, key, default in (
        (ju.COND_COMPLETE, "successfulJobsHistoryLimit", 3),
        (ju.COND_FAILED, "failedJobsHistoryLimit", 1),
    ):
        limit = spec.get(key, default)
        if limit is None:
            continue
        done = [j for j in owned if ju.has_condition(j, cond) and j["metadata"]["name"] not in deleting]
        done.sort(key=lambda j: ((j.get("status") or {}).get("startTime") or "", j["metadata"]["name"]))
        for job in done[: max(0, len(done) - int(limit))]:
            res.delete.append(job["metadata"]["name"])
            deleting.add(job["metadata"]["name"])
            res.events.append(_event(cj, "SuccessfulDelete", f"Deleted job {job['metadata']['name']}"))


def sync_cronjob(cj: Obj, jobs: list[Obj], now: float, new_uid: Callable[[], str]) -> CronResult:
    """One pass of the CronJob controller over ``cj`` (``jobs``: every Job of its namespace)."""
    res = CronResult()
    status = dict(cj.get("status") or {})
    owned = _owned(cj, jobs)
    _sync_active(cj, owned, status, res)
    res.status = status
    deleting: set[str] = set()
    if cj["metadata"].get("deletionTimestamp"):
        return res
    try:
        sched = schedule_of(cj)
    except cron.CronError as e:
        reason = "UnknownTimeZone" if "time zone" in str(e) else "UnparseableSchedule"
        res.report(cj, reason, _event(cj, reason, str(e), EVENT_WARNING))
        return res
    spec = cj.get("spec") or {}
    _schedule(cj, {**cj, "status": status}, jobs, sched, now, new_uid, res, deleting)
    _cleanup(cj, owned, deleting, res)
    if spec.get("suspend"):
        res.requeue_after = None
    return res


def _schedule(
    cj: Obj,
    view: Obj,
    jobs: list[Obj],
    sched: cron.Schedule,
    now: float,
    new_uid: Callable[[], str],
    res: CronResult,
    deleting: set[str],
) -> None:
    spec, status = cj.get("spec") or {}, res.status
    if spec.get("suspend"):
        return
    _, scheduled, missed = most_recent_schedule_time(view, now, sched, True)
    if scheduled is not None and missed == 2:
        res.report(
            cj,
            f"{to_rfc3339(scheduled)} missed",
            _event(
                cj,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                EVENT_WARNING,
            ),
        )
    res.requeue_after = None
    if scheduled is not None:
        _start(cj, jobs, scheduled, now, new_uid, res, deleting)
    after = next_schedule_delay({**cj, "status": status}, now, sched)
    res.requeue_after = after if after is None else max(after, 0.0)


def _start(
    cj: Obj,
    jobs: list[Obj],
    scheduled: float,
    now: float,
    new_uid: Callable[[], str],
    res: CronResult,
    deleting: set[str],
) -> None:
    spec, status = cj.get("spec") or {}, res.status
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and scheduled + int(deadline) < now:
        res.report(
            cj,
            f"{to_rfc3339(scheduled)} MissSchedule",
            _event(
                cj,
                "MissSchedule",
                f"Missed scheduled time to start a job: {_dt(scheduled).strftime(RFC1123Z)}",
                EVENT_WARNING,
            ),
        )
        return
    name = job_name(cj, scheduled)
    last = status.get("lastScheduleTime")
    if any(a.get("name") == name for a in status.get("active") or []) or (last and from_rfc3339(last) == scheduled):
        return
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and status.get("active"):
        res.report(
            cj,
            f"{to_rfc3339(scheduled)} JobAlreadyActive",
            _event(
                cj,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            ),
        )
        return
    if policy == "Replace":
        for ref in status.get("active") or []:
            res.delete.append(str(ref.get("name")))
            deleting.add(str(ref.get("name")))
            res.events.append(_event(cj, "SuccessfulDelete", f"Deleted job {ref.get('name')}"))
        status.pop("active", None)
    existing = next((j for j in jobs if j["metadata"]["name"] == name), None)
    if existing is not None and (controller_ref(existing) or {}).get("uid") != cj["metadata"].get("uid"):
        return  # a Job of that name that is not this CronJob's: someone else's (as Kubernetes leaves it)
    if existing is None:
        job = job_from_template(cj, name, new_uid(), now, scheduled)
        res.create.append(job)
        res.events.append(_event(cj, "SuccessfulCreate", f"Created job {name}"))
    else:
        job = existing
    if not ju.is_finished(job):
        status["active"] = [*(status.get("active") or []), _ref(job)]
    status["lastScheduleTime"] = to_rfc3339(scheduled)


def manual_job(cj: Obj, request: JobRequest, uid: str, now: float) -> tuple[Obj, Event]:
    """`create job NAME --from=cronjob/X`: the Job (annotated instantiate: manual) and its event."""
    job = job_from_template(cj, request.name, uid, now, None)
    return job, _event(cj, "SuccessfulCreate", f"Created job {request.name} (manual run, gitship create job)")
