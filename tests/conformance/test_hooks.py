"""Every runtime: lifecycle hooks. postStart runs right after the container starts and the container
is not Running (nor Ready) until it returns; a failing postStart kills the container, which restarts
per its policy. preStop runs before SIGTERM when the container is stopped (here by a failing
liveness probe, and by deleting the pod), within terminationGracePeriodSeconds: a preStop that
sleeps longer than the grace period is cut at it."""

from __future__ import annotations

import time

from tests.conformance.conftest import POLITE, Harness, cstatus, ready, run, sh, trapping, wait_for


def exec_hook(script: str) -> dict:
    return {"exec": {"command": ["busybox", "sh", "-c", script]}}


def running(st: dict | None, name: str = "app") -> bool:
    return bool(st) and "running" in cstatus(st, name)["state"]


def test_post_start_runs_before_the_container_is_running(runtime: Harness) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()
        try:
            hook = exec_hook('busybox sleep 1; echo hook > "$POD_NAME.post"')
            pod = runtime.pod("post-start", [sh("app", POLITE, lifecycle={"postStart": hook})])
            uid = pod["metadata"]["uid"]
            t0 = time.monotonic()
            await rt.create_pod(pod)
            await wait_for(lambda: running(rt.status(uid)), 60, what="Running")
            assert time.monotonic() - t0 >= 0.9, "Running before the postStart hook (1 s) returned"
            res = await rt.exec(uid, "app", ["busybox", "sh", "-c", 'busybox cat "$POD_NAME.post"'])
            assert res.stdout.decode() == "hook\n"
            seen = [s for u, s in rec.seen if u == uid and s]
            first = next(i for i, s in enumerate(seen) if running(s))
            assert all(
                cstatus(s, "app")["state"].get("waiting", {}).get("reason") == "ContainerCreating" for s in seen[:first]
            )
            assert not any(ready(s) for s in seen[:first])
            await wait_for(lambda: ready(rt.status(uid)), what="Ready")
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_failing_post_start_kills_and_restarts_the_container(runtime: Harness) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()
        try:
            pod = runtime.pod("post-fails", [sh("app", POLITE, lifecycle={"postStart": exec_hook("exit 3")})])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: cstatus(rt.status(uid), "app")["restartCount"] >= 2, 60, what="restarts")
            last = cstatus(rt.status(uid), "app")["lastState"]["terminated"]
            assert "PostStartHookError" in last.get("message", ""), last
            assert not any(ready(s) for u, s in rec.seen if u == uid and s)
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_pre_stop_runs_before_sigterm(runtime: Harness) -> None:
    # the TERM handler exits 7 if it sees the file the preStop hook wrote, 8 if not
    script = (
        'busybox rm -f "$POD_NAME.pre" "$POD_NAME.kill"; '
        "trap 'if busybox test -f \"$POD_NAME.pre\"; then exit 7; else exit 8; fi' TERM; "
        "echo started; while :; do busybox sleep 1 & wait $!; done"
    )

    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            app = trapping("app", script)
            app["livenessProbe"] = {**exec_hook('! busybox test -f "$POD_NAME.kill"'), "periodSeconds": 1}
            app["lifecycle"] = {"preStop": exec_hook('echo > "$POD_NAME.pre"')}
            pod = runtime.pod("pre-stop", [app])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), 60, what="Ready")
            await rt.exec(uid, "app", ["busybox", "sh", "-c", 'echo > "$POD_NAME.kill"'])
            await wait_for(lambda: cstatus(rt.status(uid), "app")["lastState"].get("terminated"), 60, what="a kill")
            assert cstatus(rt.status(uid), "app")["lastState"]["terminated"]["exitCode"] == 7
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_pre_stop_sleep_longer_than_the_grace_period_is_cut(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            app = trapping("app", POLITE)
            app["lifecycle"] = {"preStop": {"sleep": {"seconds": 60}}}
            pod = runtime.pod("pre-stop-sleep", [app], grace=2)
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: ready(rt.status(uid)), 60, what="Ready")
            t0 = time.monotonic()
            await rt.delete_pod(uid)  # the pod's 2 s: preStop is cut, then TERM (at least 2 s more)
            took = time.monotonic() - t0
            assert 1.8 <= took < 15, f"deleting with a 60 s preStop sleep and a 2 s grace took {took:.1f}s"
            assert rt.status(uid) is None and not runtime.leftovers({uid})
        finally:
            await rt.close(stop_pods=True)

    run(main())
