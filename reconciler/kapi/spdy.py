"""SPDY/3.1 framing, as kubectl's port-forward speaks it (pure: bytes in, frames out).

kubectl (client-go) speaks SPDY through moby/spdystream, whose framer is SPDY/3's (version 3 in
every control frame; the protocol is named ``SPDY/3.1``). A frame starts with 8 bytes:

- control frames: ``1`` bit, 15-bit version (3), 16-bit type, 8-bit flags, 24-bit length;
- DATA frames: ``0`` bit, 31-bit stream id, 8-bit flags (``FIN``), 24-bit length.

SYN_STREAM, SYN_REPLY and HEADERS carry a header block: a 32-bit count, then for each header a
32-bit length and its lowercased name, a 32-bit length and its value (several values joined by
NUL). Header blocks are zlib-compressed with SPDY/3's dictionary; each direction of a connection is
ONE zlib stream (the compressor's state carries over from frame to frame, each block ends with a
sync flush), so a ``FrameWriter`` and a ``FrameReader`` belong to one connection and one direction.

spdystream does no flow control (WINDOW_UPDATE and SETTINGS are read and ignored), so neither
side here keeps windows; the frames still parse and build.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_LENGTH = (1 << 24) - 1
MAX_HEADER_BLOCK = 1 << 20  # an inflated header block larger than this is refused (a zlib bomb)

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = 7, 8, 9

# SPDY/3's zlib dictionary: these words, each after its 32-bit big-endian length, then the tail.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date etag "
    "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
    "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
    "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status 200_OK version HTTP/1.1 url public set-cookie keep-alive origin"
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,"
    "deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    words = [w.replace("_", " ") for w in _WORDS.split()]  # "200_OK" is the one word with a space
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + _TAIL.encode()


DICTIONARY = _dictionary()

Headers = dict[str, str]  # lowercased name -> value (several values joined by "\0")


class SpdyError(Exception):
    """The peer broke the framing (a connection-level error: the session should end)."""


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0
    associated_to: int = 0
    priority: int = 0  # 3 bits
    slot: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    flags: int = 0


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = Data | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed header block (names lowercased)."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    """An uncompressed header block -> headers; SpdyError when malformed."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n]
            pos += 4 + n
            (v,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4 : pos + 4 + v]
            if len(name) != n or len(value) != v:
                raise SpdyError("header block is truncated")
            pos += 4 + v
            key = name.decode("utf-8", "replace")
            if key in out:
                raise SpdyError(f"header {key!r} appears twice")
            out[key] = value.decode("utf-8", "replace")
    except struct.error as e:
        raise SpdyError(f"header block is truncated ({e})") from None
    if pos != len(block):
        raise SpdyError("header block has trailing bytes")
    return out


class FrameWriter:
    """Frames -> bytes for one direction of one connection (it owns that direction's zlib stream)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            _check_id(frame.stream_id)
            if len(frame.data) > MAX_LENGTH:
                raise ValueError("a DATA frame carries at most 16 MiB - 1")
            return struct.pack(">II", frame.stream_id, (frame.flags << 24) | len(frame.data)) + frame.data
        kind, flags, body = self._control(frame)
        if len(body) > MAX_LENGTH:
            raise ValueError("control frame too long")
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body

    def _control(self, frame: Frame) -> tuple[int, int, bytes]:  # noqa: C901 - one branch per frame type
        if isinstance(frame, SynStream):
            _check_id(frame.stream_id)
            head = struct.pack(">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5, frame.slot)
            return SYN_STREAM, frame.flags, head + self.compress(frame.headers)
        if isinstance(frame, SynReply):
            _check_id(frame.stream_id)
            return SYN_REPLY, frame.flags, struct.pack(">I", frame.stream_id) + self.compress(frame.headers)
        if isinstance(frame, HeadersFrame):
            _check_id(frame.stream_id)
            return HEADERS, frame.flags, struct.pack(">I", frame.stream_id) + self.compress(frame.headers)
        if isinstance(frame, RstStream):
            _check_id(frame.stream_id)
            return RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status)
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries))
            body += b"".join(struct.pack(">II", (f << 24) | (i & 0xFFFFFF), v) for f, i, v in frame.entries)
            return SETTINGS, frame.flags, body
        if isinstance(frame, Ping):
            return PING, 0, struct.pack(">I", frame.ping_id)
        if isinstance(frame, GoAway):
            return GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status)
        if isinstance(frame, WindowUpdate):
            _check_id(frame.stream_id)
            return WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta & 0x7FFFFFFF)
        raise TypeError(f"not a SPDY frame: {frame!r}")


def _check_id(stream_id: int) -> None:
    if not 0 < stream_id <= 0x7FFFFFFF:
        raise ValueError(f"stream id {stream_id} is not in 1..2^31-1")


class FrameReader:
    """Bytes -> frames for one direction of one connection: ``feed`` what arrived, get whole frames.

    Bytes may arrive split anywhere (a WebSocket message or a TCP read need not hold whole frames)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            first, second = struct.unpack_from(">II", self._buf, 0)
            length = second & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            body = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            flags = second >> 24
            if first & 0x80000000:
                version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise SpdyError(f"SPDY version {version} is not spoken (only {VERSION})")
                frame = self._control(kind, flags, body)
                if frame is not None:
                    frames.append(frame)
            else:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise SpdyError("a DATA frame on stream 0")
                frames.append(Data(stream_id, body, flags))
        return frames

    def inflate(self, data: bytes) -> Headers:
        try:
            block = self._inflate.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise SpdyError(f"header block does not inflate: {e}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyError("header block too large")
        return decode_header_block(block)

    def _control(self, kind: int, flags: int, body: bytes) -> Frame | None:  # noqa: C901 - one branch per type
        try:
            if kind == SYN_STREAM:
                sid, assoc, prio, slot = struct.unpack_from(">IIBB", body, 0)
                headers = self.inflate(body[10:])
                return SynStream(_nonzero(sid & 0x7FFFFFFF), headers, flags, assoc & 0x7FFFFFFF, prio >> 5, slot)
            if kind in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", body, 0)
                headers = self.inflate(body[4:])
                cls = SynReply if kind == SYN_REPLY else HeadersFrame
                return cls(_nonzero(sid & 0x7FFFFFFF), headers, flags)
            if kind == RST_STREAM:
                sid, status = struct.unpack(">II", body)
                return RstStream(_nonzero(sid & 0x7FFFFFFF), status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", body, 0)
                if len(body) != 4 + 8 * count:
                    raise SpdyError("SETTINGS length does not match its count")
                pairs = [struct.unpack_from(">II", body, 4 + 8 * i) for i in range(count)]
                return Settings(tuple((fid >> 24, fid & 0xFFFFFF, v) for fid, v in pairs), flags)
            if kind == PING:
                (pid,) = struct.unpack(">I", body)
                return Ping(pid)
            if kind == GOAWAY:
                last, status = struct.unpack(">II", body)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                sid, delta = struct.unpack(">II", body)
                return WindowUpdate(_nonzero(sid & 0x7FFFFFFF), delta & 0x7FFFFFFF)
        except struct.error as e:
            raise SpdyError(f"control frame {kind} is malformed ({e})") from None
        return None  # an unknown control frame type is ignored (SPDY/3: receivers must ignore them)


def _nonzero(stream_id: int) -> int:
    if stream_id == 0:
        raise SpdyError("stream id 0 is not allowed here")
    return stream_id
