"""Jobs and CronJobs through a real `gitship up` on the in-process runtime.

A Job with completions 3 and parallelism 2 completes (get jobs: 3/3, Complete); a failing Job
reaches backoffLimit 1 and is Failed; an Indexed Job's pods see JOB_COMPLETION_INDEX; `logs
job/NAME` prints the output; a CronJob runs now through `create job --from=cronjob/X` (its
schedule is proven on the fake clock in the unit tests). Real git, daemon and CLI; no fixed sleeps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import commit_file, wait_for
from tests.integration.test_docker_e2e import V1, docker_args, docker_env  # noqa: F401 (a fixture)

COUNT = """\
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: count
        image: busybox
        command: ["sh", "-c", "echo counted by $HOSTNAME"]
"""
FAILING = """\
apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: flaky
        image: busybox
        command: ["sh", "-c", "echo trying; exit 3"]
"""
INDEXED = """\
apiVersion: batch/v1
kind: Job
metadata: {name: shards}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: shard
        image: busybox
        command: ["sh", "-c", "echo shard $JOB_COMPLETION_INDEX"]
"""
CRON = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "@daily"
  timeZone: Europe/Berlin
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: busybox
            command: ["python3", "-c", "print('nightly report')"]
"""


def _rows(g, *args: str) -> list[list[str]]:
    return [line.split() for line in g.cli("get", *args).stdout.splitlines()]


def _job(g, name: str) -> dict:
    """The live Job ({} until the daemon has made it)."""
    p = g.cli("get", "job", name, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else {}


def _condition(job: dict, type_: str) -> dict | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def test_job_completes_and_logs(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = commit_file(empty_repo, "count.yaml", COUNT, "a Job of three completions, two at a time")
    g.wait_applied(sha)
    wait_for(lambda: _condition(_job(g, "count"), "Complete"), 90, what="the Job to complete")
    rows = _rows(g, "jobs")
    assert rows[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert rows[1][:3] == ["count", "Complete", "3/3"]
    wide = _rows(g, "jobs", "-o", "wide")
    assert wide[0][-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1][-1].startswith("batch.kubernetes.io/controller-uid=")
    job = _job(g, "count")
    assert job["status"]["succeeded"] == 3 and job["status"]["completionTime"]
    pods = g.pods("batch.kubernetes.io/job-name=count")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)  # they stay
    out = g.cli("logs", "job/count")
    assert "counted by count-" in out.stdout
    described = g.cli("describe", "job", "count").stdout
    assert "Pods Statuses:    0 Active (0 Ready) / 3 Succeeded / 0 Failed" in described
    assert "SuccessfulCreate" in described and "Completed" in described
    # the pod template is immutable: a changed Job rejects the commit, naming the field
    bad = commit_file(empty_repo, "count.yaml", COUNT.replace("counted by", "counted again by"), "change the Job")
    g.wait_applied(bad)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == sha
    assert "count.yaml" in st["conditions"][0]["message"] and "spec.template" in st["conditions"][0]["message"]
    assert _job(g, "count")["metadata"]["uid"] == job["metadata"]["uid"]  # not run again


def test_failing_job_reaches_backoff_limit(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = commit_file(empty_repo, "flaky.yaml", FAILING, "a Job that fails")
    g.wait_applied(sha)
    # two failed pods (the first, then one more after the 10 s back-off): backoffLimit 1 exceeded
    wait_for(lambda: _condition(_job(g, "flaky"), "Failed"), 120, what="the Job to fail")
    job = _job(g, "flaky")
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2
    assert _rows(g, "jobs")[1][:3] == ["flaky", "Failed", "0/1"]
    assert "BackoffLimitExceeded" in g.cli("describe", "job", "flaky").stdout
    assert "trying" in g.cli("logs", "job/flaky").stdout


def test_indexed_job_pods_see_their_index(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = commit_file(empty_repo, "shards.yaml", INDEXED, "an Indexed Job")
    g.wait_applied(sha)
    wait_for(lambda: _condition(_job(g, "shards"), "Complete"), 90, what="the Indexed Job to complete")
    assert _job(g, "shards")["status"]["completedIndexes"] == "0-2"
    seen = set()
    for pod in g.pods("batch.kubernetes.io/job-name=shards"):
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["metadata"]["name"].startswith(f"shards-{index}-")
        out = g.cli("logs", pod["metadata"]["name"]).stdout
        assert out.strip() == f"shard {index}"
        seen.add(index)
    assert seen == {"0", "1", "2"}


def test_cronjob_run_now_with_create_job_from(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    sha = commit_file(empty_repo, "nightly.yaml", CRON, "a CronJob")
    g.wait_applied(sha)
    wait_for(lambda: g.cli("get", "cronjob", "nightly", check=False).returncode == 0, 30, what="the CronJob")
    rows = _rows(g, "cronjobs")
    assert rows[0] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert rows[1][:6] == ["nightly", "@daily", "Europe/Berlin", "False", "0", "<none>"]
    before = g.status()["status"]["lastAppliedRevision"]
    out = g.cli("create", "job", "report-now", "--from=cronjob/nightly")
    assert "job.batch/report-now created" in out.stdout
    wait_for(lambda: _condition(_job(g, "report-now"), "Complete"), 90, what="the manual run to complete")
    job = _job(g, "report-now")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["name"] == "nightly"
    assert "nightly report" in g.cli("logs", "job/report-now").stdout
    assert g.status()["status"]["lastAppliedRevision"] == before  # an action, not a commit
    assert "SuccessfulCreate" in g.cli("describe", "cronjob", "nightly").stdout
    again = g.cli("create", "job", "report-now", "--from=cronjob/nightly", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    # the CronJob's Job is not in git: delete goes through the daemon
    g.cli("delete", "job", "report-now")
    wait_for(lambda: g.cli("get", "job", "report-now", check=False).returncode != 0, 30, what="the Job deleted")
    wait_for(lambda: not g.pods("batch.kubernetes.io/job-name=report-now"), 30, what="its pod collected")


def test_template_examples(repo: Path, gitship_factory) -> None:
    """The tutorial's steps (repo-template/README.md, Jobs and CronJobs) work as written."""
    g = gitship_factory(repo)
    g.cli("create", "-f", str(repo / "examples" / "job.yaml"))
    wait_for(lambda: _condition(_job(g, "pi"), "Complete"), 120, what="pi to complete")
    assert _rows(g, "jobs", "pi")[1][:3] == ["pi", "Complete", "5/5"]
    assert "3.14159265358979323846" in g.cli("logs", "job/pi").stdout
    wait_for(lambda: _condition(_job(g, "shards"), "Complete"), 90, what="shards to complete")
    outputs = sorted(g.cli("logs", p["metadata"]["name"]).stdout for p in g.pods("job-name=shards"))
    assert outputs == [f"processing shard {i} of 3\n" for i in range(3)]
    g.cli("create", "-f", str(repo / "examples" / "cronjob.yaml"))
    wait_for(lambda: g.cli("get", "cj", "hello", check=False).returncode == 0, 30, what="the CronJob")
    g.cli("create", "job", "hello-now", "--from=cronjob/hello")
    wait_for(lambda: _condition(_job(g, "hello-now"), "Complete"), 90, what="the manual run")
    assert "Hello from the gitship cluster" in g.cli("logs", "job/hello-now").stdout


ONCE = """\
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  ttlSecondsAfterFinished: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: once, image: busybox, command: ["sh", "-c", "echo ran once"]}
"""


def test_ttl_deleted_job_stays_deleted_and_a_finished_job_survives_a_restart(empty_repo: Path, gitship_factory) -> None:
    g = gitship_factory(empty_repo)
    commit_file(empty_repo, "count.yaml", COUNT, "a Job")
    sha = commit_file(empty_repo, "once.yaml", ONCE, "a Job deleted as soon as it finished")
    g.wait_applied(sha)
    wait_for(lambda: _condition(_job(g, "count"), "Complete"), 90, what="count to complete")
    wait_for(lambda: g.cli("get", "job", "once", check=False).returncode != 0, 90, what="once deleted by its TTL")
    wait_for(lambda: not g.pods("job-name=once"), 30, what="its pod collected")
    events = g.cli("events", "--object", "job/once").stdout
    assert "ttlSecondsAfterFinished" in events
    assert g.status()["status"]["storedWithoutEffect"]["count"] == 0  # the tombstone is gitship's own
    uid = _job(g, "count")["metadata"]["uid"]
    # an unrelated commit applies; git still declares `once` unchanged: it is not made again
    other = commit_file(empty_repo, "note.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: note}\n", "x")
    g.wait_applied(other)
    wait_for(lambda: g.cli("get", "cm", "note", check=False).returncode == 0, 30, what="the ConfigMap")
    assert g.cli("get", "job", "once", check=False).returncode != 0
    # a restart: the finished Job is not run again, the deleted one not made again
    g.stop()
    g.start()
    wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == other, 30, what="the restart")
    wait_for(lambda: _rows(g, "jobs")[1][:3] == ["count", "Complete", "3/3"], 30, what="count listed")
    assert _job(g, "count")["metadata"]["uid"] == uid
    assert g.cli("get", "job", "once", check=False).returncode != 0
    # changed in git: it runs again
    changed = commit_file(empty_repo, "once.yaml", ONCE.replace("ran once", "ran twice"), "run it again")
    g.wait_applied(changed)
    wait_for(lambda: _completed(g, "once") == 2, 90, what="once to run again")


def _completed(g, name: str) -> int:
    """How many times the reconcile log says Job NAME completed."""
    out = g.cli("events", "--object", f"job/{name}", "-o", "json").stdout
    return sum(1 for line in out.splitlines() if json.loads(line).get("reason") == "Completed")


@pytest.mark.usefixtures("docker_env")
def test_jobs_on_docker(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    """The same Jobs on the Docker runtime: an Indexed Job completes with its index in each
    container, a failing one reaches backoffLimit 0; logs come from the engine."""
    shards = INDEXED.replace("image: busybox", f"image: {V1}\n        imagePullPolicy: IfNotPresent")
    failing = FAILING.replace("backoffLimit: 1", "backoffLimit: 0").replace(
        "image: busybox", f"image: {V1}\n        imagePullPolicy: IfNotPresent"
    )
    commit_file(empty_repo, "shards.yaml", shards, "an Indexed Job")
    sha = commit_file(empty_repo, "flaky.yaml", failing, "a failing Job")
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    g.wait_applied(sha, 60)
    wait_for(lambda: _condition(_job(g, "shards"), "Complete"), 120, what="the Indexed Job on Docker")
    outputs = sorted(g.cli("logs", p["metadata"]["name"]).stdout for p in g.pods("job-name=shards"))
    assert outputs == [f"shard {i}\n" for i in range(3)]
    wait_for(lambda: _condition(_job(g, "flaky"), "Failed"), 120, what="the failing Job on Docker")
    assert _job(g, "flaky")["status"]["failed"] == 1
    assert "trying" in g.cli("logs", "job/flaky").stdout


SLOW = """\
apiVersion: batch/v1
kind: Job
metadata: {name: slow}
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: slow
        image: busybox
        command: ["sh", "-c", "echo started; sleep 4; echo done"]
"""


def test_kill9_while_a_job_runs_never_doubles_and_never_fails_the_job(empty_repo: Path, gitship_factory) -> None:
    """After a kill -9 the in-process runtime adopts the running pods but cannot see how they end
    (exit 137, ContainerStatusUnknown): not counted as failures; each is replaced only once it ended."""
    g = gitship_factory(empty_repo)
    sha = commit_file(empty_repo, "slow.yaml", SLOW.replace("parallelism: 2", "parallelism: 2\n  backoffLimit: 0"), "x")
    g.wait_applied(sha)
    wait_for(lambda: len(g.running_pods("job-name=slow")) == 2, 60, what="both pods running")
    first = {p["metadata"]["name"] for p in g.pods("job-name=slow")}
    g.kill9()
    g.start()
    wait_for(lambda: _condition(_job(g, "slow"), "Complete"), 90, what="the Job to complete after the restart")
    job = _job(g, "slow")
    assert job["status"]["succeeded"] == 2 and job["status"]["failed"] == 0  # backoffLimit 0 never reached
    pods = {p["metadata"]["name"]: p for p in g.pods("job-name=slow")}
    ended = max(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] for n, p in pods.items() if n in first
    )
    assert all(p["metadata"]["creationTimestamp"] >= ended for n, p in pods.items() if n not in first)
