"""Every runtime: a pod starts and runs with an IP; containers restart per restartPolicy with
back-off; unknown uids are answered, not raised on; info() names the runtime."""

from __future__ import annotations

import ipaddress
import time

from tests.conformance.conftest import POLITE, Harness, cstatus, ready, run, sh, wait_for, waiting_reason


def test_pod_runs_with_a_pod_ip(runtime: Harness) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()
        try:
            pod = runtime.pod("runs", [sh("main", POLITE)])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await rt.create_pod(pod)  # idempotent by uid
            st = await wait_for(
                lambda: (s := rt.status(uid)) and s["phase"] == "Running" and ready(s) and s, what="Running and Ready"
            )
            ip = ipaddress.ip_address(st["podIP"])
            assert st["podIPs"][0]["ip"] == st["podIP"]
            assert st.get("startTime")
            cs = cstatus(st, "main")
            assert cs["ready"] and cs["started"] and cs["restartCount"] == 0 and "running" in cs["state"]
            assert cs["state"]["running"].get("startedAt")
            assert {c["type"] for c in st["conditions"]} >= {"Ready", "ContainersReady"}
            assert uid in {u for u, _ in rec.seen}, "on_change was never called for the pod"
            assert set(rt.pods()) == {uid} and rt.pods()[uid]["metadata"]["name"] == "runs"
            # a second pod gets an address of its own
            other = runtime.pod("runs-too", [sh("main", POLITE)])
            await rt.create_pod(other)
            st2 = await wait_for(lambda: (s := rt.status(other["metadata"]["uid"])) and s.get("podIP") and s)
            assert ipaddress.ip_address(st2["podIP"]) != ip
        finally:
            await rt.close(stop_pods=True)
        assert not runtime.leftovers(runtime.uids)

    run(main())


def test_unknown_uids_and_info(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            assert rt.status("no-such-uid") is None
            assert "no-such-uid" not in rt.pods()
            await rt.delete_pod("no-such-uid")  # ignored
            await rt.delete_pod("no-such-uid", grace_seconds=0)
            info = rt.info()
            assert info["name"] == runtime.name == rt.name
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_always_restarts_with_crash_loop_back_off(runtime: Harness) -> None:
    async def main() -> None:
        rt, rec = await runtime.open()  # back-off 0.2 s doubling, capped at 1 s
        try:
            pod = runtime.pod("crash", [sh("app", "echo boom; exit 3")], restart="Always")
            uid = pod["metadata"]["uid"]
            t0 = time.monotonic()
            await rt.create_pod(pod)
            await wait_for(lambda: cstatus(rt.status(uid), "app")["restartCount"] >= 4, timeout=60, what="4 restarts")
            # restarts after a crash wait a back-off that doubles: at least 0.2 + 0.4 s before the 4th
            assert time.monotonic() - t0 >= 0.2 + 0.4 - 0.05
            await wait_for(lambda: waiting_reason(rt.status(uid), "app") == "CrashLoopBackOff", what="CrashLoopBackOff")
            st = rt.status(uid)
            cs = cstatus(st, "app")
            assert "back-off" in cs["state"]["waiting"]["message"]
            assert cs["lastState"]["terminated"]["exitCode"] == 3
            assert cs["lastState"]["terminated"]["reason"] == "Error"
            assert st["phase"] == "Running"  # a crash-looping pod with restartPolicy Always is Running
            assert not ready(st) and not cs["ready"]
            assert "CrashLoopBackOff" in rec.reasons(uid, "app")
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_always_restarts_a_clean_exit(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pod = runtime.pod("clean", [sh("app", "echo done")], restart="Always")
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: cstatus(rt.status(uid), "app")["restartCount"] >= 2, timeout=60, what="restarts")
            last = cstatus(rt.status(uid), "app")["lastState"]["terminated"]
            assert last["exitCode"] == 0 and last["reason"] == "Completed"
            assert rt.status(uid)["phase"] == "Running"
        finally:
            await rt.close(stop_pods=True)

    run(main())


# restartPolicy, exit code -> the pod's phase, and whether the container is restarted
POLICIES = [
    ("OnFailure", 0, "Succeeded", False),
    ("OnFailure", 1, "Running", True),
    ("Never", 0, "Succeeded", False),
    ("Never", 7, "Failed", False),
]


def test_restart_policies(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            pods = [
                runtime.pod(f"{restart.lower()}-{code}", [sh("app", f"echo bye; exit {code}")], restart=restart)
                for restart, code, _, _ in POLICIES
            ]
            for pod in pods:  # side by side: the suite stays quick
                await rt.create_pod(pod)
            for pod, (restart, code, phase, restarts) in zip(pods, POLICIES):
                uid, case = pod["metadata"]["uid"], f"restartPolicy {restart}, exit {code}"
                if restarts:
                    await wait_for(
                        lambda u=uid: cstatus(rt.status(u), "app")["restartCount"] >= 2, timeout=60, what=case
                    )
                    assert cstatus(rt.status(uid), "app")["lastState"]["terminated"]["exitCode"] == code, case
                    assert rt.status(uid)["phase"] == phase, case
                    continue
                await wait_for(lambda u=uid, ph=phase: rt.status(u)["phase"] == ph, timeout=60, what=f"{case}: {phase}")
                st = rt.status(uid)
                cs = cstatus(st, "app")
                term = cs["state"]["terminated"]
                assert term["exitCode"] == code, case
                assert term["reason"] == ("Completed" if code == 0 else "Error"), case
                assert cs["restartCount"] == 0 and not cs["ready"] and not ready(st), case
        finally:
            await rt.close(stop_pods=True)

    run(main())
