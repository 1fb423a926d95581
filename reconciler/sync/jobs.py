"""The batch steps of a pass: CronJobs -> Jobs -> Pods (controllers/cronjob.py, controllers/job.py).

  keep_ttl_deleted   before git's objects are synced: a Job from git that its
                     ``ttlSecondsAfterFinished`` deleted stays deleted while git declares it unchanged
                     (a tombstone remembers it); the generated selector and labels of a live Job are
                     given to git's copy, so that git's Job and the live one compare equal
  sync_batch         `gitship create job --from=cronjob/X` requests, then the CronJobs (their Jobs
                     made and removed, the wake-up at the next schedule time), then the Jobs (their
                     pods, status, events; the TTL)

Why the tombstone: Kubernetes' TTL controller deletes a finished Job; a GitOps tool that re-applies
git would make it again and run it again, forever. Flux and Argo CD users expect a Job that ran to
stay run: so a Job deleted by its TTL is not made again until its declaration in git changes (any
change of its labels, annotations or spec) or it leaves git and comes back.

Pure: every function works on a ``Work``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

from ..cluster import key_of
from ..controllers import cronjob as cronctl
from ..controllers import job as jobctl
from ..controllers.job_util import JOB_NAME
from ..controllers.podutil import to_rfc3339
from ..manifests.semantic import semantic
from ..types import Key, Obj
from .work import Work

TOMBSTONE = "JobTombstone"
"""The kind of the live record of a git Job its TTL deleted (gitship's own; `get` never lists it)."""
TOMBSTONE_API = "gitship.io/v1"


def declaration_hash(job: Obj) -> str:
    """What git declares of a Job (labels, annotations, spec), as a stable hash."""
    m = job.get("metadata") or {}
    view = semantic({"labels": m.get("labels"), "annotations": m.get("annotations"), "spec": job.get("spec")})
    return hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()


def tombstone(job: Obj, now: float) -> Obj:
    m = job["metadata"]
    return {
        "apiVersion": TOMBSTONE_API,
        "kind": TOMBSTONE,
        "metadata": {
            "name": m["name"],
            "namespace": m.get("namespace", "default"),
            "creationTimestamp": to_rfc3339(now),
        },
        "jobUid": m.get("uid", ""),  # not metadata.uid: the Job's pods must see their owner gone
        "declaration": declaration_hash(jobctl.without_generated(job)),
    }


def with_generated(desired: Obj, live: Obj) -> Obj:
    """Git's Job with the selector and template labels the live Job was given at creation."""
    if (desired.get("spec") or {}).get("manualSelector"):
        return desired
    d = copy.deepcopy(desired)
    spec, live_spec = d.setdefault("spec", {}), live.get("spec") or {}
    if live_spec.get("selector") is not None:
        spec["selector"] = copy.deepcopy(live_spec["selector"])
    live_labels = ((live_spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    generated = {k: v for k, v in live_labels.items() if k in jobctl.GENERATED_LABELS}
    if generated:
        tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
        defaulted = not d["metadata"].get("labels")  # the live Job shows its template's (generate_selector)
        tmeta["labels"] = {**(tmeta.get("labels") or {}), **generated}
        if defaulted and live["metadata"].get("labels") == tmeta["labels"]:
            d["metadata"]["labels"] = dict(tmeta["labels"])
    return d


def keep_ttl_deleted(w: Work) -> None:
    """Git's Jobs as the pass syncs them: those their TTL deleted (unchanged since) left out,
    the others with their live Job's generated selector and labels."""
    c = w.cluster
    desired: dict[Key, Obj] = dict(w.inp.desired)
    changed = False
    for stone in c.of_kind(TOMBSTONE):
        key = ("Job", stone["metadata"]["namespace"], stone["metadata"]["name"])
        d = desired.get(key)
        if d is None or declaration_hash(d) != stone.get("declaration") or c.get(key) is not None:
            c.delete(key_of(stone))  # gone from git, or changed: made again
            continue
        del desired[key]
        changed = True
    for key, d in list(desired.items()):
        live = c.get(key) if key[0] == "Job" else None
        if live is not None:
            desired[key] = with_generated(d, live)
            changed = True
    if changed:
        w.inp = dataclasses.replace(w.inp, desired=desired)


def sync_batch(w: Work) -> None:
    create_requested_jobs(w)
    for cj in w.cluster.of_kind(cronctl.KIND):
        try:
            sync_one_cronjob(w, cj)
        except Exception as e:  # one broken CronJob never stops the others
            w.problem("error", "cronjob_sync_failed", e, name=cj["metadata"]["name"], error=str(e))
    for job in w.cluster.of_kind(jobctl.KIND):
        try:
            sync_one_job(w, job)
        except Exception as e:  # one broken Job never stops the others
            w.problem("error", "job_sync_failed", e, name=job["metadata"]["name"], error=str(e))


def create_requested_jobs(w: Work) -> None:
    """`gitship create job NAME --from=cronjob/X`: the Job, owned by the CronJob, and an event."""
    c = w.cluster
    for req in w.inp.job_requests:
        if req.delete:
            if c.delete(("Job", req.namespace, req.name)) is not None:  # its pods follow (garbage collection)
                w.event("Normal", "Deleted", "Job", req.namespace, req.name, "deleted by user")
            continue
        cj = c.get((cronctl.KIND, req.namespace, req.cronjob))
        if cj is None or c.get(("Job", req.namespace, req.name)) is not None:
            what = "no such CronJob" if cj is None else "the Job exists"
            w.problem("warning", "job_request_refused", None, name=req.name, cronjob=req.cronjob, reason=what)
            continue
        job, event = cronctl.manual_job(cj, req, w.inp.ids.new_uid(), w.now)
        c.put(job)
        w.controller_event(event)


def sync_one_cronjob(w: Work, cj: Obj) -> None:
    c = w.cluster
    ns = cj["metadata"]["namespace"]
    res = cronctl.sync_cronjob(cj, c.of_kind("Job", ns), w.now, w.inp.ids.new_uid)
    for job in res.create:
        c.put(job)
    for name in res.delete:
        c.delete(("Job", ns, name))  # its pods follow (garbage collection)
    new = cj
    if res.status != (cj.get("status") or {}):
        new = {**new, "status": res.status}
    reported = ";".join(res.reported)
    if reported != ((cj["metadata"].get("annotations") or {}).get(cronctl.REPORTED) or ""):
        new = copy.deepcopy(new)
        annotations = new["metadata"].setdefault("annotations", {})
        if reported:
            annotations[cronctl.REPORTED] = reported
        else:
            annotations.pop(cronctl.REPORTED, None)
    if new is not cj:
        c.put(new)
    for ev in res.events:
        w.controller_event(ev)
    w.requeue(res.requeue_after)


def sync_one_job(w: Work, job: Obj) -> None:
    c = w.cluster
    generated = jobctl.generate_selector(job)
    if generated is not None:
        c.put(generated)
        job = generated
    ns = job["metadata"]["namespace"]
    res = jobctl.sync_job(job, c.of_kind("Pod", ns), w.now, w.inp.ids.new_pod_name)
    for pod in res.counted:
        c.put(pod)
    for pod in res.create:
        c.put(pod)
    for uid in res.delete:
        victim = _pod(w, ns, uid)
        if victim is not None and not victim["metadata"].get("deletionTimestamp"):
            w.terminate(victim)
    for ev in res.events:
        w.controller_event(ev)
    if res.expired:
        key = key_of(job)
        c.delete(key)  # its pods follow (garbage collection)
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        w.event("Normal", "Deleted", "Job", ns, job["metadata"]["name"], f"ttlSecondsAfterFinished ({ttl}s) passed")
        if key in w.inp.desired:
            c.put(tombstone(job, w.now))
        return
    if res.status != (job.get("status") or {}):
        c.put({**job, "status": res.status})
    w.requeue(res.requeue_after)


def _pod(w: Work, ns: str, uid: str) -> Obj | None:
    return next((p for p in w.cluster.of_kind("Pod", ns) if p["metadata"]["uid"] == uid), None)


def job_update_errors(new: Obj, current: Obj) -> list[tuple[str, str]]:
    """ValidateJobUpdate: a Job's pod template, selector, completionMode and podFailurePolicy may
    not change (completions neither, except for an Indexed Job whose parallelism changes with it);
    the selector and labels the API server generated are not git's to compare."""
    new_spec = new.get("spec") or {}
    cur_spec = (jobctl.without_generated(current).get("spec")) or {}
    out: list[tuple[str, str]] = []
    for f in ("template", "selector", "completionMode", "podFailurePolicy", "manualSelector"):
        if semantic(new_spec.get(f)) != semantic(cur_spec.get(f)):
            out.append((f"spec.{f}", f"Invalid value: {_shown(new_spec.get(f))}: field is immutable"))
    if semantic(new_spec.get("completions")) != semantic(cur_spec.get("completions")):
        elastic = (
            new_spec.get("completionMode") == "Indexed"
            and new_spec.get("completions") == new_spec.get("parallelism")
            and cur_spec.get("completions") == cur_spec.get("parallelism")
        )
        if not elastic:
            out.append(
                ("spec.completions", f"Invalid value: {_shown(new_spec.get('completions'))}: field is immutable")
            )
    return out


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def job_pods(pods: list[Obj], job: Obj) -> list[Obj]:
    """A Job's pods in the order kubectl picks one for `logs job/NAME` (kubectl's podutils ByLogging:
    running before the others, ready before not, more restarts first, older first)."""
    uid = job["metadata"].get("uid")
    mine = [p for p in pods if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]
    if not mine:
        name = job["metadata"]["name"]
        mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(JOB_NAME) == name]

    def rank(p: Obj) -> tuple[bool, bool, int, str, str]:
        st = p.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
        restarts = sum(int(c.get("restartCount") or 0) for c in st.get("containerStatuses") or [])
        created = p["metadata"].get("creationTimestamp") or ""
        return st.get("phase") != "Running", not ready, -restarts, created, p["metadata"]["name"]

    return sorted(mine, key=rank)
