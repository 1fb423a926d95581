"""kubectl's `get` columns and describe pages of Jobs and CronJobs (printers_batch.py), and the
API server's validation of both kinds (manifests/validate/batch.py)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.controllers.podutil import from_rfc3339, to_rfc3339
from reconciler.manifests.validate import default_and_validate
from reconciler.printers import describe, rows_for
from reconciler.gofmt import human_duration
from reconciler.printers_batch import job_completions, job_status

NOW = from_rfc3339("2026-11-30T12:00:00Z")


def job(status: dict | None = None, **spec: Any) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "creationTimestamp": to_rfc3339(NOW - 300)},
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}], "restartPolicy": "Never"}},
            **spec,
        },
        "status": status or {},
    }


@pytest.mark.parametrize(
    ("seconds", "human"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600 + 60, "3h1m"),
        (9 * 3600, "9h"),
        (51 * 3600, "2d3h"),
        (8 * 86400 + 3600, "8d"),
        (3 * 365 * 86400 + 30 * 86400, "3y30d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, human: str) -> None:
    """apimachinery's HumanDuration, as kubectl prints AGE (its duration_test.go cases' shape)."""
    assert human_duration(seconds) == human


def test_get_jobs_columns() -> None:
    done = job(
        {
            "succeeded": 3,
            "startTime": to_rfc3339(NOW - 200),
            "completionTime": to_rfc3339(NOW - 150),
            "conditions": [{"type": "Complete", "status": "True"}],
        },
        completions=3,
    )
    lines = rows_for("Job", [done], NOW, wide=True).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert lines[1].split() == [
        "pi",
        "Complete",
        "3/3",
        "50s",
        "5m",
        "pi",
        "perl:5.34",
        "batch.kubernetes.io/controller-uid=u1",
    ]


def test_job_status_and_completions_as_kubectl_prints_them() -> None:
    assert job_status(job()) == "Running"
    assert job_status(job({"conditions": [{"type": "Failed", "status": "True"}]})) == "Failed"
    assert job_status(job({"conditions": [{"type": "Suspended", "status": "True"}]})) == "Suspended"
    assert job_completions(job(completions=1)) == "0/1"
    assert job_completions(job(parallelism=4)) == "0/1 of 4"  # a work queue


def test_get_cronjobs_columns() -> None:
    cj = {
        "kind": "CronJob",
        "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": to_rfc3339(NOW - 7200)},
        "spec": {"schedule": "*/5 * * * *", "suspend": False, "jobTemplate": {"spec": {"template": {"spec": {}}}}},
        "status": {"lastScheduleTime": to_rfc3339(NOW - 65), "active": [{"name": "hello-1"}]},
    }
    lines = rows_for("CronJob", [cj], NOW, wide=False).splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert lines[1].split() == ["hello", "*/5", "*", "*", "*", "*", "<none>", "False", "1", "65s", "120m"]
    text = describe(cj, [], NOW)
    assert "Schedule:                      */5 * * * *" in text and "Active Jobs:         hello-1" in text


def test_describe_job() -> None:
    text = describe(job({"active": 1, "ready": 1, "failed": 2}, completions=1, parallelism=1, backoffLimit=6), [], NOW)
    assert "Pods Statuses:    1 Active (1 Ready) / 0 Succeeded / 2 Failed" in text
    assert "Selector:         batch.kubernetes.io/controller-uid=u1" in text
    assert "    Image:      perl:5.34" in text


def validate(obj: dict) -> list[str]:
    _, errors = default_and_validate(obj, "f.yaml", 0)
    return [f"{e.field}: {e.message}" for e in errors]


def raw_job(**spec: Any) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}, **spec},
    }


def test_job_defaults() -> None:
    obj, errors = default_and_validate(raw_job(), "f.yaml", 0)
    assert not errors
    spec = obj["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    only_parallelism, _ = default_and_validate(raw_job(parallelism=2), "f.yaml", 0)
    assert "completions" not in only_parallelism["spec"]  # a work queue


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"completionMode": "Indexed", "completions": None, "parallelism": 2}, "spec.completions"),
        ({"completionMode": "Sometimes"}, "spec.completionMode"),
        ({"backoffLimit": -1}, "spec.backoffLimit"),
        ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds"),
        ({"selector": {"matchLabels": {"a": "b"}}}, "spec.selector"),
        ({"manualSelector": True}, "spec.selector"),
        (
            {"podFailurePolicy": {"rules": [{"action": "Explode", "onExitCodes": {"operator": "In", "values": [1]}}]}},
            "spec.podFailurePolicy.rules[0].action",
        ),
        ({"podFailurePolicy": {"rules": [{"action": "Ignore"}]}}, "spec.podFailurePolicy.rules[0]"),
    ],
)
def test_job_refused(spec: dict, field: str) -> None:
    assert any(e.startswith(field + ":") for e in validate(raw_job(**spec))), validate(raw_job(**spec))


def test_job_restart_policy_always_refused() -> None:
    obj = raw_job()
    del obj["spec"]["template"]["spec"]["restartPolicy"]  # defaults to Always: refused as Kubernetes does
    assert validate(obj) == [
        'spec.template.spec.restartPolicy: Unsupported value: \'Always\': supported values: "OnFailure", "Never"'
    ]


def test_cronjob_validation() -> None:
    def cj(**spec: Any) -> dict:
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {"schedule": "@hourly", "jobTemplate": {"spec": raw_job()["spec"]}, **spec},
        }

    obj, errors = default_and_validate(cj(), "f.yaml", 0)
    assert not errors and obj["spec"]["concurrencyPolicy"] == "Allow"
    assert (obj["spec"]["successfulJobsHistoryLimit"], obj["spec"]["failedJobsHistoryLimit"]) == (3, 1)
    assert validate(cj(schedule="61 * * * *"))[0].startswith("spec.schedule:")
    assert validate(cj(schedule="CRON_TZ=UTC 0 * * * *"))[0].startswith("spec.schedule:")
    assert validate(cj(timeZone="Nowhere/City"))[0].startswith("spec.timeZone:")
    assert validate(cj(concurrencyPolicy="Sometimes"))[0].startswith("spec.concurrencyPolicy:")
    long = cj()
    long["metadata"]["name"] = "x" * 53
    assert validate(long)[0].startswith("metadata.name:")
