"""``kubectl port-forward``: pods/NAME/portforward, SPDY/3.1 streams piped to the pod's IP and port.

kubectl (client-go tools/portforward) first asks for a WebSocket with the subprotocol
``SPDY/3.1+portforward.k8s.io`` (KEP-4006): the WebSocket's binary messages carry a SPDY byte
stream, split anywhere. If that upgrade fails it falls back to an HTTP/1.1 upgrade (POST,
``Connection: Upgrade``, ``Upgrade: SPDY/3.1``, ``X-Stream-Protocol-Version: portforward.k8s.io``)
answered ``101 Switching Protocols``, after which the TCP connection carries SPDY directly.

Over SPDY, each forwarded connection is two client-opened streams with the headers ``streamtype``
(``error`` or ``data``), ``port`` and ``requestid`` (kubernetes/kubernetes
pkg/kubelet/cri/streaming/portforward/httpstream.go): the server answers each SYN_STREAM with a
SYN_REPLY, and once both streams of a request id are there, connects to the pod's IP and port and
pipes the data stream both ways (the client's FIN is a half-close toward the pod; the pod's end is
a FIN toward the client). A failure is written on the error stream as the kubelet words it
(``error forwarding port P to pod NAME, uid UID: ...``); both streams end with FIN. The client's
PINGs are echoed. The pure framing is ``spdy.py``.

The older WebSocket-only protocol (the Python ``kubernetes`` client's ``portforward``;
pkg/kubelet/cri/streaming/portforward/websocket.go) is ``_channels``: the ports come in the query
(``?ports=8080&ports=9090`` or ``ports=8080,9090``), one connection per port for the WebSocket's
life; each binary message starts with its channel, ``2i`` port i's data and ``2i+1`` its error, and
the server's first message on each channel is the port as two little-endian bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import spdy, views

if TYPE_CHECKING:
    from .host import Daemon

PROTOCOL = "portforward.k8s.io"
TUNNEL_PREFIX = "SPDY/3.1+"
TUNNEL = TUNNEL_PREFIX + PROTOCOL
CONNECT_TIMEOUT = 10.0
STREAM_TIMEOUT = 30.0  # how long a request's first stream waits for its second (the kubelet's default)
CHUNK = 32 * 1024
BACKLOG = 1 << 20  # bytes from the client queued for a slow pod before reading from the client pauses
RESET = b"\x00reset"  # the sentinel put on a stream's queue when the client resets it


@dataclass
class Target:
    """Where a forwarded connection goes and how errors name the pod."""

    host: str
    pod: str
    uid: str


@dataclass
class Stream:
    stream_id: int
    headers: spdy.Headers
    inbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    fin_sent: bool = False
    reset: bool = False
    done: bool = False  # nothing reads the inbox any more
    pending: int = 0  # bytes in the inbox
    room: asyncio.Event = field(default_factory=asyncio.Event)

    async def put(self, data: bytes) -> None:
        """Queue the client's bytes for the pod; past BACKLOG wait (the connection's reading
        pauses, so TCP pushes back on the client, as spdystream's unbuffered channel does)."""
        if self.done:
            return
        self.inbox.put_nowait(data)
        self.pending += len(data)
        if self.pending > BACKLOG:
            self.room.clear()
            await self.room.wait()

    def took(self, n: int) -> None:
        self.pending -= n
        if self.pending <= BACKLOG:
            self.room.set()

    def close(self) -> None:
        self.done = True
        self.room.set()


def dial_error(host: str, port: int, e: BaseException) -> str:
    """A connect failure in Go's words (``dial tcp 10.0.0.5:80: connect: connection refused``)."""
    if isinstance(e, OSError) and e.errno:
        reason = os.strerror(e.errno).lower() if e.errno != errno.ECONNREFUSED else "connection refused"
    elif isinstance(e, TimeoutError):
        reason = "i/o timeout"
    else:
        reason = str(e) or type(e).__name__
    return f"dial tcp {host}:{port}: connect: {reason}"


class Session:
    """One SPDY connection's server side: frames in through ``feed``, frames out through ``send_bytes``."""

    def __init__(self, send_bytes: Callable[[bytes], Awaitable[None]], target: Target) -> None:
        self._send_bytes = send_bytes
        self.target = target
        self.reader = spdy.FrameReader()
        self.writer = spdy.FrameWriter()
        self.streams: dict[int, Stream] = {}
        self.pairs: dict[str, dict[str, Stream]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self.going_away = False
        self.ended = asyncio.Event()  # after a GOAWAY, once every stream is done: close the connection
        self.closed = False

    async def send(self, frame: spdy.Frame) -> None:
        # one lock around compressing and sending: the header zlib stream must go out in order
        async with self._send_lock:
            await self._send_bytes(self.writer.encode(frame))

    async def feed(self, data: bytes) -> None:
        """Bytes from the client (SpdyError when the framing is broken: end the connection)."""
        for frame in self.reader.feed(data):
            await self.handle(frame)

    async def handle(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.SynStream):
            await self._new_stream(frame)
        elif isinstance(frame, spdy.Data):
            stream = self.streams.get(frame.stream_id)
            if stream is not None and not stream.reset:
                if frame.data and stream.headers.get("streamtype") == "data":  # the error stream is not read
                    await stream.put(frame.data)
                if frame.fin:
                    stream.inbox.put_nowait(None)
        elif isinstance(frame, spdy.RstStream):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream.reset = True
                stream.inbox.put_nowait(RESET)
        elif isinstance(frame, spdy.Ping) and frame.ping_id % 2 == 1:  # the client's ping: echo it
            await self.send(frame)
        elif isinstance(frame, spdy.GoAway):
            self.going_away = True
            self._maybe_end()
        # SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing to do (spdystream keeps no windows)

    async def _new_stream(self, frame: spdy.SynStream) -> None:
        problem = _check_headers(frame.headers)
        if problem or self.going_away or frame.stream_id in self.streams or frame.stream_id % 2 == 0:
            await self.send(spdy.RstStream(frame.stream_id, spdy.REFUSED_STREAM))
            return
        stream = Stream(frame.stream_id, frame.headers)
        self.streams[frame.stream_id] = stream
        await self.send(spdy.SynReply(frame.stream_id))
        if frame.fin:
            stream.inbox.put_nowait(None)
        kind = frame.headers["streamtype"]
        request = frame.headers.get("requestid") or _legacy_request_id(kind, frame.stream_id)
        if request not in self.pairs:
            asyncio.get_running_loop().call_later(
                STREAM_TIMEOUT, self._expire, request, self.pairs.setdefault(request, {})
            )
        pair = self.pairs[request]
        if kind in pair:  # a second stream of the same type for one request: refused
            self.streams.pop(frame.stream_id, None)
            await self.send(spdy.RstStream(frame.stream_id, spdy.STREAM_IN_USE))
            return
        pair[kind] = stream
        if len(pair) == 2:
            del self.pairs[request]
            self._start(self._forward(pair["error"], pair["data"]))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._maybe_end()

    def _maybe_end(self) -> None:
        if self.going_away and not self.tasks and not self.pairs:
            self.ended.set()

    def _expire(self, request: str, pair: dict[str, Stream]) -> None:
        """A request whose second stream never came: say so on its error stream and end it."""
        if self.closed or self.pairs.get(request) is not pair:
            return
        del self.pairs[request]
        self._start(self._timed_out(request, pair))

    async def _timed_out(self, request: str, pair: dict[str, Stream]) -> None:
        if "error" in pair:
            message = f"(request={request}) timed out waiting for streams"
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(spdy.Data(pair["error"].stream_id, message.encode()))
        for stream in pair.values():
            await self._finish(stream)

    async def _forward(self, error: Stream, data: Stream) -> None:
        try:

            async def out(chunk: bytes) -> None:
                await self.send(spdy.Data(data.stream_id, chunk))

            problem = await pipe(self.target, int(data.headers["port"]), data, out)
            if problem:
                await self.send(spdy.Data(error.stream_id, problem.encode()))
        finally:
            await self._finish(data)
            await self._finish(error)

    async def _finish(self, stream: Stream) -> None:
        stream.close()
        if not stream.fin_sent and not stream.reset:
            stream.fin_sent = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(spdy.Data(stream.stream_id, b"", spdy.FLAG_FIN))
        self.streams.pop(stream.stream_id, None)

    async def serve(self, source: AsyncIterator[bytes]) -> None:
        """Feed the connection's bytes until it ends, breaks the framing, or a GOAWAY's streams are done."""

        async def pump() -> None:
            with contextlib.suppress(spdy.SpdyError, ConnectionError, RuntimeError):
                async for data in source:
                    await self.feed(data)

        reading, ended = asyncio.create_task(pump()), asyncio.create_task(self.ended.wait())
        try:
            await asyncio.wait([reading, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reading, ended):
                task.cancel()
            await asyncio.gather(reading, ended, return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        """The connection is gone: stop every forwarded connection."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _check_headers(headers: spdy.Headers) -> str:
    port = headers.get("port", "")
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"invalid port {port!r}"
    if headers.get("streamtype") not in ("error", "data"):
        return f"invalid stream type {headers.get('streamtype')!r}"
    return ""


def _legacy_request_id(kind: str, stream_id: int) -> str:
    """Clients before request ids: consecutive streams error=N, data=N+2 (as the kubelet guesses)."""
    return str(stream_id if kind == "error" else stream_id - 2)


async def pipe(target: Target, port: int, stream: Stream, out: Callable[[bytes], Awaitable[None]]) -> str:
    """Connect to the pod's port and pipe: the stream's inbox to the pod, the pod's bytes to ``out``,
    until the pod's side ends or the client resets. The kubelet's error message when it cannot connect."""
    try:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            why = dial_error(target.host, port, e)
            return f"error forwarding port {port} to pod {target.pod}, uid {target.uid}: {why}"
        upload = asyncio.create_task(_upload(stream, writer))
        try:
            while (chunk := await reader.read(CHUNK)) and not stream.reset:
                await out(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            upload.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await upload
            writer.close()
        return ""
    finally:
        stream.close()


async def _upload(data: Stream, writer: asyncio.StreamWriter) -> None:
    """The client's bytes to the pod; its FIN half-closes toward the pod, a reset closes."""
    while True:
        chunk = await data.inbox.get()
        if chunk is None:
            if writer.can_write_eof():
                writer.write_eof()
            return
        if chunk is RESET:
            writer.transport.abort()
            return
        data.took(len(chunk))
        writer.write(chunk)
        await writer.drain()


# --- the HTTP side -----------------------------------------------------------------------------


def _error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(views.status(code, reason, message), status=code)


def target_of(d: Daemon, ns: str, name: str) -> Target | web.Response:
    pod = d.reconciler.cluster.get(("Pod", ns, name))
    if pod is None:
        return _error(404, "NotFound", f'pods "{name}" not found')
    host = (pod.get("status") or {}).get("podIP")
    if not host:
        return _error(400, "BadRequest", f"pod {name} does not have an IP address yet")
    return Target(str(host), name, str(pod["metadata"].get("uid", "")))


def _offered(request: web.Request) -> list[str]:
    raw = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in raw.split(",") if p.strip()]


async def handle(d: Daemon, request: web.Request, ns: str, name: str) -> web.StreamResponse:
    target = target_of(d, ns, name)
    if isinstance(target, web.Response):
        return target
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket" and TUNNEL in _offered(request):
        return await _tunnel(request, target)
    if upgrade == "websocket":
        return await _channels(request, target)
    if upgrade.startswith("spdy/3.1"):
        return await _spdy_upgrade(request, target)
    return _error(400, "BadRequest", "port-forward needs an upgrade (WebSocket or SPDY/3.1)")


async def _tunnel(request: web.Request, target: Target) -> web.StreamResponse:
    """SPDY over WebSocket binary messages (KEP-4006)."""
    ws = web.WebSocketResponse(protocols=(TUNNEL,), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    session = Session(ws.send_bytes, target)

    async def messages() -> AsyncIterator[bytes]:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                yield msg.data

    try:
        await session.serve(messages())
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws


class _RawParser:
    """Takes over the connection's bytes after the 101 (aiohttp's payload-parser hook); reading
    from the socket pauses while more than BACKLOG bytes wait for the session."""

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport = transport
        self.queued = 0
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        self.queued += len(data)
        if self.queued > BACKLOG and not self.paused and isinstance(self.transport, asyncio.ReadTransport):
            self.paused = True
            self.transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self.queue.get()) is not None:
            self.queued -= len(chunk)
            if self.paused and self.queued <= BACKLOG and isinstance(self.transport, asyncio.ReadTransport):
                self.paused = False
                self.transport.resume_reading()
            yield chunk


async def _spdy_upgrade(request: web.Request, target: Target) -> web.StreamResponse:
    """The HTTP/1.1 upgrade to SPDY/3.1 (kubectl's fallback, and clients before 1.30)."""
    offered = [p.strip() for p in ",".join(request.headers.getall("X-Stream-Protocol-Version", [])).split(",")]
    if PROTOCOL not in offered:
        message = f"unable to negotiate protocol: client supports {offered}, server accepts {[PROTOCOL]}"
        return _error(403, "Forbidden", message)
    transport = request.transport
    if transport is None:
        return _error(400, "BadRequest", "connection lost")
    parser = _RawParser(transport)
    protocol: Any = request.protocol
    protocol.set_parser(parser)
    protocol.keep_alive(False)
    resp = web.StreamResponse(status=101, reason="Switching Protocols")
    resp.headers.update({"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": PROTOCOL})
    resp.force_close()
    await resp.prepare(request)

    async def send_bytes(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionError("connection closed")
        transport.write(data)
        if transport.get_write_buffer_size() > BACKLOG:
            await protocol._drain_helper()  # aiohttp's protocol waits for the socket to drain

    try:
        await Session(send_bytes, target).serve(parser.chunks())
    finally:
        transport.close()
    return resp


BASE64_PROTOCOL = "v4.base64.channel.k8s.io"  # text messages: the channel as a digit, then base64
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", BASE64_PROTOCOL, "channel.k8s.io", "base64.channel.k8s.io")


def _ports(request: web.Request) -> list[int] | str:
    raw = request.query.getall("ports", [])
    if not raw:
        return 'query parameter "ports" is required'
    ports: list[int] = []
    for item in raw:
        for p in item.split(","):
            if not p.isdigit() or not 0 < int(p) < 65536:
                return f"unable to parse {item!r} as a port"
            ports.append(int(p))
    return ports


async def _channels(request: web.Request, target: Target) -> web.StreamResponse:
    """The WebSocket-only protocol: channel 2i carries port i's bytes, 2i+1 its error."""
    ports = _ports(request)
    if isinstance(ports, str):
        return _error(400, "BadRequest", ports)
    ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    streams = [Stream(2 * i, {}) for i in range(len(ports))]
    lock = asyncio.Lock()
    text = "base64" in (ws.ws_protocol or "")

    async def send(channel: int, data: bytes) -> None:
        async with lock:
            if text:
                await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await ws.send_bytes(bytes([channel]) + data)

    try:
        for i, port in enumerate(ports):
            await send(2 * i, port.to_bytes(2, "little"))
            await send(2 * i + 1, port.to_bytes(2, "little"))
        pipes = asyncio.create_task(_all_pipes(target, ports, streams, send))
        reader = asyncio.create_task(_channel_reader(ws, streams, text))
        await asyncio.wait([reader, pipes], return_when=asyncio.FIRST_COMPLETED)
        for task in (reader, pipes):
            task.cancel()
        await asyncio.gather(reader, pipes, return_exceptions=True)
    except (ConnectionError, RuntimeError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws


async def _all_pipes(
    target: Target, ports: list[int], streams: list[Stream], send: Callable[[int, bytes], Awaitable[None]]
) -> None:
    """Every port's connection; the WebSocket ends when all have ended (as the kubelet's does)."""
    await asyncio.gather(*(_channel_pipe(target, port, 2 * i, streams[i], send) for i, port in enumerate(ports)))


async def _channel_reader(ws: web.WebSocketResponse, streams: list[Stream], text: bool) -> None:
    async for msg in ws:
        if text and msg.type == WSMsgType.TEXT and len(msg.data) >= 2:
            channel = ord(msg.data[0]) - ord("0")
            try:
                body = base64.b64decode(msg.data[1:], validate=True)
            except ValueError:
                continue
        elif not text and msg.type == WSMsgType.BINARY and len(msg.data) >= 2:
            channel, body = msg.data[0], bytes(msg.data[1:])
        else:
            continue
        if channel % 2 == 0 and 0 <= channel // 2 < len(streams):
            await streams[channel // 2].put(body)
    for stream in streams:  # the client went away
        stream.inbox.put_nowait(RESET)


async def _channel_pipe(
    target: Target, port: int, channel: int, stream: Stream, send: Callable[[int, bytes], Awaitable[None]]
) -> None:
    async def out(chunk: bytes) -> None:
        await send(channel, chunk)

    problem = await pipe(target, port, stream, out)
    if problem:
        await send(channel + 1, problem.encode())
