"""Jobs and CronJobs (batch/v1): defaults and validation.

Defaults: kubernetes/kubernetes pkg/apis/batch/v1/defaults.go (SetDefaults_Job, SetDefaults_CronJob).
Validation: pkg/apis/batch/validation/validation.go (ValidateJob, ValidateJobSpec,
validatePodFailurePolicy, ValidateCronJobCreate, validateScheduleFormat, validateTimeZone).

The Job's selector is generated when it is created (pkg/registry/batch/job/strategy.go
generateSelector: it needs the Job's uid), so a Job in git without ``manualSelector: true`` may not
name one; the Job controller's step adds it to the live Job (controllers/job.py generate_selector).
Both validators default first (the defaults of the pod template included), then validate.
"""

from __future__ import annotations

from typing import Any

from reconciler import selectors
from reconciler.controllers import cron
from reconciler.manifests.validate.common import Ctx, is_dict, is_list, supported, type_name
from reconciler.manifests.validate.defaults import _default_pod_spec
from reconciler.manifests.validate.inert import default_service_account, validate_service_account
from reconciler.manifests.validate.names import validate_annotations, validate_labels
from reconciler.manifests.validate.pods import validate_pod_spec
from reconciler.types import Obj

COMPLETION_MODES = ("NonIndexed", "Indexed")
JOB_RESTART_POLICIES = ("OnFailure", "Never")
POLICY_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
MAX_INDEXED_COMPLETIONS = 100_000
MAX_POLICY_RULES = 20
MAX_CRONJOB_NAME = 52  # the Job name adds "-" and 11 digits of minutes


def default_job_spec(spec: Any) -> None:
    """SetDefaults_Job on a JobSpec, in place (robust against wrong types)."""
    if not is_dict(spec):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    policy = spec.get("podFailurePolicy")
    if is_dict(policy):
        for rule in policy.get("rules") or []:
            for pattern in (rule.get("onPodConditions") or []) if is_dict(rule) else []:
                if is_dict(pattern) and not pattern.get("status"):
                    pattern["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if is_dict(policy) else "TerminatingOrFailed"
    tmpl = spec.get("template")
    if is_dict(tmpl):
        _default_pod_spec(tmpl.get("spec"))


def default_job(obj: Obj) -> None:
    spec = obj.get("spec")
    default_job_spec(spec)
    meta = obj.get("metadata")
    tmpl = spec.get("template") if is_dict(spec) else None
    tmeta = tmpl.get("metadata") if is_dict(tmpl) else None
    labels = tmeta.get("labels") if is_dict(tmeta) else None
    if is_dict(meta) and is_dict(labels) and labels and not meta.get("labels"):
        meta["labels"] = dict(labels)


def default_cronjob(obj: Obj) -> None:
    spec = obj.get("spec")
    if not is_dict(spec):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.get("jobTemplate")
    if is_dict(jt):
        default_job_spec(jt.get("spec"))


# -- validation --------------------------------------------------------------------------------


def _validate_exit_codes(ctx: Ctx, req: Any, path: str) -> None:
    if not is_dict(req):
        ctx.err(path, f"must be an object, not {type_name(req)}")
        return
    op = req.get("operator")
    if op not in ("In", "NotIn"):
        ctx.err(f"{path}.operator", supported(op, ("In", "NotIn")))
    values = req.get("values")
    if not is_list(values) or not values:
        ctx.err(f"{path}.values", "Invalid value: []: at least one value is required")
        return
    if len(values) > 255:
        ctx.err(f"{path}.values", "Too many: must have at most 255 items")
    prev: int | None = None
    for i, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            ctx.err(f"{path}.values[{i}]", f"must be an integer, not {type_name(v)} {v!r}")
            continue
        if op == "In" and v == 0:
            ctx.err(f"{path}.values[{i}]", "Invalid value: 0: must not be 0 for the In operator")
        if prev is not None and v == prev:
            ctx.err(f"{path}.values[{i}]", f"Duplicate value: {v}")
        elif prev is not None and v < prev:
            ctx.err(f"{path}.values[{i}]", f"Invalid value: {v}: must be ordered")
        prev = v


def _validate_policy_rule(ctx: Ctx, rule: Any, path: str, spec: Obj) -> None:
    if not is_dict(rule):
        ctx.err(path, f"must be an object, not {type_name(rule)}")
        return
    action = rule.get("action")
    if action not in POLICY_ACTIONS:
        ctx.err(f"{path}.action", supported(action, POLICY_ACTIONS))
    elif action == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
        ctx.err(f"{path}.action", 'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set')
    codes, conds = rule.get("onExitCodes"), rule.get("onPodConditions")
    if (codes is None) == (not conds):
        ctx.err(path, "Invalid value: specifying one of OnExitCodes and OnPodConditions is required")
    if codes is not None:
        _validate_exit_codes(ctx, codes, f"{path}.onExitCodes")
    for i, pattern in enumerate(conds if is_list(conds) else []):
        p = f"{path}.onPodConditions[{i}]"
        if not is_dict(pattern) or not isinstance(pattern.get("type"), str) or not pattern["type"]:
            ctx.err(f"{p}.type", "Required value")
            continue
        if pattern.get("status") not in ("True", "False", "Unknown"):
            ctx.err(f"{p}.status", supported(pattern.get("status"), ("True", "False", "Unknown")))


def _validate_pod_failure_policy(ctx: Ctx, spec: Obj, path: str, restart: Any) -> None:
    policy = spec.get("podFailurePolicy")
    if policy is None:
        return
    if not is_dict(policy) or not is_list(policy.get("rules")):
        ctx.err(f"{path}.podFailurePolicy.rules", "Required value")
        return
    if restart in JOB_RESTART_POLICIES and restart != "Never":
        ctx.err(
            f"{path}.template.spec.restartPolicy",
            f'Invalid value: "{restart}": only "Never" is supported when podFailurePolicy is specified',
        )
    if len(policy["rules"]) > MAX_POLICY_RULES:
        ctx.err(f"{path}.podFailurePolicy.rules", f"Too many: {len(policy['rules'])}: must have at most 20 items")
    for i, rule in enumerate(policy["rules"]):
        _validate_policy_rule(ctx, rule, f"{path}.podFailurePolicy.rules[{i}]", spec)


def _validate_counts(ctx: Ctx, spec: Obj, path: str) -> None:
    ctx.int_field(spec, "parallelism", path, minimum=0)
    completions = ctx.int_field(spec, "completions", path, minimum=0)
    ctx.int_field(spec, "backoffLimit", path, minimum=0)
    ctx.int_field(spec, "ttlSecondsAfterFinished", path, minimum=0)
    deadline = ctx.int_field(spec, "activeDeadlineSeconds", path)
    if deadline is not None and deadline <= 0:
        ctx.err(f"{path}.activeDeadlineSeconds", f"Invalid value: {deadline}: must be greater than 0")
    ctx.bool_field(spec, "suspend", path)
    ctx.bool_field(spec, "manualSelector", path)
    mode = spec.get("completionMode")
    if mode not in COMPLETION_MODES:
        ctx.err(f"{path}.completionMode", supported(mode, COMPLETION_MODES))
    elif mode == "Indexed":
        if completions is None:
            ctx.err(f"{path}.completions", "Required value: when completion mode is Indexed")
        elif completions > MAX_INDEXED_COMPLETIONS:
            ctx.err(
                f"{path}.completions",
                f"Invalid value: {completions}: must be less than or equal to {MAX_INDEXED_COMPLETIONS} "
                "when completion mode is Indexed",
            )
    if spec.get("backoffLimitPerIndex") is not None or spec.get("successPolicy") is not None:
        which = "backoffLimitPerIndex" if spec.get("backoffLimitPerIndex") is not None else "successPolicy"
        ctx.err(f"{path}.{which}", "Forbidden: not supported by gitship")


def _validate_selector(ctx: Ctx, spec: Obj, path: str, labels: Any, in_template: bool) -> None:
    sel = spec.get("selector")
    if spec.get("manualSelector") is True and not in_template:
        if not is_dict(sel):
            ctx.err(f"{path}.selector", "Required value")
            return
        errs = selectors.validate_label_selector(sel, f"{path}.selector")
        for f, m in errs:
            ctx.err(f, m)
        if not errs and not selectors.labels_match_selector(sel, labels if is_dict(labels) else {}):
            ctx.err(f"{path}.template.metadata.labels", "Invalid value: `selector` does not match template `labels`")
    elif sel is not None:
        ctx.err(f"{path}.selector", f"Invalid value: {sel!r}: `selector` not auto-generated")


def validate_job_spec(ctx: Ctx, spec: Any, path: str, in_template: bool = False) -> None:
    """ValidateJobSpec (``in_template``: a CronJob's jobTemplate.spec)."""
    if spec is None:
        ctx.err(path, "Required value")
        return
    if not is_dict(spec):
        ctx.err(path, f"must be an object, not {type_name(spec)}")
        return
    _validate_counts(ctx, spec, path)
    tmpl = spec.get("template")
    if not is_dict(tmpl):
        ctx.err(f"{path}.template", "Required value" if tmpl is None else f"must be an object, not {type_name(tmpl)}")
        return
    tmeta = tmpl.get("metadata")
    labels: Any = None
    if tmeta is not None and not is_dict(tmeta):
        ctx.err(f"{path}.template.metadata", f"must be an object, not {type_name(tmeta)}")
    elif is_dict(tmeta):
        labels = tmeta.get("labels")
        validate_labels(ctx, labels, f"{path}.template.metadata.labels")
        validate_annotations(ctx, tmeta.get("annotations"), f"{path}.template.metadata.annotations")
    _validate_selector(ctx, spec, path, labels, in_template)
    pod = tmpl.get("spec")
    validate_pod_spec(ctx, pod, f"{path}.template.spec", template=False)
    restart = pod.get("restartPolicy") if is_dict(pod) else None
    if is_dict(pod) and restart not in JOB_RESTART_POLICIES:
        ctx.err(f"{path}.template.spec.restartPolicy", supported(restart, JOB_RESTART_POLICIES))
    _validate_pod_failure_policy(ctx, spec, path, restart)


def _name_length(ctx: Ctx, obj: Obj, limit: int) -> None:
    meta = obj.get("metadata")
    name = meta.get("name") if is_dict(meta) else None  # a non-mapping metadata is validate_metadata's error
    if isinstance(name, str) and len(name) > limit:
        ctx.err("metadata.name", f"Invalid value: {name!r}: must be no more than {limit} characters")


def validate_job(ctx: Ctx, obj: Obj) -> None:
    """A Job: defaulted (SetDefaults_Job), then checked (ValidateJob)."""
    default_job(obj)
    default_service_account(obj)
    _name_length(ctx, obj, 63)  # the job-name label carries it
    validate_job_spec(ctx, obj.get("spec"), "spec")
    validate_service_account(ctx, obj)


def validate_cronjob(ctx: Ctx, obj: Obj) -> None:
    """A CronJob: defaulted (SetDefaults_CronJob), then checked (ValidateCronJobCreate)."""
    default_cronjob(obj)
    _name_length(ctx, obj, MAX_CRONJOB_NAME)
    spec = obj.get("spec")
    if not is_dict(spec):
        ctx.err("spec", "Required value" if spec is None else f"must be an object, not {type_name(spec)}")
        return
    schedule = ctx.str_field(spec, "schedule", "spec")
    zone = ctx.str_field(spec, "timeZone", "spec")
    if not schedule:
        ctx.err("spec.schedule", "Required value")
    elif zone is not None and (error := _zone_error(zone)):
        ctx.err("spec.timeZone", f"Invalid value: {zone!r}: {error}")
    elif (error := cron.validate(schedule, zone)) is not None:
        ctx.err("spec.schedule", f"Invalid value: {schedule!r}: {error}")
    policy = spec.get("concurrencyPolicy")
    if policy not in CONCURRENCY_POLICIES:
        ctx.err("spec.concurrencyPolicy", supported(policy, CONCURRENCY_POLICIES))
    ctx.int_field(spec, "startingDeadlineSeconds", "spec", minimum=0)
    ctx.int_field(spec, "successfulJobsHistoryLimit", "spec", minimum=0)
    ctx.int_field(spec, "failedJobsHistoryLimit", "spec", minimum=0)
    ctx.bool_field(spec, "suspend", "spec")
    jt = spec.get("jobTemplate")
    if not is_dict(jt):
        ctx.err("spec.jobTemplate", "Required value" if jt is None else f"must be an object, not {type_name(jt)}")
        return
    jmeta = jt.get("metadata")
    if is_dict(jmeta):
        validate_labels(ctx, jmeta.get("labels"), "spec.jobTemplate.metadata.labels")
        validate_annotations(ctx, jmeta.get("annotations"), "spec.jobTemplate.metadata.annotations")
    validate_job_spec(ctx, jt.get("spec"), "spec.jobTemplate.spec", in_template=True)


def _zone_error(zone: str) -> str | None:
    try:
        cron.load_zone(zone)
    except cron.CronError as e:
        return str(e)
    return None


BATCH_VALIDATORS = {"Job": validate_job, "CronJob": validate_cronjob}
