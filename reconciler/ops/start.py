"""Wiring the operations endpoints into `gitship up`: /metrics, the webhook receiver, sd_notify.

Where it sits: ``start_ops`` is called once from reconciler/daemon.py's start_apis, after the
reconciler started; ``Ops.close`` from the daemon's shutdown. A listen address that is taken is a
warning, as the Kubernetes API's is: the rest of gitship runs without that endpoint. The addresses
bound go to the store's meta (``metrics``, ``webhook``) for `gitship` and tests to find.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from . import metrics, sdnotify
from .webhook import Receiver

NOTIFY_INTERVAL = 1.0  # seconds between looks at the Ready condition for systemd's STATUS=


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def serve(app: web.Application, addr: str) -> tuple[web.AppRunner, str]:
    """Start ``app`` on HOST:PORT; the runner and the address bound (port 0: the kernel's choice)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = split_addr(addr)
    try:
        await web.TCPSite(runner, host, port, shutdown_timeout=1.0).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return runner, f"{host}:{bound[1]}"


def metrics_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(metrics.REGISTRY), headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app


def state_collector(d: Any) -> metrics.StateCollector:
    """The daemon's live objects and store meta, read at each scrape."""

    def applied_at(sha: str) -> float | None:
        row = d.store.db.execute(
            "SELECT synced_at FROM revisions WHERE sha=? AND result='applied' ORDER BY seq DESC LIMIT 1", (sha,)
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def proxy_stats() -> Any:
        proxy = getattr(d.plane, "proxy", None)
        return proxy.stats() if proxy is not None else None

    return metrics.StateCollector(
        lambda: list(d.reconciler.cluster.objects.values()), d.store.get_meta, applied_at, proxy_stats
    )


class Ops:
    def __init__(self, d: Any):
        self.d = d
        self.runners: list[web.AppRunner] = []
        self.collector: metrics.StateCollector | None = None
        self.notifier: asyncio.Task[None] | None = None

    async def _start(self, what: str, app: web.Application, addr: str) -> str | None:
        try:
            runner, bound = await serve(app, addr)
        except (OSError, ValueError) as e:  # taken, or not HOST:PORT: gitship runs without it
            self.d.log.warning(f"{what}_unavailable", addr=addr, error=str(e))
            return None
        self.runners.append(runner)
        self.d.store.set_meta(**{what: {"address": bound}})
        self.d.log.info(f"{what}_listening", addr=bound)
        return bound

    async def start(self) -> None:
        opts = self.d.opts
        self.d.store.set_meta(metrics=None, webhook=None)
        if str(opts.metrics_addr).lower() != "none":
            self.collector = state_collector(self.d)
            metrics.REGISTRY.register(self.collector)
            await self._start("metrics", metrics_app(), opts.metrics_addr)
        if str(opts.webhook_addr).lower() != "none":
            await self._start_webhook(opts.webhook_addr, opts.webhook_secret_file)
        if os.environ.get("NOTIFY_SOCKET"):  # started by systemd (Type=notify) or a test playing it
            self.notifier = asyncio.create_task(self._notify_loop())

    async def _start_webhook(self, addr: str, secret_file: str | None) -> None:
        try:
            if not secret_file:
                raise OSError("--webhook-addr needs --webhook-secret-file")
            with open(secret_file, "rb") as f:
                secret = f.read().strip()
            if not secret:
                raise OSError(f"{secret_file} is empty")
        except OSError as e:
            self.d.log.error("webhook_unavailable", addr=addr, error=str(e))
            return
        d = self.d
        receiver = Receiver(secret, lambda: str(d.branch), lambda: d.wake_source(fetch=True), d.log)
        await self._start("webhook", receiver.app(), addr)

    async def _notify_loop(self) -> None:
        """sd_notify: READY=1 once a revision is applied (at once after a restart that adopted one),
        STATUS= when the Ready condition changes, STOPPING=1 when the daemon stops."""
        d = self.d
        ready_sent = False
        last = ""
        while not d.stopping.is_set():
            meta = {k: d.store.get_meta(k) for k in ("ready", "lastAppliedRevision")}
            lines = []
            if meta["lastAppliedRevision"] and not ready_sent:
                lines.append("READY=1")
                ready_sent = True
            status = sdnotify.status_text(meta)
            if status != last:
                lines.append(f"STATUS={status}")
                last = status
            if lines:
                sdnotify.notify("\n".join(lines))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(d.stopping.wait(), NOTIFY_INTERVAL)
        sdnotify.notify("STOPPING=1\nSTATUS=Stopping: pods get their termination grace period")

    async def close(self) -> None:
        if self.notifier is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.notifier, 2.0)
        if self.collector is not None:
            with contextlib.suppress(KeyError):
                metrics.REGISTRY.unregister(self.collector)
        for runner in self.runners:
            await runner.cleanup()


async def start_ops(d: Any) -> Ops:
    ops = Ops(d)
    await ops.start()
    return ops
