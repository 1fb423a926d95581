"""Every runtime: delete_pod stops a pod with SIGTERM and its grace period, then SIGKILL; a new
runtime instance adopts the pods a killed (-9) one left running, without restarting them."""

from __future__ import annotations

import asyncio
import json
import signal
import time

from tests.conformance.crashchild import MARK
from tests.conformance.conftest import (
    POLITE,
    STUBBORN,
    Harness,
    cstatus,
    http_get,
    ready,
    run,
    sh,
    trapping,
    wait_for,
    web,
)


def test_delete_pod_sigterm_then_gone(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("polite", [trapping("main", POLITE)], grace=30)
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), what="Ready")
            t0 = time.monotonic()
            await rt.delete_pod(uid)  # grace None: the pod's terminationGracePeriodSeconds (30 s)
            took = time.monotonic() - t0
            assert took < 15, f"a container that exits on SIGTERM took {took:.1f}s to stop"
            assert rt.status(uid) is None and uid not in rt.pods()
            assert not runtime.leftovers({uid})
            await rt.delete_pod(uid)  # already gone: ignored
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_delete_pod_sigkill_after_grace(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("stubborn", [trapping("main", STUBBORN)], grace=30)
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), what="Ready")
            t0 = time.monotonic()
            await rt.delete_pod(uid, grace_seconds=2)  # overrides the pod's 30 s
            took = time.monotonic() - t0
            assert 1.5 <= took < 15, f"a container ignoring SIGTERM with a 2 s grace took {took:.1f}s to stop"
            assert rt.status(uid) is None and uid not in rt.pods()
            assert not runtime.leftovers({uid})
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_concurrent_deletes(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("twice", [trapping("main", POLITE)])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), what="Ready")
            await asyncio.gather(rt.delete_pod(uid, 2), rt.delete_pod(uid, 2), rt.delete_pod(uid))
            assert rt.status(uid) is None and not runtime.leftovers({uid})
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_adoption_after_kill_9(runtime: Harness) -> None:
    """A runtime in another process starts a pod and is killed -9 (no close). A new runtime
    instance on the same state adopts the pod: same container, same IP, no restart."""
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    pod = runtime.pod("adopt-me", [web(readinessProbe=probe)])
    uid = pod["metadata"]["uid"]
    child = runtime.crash_child(pod)
    try:
        assert child.stdout is not None
        line = ""
        for line in child.stdout:
            if line.startswith(MARK):
                break
        assert line.startswith(MARK), f"the runtime process exited {child.wait()} before the pod was ready"
        before = json.loads(line.removeprefix(MARK))
        assert "error" not in before, before
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert runtime.leftovers({uid}), "the pod did not outlive the killed runtime"

    async def main() -> None:
        rt, rec = await runtime.open()  # start() adopts
        try:
            adopted = rt.pods()
            assert set(adopted) == {uid}
            assert adopted[uid]["metadata"]["name"] == "adopt-me"
            assert adopted[uid]["spec"]["containers"][0]["name"] == "web"
            st = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, what="Ready under the new runtime")
            assert st["phase"] == "Running" and st["podIP"] == before["podIP"]
            cs = cstatus(st, "web")
            assert cs["restartCount"] == 0
            assert cs.get("containerID") == cstatus(before, "web").get("containerID")
            assert "hello from adopt-me" in await asyncio.to_thread(http_get, st["podIP"])
            await rt.create_pod(pod)  # idempotent: no second copy
            assert cstatus(rt.status(uid), "web")["restartCount"] == 0
            await rt.delete_pod(uid)
            assert rt.status(uid) is None and not runtime.leftovers({uid})
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_start_returns_the_adopted_pods(runtime: Harness) -> None:
    """start() returns {uid: pod} of the pods it adopted (close(stop_pods=False) leaves them running)."""

    async def first() -> str:
        rt, _ = await runtime.open()
        pod = runtime.pod("kept", [sh("main", POLITE)])
        await rt.create_pod(pod)
        await wait_for(lambda: ready(rt.status(pod["metadata"]["uid"])), what="Ready")
        await rt.close(stop_pods=False)
        return str(pod["metadata"]["uid"])

    uid = run(first())

    async def second() -> None:
        rt = runtime.new()
        try:
            adopted = await rt.start(lambda u: None)
            assert set(adopted) == {uid} and adopted[uid]["metadata"]["name"] == "kept"
            st = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, what="Ready")
            assert cstatus(st, "main")["restartCount"] == 0
        finally:
            await rt.close(stop_pods=True)
        assert not runtime.leftovers({uid})

    run(second())
