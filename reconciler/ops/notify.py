"""Notifications: ``gitship up --notify URL`` (repeatable) POSTs what happened to a webhook.

Where it sits: beside the reconcile loop, started by ``start_notifications`` from daemon.py's
``start_apis``. A ``Watcher`` looks at what the daemon already records (store meta, the live
Deployments in memory) every half second and turns changes into events
(reconciler/ops/notifyevents.py, pure); besides, the default source's applier hands it every
change of the source error as it happens (``SourceEdges``: ``RevisionApplier.on_source_change``),
so an outage that begins and ends between two looks is reported too. Each URL has a
``Sender``: a bounded queue and one task that delivers in order, retrying a failed delivery with
exponential back-off.

Nothing here can slow a reconcile: the watcher only reads, in the event loop, without waiting
on anything; a queue that is full drops its oldest notification (counted and logged) instead
of waiting; HTTP runs in the senders' own tasks, with a timeout.

URLs: ``https://...`` (or http) gets gitship's JSON; ``slack+https://...`` gets Slack's
incoming-webhook body (the ``slack+`` prefix is taken off). Webhook URLs are secrets (Slack's
carry the token in the path): logs show only the scheme and host.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from reconciler.log import Logger
from reconciler.store import Store
from reconciler.types import Obj

from .metrics import notification_failed
from .notifyevents import BODIES, Event, Rollback, Snapshot, advance, backoff_delay, rollout_state

QUEUE_SIZE = 100
EDGES = 1000  # source error changes kept between two looks (a source flapping faster loses the oldest)
APPLIED_EDGES = 10  # revisions applied between two looks that are each notified (the newest ten)
TIMEOUT = 10.0
ATTEMPTS = 12  # with base 1 s and a 60 s cap: about 7 minutes before a notification is given up
WATCH_INTERVAL = 0.5
OK, RETRY, FATAL = "ok", "retry", "fatal"

_tasks: set[asyncio.Task[None]] = set()  # the running senders and watchers (kept from the collector)


@dataclass(frozen=True)
class Target:
    url: str  # where the POST goes
    format: str  # "generic" or "slack"

    def redacted(self) -> str:
        u = urllib.parse.urlsplit(self.url)
        return f"{u.scheme}://{u.hostname or ''}{f':{u.port}' if u.port else ''}/..."


def parse_target(url: str) -> Target:
    """``slack+https://...`` is Slack's format, ``https://...`` / ``http://...`` the generic JSON."""
    fmt, rest = "generic", url
    scheme, sep, tail = url.partition("+")
    if sep and scheme in ("slack", "generic", "json") and "://" in tail:
        fmt, rest = ("slack" if scheme == "slack" else "generic"), tail
    u = urllib.parse.urlsplit(rest)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL (slack+https://... for Slack's format)")
    return Target(rest, fmt)


PostFn = Callable[[Target, bytes], Awaitable[str]]


class Sender:
    """One URL: a bounded queue of bodies and a task that posts them in order."""

    def __init__(
        self,
        target: Target,
        log: Logger,
        post: PostFn,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        maxsize: int = QUEUE_SIZE,
        base: float = 1.0,
        cap: float = 60.0,
        attempts: int = ATTEMPTS,
    ):
        self.target, self.log, self.post, self.sleep = target, log, post, sleep
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize)
        self.base, self.cap, self.attempts = base, cap, attempts
        self.delivered = self.dropped = self.failed = 0

    def put(self, event: str, body: bytes) -> None:
        """Queue a body without waiting; a full queue drops its oldest."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                old, _ = self.queue.get_nowait()
                self.queue.task_done()
                self.dropped += 1
                notification_failed(self.target.format)
                self.log.warning(
                    "notification_dropped", url=self.target.redacted(), notification=old, dropped=self.dropped
                )
        self.queue.put_nowait((event, body))

    async def run(self) -> None:
        while True:
            event, body = await self.queue.get()
            try:
                await self.deliver(event, body)
            finally:
                self.queue.task_done()

    async def deliver(self, event: str, body: bytes) -> bool:
        for attempt in range(self.attempts):
            result = await self.post(self.target, body)
            if result == OK:
                self.delivered += 1
                if attempt:
                    self.log.info(
                        "notification_delivered", url=self.target.redacted(), notification=event, attempts=attempt + 1
                    )
                return True
            if result == FATAL:
                break
            delay = backoff_delay(attempt, self.base, self.cap)
            self.log.warning(
                "notification_retry",
                url=self.target.redacted(),
                notification=event,
                attempt=attempt + 1,
                retry_in=delay,
            )
            await self.sleep(delay)
        self.failed += 1
        notification_failed(self.target.format)
        self.log.error("notification_failed", url=self.target.redacted(), notification=event)
        return False


class HttpPoster:
    """POSTs JSON with aiohttp: OK on 2xx; RETRY on a connection error, a timeout, 408, 429 or 5xx."""

    def __init__(self) -> None:
        self.session: Any = None

    async def __call__(self, target: Target, body: bytes) -> str:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        try:
            headers = {"Content-Type": "application/json", "User-Agent": "gitship"}
            async with self.session.post(target.url, data=body, headers=headers) as resp:
                status = int(resp.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return RETRY
        if 200 <= status < 300:
            return OK
        return RETRY if status in (408, 429) or status >= 500 else FATAL

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class SourceEdges:
    """Every change of the source error (an error message, or None: reachable again), in the order the
    source loops recorded them, until the watcher takes them at its next look. Also every revision
    applied (its sha), in order (``Watcher.applied``)."""

    def __init__(self, maxlen: int = EDGES) -> None:
        self.pending: collections.deque[str | None] = collections.deque(maxlen=maxlen)

    def record(self, error: str | None) -> None:
        self.pending.append(error)

    def take(self) -> tuple[str | None, ...]:
        out = tuple(self.pending)
        self.pending.clear()
        return out


async def _wait_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


class Watcher:
    """Looks at the recorded state every ``interval`` seconds and hands new events to the senders."""

    def __init__(
        self,
        store: Store,
        cluster: Any,
        senders: list[Sender],
        log: Logger,
        interval: float = WATCH_INTERVAL,
        wait: Callable[[asyncio.Event, float], Awaitable[None]] = _wait_or_stop,
    ):
        self.store, self.cluster, self.senders, self.log, self.interval = store, cluster, senders, log, interval
        self.edges, self.wait = SourceEdges(), wait
        self.applied = SourceEdges(APPLIED_EDGES)  # two revisions applied between two looks: both said

    def snapshot(self, prev: Snapshot | None) -> Snapshot:
        meta = self.store.get_meta
        ready = meta("ready") or {}
        attempted = meta("lastAttemptedRevision")
        result = (meta("lastAttemptedResult") or {}).get("result")
        rejection: tuple[Obj, ...] = prev.rejection if prev and prev.attempted == attempted else ()
        if attempted and result == "rejected" and not (prev and prev.attempted == attempted):
            for r in self.store.revisions(5):
                if r["sha"] == attempted and r["result"] == "rejected":
                    rejection = tuple(r.get("error") or ())
                    break
        own = meta("autoRollbacks") or {}
        rollbacks = dict(prev.rollbacks) if prev else {}
        for failed, sha in own.items():
            if failed not in rollbacks:
                rollbacks[failed] = self._rollback(failed, sha)
        deps = self.cluster.of_kind("Deployment")
        return Snapshot(
            applied=meta("lastAppliedRevision"),
            attempted=attempted,
            attempted_result=result,
            rejection=rejection,
            ready_reason=str(ready.get("reason") or ""),
            ready_message=str(ready.get("message") or ""),
            source_error=meta("sourceError"),
            source_edges=self.edges.take(),
            applied_edges=tuple(sha for sha in self.applied.take() if sha),
            rollouts={(d["metadata"]["namespace"], d["metadata"]["name"]): rollout_state(d) for d in deps},
            rollbacks=rollbacks,
        )

    def _rollback(self, failed: str, sha: str) -> Rollback:
        for e in reversed(self.store.events(kind="Deployment", limit=100)):
            if e["reason"] == "AutoRollback" and e["revision"] == sha:
                return Rollback(sha, failed, ("Deployment", e["namespace"], e["name"]), e["message"])
        return Rollback(sha, failed)

    def publish(self, events: list[Event], source: Obj) -> None:
        stamp = _rfc3339(time.time())
        for ev in events:
            self.log.info("notification", notification=ev.event, reason=ev.reason, message=ev.message)
            for s in self.senders:
                body = BODIES[s.target.format](ev, source, stamp)
                s.put(ev.event, json.dumps(body).encode())

    async def loop(self, stopping: asyncio.Event) -> None:
        prev: Snapshot | None = None
        while not stopping.is_set():
            try:
                events, cur = advance(prev, self.snapshot(prev))
                self.publish(events, self.store.get_meta("source") or {})
                prev = cur
            except Exception as e:  # never let notifications take anything down
                self.log.exception("notification_watch_failed", error=str(e))
            await self.wait(stopping, self.interval)


def _spawn(coro: Awaitable[None]) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _run_sender(sender: Sender, poster: HttpPoster, stopping: asyncio.Event) -> None:
    """A sender until the daemon stops, then a few seconds to deliver what is queued."""
    task = asyncio.ensure_future(sender.run())
    try:
        await stopping.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(sender.queue.join(), timeout=3.0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await poster.close()


def start_notifications(d: Any) -> Watcher | None:
    """Daemon start: one sender per ``--notify`` URL and the watcher (``d``: the Daemon)."""
    urls = getattr(d.opts, "notify", ())
    if not urls:
        return None
    senders = []
    for url in urls:
        poster = HttpPoster()
        sender = Sender(parse_target(url), d.log, poster)
        senders.append(sender)
        _spawn(_run_sender(sender, poster, d.stopping))
    watcher = Watcher(d.store, d.reconciler.cluster, senders, d.log)
    d.applier.on_source_change = watcher.edges.record  # every outage, however short (applier.set_source_error)
    d.applier.on_applied = watcher.applied.record  # every revision applied, however soon the next one
    _spawn(watcher.loop(d.stopping))
    d.log.info("notifications", targets=[s.target.redacted() for s in senders])
    return watcher
