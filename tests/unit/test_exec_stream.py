"""The in-process runtime's streaming exec on the host (no sandbox), and exec's channel-3 statuses."""

from __future__ import annotations

import asyncio
import os

from reconciler.kapi.exec import exit_status
from runtime.base import ExecSession
from runtime.inprocess.execstream import start

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


async def _drain(s: ExecSession) -> dict[int, bytes]:
    out: dict[int, bytes] = {1: b"", 2: b""}
    while (item := await asyncio.wait_for(s.read(), 30)) is not None:
        out[item[0]] += item[1]
    return out


def test_pipes_and_exit_code() -> None:
    async def main() -> None:
        s = await start(["sh", "-c", "echo out; echo err >&2; exit 3"], ENV, None, [], False, False)
        assert await _drain(s) == {1: b"out\n", 2: b"err\n"}
        assert await s.wait() == 3

    asyncio.run(main())


def test_stdin_half_close() -> None:
    async def main() -> None:
        s = await start(["cat"], ENV, None, [], True, False)
        await s.write(b"hi\n")
        await s.close_stdin()
        assert (await _drain(s))[1] == b"hi\n"
        assert await s.wait() == 0

    asyncio.run(main())


def test_tty_is_a_terminal_with_its_size() -> None:
    async def main() -> None:
        s = await start(["sh"], ENV, None, [], True, True)
        s.resize(101, 33)
        await s.write(b"tty; stty size; exit 5\n")
        text = (await _drain(s))[1]
        assert b"/dev/pts/" in text and b"33 101" in text, text
        assert await s.wait() == 5

    asyncio.run(main())


def test_killed_command_reports_the_signal() -> None:
    async def main() -> None:
        s = await start(["sleep", "60"], ENV, None, [], False, False)
        await s.kill()
        assert await s.wait() == 128 + 9

    asyncio.run(main())


def test_exit_status_messages() -> None:
    assert exit_status(0, ["true"])["status"] == "Success"
    st = exit_status(3, ["sh", "-c", "exit 3"])
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
