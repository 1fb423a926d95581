"""SPDY/3 framing (reconciler/kapi/spdy.py) and the port-forward session over it (portforward.py)."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.kapi import portforward, spdy

# --- known vectors --------------------------------------------------------------------------------


def test_dictionary_is_spdy3s() -> None:
    # 1423 bytes; its Adler-32 is the dictionary id every SPDY/3 header stream names (kubectl's first
    # compressed block starts 78 f9 e3 c6 a7 c2: zlib header with FDICT, then this id)
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_first_header_block_names_the_dictionary() -> None:
    block = spdy.FrameWriter().compress({"port": "80"})
    assert block[:6] == bytes.fromhex("78f9e3c6a7c2")


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (spdy.Ping(1), "80030006 00000004 00000001"),
        (spdy.RstStream(3, spdy.CANCEL), "80030003 00000008 00000003 00000005"),
        (spdy.GoAway(5, 0), "80030007 00000008 00000005 00000000"),
        (spdy.WindowUpdate(1, 65536), "80030009 00000008 00000001 00010000"),
        (spdy.Settings(((1, 7, 65536),)), "80030004 0000000c 00000001 01000007 00010000"),
        (spdy.Data(1, b"hi", spdy.FLAG_FIN), "00000001 01000002 6869"),
        (spdy.Data(7), "00000007 00000000"),
    ],
)
def test_known_frames(frame: spdy.Frame, wire: str) -> None:
    data = bytes.fromhex(wire.replace(" ", ""))
    assert spdy.FrameWriter().encode(frame) == data
    assert spdy.FrameReader().feed(data) == [frame]


def test_syn_stream_layout() -> None:
    frame = spdy.SynStream(3, {"streamtype": "data", "port": "8080"}, spdy.FLAG_FIN, associated_to=1, priority=5)
    data = spdy.FrameWriter().encode(frame)
    assert data[:4] == bytes.fromhex("80030001")
    assert data[4] == spdy.FLAG_FIN and int.from_bytes(data[5:8], "big") == len(data) - 8
    assert struct.unpack(">IIBB", data[8:18]) == (3, 1, 5 << 5, 0)
    block = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(data[18:])
    assert spdy.decode_header_block(block) == {"streamtype": "data", "port": "8080"}


def test_header_block_layout_and_lowercase_names() -> None:
    block = spdy.encode_header_block({"StreamType": "error"})
    assert block == b"\x00\x00\x00\x01" + b"\x00\x00\x00\x0astreamtype" + b"\x00\x00\x00\x05error"


# --- round trips ------------------------------------------------------------------------------------

ids = st.integers(1, 0x7FFFFFFF)
names = st.text("abcdefghijklmnopqrstuvwxyz-:", min_size=1, max_size=20)
values = st.text(max_size=60)
headers = st.dictionaries(names, values, max_size=6)
frames = st.one_of(
    st.builds(spdy.Data, ids, st.binary(max_size=300), st.sampled_from([0, spdy.FLAG_FIN])),
    st.builds(
        spdy.SynStream, ids, headers, st.sampled_from([0, 1, 2, 3]), st.integers(0, 0x7FFFFFFF), st.integers(0, 7)
    ),
    st.builds(spdy.SynReply, ids, headers, st.sampled_from([0, 1])),
    st.builds(spdy.HeadersFrame, ids, headers, st.sampled_from([0, 1])),
    st.builds(spdy.RstStream, ids, st.integers(1, 11)),
    st.builds(spdy.Ping, st.integers(1, 2**32 - 1)),
    st.builds(spdy.GoAway, st.integers(0, 0x7FFFFFFF), st.integers(0, 2)),
    st.builds(spdy.WindowUpdate, ids, st.integers(1, 0x7FFFFFFF)),
    st.builds(
        spdy.Settings,
        st.lists(st.tuples(st.integers(0, 3), st.integers(1, 0xFFFFFF), st.integers(0, 2**32 - 1)), max_size=4).map(
            tuple
        ),
        st.sampled_from([0, 1]),
    ),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(frames, max_size=12), st.lists(st.integers(1, 50), max_size=40))
def test_round_trip_split_anywhere(sent: list[spdy.Frame], cuts: list[int]) -> None:
    """One writer's frames, however the bytes are split, come out of one reader as they went in
    (the header blocks share one zlib stream, so order and continuity matter)."""
    writer, reader = spdy.FrameWriter(), spdy.FrameReader()
    data = b"".join(writer.encode(f) for f in sent)
    got: list[spdy.Frame] = []
    pos = 0
    for n in cuts:
        got += reader.feed(data[pos : pos + n])
        pos += n
    got += reader.feed(data[pos:])
    assert got == sent


@given(headers)
def test_header_block_round_trip(h: dict[str, str]) -> None:
    assert spdy.decode_header_block(spdy.encode_header_block(h)) == h


# --- bad input ----------------------------------------------------------------------------------------


def test_wrong_version_is_an_error() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader().feed(bytes.fromhex("80020006 00000004 00000001".replace(" ", "")))


def test_data_on_stream_zero_is_an_error() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader().feed(bytes.fromhex("00000000 00000001 00".replace(" ", "")))


def test_unknown_control_frame_is_ignored() -> None:
    data = bytes.fromhex("8003000a 00000002 abcd".replace(" ", "")) + spdy.FrameWriter().encode(spdy.Ping(1))
    assert spdy.FrameReader().feed(data) == [spdy.Ping(1)]


def test_truncated_and_duplicate_header_blocks() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.decode_header_block(b"\x00\x00\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x00")
    twice = b"\x00\x00\x00\x02" + (b"\x00\x00\x00\x01a\x00\x00\x00\x01b" * 2)
    with pytest.raises(spdy.SpdyError):
        spdy.decode_header_block(twice)


def test_header_block_that_does_not_inflate() -> None:
    body = b"\x00\x00\x00\x01" + b"garbage!"
    frame = struct.pack(">HHI", 0x8003, spdy.SYN_REPLY, len(body)) + body
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader().feed(frame)


def test_oversized_header_block_is_refused() -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    body = b"\x00\x00\x00\x01" + deflate.compress(b"\x00" * (2 * spdy.MAX_HEADER_BLOCK)) + deflate.flush(2)
    frame = struct.pack(">HHI", 0x8003, spdy.SYN_REPLY, len(body)) + body
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader().feed(frame)


def test_writer_refuses_stream_zero() -> None:
    with pytest.raises(ValueError):
        spdy.FrameWriter().encode(spdy.Data(0, b"x"))


# --- the port-forward session -----------------------------------------------------------------------


class Client:
    """The kubectl side of a session: frames in, the server's frames out."""

    def __init__(self, target: portforward.Target) -> None:
        self.writer, self.reader = spdy.FrameWriter(), spdy.FrameReader()
        self.got: list[spdy.Frame] = []
        self.changed = asyncio.Event()

        async def send_bytes(data: bytes) -> None:
            self.got += self.reader.feed(data)
            self.changed.set()

        self.session = portforward.Session(send_bytes, target)

    async def send(self, *frames: spdy.Frame) -> None:
        await self.session.feed(b"".join(self.writer.encode(f) for f in frames))

    async def until(self, cond: object, timeout: float = 10) -> None:
        async def wait() -> None:
            while not cond():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)

    def data(self, stream_id: int) -> bytes:
        return b"".join(f.data for f in self.got if isinstance(f, spdy.Data) and f.stream_id == stream_id)

    def fin(self, stream_id: int) -> bool:
        return any(isinstance(f, spdy.Data) and f.stream_id == stream_id and f.fin for f in self.got)


def _pair(request: str, port: int, first: int) -> tuple[spdy.SynStream, spdy.SynStream]:
    h = {"port": str(port), "requestid": request}
    return spdy.SynStream(first, {**h, "streamtype": "error"}, spdy.FLAG_FIN), spdy.SynStream(
        first + 2, {**h, "streamtype": "data"}
    )


def test_session_pipes_a_connection_to_the_pod() -> None:
    async def main() -> None:
        async def upper(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write((await r.read()).upper())  # reads to the client's half-close
            await w.drain()
            w.close()

        server = await asyncio.start_server(upper, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = Client(portforward.Target("127.0.0.1", "web", "u1"))
        await c.send(*_pair("0", port, 1))
        assert [f for f in c.got if isinstance(f, spdy.SynReply)] == [spdy.SynReply(1), spdy.SynReply(3)]
        await c.send(spdy.Data(3, b"hello "), spdy.Data(3, b"pod", spdy.FLAG_FIN), spdy.Ping(1))
        await c.until(lambda: c.fin(3) and c.fin(1))
        assert c.data(3) == b"HELLO POD"
        assert c.data(1) == b""  # no error
        assert spdy.Ping(1) in c.got
        await c.session.close()
        server.close()

    asyncio.run(main())


def test_session_reports_a_refused_connection_on_the_error_stream() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        c = Client(portforward.Target("127.0.0.1", "web", "u1"))
        await c.send(*_pair("7", port, 5))
        await c.until(lambda: c.fin(5) and c.fin(7))
        message = c.data(5).decode()
        dial = f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        assert message == f"error forwarding port {port} to pod web, uid u1: {dial}"

    asyncio.run(main())


def test_session_refuses_bad_streams() -> None:
    async def main() -> None:
        c = Client(portforward.Target("127.0.0.1", "web", "u1"))
        await c.send(spdy.SynStream(1, {"streamtype": "data", "port": "0", "requestid": "1"}))
        await c.send(spdy.SynStream(3, {"streamtype": "other", "port": "80", "requestid": "1"}))
        await c.send(spdy.SynStream(5, {"streamtype": "data", "port": "80", "requestid": "2"}))
        await c.send(spdy.SynStream(7, {"streamtype": "data", "port": "80", "requestid": "2"}))
        refused = [f.stream_id for f in c.got if isinstance(f, spdy.RstStream)]
        assert refused == [1, 3, 7]
        assert spdy.SynReply(5) in c.got
        await c.session.close()

    asyncio.run(main())


def test_dial_error_wording() -> None:
    assert portforward.dial_error("10.0.0.5", 80, TimeoutError()) == "dial tcp 10.0.0.5:80: connect: i/o timeout"


def test_goaway_ends_the_session_once_its_streams_are_done() -> None:
    async def main() -> None:
        async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read()
            w.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = Client(portforward.Target("127.0.0.1", "web", "u1"))
        source: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def chunks():  # type: ignore[no-untyped-def]
            while (b := await source.get()) is not None:
                yield b

        serving = asyncio.create_task(c.session.serve(chunks()))
        source.put_nowait(b"".join(c.writer.encode(f) for f in _pair("0", port, 1)))
        source.put_nowait(c.writer.encode(spdy.GoAway(0)))
        await c.until(lambda: spdy.SynReply(3) in c.got)
        assert not serving.done()  # the forwarded connection is still open
        source.put_nowait(c.writer.encode(spdy.Data(3, b"", spdy.FLAG_FIN)))
        await asyncio.wait_for(serving, 10)  # the pod closed, the streams ended: so does the session
        assert c.fin(1) and c.fin(3)
        server.close()

    asyncio.run(main())


def test_a_lone_stream_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portforward, "STREAM_TIMEOUT", 0.05)

    async def main() -> None:
        c = Client(portforward.Target("127.0.0.1", "web", "u1"))
        await c.send(_pair("4", 80, 1)[0])  # the error stream only
        await c.until(lambda: c.fin(1))
        assert c.data(1) == b"(request=4) timed out waiting for streams"
        assert not c.session.pairs

    asyncio.run(main())


def test_client_reset_closes_the_pod_connection() -> None:
    async def main() -> None:
        closed = asyncio.Event()

        async def hold(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read()  # until the connection goes
            closed.set()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = Client(portforward.Target("127.0.0.1", "web", "u1"))
        await c.send(*_pair("0", port, 1), spdy.Data(3, b"x"))
        await c.send(spdy.RstStream(3, spdy.CANCEL))
        await asyncio.wait_for(closed.wait(), 10)
        await c.until(lambda: c.fin(1))
        await c.session.close()
        server.close()

    asyncio.run(main())


def test_a_slow_pod_pushes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portforward, "BACKLOG", 10)

    async def main() -> None:
        stream = portforward.Stream(1, {})
        await stream.put(b"12345")  # under the backlog: returns at once
        blocked = asyncio.create_task(stream.put(b"678901"))
        await asyncio.sleep(0)
        assert not blocked.done()  # past it: waits for the pod side to take bytes
        stream.took(5)
        await asyncio.wait_for(blocked, 5)
        stream.close()
        await asyncio.wait_for(stream.put(b"x" * 100), 5)  # a finished stream drops what comes

    asyncio.run(main())


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
def test_websocket_channels(protocol: str) -> None:
    """The WebSocket-only protocol: each port's channels open with the port (2 bytes, little-endian),
    data on 2i, a connect failure on 2i+1; base64 sends text messages (channel digit + base64)."""
    import base64

    from aiohttp import WSMsgType, web
    from aiohttp.test_utils import TestClient, TestServer

    async def main() -> None:
        async def upper(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write((await r.readexactly(5)).upper())
            await w.drain()
            w.close()

        pod = await asyncio.start_server(upper, "127.0.0.1", 0)
        good = pod.sockets[0].getsockname()[1]
        gone = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        bad = gone.sockets[0].getsockname()[1]
        gone.close()
        await gone.wait_closed()
        target = portforward.Target("127.0.0.1", "web", "u1")

        async def handler(request: web.Request) -> web.StreamResponse:
            return await portforward._channels(request, target)

        app = web.Application()
        app.router.add_get("/pf", handler)
        async with TestClient(TestServer(app)) as client:
            ws = await client.ws_connect(f"/pf?ports={good},{bad}", protocols=[protocol])
            text = "base64" in protocol

            def frame(channel: int, data: bytes) -> str | bytes:
                return chr(48 + channel) + base64.b64encode(data).decode() if text else bytes([channel]) + data

            def parse(msg: object) -> tuple[int, bytes]:
                data = msg.data  # type: ignore[attr-defined]
                return (ord(data[0]) - 48, base64.b64decode(data[1:])) if text else (data[0], data[1:])

            got: dict[int, bytes] = {}
            opened = [parse(await ws.receive()) for _ in range(4)]
            assert opened == [(0, good.to_bytes(2, "little")), (1, good.to_bytes(2, "little"))] + [
                (2, bad.to_bytes(2, "little")),
                (3, bad.to_bytes(2, "little")),
            ]
            f = frame(0, b"hello")
            await (ws.send_str(f) if isinstance(f, str) else ws.send_bytes(f))
            while (msg := await ws.receive()).type in (WSMsgType.BINARY, WSMsgType.TEXT):
                channel, body = parse(msg)
                got[channel] = got.get(channel, b"") + body
            assert got[0] == b"HELLO"
            assert b"connection refused" in got[3] and f"port {bad} to pod web".encode() in got[3]
        pod.close()

    asyncio.run(main())


def test_websocket_channels_need_ports() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def main() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await portforward._channels(request, portforward.Target("127.0.0.1", "web", "u1"))

        app = web.Application()
        app.router.add_get("/pf", handler)
        async with TestClient(TestServer(app)) as client:
            for query in ("", "?ports=0", "?ports=http"):
                r = await client.get("/pf" + query)
                assert r.status == 400

    asyncio.run(main())


def test_session_carries_megabytes_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portforward, "BACKLOG", 64 * 1024)  # the push-back path is taken too
    payload = bytes(range(256)) * (3 * 4096)  # 3 MiB

    async def main() -> None:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while chunk := await r.read(65536):
                w.write(chunk)
                await w.drain()
            w.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = Client(portforward.Target("127.0.0.1", "web", "u1"))
        await c.send(*_pair("0", port, 1))
        for i in range(0, len(payload), 50_000):
            await c.send(spdy.Data(3, payload[i : i + 50_000]))
        await c.send(spdy.Data(3, b"", spdy.FLAG_FIN))
        await c.until(lambda: c.fin(3), timeout=60)
        assert c.data(3) == payload
        await c.session.close()
        server.close()

    asyncio.run(main())
