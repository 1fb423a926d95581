"""What the Job controller reads off pods and Jobs: conditions, finish times, the back-off, the
pod failure policy and completion indexes (pure; kubernetes/kubernetes pkg/controller/job
backoff_utils.go, pod_failure_policy.go, indexed_job_utils.go, utils.go).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.controllers.podutil import PHASE_FAILED, PHASE_SUCCEEDED, from_rfc3339, to_rfc3339
from reconciler.types import Obj

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
"""The annotation and label of an Indexed Job's pod: its index."""
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
"""Held by a Job's pod until its end is counted in the Job's status."""
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID = "controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME = "job-name"

DEFAULT_BACKOFF = 10.0  # job_controller.go DefaultJobPodFailureBackOff
MAX_BACKOFF = 360.0  # the documented cap of the back-off (six minutes)

COND_COMPLETE = "Complete"
COND_FAILED = "Failed"
COND_SUSPENDED = "Suspended"
COND_FAILURE_TARGET = "FailureTarget"
COND_SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"


def condition(job: Obj, type_: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def has_condition(job: Obj, type_: str) -> bool:
    c = condition(job, type_)
    return c is not None and c.get("status") == "True"


def is_finished(job: Obj) -> bool:
    """A Job with its Complete or Failed condition True (it never runs again)."""
    return has_condition(job, COND_COMPLETE) or has_condition(job, COND_FAILED)


def finish_time(job: Obj) -> float | None:
    """When a finished Job finished (its final condition's lastTransitionTime)."""
    for t in (COND_COMPLETE, COND_FAILED):
        c = condition(job, t)
        if c is not None and c.get("status") == "True" and c.get("lastTransitionTime"):
            return from_rfc3339(c["lastTransitionTime"])
    return None


def set_condition(conds: list[Obj], type_: str, status: str, reason: str, message: str, now: float) -> list[Obj]:
    """The conditions with ``type_`` set (its lastTransitionTime kept unless the status changes)."""
    out = [dict(c) for c in conds]
    for c in out:
        if c.get("type") == type_:
            if c.get("status") != status:
                c["lastTransitionTime"] = to_rfc3339(now)
            c.update(status=status, reason=reason, message=message, lastProbeTime=to_rfc3339(now))
            return out
    stamp = to_rfc3339(now)
    out.append(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
        }
    )
    return out


# -- pods ------------------------------------------------------------------------------------


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pod_finish_time(pod: Obj) -> float:
    """When a finished pod ended: its containers' last finishedAt (else its start, else creation)."""
    st = pod.get("status") or {}
    times = [
        from_rfc3339(term["finishedAt"])
        for c in st.get("containerStatuses") or []
        if (term := (c.get("state") or {}).get("terminated")) and term.get("finishedAt")
    ]
    if times:
        return max(times)
    stamp = st.get("startTime") or pod["metadata"].get("creationTimestamp")
    return from_rfc3339(stamp) if stamp else 0.0


def restarts(pod: Obj) -> int:
    st = pod.get("status") or {}
    return sum(
        int(c.get("restartCount") or 0) for k in ("containerStatuses", "initContainerStatuses") for c in st.get(k) or []
    )


def backoff_delay(failures: int) -> float:
    """backoff_utils.go getRemainingTimeForFailuresCount: 10 s, doubled per failure after the
    first, capped."""
    if failures <= 0:
        return 0.0
    delay = DEFAULT_BACKOFF
    for _ in range(1, failures):
        delay *= 2
        if delay >= MAX_BACKOFF:
            return MAX_BACKOFF
    return delay


def backoff_remaining(finished: list[tuple[float, bool]], now: float) -> float:
    """Seconds before a failed pod may be replaced: ``finished`` = (finish time, failed) of the
    counted finished pods; the failures after the last success set the delay, from the last failure."""
    failures = 0
    last_failure: float | None = None
    for t, failed in sorted(finished):
        if failed:
            failures += 1
            last_failure = t
        else:
            failures, last_failure = 0, None
    if last_failure is None:
        return 0.0
    return max(0.0, backoff_delay(failures) - (now - last_failure))


# -- the pod failure policy (pod_failure_policy.go matchPodFailurePolicy) ----------------------


@dataclass(frozen=True)
class PolicyMatch:
    action: str | None  # "FailJob" | "Ignore" | "Count" | "FailIndex" | None (no rule matched)
    count: bool  # the failure counts toward backoffLimit
    message: str = ""


def _exit_code_matches(pod: Obj, req: Obj) -> tuple[str, int] | None:
    st = pod.get("status") or {}
    values = [int(v) for v in req.get("values") or []]
    for c in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        if req.get("containerName") and c.get("name") != req["containerName"]:
            continue
        term = (c.get("state") or {}).get("terminated") or {}
        code = term.get("exitCode")
        if code is None or int(code) == 0:
            continue
        hit = int(code) in values
        if hit if req.get("operator") == "In" else not hit:
            return str(c.get("name")), int(code)
    return None


def _condition_matches(pod: Obj, patterns: list[Any]) -> Obj | None:
    conds = (pod.get("status") or {}).get("conditions") or []
    for pat in patterns:
        for c in conds:
            if c.get("type") == pat.get("type") and c.get("status") == (pat.get("status") or "True"):
                return dict(pat)
    return None


UNKNOWN_EXIT = "ContainerStatusUnknown"
"""The reason of a container whose exit the runtime could not see (it was adopted after a gitship
restart, or ended while gitship was down): the workload's result is unknown, not a failure."""


def exit_unknown(pod: Obj) -> bool:
    st = pod.get("status") or {}
    return any(
        ((c.get("state") or {}).get("terminated") or {}).get("reason") == UNKNOWN_EXIT
        for k in ("initContainerStatuses", "containerStatuses")
        for c in st.get(k) or []
    )


def match_pod_failure_policy(job: Obj, pod: Obj) -> PolicyMatch:
    """The first rule of ``spec.podFailurePolicy`` a failed pod matches, and what it means. A pod
    whose exit gitship could not see (``exit_unknown``) is not counted, as an Ignore rule would have
    it: it is replaced at once, and a restart of gitship never fails a Job."""
    if exit_unknown(pod):
        return PolicyMatch("Ignore", False)
    policy = (job.get("spec") or {}).get("podFailurePolicy") or {}
    name = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
    for i, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        message = ""
        if rule.get("onExitCodes"):
            hit = _exit_code_matches(pod, rule["onExitCodes"])
            if hit is None:
                continue
            message = (
                f"Container {hit[0]} for pod {name} failed with exit code {hit[1]} matching {action} rule at index {i}"
            )
        elif rule.get("onPodConditions"):
            pat = _condition_matches(pod, rule["onPodConditions"])
            if pat is None:
                continue
            message = f"Pod {name} has condition {pat.get('type')} matching {action} rule at index {i}"
        else:
            continue
        if action == "Ignore":
            return PolicyMatch("Ignore", False)
        return PolicyMatch(action, True, message)
    return PolicyMatch(None, True)


# -- completion indexes (indexed_job_utils.go) ------------------------------------------------


def pod_index(pod: Obj) -> int | None:
    """An Indexed Job pod's completion index (annotation, else label), None when unreadable."""
    meta = pod.get("metadata") or {}
    for src in (meta.get("annotations") or {}, meta.get("labels") or {}):
        raw = src.get(COMPLETION_INDEX)
        if isinstance(raw, str) and raw.isdigit():
            return int(raw)
    return None


def parse_indexes(text: str | None, completions: int) -> set[int]:
    """``1,3-5,7`` as a set of indexes below ``completions`` (malformed parts skipped)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        low, _, high = part.partition("-")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            continue
        for i in range(int(low), int(high or low) + 1):
            if i < completions:
                out.add(i)
    return out


def format_indexes(indexes: set[int]) -> str:
    """A set of indexes as ``status.completedIndexes`` writes it: sorted intervals."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def is_succeeded(pod: Obj) -> bool:
    return phase(pod) == PHASE_SUCCEEDED


def is_failed(pod: Obj) -> bool:
    """Failed, or deleted before it succeeded (job_controller.go isPodFailed, the default
    podReplacementPolicy TerminatingOrFailed)."""
    return phase(pod) == PHASE_FAILED or (
        bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != PHASE_SUCCEEDED
    )
