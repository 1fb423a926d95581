"""GET on resources: list, get, watch (chunked JSON events), pod logs, events; and a pod's DELETE.

Objects are the watch Hub's copies of the live objects (each with its resourceVersion); events are
the store's rows as core/v1 (or events.k8s.io/v1) Events; logs come from the runtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.errors import SelectorError
from reconciler.selectors import parse as parse_labels
from reconciler.types import Obj

from . import views
from .resources import Resource
from .watch import Change, Hub

if TYPE_CHECKING:
    from .host import Daemon

BOOKMARK_EVERY = 5.0
INITIAL_END = "k8s.io/initial-events-end"
MAX_EVENTS = 5000


def _error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(views.status(code, reason, message), status=code)


class _Filter:
    def __init__(self, r: Resource, ns: str, q: Any):
        self.r, self.ns = r, ns
        self.labels = parse_labels(q["labelSelector"]) if q.get("labelSelector") else None
        self.fields = views.parse_field_selector(q.get("fieldSelector", ""))

    def __call__(self, o: Obj) -> bool:
        meta = o.get("metadata") or {}
        if o.get("kind") != self.r.kind or (self.ns and meta.get("namespace", "") != self.ns):
            return False
        if self.labels is not None and not self.labels.matches(meta.get("labels") or {}):
            return False
        return views.field_matches(o, self.fields)


class Reads:
    def __init__(self, d: Daemon, hub: Hub, version: str = ""):
        self.d, self.hub, self.version = d, hub, version
        self.started = time.time()
        self.closing = asyncio.Event()

    def _objects(self, flt: _Filter) -> list[Obj]:
        self.hub.observe(self.d.reconciler.cluster.objects.items())
        if flt.r.kind == "Event":
            return [e for e in self._events(flt.r.group_version) if flt(e)]
        if flt.r.kind == "Node" and (nodes := self.d.runtime.node_objects()):  # a multi-node runtime (swarm)
            return [n for n in nodes if flt(n)]
        if flt.r.kind == "Node":
            pods = sum(1 for k in self.hub.objects() if k[0] == "Pod")
            node = views.node_object(self.started, self.version, pods, os.cpu_count() or 1, _memory_kib())
            node["metadata"]["resourceVersion"] = "1"
            return [node] if flt(node) else []
        if flt.r.kind == "EndpointSlice":
            eps = (views.endpoint_slice(o) for o in self.hub.objects().values() if o.get("kind") == "Endpoints")
            return [e for e in eps if flt(e)]
        objs = [o for o in self.hub.objects().values() if flt(o)]
        objs.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return [_with_api_version(flt.r, o) for o in objs]

    def _events(self, api_version: str) -> list[Obj]:
        rows = self.d.store.db.execute(
            "SELECT id, time, type, reason, kind, namespace, name, message FROM events ORDER BY id DESC LIMIT ?",
            (MAX_EVENTS,),
        ).fetchall()
        cols = ("id", "time", "type", "reason", "kind", "namespace", "name", "message")
        out = []
        for row in reversed(rows):
            d = dict(zip(cols, row))
            ev = views.event_object(d, int(d["id"]), api_version)
            target = self.hub.objects().get((d["kind"] or "", d["namespace"] or "", d["name"] or ""))
            involved = ev.get("involvedObject") or ev.get("regarding") or {}
            if target is not None:
                involved["uid"] = target["metadata"].get("uid", "")
                involved["apiVersion"] = target.get("apiVersion", "")
            ev["metadata"]["resourceVersion"] = str(d["id"])
            out.append(ev)
        return out

    async def get(self, request: web.Request, r: Resource, ns: str, name: str, sub: str) -> web.StreamResponse:
        q = request.query
        try:
            flt = _Filter(r, ns, q)
        except (SelectorError, ValueError) as e:
            return _error(400, "BadRequest", str(e))
        if sub == "log" and r.kind == "Pod":
            return await self.logs(request, ns, name)
        if sub and sub not in ("status", "scale"):
            return _error(404, "NotFound", "the server could not find the requested resource")
        bad = views.check_fields(flt.fields, r.kind) if r.kind != "Event" else None
        if bad:
            return _error(400, "BadRequest", bad)
        if name:
            flt.fields.append(("metadata.name", True, name))
        if q.get("watch") in ("true", "1"):
            return await self.watch(request, flt)
        objs = self._objects(flt)
        accept = request.headers.get("Accept", "")
        if name:
            if not objs:
                return web.json_response(views.not_found(r, name), status=404)
            if sub == "scale":
                return web.json_response(_scale(objs[0]))
            if views.wants_table(accept):
                return web.json_response(self._table(r, objs, request))
            return web.json_response(objs[0])
        rv = str(self.hub.rv)
        if views.wants_table(accept):
            return web.json_response(self._table(r, objs, request))
        body = {"kind": f"{r.kind}List", "apiVersion": r.group_version, "metadata": {"resourceVersion": rv}}
        return web.json_response({**body, "items": objs})

    def _table(self, r: Resource, objs: list[Obj], request: web.Request) -> Obj:
        include = request.query.get("includeObject", "Metadata")
        return views.table(r.kind, objs, time.time(), str(self.hub.rv), include)

    # -------------------------------------------------------------- watch
    async def watch(self, request: web.Request, flt: _Filter) -> web.StreamResponse:
        q = request.query
        rv_text = q.get("resourceVersion", "")
        try:
            start = int(rv_text) if rv_text not in ("", "0") else None
        except ValueError:
            return _error(400, "BadRequest", f"invalid resourceVersion {rv_text!r}")
        self.hub.observe(self.d.reconciler.cluster.objects.items())
        if start is not None and self.hub.since(start) is None:
            return _error(410, "Expired", f"too old resource version: {start} ({self.hub.oldest})")
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        table = views.wants_table(request.headers.get("Accept", ""))
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        wake = asyncio.Event()
        unlisten = self.hub.listen(wake.set)
        deadline = time.monotonic() + timeout
        initial = q.get("sendInitialEvents") in ("true", "1")  # client-go's WatchList (on by default in 1.37)
        try:
            if start is None or initial:
                for o in self._objects(flt):
                    await self._send(resp, "ADDED", o, flt.r, table)
                start = self.hub.rv
            if initial:  # the end of the initial state: a bookmark so annotated
                await _write_event(resp, "BOOKMARK", _bookmark(flt.r, start, {INITIAL_END: "true"}))
            last_bookmark = time.monotonic()
            while not self.closing.is_set() and time.monotonic() < deadline:
                changes = self.hub.since(start) or []
                for c in changes:
                    start = c.rv
                    type_ = _seen_as(c, flt)
                    if type_:
                        await self._send(resp, type_, _with_api_version(flt.r, c.obj), flt.r, table)
                if bookmarks and time.monotonic() - last_bookmark > BOOKMARK_EVERY:
                    await _write_event(resp, "BOOKMARK", _bookmark(flt.r, start, {}))
                    last_bookmark = time.monotonic()
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), min(1.0, max(0.01, deadline - time.monotonic())))
                except TimeoutError:
                    pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            unlisten()
        return resp

    async def _send(self, resp: web.StreamResponse, type_: str, o: Obj, r: Resource, table: bool) -> None:
        await _write_event(resp, type_, views.table(r.kind, [o], time.time(), "", "Object") if table else o)

    # -------------------------------------------------------------- logs
    async def logs(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        pod = self.d.reconciler.cluster.get(("Pod", ns, name))
        if pod is None:
            return _error(404, "NotFound", f'pods "{name}" not found')
        containers = [c["name"] for k in ("containers", "initContainers") for c in pod["spec"].get(k) or []]
        container = q.get("container") or (containers[0] if containers else "")
        if container not in containers:
            return _error(400, "BadRequest", f"container {container} is not valid for pod {name}")
        uid = pod["metadata"]["uid"]
        tail = int(q["tailLines"]) if q.get("tailLines") else None
        since = float(q["sinceSeconds"]) if q.get("sinceSeconds") else None
        stamps = q.get("timestamps") in ("true", "1")
        previous = q.get("previous") in ("true", "1")
        follow = q.get("follow") in ("true", "1") and not previous
        if follow and since is None and not stamps and not self.d.runtime.log_path(uid, container):
            # no log file: the runtime's own stream (Docker: the Engine's, following)
            return await self._follow_stream(request, self.d.runtime.read_logs, uid, container, tail)
        try:
            stamped = stamps or since is not None
            data = await self.d.runtime.logs(uid, container, tail=tail, previous=previous, timestamps=stamped)
        except Exception as e:
            return _error(400, "BadRequest", str(e))
        if since is not None:
            data = _since(data, time.time() - since, keep_stamps=stamps)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(data)
        path = self.d.runtime.log_path(uid, container)
        if follow and path:
            await self._follow(resp, path, ns, name, uid)
        await resp.write_eof()
        return resp

    async def _follow_stream(
        self, request: web.Request, streams: Any, uid: str, container: str, tail: int | None
    ) -> web.StreamResponse:
        """``follow`` on a runtime that keeps no log file (Docker): its own stream of the container's
        output (``read_logs(follow=True)``), the last ``tail`` lines first, until the container stops,
        the client goes or the server closes."""
        try:
            await self.d.runtime.logs(uid, container, tail=0)  # a container that cannot be read: 400 now
        except Exception as e:
            return _error(400, "BadRequest", str(e))
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        chunks = streams(uid, container, follow=True, tail=tail)
        try:
            async for chunk in chunks:
                if self.closing.is_set():
                    break
                await resp.write(chunk)
        finally:
            await chunks.aclose()
        await resp.write_eof()
        return resp

    async def _follow(self, resp: web.StreamResponse, path: str, ns: str, name: str, uid: str) -> None:
        pos = os.path.getsize(path) if os.path.exists(path) else 0
        while not self.closing.is_set():
            pod = self.d.reconciler.cluster.get(("Pod", ns, name))
            if pod is None or pod["metadata"].get("uid") != uid:
                return
            try:
                size = os.path.getsize(path)
            except OSError:
                return
            if size < pos:
                pos = 0
            if size > pos:
                with open(path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read(size - pos)
                pos += len(chunk)
                await resp.write(chunk)
            await asyncio.sleep(0.2)

    # -------------------------------------------------------------- delete pod
    async def delete_pod(self, request: web.Request, ns: str, name: str) -> web.StreamResponse | None:
        """A pod git does not declare stops now (its owner decides what comes next); None: a pod git
        declares (a write: the manifest is removed by a commit)."""
        rec = self.d.reconciler
        if ("Pod", ns, name) in rec.desired:
            return None
        pod = rec.cluster.get(("Pod", ns, name))
        if pod is None:
            return _error(404, "NotFound", f'pods "{name}" not found')
        grace: float | None = None
        body = await request.read()
        if body:
            try:
                g = json.loads(body).get("gracePeriodSeconds")
                grace = float(g) if g is not None else None
            except (ValueError, AttributeError):
                return _error(400, "BadRequest", "the body is not a DeleteOptions object")
        if request.query.get("gracePeriodSeconds"):
            grace = float(request.query["gracePeriodSeconds"])
        out = json.loads(json.dumps(pod))
        await rec.delete_pod(ns, name, grace)
        out["metadata"]["deletionTimestamp"] = views.rfc3339(time.time())
        return web.json_response(out)


async def _write_event(resp: web.StreamResponse, type_: str, obj: Obj) -> None:
    await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")


def _seen_as(c: Change, flt: _Filter) -> str | None:
    """The event a watch with this selection gets: an object that enters it is ADDED, one that leaves
    it DELETED (as the API server's filtered watch says), None when it stays outside."""
    now, before = flt(c.obj), c.prev is not None and flt(c.prev)
    if c.type != "MODIFIED":
        return c.type if now else None
    if now:
        return "MODIFIED" if before else "ADDED"
    return "DELETED" if before else None


def _memory_kib() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            return int(f.readline().split()[1])  # MemTotal: N kB
    except (OSError, ValueError, IndexError):
        return 0


def _bookmark(r: Resource, rv: int, annotations: dict[str, str]) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": r.kind, "apiVersion": r.group_version, "metadata": meta}


def _with_api_version(r: Resource, o: Obj) -> Obj:
    return views.api_object(r.group_version, o)


def _scale(o: Obj) -> Obj:
    meta = o["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta},
        "spec": {"replicas": (o.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (o.get("status") or {}).get("replicas", 0), "selector": ""},
    }


def _since(data: bytes, after: float, keep_stamps: bool) -> bytes:
    """The lines written at ``after`` or later; a line without a time stamp (a runtime that keeps
    none) is kept whole."""
    import datetime

    out = []
    for line in data.splitlines(keepends=True):
        stamp, _, rest = line.partition(b" ")
        try:
            t = datetime.datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()
        except ValueError:
            out.append(line)
            continue
        if t >= after:
            out.append(line if keep_stamps else rest)
    return b"".join(out)


__all__ = ["Change", "Reads"]
