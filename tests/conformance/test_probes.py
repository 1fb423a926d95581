"""Every runtime: a readiness probe (httpGet, exec, tcpSocket) flips the Ready condition and
calls on_change, and never restarts; a failing liveness probe restarts the container."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from runtime.base import Runtime

from tests.conformance.conftest import HTTP_PORT, Harness, cstatus, ready, run, wait_for, web

FAST = {"periodSeconds": 1, "failureThreshold": 1}

# Each probe kind passes while the file ./$POD_NAME/<flag> exists in the container's working
# directory (the web container serves ./$POD_NAME/ over HTTP).
PROBES: dict[str, dict[str, Any]] = {
    "httpGet": {"httpGet": {"path": "/flag", "port": "http"}},
    "exec": {"exec": {"command": ["busybox", "sh", "-c", 'test -f "$POD_NAME/flag"']}},
}


def _set_flag(on: bool) -> list[str]:
    return ["busybox", "sh", "-c", 'echo ok > "$POD_NAME/flag"' if on else 'rm -f "$POD_NAME/flag"']


async def _until_set_up(rt: Runtime, uid: str) -> None:
    """Until the web container's shell has written ./$POD_NAME/index.html (so it has written or
    removed the flag before the test touches it)."""
    deadline = time.monotonic() + 30
    while (await rt.exec(uid, "web", ["busybox", "sh", "-c", 'test -f "$POD_NAME/index.html"'])).exit_code != 0:
        assert time.monotonic() < deadline, "the container never wrote its files"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", list(PROBES))
def test_readiness_probe_flips_ready(runtime: Harness, kind: str) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()
        try:
            pod = runtime.pod(f"ready-{kind.lower()}", [web(readinessProbe={**PROBES[kind], **FAST})])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: "running" in cstatus(rt.status(uid), "web")["state"], what="running")
            st = rt.status(uid)
            assert st["phase"] == "Running" and not ready(st) and not cstatus(st, "web")["ready"]
            await _until_set_up(rt, uid)
            calls = rec.count(uid)
            assert (await rt.exec(uid, "web", _set_flag(True))).exit_code == 0
            await wait_for(lambda: ready(rt.status(uid)), what="Ready after the probe passes")
            assert cstatus(rt.status(uid), "web")["ready"]
            await wait_for(lambda: True in rec.readiness(uid), what="on_change to report Ready")
            assert rec.count(uid) > calls
            assert (await rt.exec(uid, "web", _set_flag(False))).exit_code == 0
            await wait_for(lambda: not ready(rt.status(uid)), what="not Ready after the probe fails")
            await wait_for(lambda: rec.readiness(uid)[-1] is False, what="on_change to report not Ready")
            cs = cstatus(rt.status(uid), "web")
            assert cs["restartCount"] == 0 and "running" in cs["state"]  # readiness never restarts
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_tcp_socket_readiness(runtime: Harness) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()
        try:
            probe = {"tcpSocket": {"port": HTTP_PORT}, **FAST}
            pod = runtime.pod("ready-tcp", [web(readinessProbe=probe)])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), what="Ready once the port listens")
            await wait_for(lambda: True in rec.readiness(uid), what="on_change to report Ready")
        finally:
            await rt.close(stop_pods=True)

    run(main())


@pytest.mark.parametrize("kind", list(PROBES))
def test_liveness_failure_restarts(runtime: Harness, kind: str) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()
        try:
            # the container writes ./$POD_NAME/flag at each start; removing it fails the probe
            probe = {**PROBES[kind], "periodSeconds": 1, "failureThreshold": 2}
            pod = runtime.pod(f"live-{kind.lower()}", [web(flag=True, livenessProbe=probe)], grace=2)
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(lambda: (s := rt.status(uid)) and cstatus(s, "web")["started"] and s, what="started")
            first = cstatus(st, "web").get("containerID")
            assert cstatus(st, "web")["restartCount"] == 0
            await _until_set_up(rt, uid)
            assert (await rt.exec(uid, "web", _set_flag(False))).exit_code == 0
            await wait_for(
                lambda: cstatus(rt.status(uid), "web")["restartCount"] >= 1,
                timeout=60,
                what="a restart after the liveness probe failed",
            )
            cs = cstatus(rt.status(uid), "web")
            # killed gracefully: SIGTERM first, which the container answers with exit code 0
            assert cs["lastState"]["terminated"]["exitCode"] == 0
            st = await wait_for(
                lambda: (s := rt.status(uid)) and "running" in cstatus(s, "web")["state"] and s, what="running again"
            )
            if first is not None:
                assert cstatus(st, "web").get("containerID") != first
            assert st["phase"] == "Running"
        finally:
            await rt.close(stop_pods=True)

    run(main())
