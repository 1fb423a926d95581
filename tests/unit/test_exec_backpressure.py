"""An exec session whose client never reads: the daemon holds a bounded amount of its output.

Found by the hostile-input work (issue 20): the in-process runtime's output queue was unbounded, so
`kubectl exec pod -- yes` with a client that stopped reading grew the daemon's memory without end.
"""

from __future__ import annotations

import asyncio
import os

from runtime.inprocess.execstream import QUEUED_CHUNKS, start


def test_unread_output_is_bounded_and_kill_ends_the_session() -> None:
    async def main() -> None:
        s = await start(["yes", "x" * 1000], dict(os.environ), None, [], stdin=False, tty=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while s.queue.qsize() < QUEUED_CHUNKS and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert s.queue.qsize() == QUEUED_CHUNKS
        for _ in range(10):  # the producer is stopped by the full pipe, not buffered in the daemon
            await asyncio.sleep(0.05)
            assert s.queue.qsize() <= QUEUED_CHUNKS
        assert s.proc.returncode is None
        await asyncio.wait_for(s.kill(), 10)
        assert s.proc.returncode is not None

    asyncio.run(main())


def test_a_reader_still_gets_everything_in_order() -> None:
    async def main() -> bytes:
        s = await start(["sh", "-c", "seq 1 200000"], dict(os.environ), None, [], stdin=False, tty=False)
        out = b""
        while (item := await s.read()) is not None:
            out += item[1]
        assert await s.wait() == 0
        return out

    out = asyncio.run(main())
    assert out.split() == [str(i).encode() for i in range(1, 200001)]


def test_docker_session_holds_a_bounded_output_for_a_client_that_never_reads() -> None:
    import socket
    import struct
    import threading

    from runtime.docker.execstream import QUEUED_CHUNKS as DOCKER_CHUNKS
    from runtime.docker.execstream import DockerSession

    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def engine() -> None:  # Docker's multiplexed stream: 8-byte header (stream 1, size), then the data
        frame = struct.pack(">BxxxI", 1, 4096) + b"y" * 4096
        try:
            while not stop.is_set():
                theirs.sendall(frame)
        except OSError:
            pass

    async def main() -> None:
        s = DockerSession(api=None, exec_id="0" * 64, sock=ours, stdin=False, tty=False)
        t = threading.Thread(target=engine, daemon=True)
        t.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while s.queue.qsize() < DOCKER_CHUNKS and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for _ in range(10):
            await asyncio.sleep(0.05)
            assert s.queue.qsize() <= DOCKER_CHUNKS + 1
        assert (await s.read()) is not None  # a reader still gets the chunks
        await s.kill()
        stop.set()
        theirs.close()
        while await asyncio.wait_for(s.read(), 10) is not None:  # the reader thread ends
            pass

    asyncio.run(main())
