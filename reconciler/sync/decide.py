"""The reconcile pass as one pure function: ``decide(PassInput) -> Changes``.

Steps, in order (each reads what the previous ones wrote in the scratch copy of the live
objects): observed pod statuses, the pod creations the runtime refused in the last pass (here),
`gitship delete pod` requests, git into live objects, Deployments, ReplicaSets, garbage
collection (sync/objects.py), Services (sync/services.py), then the runtime step here: which
pods to start (each controller's in slow-start batches) and which to stop. The executor carries
the answer out with the Service step's proxy table before the runtime step's stops, so a pod
leaves the endpoints before it is sent SIGTERM.
"""

from __future__ import annotations

import dataclasses

from ..cluster import key_of
from ..controllers import replicaset as rsctl
from ..controllers.podutil import Event, controller_ref
from ..types import Obj
from .model import Allocations, Changes, PassInput, PodStart, PodStop, SlowStart
from .namespaces import sync_namespaces, with_namespaces
from .objects import (
    collect_garbage,
    observe_pods,
    request_deletions,
    sync_deployments,
    sync_desired,
    sync_replicasets,
)
from .jobs import keep_ttl_deleted, sync_batch
from .ingress import sync_ingresses
from .services import pod_for_runtime, sync_services
from .statefulsets import sync_apps
from .storage import schedulable, sync_storage
from .work import Work


def decide(inp: PassInput) -> Changes:
    w = Work(inp)
    observe_pods(w)
    observe_create_failures(w)
    request_deletions(w)
    sync_namespaces(w)
    keep_ttl_deleted(w)
    sync_desired(w)
    sync_deployments(w)
    sync_replicasets(w)
    sync_apps(w)
    sync_batch(w)
    collect_garbage(w)
    provision, reclaim = sync_storage(w)
    allocs, rules, ips, zone, backend_pods = sync_services(w)
    sync_ingresses(w)
    was_endpoint = set(inp.memory.was_endpoint) | backend_pods
    starts, stops = runtime_step(w, allocs, was_endpoint)
    puts, deletes = w.cluster.changed()
    return Changes(
        put=puts,
        delete=deletes,
        events=w.events,
        allocations=allocs if allocs != inp.memory.allocations else None,
        service_ips=ips,
        proxy=rules,
        zone=with_namespaces(zone, w),
        endpoint_pods=frozenset(backend_pods),
        stop=stops,
        start=starts,
        requeue_after=w.requeue_after,
        problems=w.problems,
        net_warned=w.net_warned,
        provision=provision,
        reclaim=reclaim,
    )


def runtime_step(w: Work, allocations: Allocations, was_endpoint: set[str]) -> tuple[list[PodStart], list[PodStop]]:
    """Start live pods the runtime does not run yet; stop terminating pods it runs (then forget
    them), replaced pods, and pods it runs that no live object wants. A terminating pod the
    runtime never ran is forgotten at once."""
    mem, running = w.inp.memory, w.inp.observed.running
    stops: list[PodStop] = []
    scheduled: set[str] = set()

    def stop(uid: str, key: tuple[str, str, str] | None) -> None:
        if uid in mem.terminating or uid in scheduled:  # its stop is already under way
            return
        scheduled.add(uid)
        stops.append(PodStop(uid, key, w.inp.delete_requests.get(uid), uid in was_endpoint))

    for s in w.replaced:
        stop(s.uid, None)
    starts: list[PodStart] = []
    live_uids: set[str] = set()
    for pod in w.cluster.of_kind("Pod"):
        uid = pod["metadata"]["uid"]
        live_uids.add(uid)
        if pod["metadata"].get("deletionTimestamp"):
            if uid in running or uid in mem.launched:
                stop(uid, key_of(pod))
            else:
                w.cluster.delete(key_of(pod))
            continue
        if uid not in mem.launched and uid not in running and schedulable(w, pod):
            services = w.cluster.of_kind("Service", pod["metadata"]["namespace"])
            starts.append(PodStart(uid, key_of(pod), pod_for_runtime(pod, services, allocations)))
    for uid in sorted(running):
        if uid not in live_uids:
            stop(uid, None)
    return slow_start(w, starts), stops


# -- pod creation: slow start and failures (kubernetes/kubernetes pkg/controller/replicaset) -------


def observe_create_failures(w: Work) -> None:
    """The pod creations the runtime refused in the last pass reach their ReplicaSets: a Warning
    ``FailedCreate`` event per refused pod and the ``ReplicaFailure`` condition; a ReplicaSet
    whose creations all went through (or that had none to make) loses the condition
    (replica_set_utils.go calculateStatus). The Deployment step then copies the condition."""
    failures = w.inp.memory.create_failures
    for rs in [o for kind in rsctl.KINDS for o in w.cluster.of_kind(kind)]:
        failure = failures.get(rs["metadata"]["uid"])
        errors = failure.errors if failure is not None else ()
        status = rs.get("status") or {}
        reason = rsctl.REASON_FAILED_CREATE if errors else None
        new = rsctl.with_replica_failure(status, reason, errors[0] if errors else None, w.now)
        if new != status:
            w.cluster.put({**rs, "status": new})
        for error in errors:
            w.controller_event(rsctl.failed_create_event(rs, error))


def slow_start(w: Work, starts: list[PodStart]) -> list[PodStart]:
    """The new pods of each ReplicaSet in its slow-start batches (replica_set.go slowStartBatch:
    1, 2, 4, ...), each carrying the SuccessfulCreate event the executor writes once the runtime
    has the pod. Pods no ReplicaSet creates (git's own) come first and start on their own."""
    plain: list[PodStart] = []
    groups: dict[str, list[PodStart]] = {}
    owners = {rs["metadata"]["uid"]: rs for kind in rsctl.KINDS for rs in w.cluster.of_kind(kind)}
    for start in starts:
        ref = controller_ref(start.pod)
        if ref is None or ref.get("uid") not in owners:
            plain.append(start)
        else:
            groups.setdefault(ref["uid"], []).append(start)
    out = plain
    for owner_uid, group in groups.items():
        rs = owners[owner_uid]
        pods = iter(group)
        for batch, size in enumerate(rsctl.slow_start_batches(len(group))):
            for _ in range(size):
                start = next(pods)
                created = _record(w, rsctl.created_event(rs, start.key[2]))
                out.append(
                    dataclasses.replace(
                        start, slow_start=SlowStart(owner_uid, key_of(rs), batch), created_event=created
                    )
                )
    return out


def _record(w: Work, ev: Event) -> Obj:
    """An event record as ``Work.event`` writes it, for the executor to write later."""
    return {
        "time": w.now,
        "type": ev.type,
        "reason": ev.reason,
        "kind": ev.kind,
        "namespace": ev.namespace,
        "name": ev.name,
        "message": ev.message,
        "reconcile_id": w.inp.reconcile_id,
        "revision": w.inp.revision,
    }
