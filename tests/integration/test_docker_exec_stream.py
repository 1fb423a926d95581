"""DockerRuntime.exec_stream (what `kubectl exec` uses on the Docker runtime) against a real engine:
output on its streams, the exit code, stdin with its half-close, and a TTY."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime.base import ExecSession
from tests.conftest import async_wait_for as wait_for
from tests.integration.test_docker_runtime import docker_env, kubia, make_pod, ready  # noqa: F401

pytestmark = pytest.mark.docker


async def _drain(s: ExecSession) -> dict[int, bytes]:
    out: dict[int, bytes] = {1: b"", 2: b""}
    while (item := await asyncio.wait_for(s.read(), 30)) is not None:
        out[item[0]] += item[1]
    return out


def test_exec_stream(docker_env: Any) -> None:  # noqa: F811
    _client, make, _ = docker_env

    async def main() -> None:
        rt, rec = make()
        await rt.start(rec)
        pod = make_pod("execstream", [kubia("web")])
        uid = pod["metadata"]["uid"]
        try:
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), what="pod ready")
            s = await rt.exec_stream(uid, "web", ["sh", "-c", "echo out; echo err >&2; exit 3"], False, False)
            out = await _drain(s)
            assert out == {1: b"out\n", 2: b"err\n"}
            assert await s.wait() == 3
            s = await rt.exec_stream(uid, "web", ["cat"], True, False)
            await s.write(b"hi\n")
            await s.close_stdin()
            assert (await _drain(s))[1] == b"hi\n"
            assert await s.wait() == 0
            s = await rt.exec_stream(uid, "web", ["sh"], True, True)
            s.resize(100, 30)
            await s.write(b"tty; stty size; exit 5\n")
            text = (await _drain(s))[1]
            assert b"/dev/pts/" in text, text
            assert await s.wait() == 5
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())
