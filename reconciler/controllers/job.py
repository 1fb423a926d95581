"""The Job controller as a pure function (kubernetes/kubernetes pkg/controller/job/job_controller.go
syncJob, manageJob, trackJobStatusAndRemoveFinalizers; ttlafterfinished/ttlafterfinished_controller.go).

``sync_job(job, pods, now, new_pod)`` takes one Job, every pod of its namespace and the clock, and
returns a ``JobResult``: pods to create and to delete, pods whose end was just counted (their
tracking finalizer removed), the new status, events, when to be woken, and whether the Job's
``ttlSecondsAfterFinished`` has run out (the Job and its pods go).

The rules, as Kubernetes has them:

* A pod's end is counted once: a pod holds the ``batch.kubernetes.io/job-tracking`` finalizer until
  its success or failure is in ``status.succeeded`` / ``status.failed``. A pod deleted before it
  succeeded counts as failed (isPodFailed, podReplacementPolicy TerminatingOrFailed).
* Failures: with restartPolicy Never, ``failed > backoffLimit`` fails the Job; with OnFailure, the
  container restarts of its running pods reaching backoffLimit do (pastBackoffLimitOnFailure). Both
  with reason BackoffLimitExceeded. A failed pod is replaced after the back-off (10 s, doubled per
  failure since the last success, capped at six minutes).
* ``activeDeadlineSeconds`` after ``startTime``: DeadlineExceeded. ``podFailurePolicy``: a FailJob
  rule fails the Job at once (reason PodFailurePolicy), Ignore does not count the failure, Count
  counts it as usual.
* A failing Job first gets FailureTarget (its running pods are killed and counted as failed), then
  Failed once no pod of it runs; a succeeding one SuccessCriteriaMet, then Complete with
  ``completionTime``.
* ``suspend``: active pods are deleted, condition Suspended; on resume ``startTime`` starts again.
* NonIndexed: ``min(parallelism, completions - succeeded)`` pods run; without completions (a work
  queue) the Job completes when a pod succeeded and none runs. Indexed: one pod per index
  ``0..completions-1`` named ``<job>-<index>-<random>``, with the index in an annotation, a label and
  ``JOB_COMPLETION_INDEX``; ``status.completedIndexes`` lists the done ones.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.controllers import job_util as ju
from reconciler.controllers.podutil import (
    EVENT_NORMAL,
    EVENT_WARNING,
    Event,
    controller_ref,
    deletion_order,
    from_rfc3339,
    generated_name,
    is_pod_ready,
    owner_ref,
    to_rfc3339,
)
from reconciler.types import Obj

KIND = "Job"
REASON_BACKOFF = "BackoffLimitExceeded"
REASON_DEADLINE = "DeadlineExceeded"
REASON_POLICY = "PodFailurePolicy"
MESSAGE_BACKOFF = "Job has reached the specified backoff limit"
MESSAGE_DEADLINE = "Job was active longer than specified deadline"
NewPod = Callable[[], tuple[str, str]]


@dataclass
class JobResult:
    create: list[Obj] = field(default_factory=list)  # new pods
    delete: list[str] = field(default_factory=list)  # uids of pods to terminate
    counted: list[Obj] = field(default_factory=list)  # pods with the tracking finalizer removed
    status: Obj = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    expired: bool = False  # ttlSecondsAfterFinished ran out: delete the Job (and its pods)

    def requeue(self, after: float) -> None:
        after = max(after, 0.0)
        self.requeue_after = after if self.requeue_after is None else min(self.requeue_after, after)


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _spec(job: Obj) -> Obj:
    return job.get("spec") or {}


def _event(job: Obj, reason: str, message: str, type_: str = EVENT_NORMAL) -> Event:
    m = job["metadata"]
    return Event(type_, reason, message, KIND, m.get("namespace", "default"), m["name"])


def is_indexed(job: Obj) -> bool:
    return _spec(job).get("completionMode") == "Indexed"


def owned_pods(job: Obj, pods: list[Obj]) -> list[Obj]:
    uid = job["metadata"].get("uid")
    return [p for p in pods if (ref := controller_ref(p)) is not None and ref.get("uid") == uid]


def _uncounted(pod: Obj) -> bool:
    return ju.TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def _without_finalizer(pod: Obj) -> Obj:
    p = copy.deepcopy(pod)
    p["metadata"]["finalizers"] = [f for f in p["metadata"].get("finalizers") or [] if f != ju.TRACKING_FINALIZER]
    if not p["metadata"]["finalizers"]:
        del p["metadata"]["finalizers"]
    return p


def _drop(pod: Obj, res: JobResult) -> None:
    """A pod the controller deletes because it is not needed (too many, the Job is done or
    suspended): its end is not a failure, so it leaves the count without being counted."""
    res.delete.append(pod["metadata"]["uid"])
    if _uncounted(pod):
        res.counted.append(_without_finalizer(pod))


def ttl_check(job: Obj, now: float, res: JobResult) -> None:
    """ttlafterfinished_controller.go: a finished Job goes ``ttlSecondsAfterFinished`` after it finished."""
    ttl = _spec(job).get("ttlSecondsAfterFinished")
    finished = ju.finish_time(job)
    if ttl is None or finished is None:
        return
    left = finished + int(ttl) - now
    if left <= 0:
        res.expired = True
    else:
        res.requeue(left)


@dataclass
class _Counts:
    """What the pods say, after counting the newly finished ones."""

    active: list[Obj]
    succeeded: int
    failed: int
    ready: int
    fail_job: str | None  # the message of a FailJob rule a new failure matched
    finished: list[tuple[float, bool]]  # (finish time, failed) of counted pods, for the back-off
    completed: set[int]  # Indexed: succeeded indexes
    terminating: int


def _count(job: Obj, owned: list[Obj], res: JobResult) -> _Counts:
    status = _spec_status(job)
    succeeded, failed = int(status.get("succeeded") or 0), int(status.get("failed") or 0)
    completions = int(_spec(job).get("completions") or 0)
    completed = ju.parse_indexes(status.get("completedIndexes"), completions) if is_indexed(job) else set()
    fail_job: str | None = None
    finished: list[tuple[float, bool]] = []
    active: list[Obj] = []
    terminating = 0
    for pod in owned:
        ok, bad = ju.is_succeeded(pod), ju.is_failed(pod)
        if not ok and not bad:
            active.append(pod)
            continue
        if pod["metadata"].get("deletionTimestamp") and not ok and ju.phase(pod) != "Failed":
            terminating += 1
        if ok and is_indexed(job):
            index = ju.pod_index(pod)
            if index is not None and index < completions:
                completed.add(index)
        match = ju.match_pod_failure_policy(job, pod) if bad else None
        if (match is None or match.count) and ju.phase(pod) in ("Succeeded", "Failed"):
            finished.append((ju.pod_finish_time(pod), bad))  # the back-off's input: pods that ended
        if not _uncounted(pod):
            continue
        res.counted.append(_without_finalizer(pod))
        if ok:
            succeeded += 1
        elif match is not None and match.count:
            failed += 1
            if match.action == "FailJob" and fail_job is None:
                fail_job = match.message
    if is_indexed(job):
        succeeded = len(completed)
    ready = sum(1 for p in active if is_pod_ready(p))
    return _Counts(active, succeeded, failed, ready, fail_job, finished, completed, terminating)


def _spec_status(job: Obj) -> Obj:
    return dict(job.get("status") or {})


def _failure(job: Obj, c: _Counts, now: float, res: JobResult) -> tuple[str, str] | None:
    """(reason, message) when the Job has failed; the wake-up for its deadline otherwise."""
    spec = _spec(job)
    existing = ju.condition(job, ju.COND_FAILURE_TARGET)
    if existing is not None and existing.get("status") == "True":
        return str(existing.get("reason")), str(existing.get("message"))
    if c.fail_job is not None:
        return REASON_POLICY, c.fail_job
    limit = _int(spec.get("backoffLimit"), 6)
    restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if restart == "OnFailure":
        total = sum(ju.restarts(p) for p in c.active if ju.phase(p) in ("Pending", "Running"))
        if (limit == 0 and total > 0) or (limit > 0 and total >= limit):
            return REASON_BACKOFF, MESSAGE_BACKOFF
    if c.failed > limit:
        return REASON_BACKOFF, MESSAGE_BACKOFF
    deadline = spec.get("activeDeadlineSeconds")
    started = (job.get("status") or {}).get("startTime")
    if deadline is not None and started and not spec.get("suspend"):
        left = from_rfc3339(started) + int(deadline) - now
        if left <= 0:
            return REASON_DEADLINE, MESSAGE_DEADLINE
        res.requeue(left)
    return None


def sync_job(job: Obj, pods: list[Obj], now: float, new_pod: NewPod) -> JobResult:
    """One pass of the Job controller over ``job`` (``pods``: every pod of its namespace)."""
    res = JobResult()
    status = _spec_status(job)
    owned = owned_pods(job, pods)
    if ju.is_finished(job):
        c = _count(job, owned, res)
        res.delete = [p["metadata"]["uid"] for p in c.active]
        res.status = status
        ttl_check(job, now, res)
        return res
    c = _count(job, owned, res)
    spec = _spec(job)
    conds: list[Obj] = list(status.get("conditions") or [])
    if not spec.get("suspend") and not status.get("startTime"):
        status["startTime"] = to_rfc3339(now)
    failure = _failure({**job, "status": status}, c, now, res)
    if failure is not None:
        _fail(job, c, failure, conds, now, res)
    elif spec.get("suspend"):
        _suspend(job, c, conds, now, res)
    else:
        if ju.has_condition(job, ju.COND_SUSPENDED):
            conds = ju.set_condition(conds, ju.COND_SUSPENDED, "False", "JobResumed", "Job resumed", now)
            res.events.append(_event(job, "Resumed", "Job resumed"))
            status["startTime"] = to_rfc3339(now)
        conds = _run(job, c, conds, now, new_pod, res)
    deleted = set(res.delete)
    status.update(
        active=sum(1 for p in c.active if p["metadata"]["uid"] not in deleted) + len(res.create),
        succeeded=c.succeeded,
        failed=c.failed,
        ready=c.ready,
        terminating=c.terminating,
    )
    if is_indexed(job):
        status["completedIndexes"] = ju.format_indexes(c.completed)
    if conds:
        status["conditions"] = conds
    if ju.has_condition({"status": status}, ju.COND_COMPLETE) and not status.get("completionTime"):
        status["completionTime"] = to_rfc3339(now)
    res.status = status
    if ju.is_finished({"status": status}):
        ttl_check({**job, "status": status}, now, res)
    return res


def _fail(job: Obj, c: _Counts, failure: tuple[str, str], conds: list[Obj], now: float, res: JobResult) -> None:
    reason, message = failure
    if not ju.has_condition({"status": {"conditions": conds}}, ju.COND_FAILURE_TARGET):
        conds[:] = ju.set_condition(conds, ju.COND_FAILURE_TARGET, "True", reason, message, now)
        res.events.append(_event(job, reason, message, EVENT_WARNING))
    for pod in c.active:  # killed: each counts as failed now (its finalizer is removed with the count)
        res.delete.append(pod["metadata"]["uid"])
        if _uncounted(pod):
            res.counted.append(_without_finalizer(pod))
            c.failed += 1
    c.terminating += len(c.active)
    if not c.active and not c.terminating:
        conds[:] = ju.set_condition(conds, ju.COND_FAILED, "True", reason, message, now)


def _suspend(job: Obj, c: _Counts, conds: list[Obj], now: float, res: JobResult) -> None:
    for pod in c.active:  # deleted, not counted as failed
        _drop(pod, res)
    c.terminating += len(c.active)
    if not ju.has_condition({"status": {"conditions": conds}}, ju.COND_SUSPENDED):
        conds[:] = ju.set_condition(conds, ju.COND_SUSPENDED, "True", "JobSuspended", "Job suspended", now)
        res.events.append(_event(job, "Suspended", "Job suspended"))


def _complete(job: Obj, c: _Counts) -> bool:
    completions = _spec(job).get("completions")
    if completions is None:
        return c.succeeded > 0 and not c.active
    return c.succeeded >= int(completions)


def _run(job: Obj, c: _Counts, conds: list[Obj], now: float, new_pod: NewPod, res: JobResult) -> list[Obj]:
    if _complete(job, c) or ju.has_condition({"status": {"conditions": conds}}, ju.COND_SUCCESS_CRITERIA_MET):
        if not ju.has_condition({"status": {"conditions": conds}}, ju.COND_SUCCESS_CRITERIA_MET):
            conds = ju.set_condition(
                conds,
                ju.COND_SUCCESS_CRITERIA_MET,
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            )
        for pod in c.active:
            _drop(pod, res)
        if not c.active and not c.terminating:
            conds = ju.set_condition(
                conds, ju.COND_COMPLETE, "True", "CompletionsReached", "Reached expected number of succeeded pods", now
            )
            res.events.append(_event(job, "Completed", "Job completed"))
        return conds
    if is_indexed(job):
        _manage_indexed(job, c, now, new_pod, res)
    else:
        _manage(job, c, now, new_pod, res)
    return conds


def _want_active(job: Obj, c: _Counts) -> int:
    spec = _spec(job)
    parallelism = _int(spec.get("parallelism"), 1)
    completions = spec.get("completions")
    if completions is None:
        return len(c.active) if c.succeeded > 0 else parallelism
    return max(0, min(parallelism, int(completions) - c.succeeded))


def _create(job: Obj, count: int, c: _Counts, now: float, res: JobResult) -> bool:
    """Whether ``count`` pods may be made now; the wake-up when the back-off holds them."""
    if count <= 0:
        return False
    wait = ju.backoff_remaining(c.finished, now)
    if wait > 0:
        res.requeue(wait)
        return False
    return True


def _manage(job: Obj, c: _Counts, now: float, new_pod: NewPod, res: JobResult) -> None:
    want = _want_active(job, c)
    diff = len(c.active) - want
    if diff > 0:
        for pod in deletion_order(c.active, now)[:diff]:
            _drop(pod, res)
        return
    if _create(job, -diff, c, now, res):
        for _ in range(-diff):
            suffix, uid = new_pod()
            pod = pod_for_job(job, suffix, uid, now, None)
            res.create.append(pod)
            res.events.append(_event(job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"))


def _manage_indexed(job: Obj, c: _Counts, now: float, new_pod: NewPod, res: JobResult) -> None:
    completions = int(_spec(job).get("completions") or 0)
    by_index: dict[int, list[Obj]] = {}
    for pod in c.active:
        index = ju.pod_index(pod)
        if index is None or index >= completions or index in c.completed:
            _drop(pod, res)  # no index, out of range, or done already
            continue
        by_index.setdefault(index, []).append(pod)
    for group in by_index.values():  # one pod per index: the extras go
        for pod in deletion_order(group, now)[1:]:
            _drop(pod, res)
    running = len(by_index)
    want = _want_active(job, c)
    if running > want:
        for index in sorted(by_index, reverse=True)[: running - want]:
            _drop(by_index[index][0], res)
        return
    missing = [i for i in range(completions) if i not in c.completed and i not in by_index]
    todo = missing[: want - running]
    if _create(job, len(todo), c, now, res):
        for index in todo:
            suffix, uid = new_pod()
            pod = pod_for_job(job, suffix, uid, now, index)
            res.create.append(pod)
            res.events.append(_event(job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"))


def pod_for_job(job: Obj, suffix: str, uid: str, now: float, index: int | None) -> Obj:
    """A new pod of ``job`` from its template: ``<job>-<random>`` (Indexed: ``<job>-<index>-<random>``,
    the index in an annotation, a label, ``JOB_COMPLETION_INDEX`` and the hostname ``<job>-<index>``)."""
    meta = job["metadata"]
    template = _spec(job).get("template") or {}
    tmeta = template.get("metadata") or {}
    prefix = f"{meta['name']}-" if index is None else f"{meta['name']}-{index}-"
    labels: dict[str, Any] = dict(tmeta.get("labels") or {})
    annotations: dict[str, Any] = dict(tmeta.get("annotations") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        labels[ju.COMPLETION_INDEX] = str(index)
        annotations[ju.COMPLETION_INDEX] = str(index)
        env_var = {
            "name": ju.COMPLETION_INDEX_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{ju.COMPLETION_INDEX}']"}},
        }
        for key in ("initContainers", "containers"):
            for cont in spec.get(key) or []:
                if not any(e.get("name") == ju.COMPLETION_INDEX_ENV for e in cont.get("env") or []):
                    cont["env"] = [*(cont.get("env") or []), env_var]
        spec.setdefault("hostname", f"{meta['name']}-{index}")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": generated_name(prefix, suffix),
            "generateName": prefix,
            "namespace": meta.get("namespace", "default"),
            "uid": uid,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref({"apiVersion": "batch/v1", **job, "kind": KIND})],
            "finalizers": [ju.TRACKING_FINALIZER],
            "creationTimestamp": to_rfc3339(now),
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def generate_selector(job: Obj) -> Obj | None:
    """generateSelector (pkg/registry/batch/job/strategy.go) for a live Job without
    ``manualSelector``: the template's labels gain the controller uid and the job name, the
    selector selects the uid. None when nothing changes."""
    spec = _spec(job)
    if spec.get("manualSelector") or not job["metadata"].get("uid"):
        return None
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    template = dict(spec.get("template") or {})
    tmeta = dict(template.get("metadata") or {})
    labels = dict(tmeta.get("labels") or {})
    for k, v in (
        (ju.LEGACY_CONTROLLER_UID, uid),
        (ju.CONTROLLER_UID, uid),
        (ju.LEGACY_JOB_NAME, name),
        (ju.JOB_NAME, name),
    ):
        labels.setdefault(k, v)
    selector = dict(spec.get("selector") or {})
    match = dict(selector.get("matchLabels") or {})
    match.setdefault(ju.CONTROLLER_UID, uid)
    selector["matchLabels"] = match
    job_labels = job["metadata"].get("labels") or {}
    if labels == (tmeta.get("labels") or {}) and selector == spec.get("selector"):
        return None
    new = copy.deepcopy(job)
    new["spec"]["selector"] = selector
    new["spec"]["template"] = {**template, "metadata": {**tmeta, "labels": labels}}
    if not job_labels:
        # SetDefaults_Job runs again when the Job is read: a Job without labels (its template had
        # none either) shows its template's, the generated ones
        new["metadata"]["labels"] = dict(labels)
    return new


GENERATED_LABELS = (ju.LEGACY_CONTROLLER_UID, ju.CONTROLLER_UID, ju.LEGACY_JOB_NAME, ju.JOB_NAME)


def without_generated(job: Obj) -> Obj:
    """A Job's spec as git wrote it: the generated selector and template labels taken out (when
    ``manualSelector`` is not set), for comparing a live Job with git's."""
    spec = _spec(job)
    if spec.get("manualSelector"):
        return job
    new = copy.deepcopy(job)
    nspec = new.get("spec") or {}
    sel = nspec.get("selector") or {}
    match = {k: v for k, v in (sel.get("matchLabels") or {}).items() if k != ju.CONTROLLER_UID}
    rest = {k: v for k, v in sel.items() if k != "matchLabels"}
    if match or rest:
        nspec["selector"] = {**rest, **({"matchLabels": match} if match else {})}
    else:
        nspec.pop("selector", None)
    for meta in ((nspec.get("template") or {}).get("metadata"), new["metadata"]):
        if isinstance(meta, dict) and isinstance(meta.get("labels"), dict):
            labels = {k: v for k, v in meta["labels"].items() if k not in GENERATED_LABELS}
            if labels:
                meta["labels"] = labels
            else:
                del meta["labels"]
    return new
