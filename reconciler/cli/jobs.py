"""`gitship create job NAME --from=cronjob/X`, `gitship logs job/NAME` and `gitship delete job NAME`.

A Job made from a CronJob is not desired state: `create job --from` asks the daemon (api.py), whose
next pass makes it, owned by the CronJob and annotated ``cronjob.kubernetes.io/instantiate: manual``
as kubectl's is; the reconcile log and an event record it, git does not. `delete job` removes a Job
git declares by a commit (as every kind), and a CronJob's Job through the daemon.
`logs job/NAME` prints the logs of the Job's first pod, as kubectl picks one.
"""

from __future__ import annotations

import argparse
import sys

from reconciler.cli.common import api, die, open_store, writer
from reconciler.types import Obj


def cmd_create_job(args: argparse.Namespace) -> int:
    """`create job NAME --from=cronjob/X`."""
    from reconciler.manifests.validate import dns1123_subdomain_error

    rest = list(args.resource[1:])
    source = getattr(args, "from_", None) or ""
    if len(rest) != 1 or not source:
        die("usage: gitship create job NAME --from=cronjob/CRONJOB")
    name = rest[0]
    kind, _, cronjob = source.partition("/")
    if kind.lower() not in ("cronjob", "cronjobs", "cj", "cronjob.batch", "cronjobs.batch") or not cronjob:
        die(f"error: from must be an existing cronjob: {source}")
    if (error := dns1123_subdomain_error(name)) or len(name) > 63:
        die(f'error: invalid job name "{name}": {error or "must be no more than 63 characters"}')
    api(args, "POST", f"/v1/namespaces/{args.namespace}/jobs", {"name": name, "fromCronJob": cronjob})
    print(f"job.batch/{name} created")
    return 0


def job_pods(args: argparse.Namespace, name: str) -> list[Obj]:
    """The pods of job NAME in -n's namespace, oldest first (kubectl's not-found message without the Job)."""
    from reconciler.sync.jobs import job_pods as pods_of

    store = open_store(args)
    job = store.get("Job", args.namespace, name)
    if job is None:
        die(f'jobs.batch "{name}" not found')
    return pods_of(store.cluster("Pod", args.namespace), job)


def pod_of(args: argparse.Namespace, word: str) -> str:
    """`logs` takes POD, pod/POD or job/NAME (the Job's first pod, named on stderr as kubectl does)."""
    kind, slash, name = word.partition("/")
    if not slash:
        return word
    if kind.lower() in ("pod", "pods", "po"):
        return name
    if kind.lower() not in ("job", "jobs", "job.batch", "jobs.batch"):
        die(f"error: cannot get the logs of {word}: only pods and jobs")
    pods = job_pods(args, name)
    if not pods:
        die(f"error: timed out waiting for the condition: no pods of job/{name}")
    if len(pods) > 1:
        print(f"Found {len(pods)} pods, using pod/{pods[0]['metadata']['name']}", file=sys.stderr)
    return str(pods[0]["metadata"]["name"])


def delete_jobs(args: argparse.Namespace) -> int:
    """`delete job NAME...`: git's Jobs by a commit, the others (a CronJob's) through the daemon."""
    from reconciler.cli.common import nudge

    store = open_store(args)
    committed = False
    for name in args.names:
        job = store.get("Job", args.namespace, name)
        if job is None or not _from_cronjob(job):
            sha = writer(args).delete("Job", args.namespace, name)
            print(f'job.batch "{name}" deleted (commit {sha[:7]})')
            committed = True
            continue
        api(args, "POST", f"/v1/namespaces/{args.namespace}/jobs/{name}/delete", {})
        print(f'job.batch "{name}" deleted')
    if committed:
        nudge(args)
    return 0


def _from_cronjob(job: Obj) -> bool:
    return any(r.get("kind") == "CronJob" and r.get("controller") for r in job["metadata"].get("ownerReferences") or [])
