"""The reconcile pass as one pure function: ``decide(PassInput) -> Changes``.

Steps, in order (each reads what the previous ones wrote in the scratch copy of the live
objects): observed pod statuses, `gitship delete pod` requests, git into live objects,
Deployments, ReplicaSets, garbage collection (sync/objects.py), Services (sync/services.py),
then the runtime step here: which pods to start and which to stop. The executor carries the
answer out with the Service step's proxy table before the runtime step's stops, so a pod
leaves the endpoints before it is sent SIGTERM.
"""

from __future__ import annotations

from ..cluster import key_of
from .model import Allocations, Changes, PassInput, PodStart, PodStop
from .objects import (
    collect_garbage,
    observe_pods,
    request_deletions,
    sync_deployments,
    sync_desired,
    sync_replicasets,
)
from .services import pod_for_runtime, sync_services
from .work import Work


def decide(inp: PassInput) -> Changes:
    w = Work(inp)
    observe_pods(w)
    request_deletions(w)
    sync_desired(w)
    sync_deployments(w)
    sync_replicasets(w)
    collect_garbage(w)
    allocs, rules, ips, zone, backend_pods = sync_services(w)
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
        zone=zone,
        endpoint_pods=frozenset(backend_pods),
        stop=stops,
        start=starts,
        requeue_after=w.requeue_after,
        problems=w.problems,
        net_warned=w.net_warned,
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
        if uid not in mem.launched and uid not in running:
            services = w.cluster.of_kind("Service", pod["metadata"]["namespace"])
            starts.append(PodStart(uid, key_of(pod), pod_for_runtime(pod, services, allocations)))
    for uid in sorted(running):
        if uid not in live_uids:
            stop(uid, None)
    return starts, stops
