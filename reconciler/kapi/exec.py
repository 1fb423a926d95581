"""``kubectl exec`` over WebSocket: pods/NAME/exec with the channel protocols kubectl 1.30+ speaks.

The request (GET, ``Upgrade: websocket``) names the command (``command``, repeated), the container
and which of stdin, stdout, stderr and tty it wants. The connection's subprotocol is
``v5.channel.k8s.io`` or ``v4.channel.k8s.io``; every binary message starts with its channel
(kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/util/remotecommand/constants.go and
client-go tools/remotecommand/websocket.go): 0 stdin, 1 stdout, 2 stderr, 3 the end as a
metav1.Status (Success, or Failure with reason NonZeroExitCode and the exit code as the cause
``ExitCode``, which kubectl exits with), 4 a terminal resize ({"Width", "Height"}); v5 adds 255,
a stream's close (255 0: stdin is over). The SPDY protocol older clients use is not spoken: such a
request gets 400 and kubectl 1.30+ does not fall back to it unless the upgrade fails.

pods/NAME/attach speaks the same protocol, output only: see ``attach``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from runtime.base import ExecSession, RuntimeError_

from . import views

if TYPE_CHECKING:
    from .host import Daemon

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
FOLLOW_POLL = 0.2


def _flag(q: Any, key: str) -> bool:
    return str(q.get(key, "")).lower() in ("true", "1")


def exit_status(code: int, argv: list[str]) -> dict[str, Any]:
    """The channel-3 message for a command's end."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {argv}, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}


def _error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(views.status(code, reason, message), status=code)


async def handle(d: Daemon, request: web.Request, ns: str, name: str) -> web.StreamResponse:
    q = request.query
    pod = d.reconciler.cluster.get(("Pod", ns, name))
    if pod is None:
        return _error(404, "NotFound", f'pods "{name}" not found')
    argv = q.getall("command", [])
    if not argv:
        return _error(400, "BadRequest", "you must specify at least one command for the container")
    containers = [c["name"] for c in pod["spec"].get("containers") or []]
    container = q.get("container") or (containers[0] if containers else "")
    if container not in containers:
        return _error(400, "BadRequest", f"container {container} is not valid for pod {name}")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        return _error(400, "BadRequest", "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)")
    await ws.prepare(request)
    tty, stdin = _flag(q, "tty"), _flag(q, "stdin")
    want = {STDOUT: _flag(q, "stdout"), STDERR: _flag(q, "stderr") and not tty}
    try:
        session = await d.runtime.exec_stream(pod["metadata"]["uid"], container, argv, stdin, tty)
    except RuntimeError_ as e:
        await _finish(ws, failure(str(e)))
        return ws
    feeder = asyncio.create_task(_feed(ws, session))
    try:
        while (item := await session.read()) is not None:
            channel, data = item
            if want.get(channel):
                await ws.send_bytes(bytes([channel]) + data)
        code = await session.wait()
        await _finish(ws, exit_status(code, argv))
    except (ConnectionError, RuntimeError):  # the client went away (aiohttp: writing to a closing socket)
        await session.kill()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
    return ws


async def attach(d: Daemon, request: web.Request, ns: str, name: str) -> web.StreamResponse:
    """``kubectl attach``: the container's output from now on (stdout channel), as long as the same
    pod is there and the client stays. Its stdin is not offered (pods' stdin is not kept open) and
    the runtime must keep the output in a file (the in-process runtime's ``log_path``)."""
    pod = d.reconciler.cluster.get(("Pod", ns, name))
    if pod is None:
        return _error(404, "NotFound", f'pods "{name}" not found')
    containers = [c["name"] for c in pod["spec"].get("containers") or []]
    container = request.query.get("container") or (containers[0] if containers else "")
    if container not in containers:
        return _error(400, "BadRequest", f"container {container} is not valid for pod {name}")
    uid = pod["metadata"]["uid"]
    path = d.runtime.log_path(uid, container)
    if path is None:
        return _error(400, "BadRequest", f"attach is not available on the {d.runtime.name} runtime")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        return _error(400, "BadRequest", "attach needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)")
    await ws.prepare(request)
    listener = asyncio.create_task(_drain(ws))
    try:
        await _follow(d, ws, listener, path, (ns, name, uid))
        await _finish(ws, {"metadata": {}, "status": "Success"})
    except (ConnectionError, RuntimeError):
        pass
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    return ws


async def _follow(
    d: Daemon, ws: web.WebSocketResponse, listener: asyncio.Task[None], path: str, pod: tuple[str, str, str]
) -> None:
    ns, name, uid = pod
    pos = os.path.getsize(path) if os.path.exists(path) else 0
    while not listener.done():
        live = d.reconciler.cluster.get(("Pod", ns, name))
        if live is None or live["metadata"].get("uid") != uid:
            return
        size = os.path.getsize(path) if os.path.exists(path) else 0
        pos = 0 if size < pos else pos
        if size > pos:
            chunk = await asyncio.to_thread(_read_from, path, pos, size - pos)
            pos += len(chunk)
            await ws.send_bytes(bytes([STDOUT]) + chunk)
        await asyncio.sleep(FOLLOW_POLL)


def _read_from(path: str, pos: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(pos)
        return f.read(n)


async def _drain(ws: web.WebSocketResponse) -> None:
    async for _msg in ws:  # stdin and resizes are not used; the loop ends when the client goes
        pass


async def _finish(ws: web.WebSocketResponse, status: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        await ws.close()


async def _feed(ws: web.WebSocketResponse, session: ExecSession) -> None:
    """The client's side: stdin, resizes, stdin's close; a closed connection ends the command."""
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        data: bytes = msg.data
        channel, body = data[0], data[1:]
        if channel == STDIN and body:
            await session.write(body)
        elif channel == RESIZE:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                size = json.loads(body)
                session.resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
        elif channel == CLOSE and body[:1] == bytes([STDIN]):
            await session.close_stdin()
    await session.kill()
