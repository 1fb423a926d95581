"""Every runtime: logs() returns what a container printed; exec runs a command in a container
and reports its exit code and output; a pod listening on podIP:port is reachable from the
host at that address; expose_service_ip accepts an address."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from runtime.base import RuntimeError_

from tests.conformance.conftest import Harness, http_get, ready, run, sh, wait_for, web

QUIET = "trap 'exit 0' TERM; while :; do busybox sleep 1 & wait $!; done"
PRINTS = "for i in 1 2 3 4 5; do echo line $i; done; " + QUIET


def test_logs(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("talker", [sh("main", PRINTS), sh("err", "echo to stderr >&2; " + QUIET)])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            out: list[bytes] = []

            async def printed() -> bool:
                out[:] = [await rt.logs(uid, "main")]
                return b"line 5\n" in out[0]

            await _poll(printed, "the container's output in logs()")
            text = out[0].decode()
            await _poll(lambda: _has(rt.logs(uid, "err"), b"to stderr\n"), "stderr in logs()")
            lines = [ln for ln in text.splitlines() if ln.startswith("line ")]
            assert lines == [f"line {i}" for i in range(1, 6)]
            assert await rt.logs(uid, "main", tail=2) == b"line 4\nline 5\n"
            with pytest.raises(RuntimeError_):
                await rt.logs("no-such-uid", "main")
            with pytest.raises(RuntimeError_):
                await rt.logs(uid, "no-such-container")
            path = rt.log_path(uid, "main")
            if runtime.log_file:
                assert path is not None
                with open(path, "rb") as f:
                    assert b"line 1\n" in f.read()
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_log_file(runtime: Harness) -> None:
    """Runtimes that write a container's output to a file say where (log_path); others say None."""

    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("filed", [sh("main", PRINTS)])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), what="Ready")
            if not runtime.log_file:
                assert rt.log_path(uid, "main") is None
                return

            def printed() -> bool:
                path = rt.log_path(uid, "main")
                if path is None:
                    return False
                with open(path, "rb") as f:
                    return b"line 5\n" in f.read()

            await wait_for(printed, what="the container's output in its log file")
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_exec(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("execd", [sh("main", QUIET)])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, what="Ready")
            r = await rt.exec(uid, "main", ["busybox", "sh", "-c", "echo hi; echo oops >&2; exit 7"])
            assert r.exit_code == 7
            assert r.stdout == b"hi\n" and b"oops" in r.stderr
            r = await rt.exec(uid, "main", ["busybox", "sh", "-c", 'echo "$POD_NAME $POD_IP"'])
            assert r.exit_code == 0 and r.stdout.decode().split() == ["execd", st["podIP"]]
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_pods_are_reachable_at_their_ip(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pods = [runtime.pod(name, [web()]) for name in ("svc-a", "svc-b")]  # both listen on 8080
            for pod in pods:
                await rt.create_pod(pod)
            for pod in pods:
                uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
                st = await wait_for(lambda u=uid: (s := rt.status(u)) and s["phase"] == "Running" and s, what="Running")
                ip = st["podIP"]

                async def served(ip: str = ip, name: str = name) -> bool:
                    try:
                        return f"hello from {name}" in await asyncio.to_thread(http_get, ip)
                    except OSError:
                        return False

                await _poll(served, f"{name} reachable at {ip}:8080 from the host")
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_expose_service_ip_is_accepted(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            await rt.expose_service_ip("127.77.255.254")
            await rt.expose_service_ip("127.77.255.254")  # idempotent
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_set_image_rules_is_accepted(runtime: Harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The image map arrives as gitship.yaml's plain ``images:`` entries; every runtime takes it
    (a runtime that runs real images ignores it)."""

    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            rule = {"image": "example/app:*", "command": ["busybox", "true"], "workingDir": None, "env": {}}
            rt.set_image_rules([rule], str(tmp_path))
            rt.set_image_rules([], None)
        finally:
            await rt.close(stop_pods=True)

    run(main())


async def _has(data: Awaitable[bytes], part: bytes) -> bool:
    return part in await data


async def _poll(cond, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """``wait_for`` for an async condition."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await cond():
        assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)
