"""The reconcile executor: carries out what the pure pass (reconciler/sync) decided.

Where it sits: after the store, before the runtime. Each pass is level-triggered: the
executor reads the live objects and what the runtime observes, asks ``sync.decide`` for one
value of ``Changes``, and carries it out in a fixed order:

  1. the live objects (created, updated, deleted) and the events, written to the store
     before the runtime is asked to start anything (crash consistency)
  2. the Service step: allocations, ClusterIPs made reachable, the proxy table, the DNS zone
  3. the runtime step: stop pods (after step 2, so a pod leaves the endpoints before it is
     sent SIGTERM; a pod that was a ready backend is stopped ENDPOINT_DRAIN_SECONDS after the
     proxy dropped it), then start new ones: each ReplicaSet's in its slow-start batches
     (1, 2, 4, ...), none after a batch the runtime refused a pod of
  4. the statuses of the pods just started, written to the store; the live objects of pods the
     runtime refused, or that a slow start skipped, removed (a pod whose creation failed does
     not exist); what failed is handed to the next pass (``Memory.create_failures``)

A crash at any point converges on restart: pods the runtime still runs are adopted, pods it
lost are replaced by their owners, and pods it runs that no live object wants are stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from runtime.base import PROVISIONER, Runtime, RuntimeError_
from runtime.net.dns import Zone

from . import sync
from .cluster import Cluster
from .controllers import service as svcctl
from .controllers.cronjob import JobRequest
from .controllers.podutil import ALPHABET
from .errors import ManifestError
from .log import Logger
from .dataplane import DataPlane
from .servicenet import ServiceNetwork
from .storage_exec import VolumeRequests, config_objects_of
from .store import Store
from .sync.model import CreateFailure, SlowStart
from .types import Key, NsName, Obj

if TYPE_CHECKING:
    from .manifests.model import Manifest
    from .source.git import Revision

ENDPOINT_DRAIN_SECONDS = 0.5
MIN_PASS_INTERVAL = 1.0  # the shortest retry: a refused or skipped pod creation, a failed pass
RESYNC_SECONDS = 10.0  # the backstop pass when nothing woke the loop (GITSHIP_RESYNC_SECONDS)


def resync_seconds() -> float:
    """Passes are event-driven: a change of desired state, a runtime's ``on_change``, a finished
    stop, or a controller's requeue (every rule that depends on time asks for one). The backstop
    pass catches what no event announced; one that changes anything logs
    ``reconcile_backstop_changed`` (a missing event or requeue: a bug to fix)."""
    try:
        return max(0.05, float(os.environ.get("GITSHIP_RESYNC_SECONDS", RESYNC_SECONDS)))
    except ValueError:
        return RESYNC_SECONDS


def new_uid() -> str:
    return str(uuid.uuid4())


def _load_allocations(stored: dict[str, Any]) -> dict[NsName, svcctl.Allocation]:
    out: dict[NsName, svcctl.Allocation] = {}
    for k, v in stored.items():
        ns, _, name = k.partition("/")
        out[(ns, name)] = svcctl.Allocation(v.get("clusterIP"), {str(p): n for p, n in v.get("nodePorts", {}).items()})
    return out


def stored_allocations(allocs: dict[NsName, svcctl.Allocation]) -> dict[str, Any]:
    return {f"{ns}/{n}": {"clusterIP": a.cluster_ip, "nodePorts": a.node_ports} for (ns, n), a in allocs.items()}


def log_event(log: Logger, e: Obj) -> None:
    log.info(
        "event",
        type=e["type"],
        reason=e["reason"],
        kind=e["kind"],
        namespace=e["namespace"],
        name=e["name"],
        message=e["message"],
        reconcile_id=e["reconcile_id"],
        commit=(e["revision"] or "")[:7],
    )


def sandbox_event(pod: Obj, error: str, now: float, reconcile_id: str, revision: str | None) -> Obj:
    """The Warning on a pod git declares when the runtime refuses it (it stays Pending)."""
    m = pod["metadata"]
    return {
        "time": now,
        "type": "Warning",
        "reason": "FailedCreatePodSandBox",
        "kind": "Pod",
        "namespace": m["namespace"],
        "name": m["name"],
        "message": error,
        "reconcile_id": reconcile_id,
        "revision": revision,
    }


async def create_in_runtime(runtime: Runtime, cluster: Cluster, log: Logger, start: sync.PodStart) -> str | None:
    """Ask the runtime for the pod, then show its status; the error when the runtime refuses it
    (None: it runs the pod)."""
    try:
        await runtime.create_pod(start.pod)
    except Exception as e:
        m = start.pod["metadata"]
        (log.warning if isinstance(e, RuntimeError_) else log.exception)(
            "pod_start_failed", namespace=m["namespace"], name=m["name"], error=str(e)
        )
        return str(e) or type(e).__name__
    st = runtime.status(start.uid)
    live = cluster.get(start.key)
    if st is not None and live is not None and live["metadata"].get("uid") == start.uid:
        cluster.put({**live, "status": st})
    return None


class StartRound:
    """One pass's pod starts, ReplicaSet by ReplicaSet, as kubernetes/kubernetes
    pkg/controller/replicaset/replica_set.go slowStartBatch makes them: in batches of 1, 2, 4, ...;
    a batch is tried only when every pod of the batches before it started, the pods of the
    batches after one with a refusal are skipped. Refused and skipped pods do not exist (their
    live objects were in the store before the runtime was asked, for crash consistency, and
    go); the next pass learns what failed (``failures``: FailedCreate events, the ReplicaFailure
    condition) and creates them again, starting again at a batch of one."""

    def __init__(self) -> None:
        self.failed_batch: dict[str, int] = {}  # controller uid -> the batch with a refusal
        self.batches: dict[tuple[str, int], list[int]] = {}  # (controller uid, batch) -> [tried, refused]
        self.owners: dict[str, Key] = {}
        self.failures: dict[str, CreateFailure] = {}  # controller uid -> what failed, for the next pass
        self.events: list[Obj] = []  # SuccessfulCreate of the pods that started; FailedCreatePodSandBox

    def skips(self, ss: SlowStart) -> bool:
        """A pod of a batch after one with a refusal: not tried (counted as skipped)."""
        if ss.batch <= self.failed_batch.get(ss.owner_uid, ss.batch):
            return False
        f = self.failures[ss.owner_uid]
        self.failures[ss.owner_uid] = CreateFailure(f.owner, f.errors, f.skipped + 1)
        return True

    def tried(self, ss: SlowStart, error: str | None) -> None:
        self.owners[ss.owner_uid] = ss.owner
        counts = self.batches.setdefault((ss.owner_uid, ss.batch), [0, 0])
        counts[0] += 1
        if error is None:
            return
        counts[1] += 1
        self.failed_batch[ss.owner_uid] = ss.batch
        f = self.failures.get(ss.owner_uid) or CreateFailure(ss.owner, ())
        self.failures[ss.owner_uid] = CreateFailure(f.owner, (*f.errors, error), f.skipped)

    def log(self, log: Logger, **fields: Any) -> None:
        for (owner_uid, batch), (tried, refused) in self.batches.items():
            _, ns, name = self.owners[owner_uid]
            log.info("pod_create_batch", owner=f"{ns}/{name}", batch=batch, size=tried, refused=refused, **fields)
        for f in self.failures.values():
            _, ns, name = f.owner
            log.warning(
                "pod_create_failed",
                owner=f"{ns}/{name}",
                refused=len(f.errors),
                skipped=f.skipped,
                error=f.errors[0],
                **fields,
            )


class Reconciler:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        cluster: Cluster,
        settings: sync.Settings,
        log: Logger,
        stopping: asyncio.Event,
        plane: DataPlane,
        publish_zone: Callable[[Zone], None],
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.runtime = runtime
        self.cluster = cluster
        self.settings = settings if settings.provisioner else dataclasses.replace(settings, provisioner=PROVISIONER)
        self.log = log
        self.stopping = stopping
        self.plane = plane
        self.publish_zone = publish_zone
        self.clock = clock
        self.desired: dict[Key, Obj] = store.desired()
        self.revision: str | None = store.get_meta("lastAppliedRevision")
        self.template_commits: dict[str, Any] = store.get_meta("templateCommits", {})
        self.revision_info: dict[str, Any] | None = next(
            (r for r in store.revisions(50) if r["sha"] == self.revision), None
        )
        self.reconcile_id = ""
        self.allocations = _load_allocations(store.get_meta("allocations", {}))
        self.passes = 0
        self._rng = random.Random()
        self._ids = sync.Ids(new_uid, self._new_pod_name)
        self._wake = asyncio.Event()
        self._requeue_at: float | None = None
        self._launched: set[str] = set()
        self._terminating: dict[str, asyncio.Task[None]] = {}
        self._was_endpoint: set[str] = set()
        self.network = ServiceNetwork(runtime, plane, publish_zone, log, self.kick, cluster)  # the Service step
        self._create_failures: dict[str, CreateFailure] = {}  # for the next pass, by controller uid
        self._config_objects: dict[Key, Obj] | None = None  # last given to runtime.set_config_objects
        self.volumes = VolumeRequests(runtime, cluster, log, clock)  # the storage step

    # -- life cycle -----------------------------------------------------------------
    async def start(self, adopted: dict[str, Obj]) -> None:
        self._launched = set(adopted)
        for key in sync.lost_pods(self.cluster.objects, adopted):
            self.cluster.delete(key)
        await self.pass_once()

    async def close(self) -> None:
        for t in list(self._terminating.values()):
            t.cancel()
        await self.network.close()

    def on_pod_change(self, uid: str) -> None:
        self.kick()

    def kick(self) -> None:
        self._wake.set()

    def set_desired(self, desired: dict[Key, Obj], rev: Revision, reconcile_id: str) -> None:
        changed = sync.template_commits(self.desired, desired, rev.to_dict())
        if changed:
            self.template_commits.update(changed)
            self.store.set_meta(templateCommits=self.template_commits)
        self.desired = desired
        self.revision = rev.sha
        self.revision_info = rev.to_dict()
        self.reconcile_id = reconcile_id
        self.kick()

    async def loop(self) -> None:
        resync = resync_seconds()
        while not self.stopping.is_set():
            timeout = resync
            if self._requeue_at is not None:
                timeout = max(0.01, min(timeout, self._requeue_at - self.clock()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            backstop = not self._wake.is_set() and timeout >= resync
            self._wake.clear()
            try:
                await self.pass_once(backstop=backstop)
            except Exception as e:  # a pass must never kill the daemon
                self.log.exception("reconcile_pass_failed", error=str(e))
                self._requeue_in(MIN_PASS_INTERVAL)

    def _requeue_in(self, seconds: float) -> None:
        at = self.clock() + seconds
        self._requeue_at = at if self._requeue_at is None else min(self._requeue_at, at)

    def check_revision(self, manifests: Sequence[Manifest]) -> list[ManifestError]:
        """Errors a revision would cause against the state that runs (service allocations)."""
        return sync.allocation_errors(manifests, self.allocations, self.settings)

    # -- the pass ----------------------------------------------------------------------------
    def _new_pod_name(self) -> tuple[str, str]:
        return "".join(self._rng.choice(ALPHABET) for _ in range(5)), new_uid()

    def _input(self, now: float, delete_requests: dict[str, float | None]) -> sync.PassInput:
        rt = self.runtime
        statuses = {}
        for pod in self.cluster.of_kind("Pod"):
            uid = pod["metadata"]["uid"]
            if (st := rt.status(uid)) is not None:
                statuses[uid] = st
        # each refused creation reaches exactly one pass (its events, the ReplicaFailure condition);
        # the pass after it, without them, may clear the condition: it must come
        failures, self._create_failures = self._create_failures, {}
        if failures:
            self._requeue_in(MIN_PASS_INTERVAL)
        return sync.PassInput(
            desired=self.desired,
            live=self.cluster.objects,
            observed=sync.Observed(
                statuses,
                set(rt.pods()),
                listening=self.network.listening,
                listen_failed=dict(self.network.listen_failed),
            ),
            memory=sync.Memory(
                launched=frozenset(self._launched),
                terminating=frozenset(self._terminating),
                was_endpoint=frozenset(self._was_endpoint),
                allocations=self.allocations,
                template_commits=self.template_commits,
                revision_info=self.revision_info,
                net_warned=self.network.net_warned,
                create_failures=failures,
            ),
            settings=self.settings,
            ids=self._ids,
            now=now,
            reconcile_id=self.reconcile_id,
            revision=self.revision,
            delete_requests=delete_requests,
        )

    async def pass_once(
        self,
        delete_requests: dict[str, float | None] | None = None,
        job_requests: Sequence[JobRequest] = (),
        backstop: bool = False,
    ) -> None:
        now = self.clock()
        self.passes += 1
        self._requeue_at = None  # this pass asks again below (and _input may)
        changes = sync.decide(dataclasses.replace(self._input(now, delete_requests or {}), job_requests=job_requests))
        if changes.requeue_after is not None:
            self._requeue_in(changes.requeue_after)
        if backstop and (what := sync.what_changes(changes)):
            self.log.warning("reconcile_backstop_changed", changes=what)
        self._report(changes)
        # 1. the live objects, in the store before the runtime starts anything
        for key in changes.delete:
            self.cluster.delete(key)
        for obj in changes.put:
            self.cluster.put(obj)
        self._launched.update(s.uid for s in changes.start)
        if changes.events:
            self.store.add_events(changes.events)
        self._persist()
        await self._storage_step(changes)
        self._push_config_objects()
        # 2. the Service step
        if changes.allocations is not None:
            self._save_allocations(changes.allocations)
        await self._program_network(changes)
        # 3. the runtime step
        for stop in changes.stop:
            self._stop_in_runtime(stop)
        await self._start_pods(changes.start)
        self._persist()

    async def _storage_step(self, changes: sync.Changes) -> None:
        """Volumes made and deleted by the runtime (storage_exec.py); the objects and events
        written, the next pass kicked to bind them (or to retry after a back-off)."""
        if not changes.provision and not changes.reclaim:
            return
        events = await self.volumes.run(changes.provision, changes.reclaim, new_uid)
        events = [{**e, "reconcile_id": self.reconcile_id, "revision": self.revision} for e in events]
        for e in events:
            log_event(self.log, e)
        if events:
            self.store.add_events(events)
        self._persist()
        retry = self.volumes.retry_after()
        if retry is not None:
            self._requeue_in(retry)
        self.kick()

    def _report(self, changes: sync.Changes) -> None:
        for p in changes.problems:
            fields = dict(p.fields)
            if p.error is not None:
                fields["exc_info"] = p.error
            (self.log.error if p.level == "error" else self.log.warning)(p.event, **fields)
        for e in changes.events:
            log_event(self.log, e)

    def _save_allocations(self, allocs: dict[NsName, svcctl.Allocation]) -> None:
        self.allocations = allocs
        self.store.set_meta(allocations=stored_allocations(allocs))

    async def _program_network(self, changes: sync.Changes) -> None:
        self._was_endpoint |= changes.endpoint_pods
        await self.network.program(changes)

    # -- pods in the runtime --------------------------------------------------------------------
    async def _start_pods(self, starts: list[sync.PodStart]) -> None:
        """Start the pods the pass decided on, each ReplicaSet's in its slow-start batches
        (StartRound). Refused and skipped pods do not exist: their live objects go."""
        round_ = StartRound()
        for start in starts:
            ss = start.slow_start
            if ss is not None and round_.skips(ss):
                self._drop(start)
                continue
            error = await create_in_runtime(self.runtime, self.cluster, self.log, start)
            if ss is None:  # a pod git declares stays, Pending, as one whose sandbox the kubelet cannot make
                if error is not None:
                    round_.events.append(
                        sandbox_event(start.pod, error, self.clock(), self.reconcile_id, self.revision)
                    )
                continue
            round_.tried(ss, error)
            if error is not None:
                self._drop(start)
            elif start.created_event is not None:
                round_.events.append({**start.created_event, "time": self.clock()})
        round_.log(self.log, pass_no=self.passes, reconcile_id=self.reconcile_id)
        self._create_failures.update(round_.failures)
        if round_.failures:
            self._requeue_in(MIN_PASS_INTERVAL)  # the next slow-start batch, or the refused creation again
        for e in round_.events:
            log_event(self.log, e)
        if round_.events:
            self.store.add_events(round_.events)

    def _drop(self, start: sync.PodStart) -> None:
        """A pod whose creation failed or was skipped: it does not exist."""
        self._launched.discard(start.uid)
        live = self.cluster.get(start.key)
        if live is not None and live["metadata"].get("uid") == start.uid:
            self.cluster.delete(start.key)

    def _stop_in_runtime(self, stop: sync.PodStop) -> None:
        if stop.uid in self._terminating:
            return
        self._terminating[stop.uid] = asyncio.create_task(self._stop(stop))

    async def _stop(self, stop: sync.PodStop) -> None:
        uid = stop.uid
        try:
            if stop.drain and not self.stopping.is_set():
                # the proxy no longer sends it new connections; give the ones it has just
                # opened time to be accepted before the app stops listening (what a
                # preStop sleep does on Kubernetes)
                await asyncio.sleep(ENDPOINT_DRAIN_SECONDS)
            await self.runtime.delete_pod(uid, stop.grace)
        except Exception as e:
            self.log.exception("pod_stop_failed", uid=uid, error=str(e))
        finally:
            self._launched.discard(uid)
            self._was_endpoint.discard(uid)
            self._terminating.pop(uid, None)
            if stop.key is not None:
                live = self.cluster.get(stop.key)
                if live is not None and live["metadata"].get("uid") == uid:
                    self.cluster.delete(stop.key)
                    self._persist()
            self.kick()

    async def delete_pod(self, namespace: str, name: str, grace: float | None = None) -> bool:
        """`gitship delete pod`: stop it now; its owner (or git) decides what comes next."""
        pod = self.cluster.get(("Pod", namespace, name))
        if pod is None:
            return False
        uid = pod["metadata"]["uid"]
        await self.pass_once(delete_requests={uid: grace})
        task = self._terminating.get(uid)
        if task:
            await asyncio.shield(task)
        self.kick()
        return True

    def _push_config_objects(self) -> None:
        """The runtime gets every live ConfigMap, Secret, PersistentVolumeClaim and PersistentVolume
        when that set changed (env, volumes, claims)."""
        objs = config_objects_of(self.cluster.objects)
        if objs != self._config_objects:
            self._config_objects = copy.deepcopy(objs)
            self.runtime.set_config_objects(self._config_objects)

    # -- persistence ---------------------------------------------------------------------------
    def _persist(self) -> None:
        ups, dels = self.cluster.take_changes()
        if ups or dels:
            self.store.write_cluster(ups, dels)
