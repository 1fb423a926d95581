"""Every runtime: init containers run in order, each to completion, before the app containers;
a failing one restarts per restartPolicy with back-off (the app never starts) or fails the pod
(Never); they run once per pod sandbox, so a restart of the runtime (adoption) does not rerun them."""

from __future__ import annotations

import time

from tests.conformance.conftest import POLITE, Harness, cstatus, ready, run, sh, wait_for, waiting_reason
from tests.conformance.test_config import mounting, poll, sh_out  # noqa: F401  (the fixture)


def init_status(st: dict | None, name: str) -> dict:
    return next(c for c in (st or {}).get("initContainerStatuses", []) if c["name"] == name)


def condition(st: dict | None, typ: str) -> dict:
    return next(c for c in (st or {}).get("conditions", []) if c["type"] == typ)


def test_init_containers_run_in_order_before_the_app(mounting: Harness) -> None:  # noqa: F811 (the fixture)
    data = str(mounting.tmp_path / "work")

    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            mount = [{"name": "work", "mountPath": data}]
            first = sh("first", f"busybox sleep 1; echo one >> {data}/log", volumeMounts=mount)
            second = sh("second", f"echo two >> {data}/log", volumeMounts=mount)
            app = sh("app", f"busybox cat {data}/log > {data}/seen; " + POLITE, volumeMounts=mount)
            pod = mounting.pod("ordered", [app])
            pod["spec"]["initContainers"] = [first, second]
            pod["spec"]["volumes"] = [{"name": "work", "emptyDir": {}}]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(lambda: (s := rt.status(uid)) and s.get("initContainerStatuses") and s, 60)
            if "running" not in cstatus(st, "app")["state"]:
                assert st["phase"] == "Pending"
                assert waiting_reason(st, "app") == "PodInitializing"
                assert condition(st, "Initialized")["status"] == "False"
                assert condition(st, "Initialized")["reason"] == "ContainersNotInitialized"
            st = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, 60, what="Ready")
            assert st["phase"] == "Running" and condition(st, "Initialized")["status"] == "True"
            for name in ("first", "second"):
                term = init_status(st, name)["state"]["terminated"]
                assert term["exitCode"] == 0 and term["reason"] == "Completed"
                assert init_status(st, name)["restartCount"] == 0
            seen = await poll(lambda: sh_out(rt, uid, "app", f"busybox cat {data}/seen"), "the app's copy")
            assert seen == "one\ntwo\n"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_failing_init_container_restarts_with_back_off_and_the_app_never_starts(runtime: Harness) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()  # back-off 0.2 s doubling, capped at 1 s
        try:
            pod = runtime.pod("init-fails", [sh("app", POLITE)], restart="OnFailure")
            pod["spec"]["initContainers"] = [sh("ok", "exit 0"), sh("bad", "echo no; exit 3")]
            uid = pod["metadata"]["uid"]
            t0 = time.monotonic()
            await rt.create_pod(pod)
            await wait_for(lambda: init_status(rt.status(uid), "bad")["restartCount"] >= 3, 60, what="3 restarts")
            assert time.monotonic() - t0 >= 0.2 + 0.4 - 0.05  # the back-off doubles
            await wait_for(
                lambda: (
                    init_status(rt.status(uid), "bad")["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
                ),
                what="CrashLoopBackOff",
            )
            st = rt.status(uid)
            assert st["phase"] == "Pending"
            assert init_status(st, "bad")["lastState"]["terminated"]["exitCode"] == 3
            assert init_status(st, "ok")["restartCount"] == 0  # the completed one is not rerun
            assert waiting_reason(st, "app") == "PodInitializing"
            assert cstatus(st, "app")["restartCount"] == 0 and not cstatus(st, "app")["lastState"]
            assert all(
                "running" not in cstatus(s, "app")["state"] for u, s in rec.seen if u == uid and s is not None
            ), "the app container started"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_failing_init_container_under_never_fails_the_pod(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("init-never", [sh("app", POLITE)], restart="Never")
            pod["spec"]["initContainers"] = [sh("bad", "exit 2")]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(lambda: (s := rt.status(uid)) and s["phase"] == "Failed" and s, 60, what="Failed")
            cs = init_status(st, "bad")
            assert cs["state"]["terminated"]["exitCode"] == 2 and cs["restartCount"] == 0
            assert waiting_reason(st, "app") == "PodInitializing"
            assert condition(st, "Initialized")["status"] == "False"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_adoption_does_not_rerun_completed_init_containers(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        pod = runtime.pod("init-adopt", [sh("app", POLITE)])
        pod["spec"]["initContainers"] = [sh("setup", "echo set up")]
        uid = pod["metadata"]["uid"]
        try:
            await rt.create_pod(pod)
            before = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, 60, what="Ready")
        finally:
            await rt.close(stop_pods=False)  # gitship stops; its pods keep running
        rt, _ = await runtime.open()
        try:
            assert set(rt.pods()) == {uid}
            st = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, 60, what="Ready again")
            setup = init_status(st, "setup")
            assert setup["restartCount"] == 0 and setup["state"]["terminated"]["exitCode"] == 0
            assert (
                setup["state"]["terminated"]["startedAt"]
                == init_status(before, "setup")["state"]["terminated"]["startedAt"]
            )
            app = cstatus(st, "app")
            assert app["restartCount"] == 0 and app["containerID"] == cstatus(before, "app")["containerID"]
            assert condition(st, "Initialized")["status"] == "True"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_sidecar_starts_before_the_next_init_container_and_keeps_running(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            # the sidecar exits after a second each time: it is restarted while the app keeps running
            side = sh("side", "echo side; busybox sleep 1", restartPolicy="Always")
            pod = runtime.pod("sidecar", [sh("app", POLITE)], restart="Never")
            pod["spec"]["initContainers"] = [side, sh("after", "echo after")]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: init_status(rt.status(uid), "side")["restartCount"] >= 2, 60, what="restarts")
            st = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, 60, what="Ready")
            assert init_status(st, "after")["state"]["terminated"]["exitCode"] == 0
            assert init_status(st, "after")["restartCount"] == 0
            assert cstatus(st, "app")["restartCount"] == 0 and st["phase"] == "Running"
            assert condition(st, "Initialized")["status"] == "True"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_pod_with_a_sidecar_completes_when_its_app_containers_do(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            side = sh("side", POLITE, restartPolicy="Always")
            pod = runtime.pod("job", [sh("app", "busybox sleep 1; echo done")], restart="Never")
            pod["spec"]["initContainers"] = [side]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(lambda: (s := rt.status(uid)) and s["phase"] == "Succeeded" and s, 60, what="done")
            assert "terminated" in init_status(st, "side")["state"]
            assert init_status(st, "side")["restartCount"] == 0
        finally:
            await rt.close(stop_pods=True)

    run(main())


def _kill_sandbox(h: Harness, uid: str) -> None:
    """SIGKILL the pod's sandbox: the in-process holder process, or the Docker pause container."""
    if h.name == "docker":
        for c in h._containers({uid}):  # type: ignore[attr-defined]
            if c.labels.get("gitship.container") == "POD":
                c.kill()
        return
    import os
    import signal

    from runtime.inprocess import procid

    st = procid.read_states(h.state_dir)[uid]
    os.kill(st["sandbox"]["process"]["pid"], signal.SIGKILL)


def test_a_new_sandbox_runs_the_init_containers_again(mounting: Harness) -> None:  # noqa: F811 (the fixture)
    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            pod = mounting.pod("resandbox", [sh("app", POLITE)])
            pod["spec"]["initContainers"] = [sh("setup", "echo set up")]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            before = await wait_for(lambda: (s := rt.status(uid)) and ready(s) and s, 60, what="Ready")
            _kill_sandbox(mounting, uid)
            st = await wait_for(
                lambda: (s := rt.status(uid)) and ready(s) and init_status(s, "setup")["restartCount"] >= 1 and s,
                90,
                what="initialized again in a new sandbox",
            )
            setup = init_status(st, "setup")
            assert setup["state"]["terminated"]["exitCode"] == 0
            assert cstatus(st, "app")["restartCount"] >= 1
            assert cstatus(st, "app")["containerID"] != cstatus(before, "app")["containerID"]
        finally:
            await rt.close(stop_pods=True)

    run(main())
