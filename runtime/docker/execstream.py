"""Streaming exec for the Docker runtime (``kubectl exec``, ``-i``, ``-it``).

The Engine's exec (exec_create, then exec_start with ``socket=True``) hands over the raw
connection: stdin is written to it (a half-close of its write side ends stdin), and it carries the
output, multiplexed without a TTY (frames of an 8-byte header: stream 1 or 2, three zero bytes, a
big-endian 32-bit length) and raw with one. exec_resize sets the TTY's size; exec_inspect gives the
exit code once the command is over. The blocking socket is read on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

from ..base import ExecSession, RuntimeError_

CHUNK = 65536


def _raw_socket(sock: Any) -> socket.socket:
    raw = getattr(sock, "_sock", sock)  # docker-py's SocketIO wraps the connection's socket
    assert isinstance(raw, socket.socket)
    return raw


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return out
        out += chunk
    return out


QUEUED_CHUNKS = 16  # output chunks an exec session holds for a slow client


class DockerSession(ExecSession):
    def __init__(self, api: Any, exec_id: str, sock: socket.socket, stdin: bool, tty: bool):
        self.api, self.exec_id, self.sock, self.stdin, self.tty = api, exec_id, sock, stdin, tty
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        # room for this many chunks: a client that never reads stops the reader thread (and, through
        # the socket, the command) instead of piling the output up in the daemon's memory
        self.room = threading.Semaphore(QUEUED_CHUNKS)
        self.done = self.closed = False
        threading.Thread(target=self._reader, name=f"exec-{exec_id[:12]}", daemon=True).start()

    def _put(self, item: tuple[int, bytes] | None) -> None:
        while item is not None and not self.room.acquire(timeout=0.5):
            if self.closed:
                raise OSError("the session was closed")
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon is stopping
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _reader(self) -> None:
        try:
            while True:
                if self.tty:
                    chunk = self.sock.recv(CHUNK)
                    if not chunk:
                        return
                    self._put((1, chunk))
                    continue
                header = _recv_exact(self.sock, 8)
                if len(header) < 8:
                    return
                stream, size = header[0], struct.unpack(">I", header[4:])[0]
                data = _recv_exact(self.sock, size)
                if data:
                    self._put((2 if stream == 2 else 1, data))
                if len(data) < size:
                    return
        except OSError:
            return
        finally:
            self._put(None)

    async def write(self, data: bytes) -> None:
        if self.stdin:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.sock.sendall, data)

    async def close_stdin(self) -> None:
        if self.tty:
            await self.write(b"\x04")
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    async def read(self) -> tuple[int, bytes] | None:
        if self.done:
            return None
        item = await self.queue.get()
        if item is None:
            self.done = True
        else:
            self.room.release()
        return item

    def resize(self, width: int, height: int) -> None:
        if self.tty and width > 0 and height > 0:
            fut = self.loop.run_in_executor(None, self._resize, width, height)
            fut.add_done_callback(lambda f: f.exception())  # a resize that fails is not worth a traceback

    def _resize(self, width: int, height: int) -> None:
        self.api.exec_resize(self.exec_id, height=height, width=width)

    async def wait(self) -> int:
        while True:
            info = await asyncio.to_thread(self.api.exec_inspect, self.exec_id)
            if not info.get("Running"):
                with contextlib.suppress(OSError):
                    self.sock.close()
                code = info.get("ExitCode")
                return -1 if code is None else int(code)
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """Docker cannot stop an exec by itself: closing its connection ends the command's stdin and
        its terminal (a shell on a TTY gets SIGHUP)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


async def exec_stream(api: Any, cid: str, argv: list[str], stdin: bool, tty: bool) -> ExecSession:
    """``Runtime.exec_stream`` of the Docker runtime, on a container id."""

    def start() -> tuple[str, socket.socket]:
        ex = api.exec_create(cid, list(argv), stdin=stdin, stdout=True, stderr=True, tty=tty)
        sock = api.exec_start(ex["Id"], socket=True, tty=tty)
        return str(ex["Id"]), _raw_socket(sock)

    try:
        exec_id, sock = await asyncio.to_thread(start)
    except Exception as exc:  # docker.errors.APIError and the like: the container is gone or stopped
        raise RuntimeError_(f"exec in container {cid[:12]}: {getattr(exc, 'explanation', None) or exc}") from exc
    return DockerSession(api, exec_id, sock, stdin, tty)
