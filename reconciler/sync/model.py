"""The reconcile pass's input and its one value of changes: plain data, no behaviour.

``PassInput`` is everything one pass decides from: the desired objects (the applied revision),
the live objects, what the runtime observes, what the executor remembers between passes, the
clock and the id sources. ``Changes`` is everything the pass decided; the executor
(reconciler/reconcile.py) carries it out in a fixed order (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from ..controllers.cronjob import JobRequest
from ..controllers.service import Allocation
from ..controllers.volume import Provision
from ..types import Key, NsName, Obj

Allocations = Mapping[NsName, Allocation]
Listener = tuple[str, str, int]
"""One proxy listener: (protocol, host, port), e.g. ("TCP", "0.0.0.0", 80)."""


@dataclass(frozen=True)
class Settings:
    """The reconciler's options: where Services get their addresses and listen."""

    service_cidr: str
    reserved_ips: tuple[str, ...] = ()  # never handed out as a ClusterIP (the DNS server's address)
    node_address: str = "0.0.0.0"
    # the runtime's own StorageClass provisioner (runtime.base.PROVISIONER); "": no built-in class
    provisioner: str = ""
    nodes: tuple[Obj, ...] = ()  # the runtime's nodes (controllers/daemonset.py node_object); () : one default node

    @property
    def load_balancer_ip(self) -> str:
        """The ingress IP a LoadBalancer Service shows (loopback when the node listens everywhere)."""
        return "127.0.0.1" if self.node_address in ("0.0.0.0", "") else self.node_address

    @property
    def node_listen(self) -> str:
        """The address nodePorts and LoadBalancer ports listen on."""
        return self.node_address or "0.0.0.0"


@dataclass(frozen=True)
class Observed:
    """What the runtime reports, read just before the pass."""

    statuses: Mapping[str, Obj] = field(default_factory=dict)  # pod uid -> PodStatus (absent: unknown)
    running: Set[str] = frozenset()  # uids of every pod the runtime runs
    # what the proxy reported when the last pass programmed it (reconciler/sync/netstatus.py)
    listening: Set[Listener] = frozenset()  # listeners bound
    listen_failed: Mapping[Listener, str] = field(default_factory=dict)  # listeners it could not bind, and why


@dataclass(frozen=True)
class Memory:
    """What the executor remembers between passes."""

    launched: Set[str] = frozenset()  # pods it asked the runtime to start (and has not stopped)
    terminating: Set[str] = frozenset()  # pods whose stop is in flight
    was_endpoint: Set[str] = frozenset()  # pods that were a ready backend of some Service
    allocations: Allocations = field(default_factory=dict)
    template_commits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # "ns/deployment" -> commit
    revision_info: Mapping[str, Any] | None = None  # the applied commit (sha, author, subject)
    net_warned: Set[str] = frozenset()  # network Warnings in force: sent once, again after they cleared
    # pod creations the runtime refused in the last pass: controller uid -> what failed (CreateFailure)
    create_failures: Mapping[str, CreateFailure] = field(default_factory=dict)


@dataclass(frozen=True)
class Ids:
    """Where new identities come from (random in the daemon, counters in tests)."""

    new_uid: Callable[[], str]
    new_pod_name: Callable[[], tuple[str, str]]  # (name suffix, uid)


@dataclass(frozen=True)
class PassInput:
    desired: Mapping[Key, Obj]
    live: Mapping[Key, Obj]
    observed: Observed
    memory: Memory
    settings: Settings
    ids: Ids
    now: float
    reconcile_id: str = ""
    revision: str | None = None
    # `gitship delete pod`: pod uid -> grace seconds (None: the pod's terminationGracePeriodSeconds)
    delete_requests: Mapping[str, float | None] = field(default_factory=dict)
    job_requests: Sequence[JobRequest] = ()  # `gitship create job --from=cronjob/X` (sync/jobs.py)


# -- pod creation: slow start and failures (kubernetes/kubernetes pkg/controller/replicaset) --------


@dataclass(frozen=True)
class SlowStart:
    """A new pod's place in its controller's slow start (replica_set.go slowStartBatch): the pods
    one controller creates in a pass go in batches of 1, 2, 4, ...; the executor tries a batch
    only when every pod of the batches before it was created, and drops the pods it skips."""

    owner_uid: str  # the controller (ReplicaSet) creating the pod
    owner: Key
    batch: int  # 0, 1, 2, ...: the batch of 1, 2, 4, ... pods the pod is in


@dataclass(frozen=True)
class CreateFailure:
    """What one controller could not create in a pass: the runtime refused these pods, whose
    live objects the executor then removed (a pod whose creation failed does not exist)."""

    owner: Key
    errors: tuple[str, ...]  # one per refused pod, in order (never empty)
    skipped: int = 0  # pods of the batches after the failing one, not tried (and removed)


@dataclass(frozen=True)
class PodStart:
    """Start a pod in the runtime (after the live objects are in the store)."""

    uid: str
    key: Key
    pod: Obj  # as the runtime gets it: the live pod plus the Services' environment variables
    slow_start: SlowStart | None = None  # None: a pod no controller creates (git's): started on its own
    created_event: Obj | None = None  # the controller's SuccessfulCreate record, written once the pod started


@dataclass(frozen=True)
class PodStop:
    """Stop a pod in the runtime (after the proxy has dropped it), then forget its live object."""

    uid: str
    key: Key | None  # the live object to delete once stopped (None: nothing left to delete)
    grace: float | None = None  # None: the pod's terminationGracePeriodSeconds
    drain: bool = False  # it was a ready backend: give connections just accepted time before SIGTERM


@dataclass(frozen=True)
class ProxyRule:
    """One Service port in the proxy: where it listens and where it forwards."""

    key: str  # "<namespace>/<name>:<port name or number>"
    cluster_ip: str
    listen: tuple[tuple[str, int], ...]
    backends: tuple[tuple[str, int], ...]
    affinity: str = "None"
    affinity_timeout: int = 10800
    protocol: str = "TCP"  # or "UDP" (SCTP ports get no rule: netstatus.py warns)


@dataclass(frozen=True)
class ZoneInput:
    """What the cluster DNS zone is built from (runtime/net/dns.py build_zone)."""

    services: tuple[Obj, ...] = ()  # service views (clusterIP filled)
    endpoints: tuple[Obj, ...] = ()
    pods: tuple[Obj, ...] = ()
    namespaces: tuple[str, ...] = ()  # the live Namespaces' names (sync/namespaces.py)


@dataclass(frozen=True)
class Problem:
    """Something the executor should log (a controller failed, an allocation was refused)."""

    level: str  # "warning" | "error"
    event: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


@dataclass
class Changes:
    """Everything one pass decided, in the order the executor carries it out."""

    put: list[Obj] = field(default_factory=list)  # live objects created or changed (whole objects)
    delete: list[Key] = field(default_factory=list)  # live objects removed
    events: list[Obj] = field(default_factory=list)  # event records, as the store keeps them
    allocations: dict[NsName, Allocation] | None = None  # the new allocation table, when it changed
    service_ips: list[str] = field(default_factory=list)  # ClusterIPs the runtime makes reachable
    proxy: list[ProxyRule] = field(default_factory=list)  # the whole proxy table (others are removed)
    zone: ZoneInput = field(default_factory=ZoneInput)
    endpoint_pods: frozenset[str] = frozenset()  # pods that are a ready backend now
    stop: list[PodStop] = field(default_factory=list)
    start: list[PodStart] = field(default_factory=list)
    requeue_after: float | None = None  # seconds until a controller wants another pass
    problems: list[Problem] = field(default_factory=list)
    net_warned: frozenset[str] = frozenset()  # the network Warnings in force now (Memory.net_warned next pass)
    provision: list[Provision] = field(default_factory=list)  # volumes the runtime makes (then the PV goes live)
    reclaim: list[Obj] = field(default_factory=list)  # Released PVs under Delete: their data, then they go


def what_changes(ch: Changes) -> dict[str, list[str]]:
    """What a pass would do, in short (empty: nothing): the backstop pass's self-check."""
    what = {
        "put": [f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in ch.put],
        "delete": ["/".join(k) for k in ch.delete],
        "events": [f"{e['reason']} {e['kind']}/{e['name']}" for e in ch.events],
        "start": [s.uid for s in ch.start],
        "stop": [s.uid for s in ch.stop],
        "provision": [p.pv_name for p in ch.provision],
        "reclaim": [o["metadata"]["name"] for o in ch.reclaim],
    }
    return {k: v for k, v in what.items() if v}
