"""kubectl's `get` columns and describe pages of Jobs and CronJobs (pure).

The columns are kubernetes/kubernetes pkg/printers/internalversion/printers.go printJob and
printCronJob: ``NAME STATUS COMPLETIONS DURATION AGE`` (wide: ``CONTAINERS IMAGES SELECTOR``) and
``NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE`` (wide: the same three). DURATION, AGE and LAST SCHEDULE are
apimachinery's ``duration.HumanDuration`` (reconciler/gofmt.py human_duration).
The describe sections follow kubectl's describe.go (JobDescriber, CronJobDescriber).
printers.py adds these tables and pages to its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .gofmt import human_duration
from .printers_kinds import selector_string
from .types import Obj

# the pod kernel is pure: RFC 3339 in objects
from runtime.kernel.timefmt import parse_rfc3339

Row = Callable[[Obj, float], list[Any]]


def _since(stamp: str | None, now: float) -> str:
    return human_duration(now - parse_rfc3339(stamp)) if stamp else "<unknown>"


def _has(obj: Obj, type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or []
    )


def job_status(job: Obj) -> str:
    """printJob's STATUS."""
    if _has(job, "Complete"):
        return "Complete"
    if _has(job, "Failed"):
        return "Failed"
    if job["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for t in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has(job, t):
            return t
    return "Running"


def job_completions(job: Obj) -> str:
    spec, st = job.get("spec") or {}, job.get("status") or {}
    done = int(st.get("succeeded") or 0)
    if spec.get("completions") is not None:
        return f"{done}/{spec['completions']}"
    parallelism = spec.get("parallelism")
    if parallelism is not None and int(parallelism) > 1:
        return f"{done}/1 of {parallelism}"
    return f"{done}/1"


def job_duration(job: Obj, now: float) -> str:
    st = job.get("status") or {}
    if not st.get("startTime"):
        return ""
    end = parse_rfc3339(st["completionTime"]) if st.get("completionTime") else now
    return human_duration(end - parse_rfc3339(st["startTime"]))


def _containers(pod_spec: Obj) -> list[str]:
    cs = pod_spec.get("containers") or []
    return [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)]


def _job_row(o: Obj, now: float) -> list[Any]:
    return [
        o["metadata"]["name"],
        job_status(o),
        job_completions(o),
        job_duration(o, now),
        _since(o["metadata"].get("creationTimestamp"), now),
    ]


def _job_wide(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    return [*_containers((spec.get("template") or {}).get("spec") or {}), selector_string(spec.get("selector"))]


def _bool(v: Any) -> str:
    return "<unset>" if v is None else ("True" if v else "False")


def _cronjob_row(o: Obj, now: float) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    last = st.get("lastScheduleTime")
    return [
        o["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        _bool(spec.get("suspend")),
        len(st.get("active") or []),
        _since(last, now) if last else "<none>",
        _since(o["metadata"].get("creationTimestamp"), now),
    ]


def _cronjob_wide(o: Obj) -> list[Any]:
    jspec = ((o.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
    return [*_containers((jspec.get("template") or {}).get("spec") or {}), selector_string(jspec.get("selector"))]


BATCH_COLUMNS: dict[str, tuple[list[str], Row, list[str], Callable[[Obj], list[Any]]]] = {
    "Job": (
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        _job_row,
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _job_wide,
    ),
    "CronJob": (
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
        _cronjob_row,
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _cronjob_wide,
    ),
}


# -- describe ----------------------------------------------------------------------------------


def _field(name: str, value: Any, width: int = 18) -> str:
    return f"{name + ':':<{width}}{value}"


def _template_lines(template: Obj, indent: str = "") -> list[str]:
    tmeta, tspec = template.get("metadata") or {}, template.get("spec") or {}
    labels = tmeta.get("labels") or {}
    lines = [f"{indent}Pod Template:"]
    label_lines = [f"{k}={v}" for k, v in labels.items()] or ["<none>"]
    lines.append(f"{indent}  Labels:  {label_lines[0]}")
    lines += [f"{indent}           {x}" for x in label_lines[1:]]
    lines.append(f"{indent}  Containers:")
    for c in tspec.get("containers") or []:
        lines.append(f"{indent}   {c.get('name')}:")
        lines.append(f"{indent}    Image:      {c.get('image')}")
        if c.get("command"):
            lines.append(f"{indent}    Command:    {' '.join(str(x) for x in c['command'])}")
        if c.get("args"):
            lines.append(f"{indent}    Args:       {' '.join(str(x) for x in c['args'])}")
    return lines


def describe_job(obj: Obj) -> list[str]:
    """JobDescriber's fields after the metadata (the events follow)."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    lines = [
        _field("Selector", selector_string(spec.get("selector"))),
        _field("Parallelism", spec.get("parallelism", "<unset>")),
        _field("Completions", spec.get("completions", "<unset>")),
        _field("Completion Mode", spec.get("completionMode", "NonIndexed")),
        _field("Suspend", str(bool(spec.get("suspend"))).lower()),
        _field("Backoff Limit", spec.get("backoffLimit", 6)),
    ]
    if spec.get("ttlSecondsAfterFinished") is not None:
        lines.append(_field("TTL Seconds After Finished", spec["ttlSecondsAfterFinished"], 28))
    if st.get("startTime"):
        lines.append(_field("Start Time", st["startTime"]))
    if st.get("completionTime"):
        lines.append(_field("Completed At", st["completionTime"]))
        lines.append(_field("Duration", job_duration(obj, 0.0)))
    if spec.get("activeDeadlineSeconds") is not None:
        lines.append(_field("Active Deadline Seconds", f"{spec['activeDeadlineSeconds']}s", 25))
    lines.append(
        _field(
            "Pods Statuses",
            f"{st.get('active', 0)} Active ({st.get('ready', 0)} Ready) / {st.get('succeeded', 0)} Succeeded / "
            f"{st.get('failed', 0)} Failed",
        )
    )
    if spec.get("completionMode") == "Indexed":
        lines.append(_field("Completed Indexes", st.get("completedIndexes") or "<none>", 19))
    lines += _template_lines(spec.get("template") or {})
    conds = st.get("conditions") or []
    if conds:
        lines.append("Conditions:")
        lines.append("  Type                Status  Reason")
        lines += [f"  {c['type']:<19} {c['status']:<7} {c.get('reason', '')}" for c in conds]
    return lines


def describe_cronjob(obj: Obj) -> list[str]:
    """CronJobDescriber's fields after the metadata (the events follow)."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    jspec = (spec.get("jobTemplate") or {}).get("spec") or {}
    w = 31
    lines = [
        _field("Schedule", spec.get("schedule", ""), w),
        _field("Time Zone", spec.get("timeZone") or "<unset>", w),
        _field("Concurrency Policy", spec.get("concurrencyPolicy", "Allow"), w),
        _field("Suspend", _bool(spec.get("suspend")), w),
        _field("Successful Job History Limit", spec.get("successfulJobsHistoryLimit", "<unset>"), w),
        _field("Failed Job History Limit", spec.get("failedJobsHistoryLimit", "<unset>"), w),
        _field("Starting Deadline Seconds", _seconds(spec.get("startingDeadlineSeconds")), w),
        _field("Selector", selector_string(jspec.get("selector")) if jspec.get("selector") else "<unset>", w),
        _field("Parallelism", jspec.get("parallelism", "<unset>"), w),
        _field("Completions", jspec.get("completions", "<unset>"), w),
        _field("Active Deadline Seconds", _seconds(jspec.get("activeDeadlineSeconds")), w),
    ]
    lines += _template_lines(jspec.get("template") or {})
    lines.append(_field("Last Schedule Time", st.get("lastScheduleTime") or "<unset>", 21))
    lines.append(_field("Active Jobs", ", ".join(a.get("name", "") for a in st.get("active") or []) or "<none>", 21))
    return lines


def _seconds(v: Any) -> str:
    return "<unset>" if v is None else f"{v}s"


BATCH_DESCRIBE: dict[str, Callable[[Obj], list[str]]] = {"Job": describe_job, "CronJob": describe_cronjob}
