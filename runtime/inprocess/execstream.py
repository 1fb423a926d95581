"""Streaming exec for the in-process runtime (``kubectl exec``, ``-i``, ``-it``).

The command runs as the one-shot exec does (runtime/inprocess/probes.py ``run_exec``): in the
container's environment and working directory, entered into the pod's sandbox with the same
``nsenter`` prefix when the pod has one, in its own session. Without a TTY its stdin, stdout and
stderr are pipes; with one, all three are the slave side of a pseudo-terminal (``os.openpty``),
which becomes the command's controlling terminal, and the master side is read and written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..base import ExecSession, RuntimeError_
from .probes import resolve_exe
from .resolve import StartError, Waiting
from .state import Container, PodState

EOT = b"\x04"


class Host(Protocol):
    """What of the in-process runtime (runtime/inprocess/supervisor.py) a streaming exec uses."""

    _pods: dict[str, PodState]

    def _resolve(
        self, p: PodState, c: Container, warnings: list[str] | None = None
    ) -> tuple[list[str], dict[str, str], str]: ...

    def _enter_prefix(self, p: PodState, cwd: str | None) -> list[str] | None: ...


QUEUED_CHUNKS = 16  # output chunks (up to 64 KiB each) an exec session holds for a slow client


class ProcessSession(ExecSession):
    """A subprocess whose output chunks arrive on a queue (None: one stream ended)."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None, streams: int):
        self.proc = proc
        self.master = master
        # bounded: a client that never reads stops the pumps (and, through the pipe, the command)
        # instead of piling its output up in the daemon's memory
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=QUEUED_CHUNKS)
        self.open_streams = streams
        self.tasks: list[asyncio.Task[None]] = []

    async def write(self, data: bytes) -> None:
        if self.master is not None:
            await asyncio.to_thread(_write_all, self.master, data)
        elif self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self.master is not None:
            await self.write(EOT)
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    async def read(self) -> tuple[int, bytes] | None:
        while self.open_streams > 0:
            item = await self.queue.get()
            if item is not None:
                return item
            self.open_streams -= 1
        return None

    def resize(self, width: int, height: int) -> None:
        if self.master is not None and width > 0 and height > 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int:
        rc = await self.proc.wait()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None
        return 128 - rc if rc < 0 else rc

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        # nobody reads any more: pumps waiting for room in the queue would wait forever, and the
        # process does not count as ended (asyncio) until its pipes are read to their end
        for t in self.tasks:
            t.cancel()
        pipes = [p for p in (self.proc.stdout, self.proc.stderr) if p is not None]
        self.tasks = [asyncio.create_task(_discard(p)) for p in pipes]
        await self.wait()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


async def _pump(stream: asyncio.StreamReader, channel: int, queue: asyncio.Queue[tuple[int, bytes] | None]) -> None:
    with contextlib.suppress(OSError, ValueError):
        while chunk := await stream.read(65536):
            await queue.put((channel, chunk))
    await queue.put(None)


async def _discard(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError, ValueError):
        while await stream.read(65536):
            pass


async def _pump_master(fd: int, queue: asyncio.Queue[tuple[int, bytes] | None]) -> None:
    """Read the pty's master side until the last slave is closed (EIO)."""
    while True:
        try:
            chunk = await asyncio.to_thread(os.read, fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        await queue.put((1, chunk))
    await queue.put(None)


def _controlling_tty() -> None:  # in the child, after fork: its stdin (the pty's slave) becomes its terminal
    os.setsid()
    with contextlib.suppress(OSError):
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def start(
    argv: list[str], env: Mapping[str, str], cwd: str | None, enter: Sequence[str], stdin: bool, tty: bool
) -> ProcessSession:
    if not argv:
        raise RuntimeError_("empty command")
    exe = resolve_exe(argv[0], env, cwd)
    if exe is None:
        raise RuntimeError_(f'exec: "{argv[0]}": executable file not found in $PATH')
    full = [*enter, exe, *argv[1:]]
    if tty:
        master, slave = os.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *full, stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd, preexec_fn=_controlling_tty
            )
        finally:
            os.close(slave)
        s = ProcessSession(proc, master, 1)
        s.tasks.append(asyncio.create_task(_pump_master(master, s.queue)))
        return s
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *full,
        stdin=pipe if stdin else asyncio.subprocess.DEVNULL,
        stdout=pipe,
        stderr=pipe,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    s = ProcessSession(proc, None, 2)
    assert proc.stdout is not None and proc.stderr is not None
    s.tasks += [
        asyncio.create_task(_pump(proc.stdout, 1, s.queue)),
        asyncio.create_task(_pump(proc.stderr, 2, s.queue)),
    ]
    return s


def exec_target(rt: Host, uid: str, container: str) -> tuple[dict[str, str], str | None, list[str]]:
    """Where a command exec'd in the container runs: its environment, working directory and the
    prefix that enters the pod's sandbox (both ``exec`` and ``exec_stream``). Raises RuntimeError_."""
    p = rt._pods.get(uid)
    c = p.container(container) if p else None
    if p is None or c is None:
        raise RuntimeError_(f"no container {container!r} in pod {uid}")
    env, cwd = c.env, c.cwd
    if env is None:
        try:
            _argv, env, cwd = rt._resolve(p, c)
        except (Waiting, StartError) as e:
            raise RuntimeError_(str(e)) from None
    enter = rt._enter_prefix(p, cwd)
    if enter is None:
        raise RuntimeError_(f"the sandbox of pod {uid} is not running: {p.sandbox_error or 'being created'}")
    return env, cwd, enter


async def exec_stream(rt: Host, uid: str, container: str, argv: list[str], stdin: bool, tty: bool) -> ExecSession:
    """``Runtime.exec_stream`` of the in-process runtime: the environment as ``exec`` finds it."""
    env, cwd, enter = exec_target(rt, uid, container)
    try:
        return await start(list(argv), env, cwd, enter, stdin, tty)
    except OSError as e:
        raise RuntimeError_(str(e)) from None


class ExecStreams:
    """The in-process runtime's ``Runtime.exec_stream`` (a base class of InProcessRuntime)."""

    async def exec_stream(self: Host, uid: str, container: str, argv: list[str], stdin: bool, tty: bool) -> ExecSession:
        return await exec_stream(self, uid, container, argv, stdin, tty)
