"""The web view's server: aiohttp on the daemon's event loop (``--web-addr``, default 127.0.0.1:7080).

Routes (every one needs a session but ``/login``; every POST needs the session's CSRF token):
  GET  /login?token=T          one-time token (``gitship dashboard``) -> session cookie -> /
  GET  /  /objects  /objects/{kind}/{ns}/{name}  /rollouts  /rollouts/{ns}/{name}  /history
       /history/{sha}  /log    the pages; ``?fragment=1``: only the part that changes (the live block)
  GET  /events                 server-sent events: ``change`` with what moved (objects, meta, log)
  GET  /logs/{ns}/{name}       server-sent events: a pod's log, then what it writes (follow)
  POST /rollouts/{ns}/{name}/{pause|resume|undo}, /history/{sha}/revert, /logout
Pages are Jinja2 templates rendered on the server (templates/), with a small script (static/app.js)
that re-fetches a page's live block when an event says its data changed.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import os
import time
import urllib.parse
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from reconciler.kapi.watch import Hub
from reconciler.types import Key

from . import actions, auth, pages

POLL = 0.2  # seconds between looks for changes (pages update within a second)
HEARTBEAT = 15.0
FOLLOW_CHUNK = 64 * 1024  # a log follower reads this much a poll: a client that never reads holds no more
TAIL_BYTES = 256 * 1024  # a log stream starts with the last 500 lines within this much of the file
STATIC_TYPES = {".css": "text/css", ".js": "application/javascript", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

SESSION = web.RequestKey("session", auth.Session)  # the request's session, set by the guard


def _ago(t: Any) -> str:
    if not t:
        return "-"
    if isinstance(t, str):
        try:
            t = calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return str(t)
    s = max(0, int(time.time() - float(t)))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reconciler.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = _ago
    env.filters["short"] = lambda s: (s or "")[:7]
    env.filters["quote"] = lambda s: urllib.parse.quote(str(s), safe="")
    env.filters["clock"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t))) if t else "-"
    return env


class WebView:
    def __init__(self, d: Any, addr: str, kube: Any = None):
        self.d, self.addr = d, addr
        self.sessions = auth.Sessions()
        self.env = _env()
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.closing = asyncio.Event()
        # a Hub of its own: the Kubernetes API's numbers changes only while a kubectl watch is open
        self.hub: Hub = Hub(history=1)
        self._own_hub = True
        self._poller: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- life
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=1 << 16)
        r = app.router
        r.add_get("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/", self.overview)
        r.add_get("/objects", self.objects)
        r.add_get("/objects/{kind}/{ns}/{name}", self.detail)
        r.add_get("/rollouts", self.rollouts)
        r.add_get("/rollouts/{ns}/{name}", self.rollouts)
        r.add_post("/rollouts/{ns}/{name}/{action}", self.rollout_action)
        r.add_get("/history", self.history)
        r.add_get("/history/{sha}", self.history_commit)
        r.add_post("/history/{sha}/revert", self.revert)
        r.add_get("/log", self.log)
        r.add_get("/events", self.events)
        r.add_get("/logs/{ns}/{name}", self.pod_logs)
        r.add_get("/static/{file}", self.static)
        return app

    async def start(self) -> None:
        host, _, port = self.addr.rpartition(":")
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port), shutdown_timeout=1.0)
        await site.start()
        bound = self.runner.addresses[0]
        shown = host if ":" not in host.strip("[]") else f"[{host.strip('[]')}]"
        self.url = f"http://{'127.0.0.1' if shown in ('0.0.0.0', '') else shown}:{bound[1]}"
        if self._own_hub:
            self._poller = asyncio.create_task(self._poll())
        self.d.store.set_meta(web={"url": self.url, "addr": self.addr})
        auth.sweep(self.d.state_dir)

    async def close(self) -> None:
        self.closing.set()
        if self._poller:
            self._poller.cancel()
        with contextlib.suppress(Exception):
            self.d.store.set_meta(web=None)
        if self.runner:
            await self.runner.cleanup()

    async def _poll(self) -> None:
        """Number the live objects' changes while an event stream is open (it listens to the Hub)."""
        seen = -1
        while True:
            await asyncio.sleep(POLL)
            if not self.hub.watched:  # nobody looks: no work (an idle daemon's CPU, bench/scale.py)
                seen = -1
                continue
            passes = int(getattr(self.d.reconciler, "passes", 0))
            if passes == seen:
                continue
            seen = passes
            with contextlib.suppress(RuntimeError):
                self.hub.observe(list(self.d.reconciler.cluster.objects.items()))

    # ---------------------------------------------------------------- auth
    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/login":
            return await self._headers(await handler(request))
        session = self.sessions.get(request.cookies.get(auth.COOKIE))
        if session is None:
            return await self._headers(self._page(401, "unauthorized.html", {}))
        if request.method not in ("GET", "HEAD"):
            given = request.headers.get("X-CSRF-Token")
            if given is None and request.content_type == "application/x-www-form-urlencoded":
                given = str((await request.post()).get("csrf") or "")
            if not auth.csrf_ok(session, given):
                return await self._headers(web.Response(status=403, text="403: missing or wrong CSRF token\n"))
        request[SESSION] = session
        try:
            return await self._headers(await handler(request))
        except web.HTTPException:
            raise
        except Exception as e:  # a page that fails never hurts the daemon
            self.d.reconciler.log.warning("web_error", path=request.path, error=repr(e))
            return await self._headers(web.Response(status=500, text=f"500: {type(e).__name__}: {e}\n"))

    async def _headers(self, resp: web.StreamResponse) -> web.StreamResponse:
        if not resp.prepared:
            for k, v in SECURITY_HEADERS.items():
                resp.headers.setdefault(k, v)
        return resp

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not auth.redeem(self.d.state_dir, request.query.get("token", "")):
            return self._page(401, "unauthorized.html", {"bad_token": True})
        sid, _ = self.sessions.create()
        resp = web.Response(status=303, headers={"Location": "/"})
        resp.set_cookie(auth.COOKIE, sid, httponly=True, samesite="Strict", path="/", max_age=int(auth.SESSION_TTL))
        self.d.reconciler.log.info("web_login", remote=request.remote)
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.drop(request.cookies.get(auth.COOKIE))
        resp = web.Response(status=303, headers={"Location": "/login"})
        resp.del_cookie(auth.COOKIE, path="/")
        return resp

    # ---------------------------------------------------------------- rendering
    def _page(self, status: int, name: str, ctx: dict[str, Any], request: web.Request | None = None) -> web.Response:
        tmpl = self.env.get_template(name)
        session = request.get(SESSION) if request is not None else None
        full = {
            **ctx,
            "csrf": session.csrf if session else "",
            "msg": request.query.get("msg", "") if request is not None else "",
            "err": request.query.get("err", "") if request is not None else "",
            "path": request.path if request is not None else "",
            "query": request.query_string if request is not None else "",
        }
        if request is not None and request.query.get("fragment") and "live" in tmpl.blocks:
            text = "".join(tmpl.blocks["live"](tmpl.new_context(full)))
        else:
            text = tmpl.render(full)
        return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")

    async def overview(self, request: web.Request) -> web.StreamResponse:
        return self._page(200, "overview.html", {"o": await pages.overview(self.d), "page": "overview"}, request)

    async def objects(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        data = pages.objects(self.d, q.get("ns", ""), q.get("kind", ""), q.get("q", ""), _int(q.get("page")))
        return self._page(200, "objects.html", {**data, "page_name": "objects", "page": "objects", "f": q}, request)

    async def detail(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        key: Key = (m["kind"], "" if m["ns"] == "_" else m["ns"], m["name"])
        data = pages.detail(self.d, key, _int(request.query.get("page")))
        if data is None:
            return self._page(404, "notfound.html", {"what": "/".join(key), "page": "objects"}, request)
        return self._page(200, "detail.html", {**data, "page": "objects"}, request)

    async def rollouts(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        ns, name = m.get("ns", ""), m.get("name", "")
        items = pages.rollouts(self.d, ns, name)
        if name and not items:
            return self._page(404, "notfound.html", {"what": f"deployment {ns}/{name}", "page": "rollouts"}, request)
        from .picture import svg

        start = (_int(request.query.get("page")) - 1) * 10
        shown = [(r, svg(r)) for r in items[start : start + 10]]
        ctx = {"items": shown, "total": len(items), "one": bool(name), "page": "rollouts", "pg": start // 10 + 1}
        return self._page(200, "rollouts.html", ctx, request)

    async def rollout_action(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        if m["action"] not in ("pause", "resume", "undo"):
            raise web.HTTPNotFound()
        back = f"/rollouts/{m['ns']}/{m['name']}"
        return await self._act(back, m["action"], ns=m["ns"], name=m["name"])

    async def _act(self, back: str, action: str, **kw: str) -> web.StreamResponse:
        try:
            msg = await actions.run(self.d, action, **kw)
            q = {"msg": msg}
        except Exception as e:  # GitOpsError, NotFound, ActionError: said on the page
            q = {"err": str(e)}
        raise web.HTTPSeeOther(back + "?" + urllib.parse.urlencode(q))

    async def history(self, request: web.Request) -> web.StreamResponse:
        rows = await pages.history(self.d)
        return self._page(200, "history.html", {"rows": rows, "page": "history"}, request)

    async def history_commit(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        if not sha.isalnum():
            raise web.HTTPNotFound()
        try:
            diff = await asyncio.to_thread(pages.commit_diff, self.d, sha)
        except Exception as e:
            return self._page(404, "notfound.html", {"what": f"commit {sha} ({e})", "page": "history"}, request)
        rows = [r for r in await pages.history(self.d, 200) if r["sha"] == diff["sha"]]
        row = rows[0] if rows else None
        errors = await pages.rejected_errors(self.d, diff["sha"], row["errors"]) if row and row["errors"] else []
        ctx = {"diff": diff, "row": row, "errors": errors, "page": "history"}
        return self._page(200, "commit.html", ctx, request)

    async def revert(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        return await self._act("/history", "revert", sha=sha)

    async def log(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        f = {k: q.get(k, "") for k in ("commit", "object", "level")}
        recs = await pages.log_records(self.d, f["commit"], f["object"], f["level"])
        rows = [(r, {k: v for k, v in r.items() if k not in ("timestamp", "level", "event")}) for r in recs]
        return self._page(200, "log.html", {"rows": rows[::-1], "f": f, "page": "log"}, request)

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        ext = os.path.splitext(name)[1]
        if ext not in STATIC_TYPES or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            data = resources.files("reconciler.web").joinpath("static", name).read_bytes()
        except OSError:
            raise web.HTTPNotFound() from None
        return web.Response(body=data, content_type=STATIC_TYPES[ext])

    # ---------------------------------------------------------------- live
    def _state(self) -> dict[str, Any]:
        try:
            log_size = os.path.getsize(os.path.join(self.d.state_dir, "reconcile.log"))
        except OSError:
            log_size = 0
        store = self.d.store
        meta = [store.get_meta(k) for k in ("lastAttemptedRevision", "ready", "sourceError")]
        return {"objects": self.hub.rv, "log": log_size, "meta": json.dumps(meta, sort_keys=True, default=str)}

    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        last: dict[str, Any] = {}
        beat = time.monotonic()
        # an open stream listens to the Hub: the poller numbers changes only while someone does
        unlisten = self.hub.listen(lambda: None)
        try:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await resp.write(b"retry: 1000\n\n")
                while not self.closing.is_set():
                    now = self._state()
                    moved = [k for k, v in now.items() if last.get(k) != v]
                    if moved and last:
                        await resp.write(f"event: change\ndata: {json.dumps(moved)}\n\n".encode())
                        beat = time.monotonic()
                    last = now
                    if time.monotonic() - beat > HEARTBEAT:
                        await resp.write(b": keep-alive\n\n")
                        beat = time.monotonic()
                    await asyncio.sleep(POLL)
        finally:
            unlisten()
        return resp

    async def pod_logs(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self.d.reconciler.cluster.get(("Pod", ns, name))
        if pod is None:
            raise web.HTTPNotFound()
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        container = request.query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise web.HTTPBadRequest(text=f"container {container} is not valid for pod {name}")
        uid = pod["metadata"]["uid"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            path = self.d.runtime.log_path(uid, container)
            if path:  # the last 500 lines within the file's last TAIL_BYTES: a huge log is never read whole
                data = b"".join((await asyncio.to_thread(_file_tail, path)).splitlines(keepends=True)[-500:])
            else:
                data = await self.d.runtime.logs(uid, container, tail=500)
            await _send_lines(resp, data)
            if request.query.get("follow", "1") in ("1", "true") and path:
                await self._follow(resp, path, ns, name, uid, request.transport)
        return resp

    async def _follow(
        self, resp: web.StreamResponse, path: str, ns: str, name: str, uid: str, transport: asyncio.Transport | None
    ) -> None:
        pos = os.path.getsize(path) if os.path.exists(path) else 0
        while not self.closing.is_set():
            pod = self.d.reconciler.cluster.get(("Pod", ns, name))
            if pod is None or pod["metadata"].get("uid") != uid:
                return
            size = os.path.getsize(path) if os.path.exists(path) else 0
            pos = 0 if size < pos else pos
            if size > pos and _backlog(transport) < FOLLOW_CHUNK:  # nothing more while the client lags
                with open(path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read(min(size - pos, FOLLOW_CHUNK))
                cut = chunk.rfind(b"\n") + 1 if len(chunk) == FOLLOW_CHUNK else 0  # whole lines when it can
                chunk = chunk[:cut] if cut else chunk
                pos += len(chunk)
                await _send_lines(resp, chunk)
            await asyncio.sleep(POLL)


def _file_tail(path: str) -> bytes:
    """The file's last TAIL_BYTES (from a line's start when there is one)."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - TAIL_BYTES))
        data = f.read(TAIL_BYTES)
        nl = data.find(b"\n") if size > TAIL_BYTES else -1
        return data[nl + 1 :] if 0 <= nl < len(data) - 1 else data
    return b""


def _backlog(transport: asyncio.BaseTransport | None) -> int:
    """Bytes written to the client that it has not taken yet."""
    return transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0


async def _send_lines(resp: web.StreamResponse, data: bytes) -> None:
    text = data.decode(errors="replace")
    if not text:
        return
    body = "".join(f"data: {line}\n" for line in text.rstrip("\n").split("\n"))
    await resp.write((body + "\n").encode())


def _int(v: str | None) -> int:
    return int(v) if v and v.isdigit() else 1


class _Off:
    url = ""

    async def close(self) -> None:
        return None


async def start_web(d: Any, kube: Any = None) -> WebView | _Off:
    """The web view on ``d.opts.web_addr`` ("none": off), with a watch Hub of its own (changes are numbered
    while a page listens). A taken address is a warning; gitship runs on without the view."""
    addr = str(getattr(d.opts, "web_addr", "127.0.0.1:7080"))
    if addr.lower() == "none":
        return _Off()
    view = WebView(d, addr, kube)
    try:
        await view.start()
    except OSError as e:
        d.log.warning("web_view_unavailable", addr=addr, error=str(e))
        await view.close()
        return _Off()
    d.log.info("web_view", url=view.url, login="gitship dashboard")
    return view
