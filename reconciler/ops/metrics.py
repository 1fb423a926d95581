"""Prometheus metrics of `gitship up`, with the official client (prometheus-client).

Where it sits: two kinds of metric, in one registry (``REGISTRY``) served on ``--metrics-addr``
(reconciler/ops/start.py):

* Levels, read at scrape time from what the daemon holds (``StateCollector``): objects by kind
  and health, pods by phase, container restarts and readiness (the readiness probes' result),
  Deployment rollout progress, Service endpoints ready / not ready, the last applied revision,
  and the userspace proxy's connection and byte counters. No hooks: a scrape sees the state as
  it is, as kube-state-metrics does.
* Events, counted where they happen: reconciles (``timed_apply``, one decorator on
  RevisionApplier.apply_revision; Flux's gotk_reconcile_duration_seconds is the model),
  webhook deliveries (reconciler/ops/webhook.py) and notification failures
  (``notification_failed``, for reconciler/ops/notify.py).

Names follow Prometheus' conventions: a ``gitship_`` prefix, base units (seconds, bytes),
``_total`` on counters, labels for dimensions (docs/operations.md lists them all).
"""

from __future__ import annotations

import functools
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reconciler.types import Obj

from .health import HEALTH_STATES, health

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
PlatformCollector(registry=REGISTRY)  # python_info

RECONCILE_DURATION = Histogram(
    "gitship_reconcile_duration_seconds",
    "How long applying a revision took (load, validate, plan, record), by source and result.",
    ["kind", "name", "result"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
    registry=REGISTRY,
)
RECONCILES = Counter(
    "gitship_reconcile",
    "Revisions applied or rejected, by source and result.",
    ["kind", "name", "result"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "gitship_webhook_deliveries",
    "Webhook deliveries received, by provider and result (accepted, ignored, duplicate, unauthorized, ...).",
    ["provider", "result"],
    registry=REGISTRY,
)
NOTIFICATION_FAILURES = Counter(
    "gitship_notification_failures",
    "Notifications that could not be delivered (after their retries), by kind of endpoint.",
    ["url_kind"],
    registry=REGISTRY,
)

SOURCE_KIND = "GitRepository"  # the kind `gitship status -o json` gives the source (Flux's)
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def notification_failed(url_kind: str) -> None:
    """Count one notification that could not be delivered (``url_kind``: generic, slack, ...)."""
    NOTIFICATION_FAILURES.labels(url_kind=url_kind).inc()


def webhook_delivery(provider: str, result: str) -> None:
    WEBHOOK_DELIVERIES.labels(provider=provider, result=result).inc()


def source_name(source: Mapping[str, Any] | None) -> str:
    """The source's name: the last part of its URL or path (as `gitship status -o json` names it)."""
    url = str((source or {}).get("url") or "")
    return url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repository"


def observe_reconcile(name: str, result: str, seconds: float) -> None:
    RECONCILE_DURATION.labels(kind=SOURCE_KIND, name=name, result=result).observe(seconds)
    RECONCILES.labels(kind=SOURCE_KIND, name=name, result=result).inc()


def timed_apply(fn: Callable[..., Awaitable[bool]]) -> Callable[..., Awaitable[bool]]:
    """Decorates ``RevisionApplier.apply_revision``: its duration and result (success: applied,
    failure: rejected, error: it raised) go to gitship_reconcile_duration_seconds and _total."""

    @functools.wraps(fn)
    async def timed(self: Any, *args: Any, **kwargs: Any) -> bool:
        t0 = time.perf_counter()
        result = "error"
        try:
            ok = await fn(self, *args, **kwargs)
            result = "success" if ok else "failure"
            return ok
        finally:
            observe_reconcile(source_name(self.store.get_meta("source")), result, time.perf_counter() - t0)

    return timed


# -- levels ------------------------------------------------------------------------------------
def _ns_name(o: Obj) -> tuple[str, str]:
    m = o.get("metadata") or {}
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def object_families(objects: Iterable[Obj]) -> Iterator[Metric]:
    """Objects by kind and health, pods by phase, containers' restarts and readiness, Deployments'
    rollout progress and Services' endpoints, from the live objects."""
    objs = list(objects)
    by_health: Tally[tuple[str, str]] = Tally((str(o.get("kind")), health(o)) for o in objs)
    g = GaugeMetricFamily("gitship_objects", "Live objects by kind and health.", labels=["kind", "health"])
    for kind in sorted({k for k, _ in by_health}):
        for h in HEALTH_STATES:
            g.add_metric([kind, h], by_health[(kind, h)])
    yield g
    pods = [o for o in objs if o.get("kind") == "Pod"]
    yield from _pod_families(pods)
    yield from _deployment_families([o for o in objs if o.get("kind") == "Deployment"])
    yield _endpoint_family([o for o in objs if o.get("kind") == "Endpoints"])


def _pod_families(pods: list[Obj]) -> Iterator[Metric]:
    phases: Tally[str] = Tally(str((p.get("status") or {}).get("phase") or "Unknown") for p in pods)
    g = GaugeMetricFamily("gitship_pods", "Pods by phase.", labels=["phase"])
    for phase in sorted({*POD_PHASES, *phases}):
        g.add_metric([phase], phases[phase])
    yield g
    restarts = CounterMetricFamily(
        "gitship_container_restarts",
        "Restarts of each container (its restartCount).",
        labels=["namespace", "pod", "container"],
    )
    ready = GaugeMetricFamily(
        "gitship_container_ready",
        "Whether each container is ready (its readiness probe's last result; 1 ready, 0 not).",
        labels=["namespace", "pod", "container"],
    )
    for p in pods:
        ns, name = _ns_name(p)
        for c in (p.get("status") or {}).get("containerStatuses") or []:
            restarts.add_metric([ns, name, str(c.get("name"))], float(c.get("restartCount") or 0))
            ready.add_metric([ns, name, str(c.get("name"))], 1.0 if c.get("ready") else 0.0)
    yield restarts
    yield ready


_ROLLOUT = (
    ("spec_replicas", "The replicas a Deployment asks for (spec.replicas).", None),
    ("status_replicas_updated", "A Deployment's replicas of its current template.", "updatedReplicas"),
    ("status_replicas_ready", "A Deployment's ready replicas.", "readyReplicas"),
    (
        "status_replicas_available",
        "A Deployment's available replicas (ready for minReadySeconds).",
        "availableReplicas",
    ),
)


def _deployment_families(deployments: list[Obj]) -> Iterator[Metric]:
    for suffix, doc, field in _ROLLOUT:
        g = GaugeMetricFamily(f"gitship_deployment_{suffix}", doc, labels=["namespace", "deployment"])
        for d in deployments:
            value = (d.get("spec") or {}).get("replicas", 1) if field is None else (d.get("status") or {}).get(field, 0)
            g.add_metric(list(_ns_name(d)), float(value or 0))
        yield g


def _endpoint_family(endpoints: list[Obj]) -> Metric:
    g = GaugeMetricFamily(
        "gitship_service_endpoints",
        "A Service's endpoint addresses, ready or not.",
        labels=["namespace", "service", "ready"],
    )
    for e in endpoints:
        subsets = e.get("subsets") or []
        ready = sum(len(s.get("addresses") or []) for s in subsets)
        not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
        ns, name = _ns_name(e)
        g.add_metric([ns, name, "true"], ready)
        g.add_metric([ns, name, "false"], not_ready)
    return g


def revision_families(meta: Callable[[str], Any], applied_at: Callable[[str], float | None]) -> Iterator[Metric]:
    """The last applied revision (its time, and its sha as an info metric) and the Ready condition."""
    sha = meta("lastAppliedRevision")
    at = applied_at(sha) if sha else None
    source = meta("source") or {}
    ts = GaugeMetricFamily(
        "gitship_last_applied_revision_timestamp_seconds", "When the last applied revision was applied (Unix time)."
    )
    if at is not None:
        ts.add_metric([], at)
    yield ts
    info = GaugeMetricFamily(
        "gitship_last_applied_revision_info", "The last applied revision.", labels=["revision", "branch"]
    )
    if sha:
        info.add_metric([sha, str(source.get("branch") or "")], 1.0)
    yield info
    ready = meta("ready") or {}
    g = GaugeMetricFamily("gitship_source_ready", "1 when the source's Ready condition is True.", labels=["reason"])
    g.add_metric([str(ready.get("reason") or "Unknown")], 1.0 if ready.get("status") == "True" else 0.0)
    yield g


_PROXY_COUNTERS = (
    ("connections", "Connections the userspace proxy accepted, per Service port.", "accepted"),
    ("connections_rejected", "Connections reset because the Service port had no ready endpoint.", "rejected"),
    (
        "backend_connect_failures",
        "Connections to an endpoint that failed (the proxy tried another).",
        "connect_failures",
    ),
    ("datagrams", "UDP datagrams the userspace proxy forwarded, per Service port.", "datagrams"),
)


def proxy_families(stats: Mapping[str, Any] | None) -> Iterator[Metric]:
    """The userspace proxy's counters (none with the nftables data plane: the kernel carries it)."""
    services: Mapping[str, Any] = (stats or {}).get("services") or {}
    labels = ["service_port", "protocol"]
    for suffix, doc, field in _PROXY_COUNTERS:
        c = CounterMetricFamily(f"gitship_proxy_{suffix}", doc, labels=labels)
        for key, s in sorted(services.items()):
            if field in s:
                c.add_metric([key, str(s.get("protocol"))], float(s[field]))
        yield c
    b = CounterMetricFamily(
        "gitship_proxy_bytes",
        "Bytes the userspace proxy carried (up: client to endpoint).",
        labels=[*labels, "direction"],
    )
    active = GaugeMetricFamily("gitship_proxy_active_connections", "Open proxied connections.", labels=labels)
    for key, s in sorted(services.items()):
        proto = str(s.get("protocol"))
        b.add_metric([key, proto, "up"], float(s.get("bytes_up", 0)))
        b.add_metric([key, proto, "down"], float(s.get("bytes_down", 0)))
        if "active" in s:
            active.add_metric([key, proto], float(s["active"]))
    yield b
    yield active


class StateCollector(Collector):
    """The level metrics, computed at each scrape from the daemon's live objects and store."""

    def __init__(
        self,
        objects: Callable[[], Iterable[Obj]],
        meta: Callable[[str], Any],
        applied_at: Callable[[str], float | None],
        proxy_stats: Callable[[], Mapping[str, Any] | None],
    ):
        self.objects, self.meta, self.applied_at, self.proxy_stats = objects, meta, applied_at, proxy_stats

    def collect(self) -> Iterable[Metric]:
        yield from object_families(self.objects())
        yield from revision_families(self.meta, self.applied_at)
        yield from proxy_families(self.proxy_stats())
