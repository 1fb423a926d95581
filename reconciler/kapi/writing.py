"""The write verbs: the HTTP request made a ``WriteRequest`` and handed to the write side
(``reconciler.kapi.writes.handle``, see contract.py), in a worker thread. While that module is not
there, writes are answered 405 MethodNotAllowed.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from reconciler.types import Key, Obj

from . import views
from .contract import WriteContext, WriteRequest, WriteResponse
from .resources import Resource
from .watch import Hub

if TYPE_CHECKING:
    from .host import Daemon

T = TypeVar("T")
# the API server's limit on a request body (k8s.io/apiserver MaxRequestBodyBytes: 3 MiB)
MAX_BODY = 3 * 1024 * 1024
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _on_loop(loop: asyncio.AbstractEventLoop, f: Callable[[], T]) -> T:
    """Run ``f`` on the daemon's loop (the live objects belong to it) from a worker thread."""

    async def call() -> T:
        return f()

    return asyncio.run_coroutine_threadsafe(call(), loop).result(30)


def context(d: Daemon, loop: asyncio.AbstractEventLoop, hub: Hub) -> WriteContext:
    rec = d.reconciler

    def desired(key: Key) -> Obj | None:
        return _on_loop(loop, lambda: copy.deepcopy(rec.desired.get(key)))

    def live(key: Key) -> Obj | None:
        """The live object as the API serves it: with the resourceVersion the watch hub gave it
        (a PUT with an older one is a 409 Conflict)."""

        def look() -> Obj | None:
            hub.observe(rec.cluster.objects.items())
            return copy.deepcopy(hub.objects().get(key))

        return _on_loop(loop, look)

    def live_of_kind(kind: str, ns: str | None) -> list[Obj]:
        return _on_loop(loop, lambda: copy.deepcopy(rec.cluster.of_kind(kind, ns)))

    def result_of(sha: str) -> str:
        row = d.store.db.execute("SELECT result FROM revisions WHERE sha=?", (sha,)).fetchone()
        return str(row[0] or "") if row else ""

    def wait_applied(sha: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = _on_loop(loop, lambda: result_of(sha))
            if result:
                return result
            loop.call_soon_threadsafe(d.wake_source)
            time.sleep(0.05)
        return ""

    opts: Any = getattr(d, "opts", None)
    return WriteContext(
        writer=d.writer,
        repo_dir=d.repo_dir,
        manifests_path=str(getattr(opts, "path", "") or ""),
        branch=d.branch,
        state_dir=d.state_dir,
        desired=desired,
        live=live,
        live_of_kind=live_of_kind,
        nudge=lambda: _nudge(loop, d.wake_source),
        wait_applied=wait_applied,
    )


def _nudge(loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
    loop.call_soon_threadsafe(wake)


def warning_header(text: str) -> str:
    """``299 - "<text>"``, the text a quoted-string with its ``"`` and ``\\`` escaped, as the API server
    writes it and client-go reads it back (kubernetes/kubernetes
    staging/src/k8s.io/apimachinery/pkg/util/net/http.go ``NewWarningHeader``, ``ParseWarningHeader``):
    kubectl prints ``Warning: unknown field "spec.replica"`` with the quotes."""
    return '299 - "{}"'.format(text.replace("\\", "\\\\").replace('"', '\\"'))


def _user(request: web.Request) -> str:
    return request.headers.get("Impersonate-User") or "kubectl"


async def write(
    d: Daemon, hub: Hub, request: web.Request, r: Resource, ns: str, name: str, sub: str
) -> web.StreamResponse:
    verb = VERBS.get(request.method)
    try:
        writes: Any = importlib.import_module("reconciler.kapi.writes")
    except ImportError:
        writes = None
    if verb is None or writes is None or not hasattr(writes, "handle"):
        msg = f"the server does not allow this method on the requested resource ({request.method})"
        return web.json_response(views.status(405, "MethodNotAllowed", msg), status=405)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        msg = f"Request entity too large: limit is {MAX_BODY}"
        refused = web.json_response(views.status(413, "RequestEntityTooLarge", msg), status=413)
        refused.force_close()  # close instead of reading (and throwing away) the rest of a 50 MB body
        return refused
    req = WriteRequest(
        verb=verb,
        group=r.group,
        version=r.version,
        kind=r.kind,
        namespace=ns if r.namespaced else "",
        name=name,
        subresource=sub,
        body=body,
        content_type=request.headers.get("Content-Type", ""),
        query=dict(request.query),
        user=_user(request),
        headers={k: v for k, v in request.headers.items() if k.lower() == "kubectl-command"},
    )
    ctx = context(d, asyncio.get_running_loop(), hub)
    resp: WriteResponse = await asyncio.to_thread(writes.handle, ctx, req)
    headers = [("Warning", warning_header(w)) for w in resp.warnings]
    out = web.json_response(resp.body, status=resp.status)
    for k, v in headers:
        out.headers.add(k, v)
    hub.observe(d.reconciler.cluster.objects.items())
    return out
