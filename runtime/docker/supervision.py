"""The Docker runtime's supervision: the engine's event stream (exits), the periodic resync
that repairs what events missed (and the engine going away and coming back)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import structlog

from runtime.kernel import rfc3339

from . import inits
from .adoption import DockerAdoption
from .common import LABEL_INSTANCE, LABEL_UID, DPod, docker_time, engine_down

log = structlog.get_logger("runtime.docker")


class DockerSupervision(DockerAdoption):
    """Watches the engine: exits arrive as events; a resync every few seconds is the safety net."""

    # ------------------------------------------------------------------ events

    def _start_events_thread(self) -> None:
        loop = self._loop
        assert loop is not None
        filters = {
            "label": [f"{LABEL_INSTANCE}={self.instance}"],
            "type": ["container"],
            "event": ["die", "destroy", "oom"],
        }

        def main() -> None:
            backoff = 0.5
            since: float | None = time.time() - 1
            while not self._events_stop.is_set():
                client = None
                try:
                    client = self._new_client(timeout=60)
                    stream = client.api.events(since=int(since) if since else None, filters=filters, decode=True)
                    self._events_stream = stream
                    if self._events_stop.is_set():
                        break
                    loop.call_soon_threadsafe(self._events_connected)
                    backoff = 0.5
                    for ev in stream:
                        since = ev.get("time", since)
                        loop.call_soon_threadsafe(self._on_event, ev)
                    if not self._events_stop.is_set():
                        loop.call_soon_threadsafe(self._events_lost, "event stream ended")
                except Exception as exc:  # engine gone, socket closed...
                    if self._events_stop.is_set():
                        break
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._events_lost, str(exc))
                finally:
                    self._events_stream = None
                    if client is not None:
                        with contextlib.suppress(Exception):
                            client.close()
                self._events_stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

        self._events_thread = threading.Thread(target=main, name=f"gitship-docker-events-{self.instance}", daemon=True)
        self._events_thread.start()

    def _events_connected(self) -> None:
        if self._engine_error is not None:
            self._wake.set()  # converge now

    def _events_lost(self, msg: str) -> None:
        if self._closed:
            return
        self._wake.set()  # the resync loop pings and tells "down" from "stream hiccup"

    def _on_event(self, ev: dict[str, Any]) -> None:
        if self._closed:
            return
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        p = self._pods.get(attrs.get(LABEL_UID, ""))
        if p is None or p.deleting:
            return
        cid = str(ev.get("id") or (ev.get("Actor") or {}).get("ID") or "")
        action = ev.get("Action") or ev.get("status")
        if action == "oom":
            return
        code = attrs.get("exitCode")
        self._spawn(self._handle_exit(p, cid, None if code is None else int(code)))

    async def _handle_exit(self, p: DPod, cid: str, code: int | None) -> None:
        async with p.lock:
            if p.deleting or p.uid not in self._pods:
                return
            if cid == p.sandbox_id:
                await self._sandbox_lost(p)
                return
            c = next((c for c in p.containers.values() if c.cid == cid), None)
            if c is None or c.exited_cid == cid:
                return
            try:
                info = await self._call(self._api.inspect_container, cid)
                state = info.get("State") or {}
                if state.get("Running"):
                    return
                c.exited_cid = cid
                self._on_exit(
                    p,
                    c,
                    int(state.get("ExitCode", code or 0)),
                    docker_time(state.get("StartedAt")),
                    docker_time(state.get("FinishedAt")),
                    oom=bool(state.get("OOMKilled")),
                )
            except docker.errors.NotFound:
                c.exited_cid = cid
                started = c.state.get("running", {}).get("startedAt")
                self._on_exit(
                    p, c, 137 if code is None else code, started, rfc3339(time.time()), message="container was removed"
                )
        self._kick(p)

    async def _sandbox_lost(self, p: DPod) -> None:
        """The sandbox died or vanished: kill the pod's containers, start it again (under p.lock)."""
        log.warning("sandbox_lost", pod=p.name, uid=p.uid, action="recreating the pod")
        old = p.sandbox_id
        p.sandbox_id, p.pod_ip = None, None
        p.sandbox_attempt += 1
        for c in p.containers.values():
            if c.cid and c.exited_cid != c.cid:
                c.exited_cid = c.cid
                cid = c.cid
                with contextlib.suppress(Exception):
                    await self._call(self._api.remove_container, cid, force=True)
                self._on_exit(
                    p,
                    c,
                    137,
                    c.state.get("running", {}).get("startedAt"),
                    rfc3339(time.time()),
                    message="pod sandbox changed",
                )
        inits.rerun(p)  # a new sandbox runs the init containers again
        if old:
            with contextlib.suppress(Exception):
                await self._remove_quietly(old)
        self._notify(p)

    # ------------------------------------------------------------------ resync / adoption

    async def _resync_loop(self) -> None:
        delay = self.resync_seconds
        while not self._closed:
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._closed:
                return
            was_down = self._engine_error is not None
            try:
                if self._client is None or was_down:
                    await self._connect()
                    if was_down:
                        log.info("docker_engine_reachable", action="converging")
                        self._network_ready = False
                await self._converge()
                delay = self.resync_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if engine_down(exc):
                    self._set_engine_down(exc)
                    delay = min(max(1.0, delay * 2 if was_down else 1.0), 30.0)
                else:
                    log.exception("docker_resync_failed")
                    delay = self.resync_seconds

    async def _converge(self) -> None:
        """One list call; adopt unknown pods, repair known ones, remove pending deletes."""
        lst = await self._call(self._api.containers, all=True, filters={"label": [f"{LABEL_INSTANCE}={self.instance}"]})
        by_uid: dict[str, list[dict[str, Any]]] = {}
        for x in lst:
            uid = (x.get("Labels") or {}).get(LABEL_UID)
            if uid:
                by_uid.setdefault(uid, []).append(x)
        for uid in list(self._pending_deletes):
            if uid not in self._pods:
                await self._remove_leftovers(uid)
                by_uid.pop(uid, None)
        for uid, conts in by_uid.items():
            if uid in self._pods:
                continue
            if not self._adopted:
                await self._adopt(uid, conts)
            else:
                # ours but unknown: the rest of a deletion (create_pod registers before creating)
                await self._remove_leftovers(uid)
        for uid, p in list(self._pods.items()):
            if p.deleting or p.lock.locked():
                continue  # being worked on (a pull can take minutes): next round
            await self._check_pod(p, by_uid.get(uid, []))
        self._adopted = True

    async def _check_pod(self, p: DPod, conts: list[dict[str, Any]]) -> None:
        by_id = {x["Id"]: x for x in conts}
        async with p.lock:
            if p.deleting:
                return
            if p.sandbox_id is not None and (by_id.get(p.sandbox_id) or {}).get("State") != "running":
                await self._sandbox_lost(p)
            else:
                for c in p.containers.values():
                    if (
                        c.cid
                        and c.running
                        and c.exited_cid != c.cid
                        and (by_id.get(c.cid) or {}).get("State") != "running"
                    ):
                        self._spawn(self._handle_exit(p, c.cid, None))
        if p.sandbox_id is None or any(c.want_start and not c.timers for c in p.containers.values()):
            self._kick(p)
