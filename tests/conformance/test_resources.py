"""Every runtime: container resources. A memory limit is enforced (a container that allocates
without end is OOMKilled, exit 137, and restarts per its policy); cpu and memory limits are
given to the container as the kubelet computes them (pkg/kubelet/cm/helpers_linux.go); the pod's
QoS class is in its status; the in-process runtime's cgroups go with the pod.

In-process, enforcement needs cgroups the runtime can write (root): where it cannot, the tests
that need it skip with the runtime's own reason (``info()["resources"]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.base import Runtime
from tests.conformance.conftest import POLITE, Harness, cstatus, run, sh, wait_for


@pytest.fixture(autouse=True)
def no_cgroups_left(runtime: Harness) -> Iterator[None]:
    """Even when a test fails: the in-process runtime's cgroups of this test's state dir go."""
    yield
    if runtime.name == "inprocess":
        from runtime.inprocess.cgroups import ContainerCgroups

        ContainerCgroups(runtime.state_dir).remove_all()


GREEDY = "echo eating; busybox tail /dev/zero"  # grows without end: /dev/zero has no newline


def limited(name: str, script: str, limits: dict[str, Any], requests: dict[str, Any] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"limits": limits}
    if requests:
        res["requests"] = requests
    return sh(name, script, resources=res)


def need_enforcement(runtime: Harness, rt: Runtime, *controllers: str) -> None:
    """Skip (with the runtime's reason) unless the in-process runtime enforces these controllers."""
    if runtime.name != "inprocess":
        return
    res = rt.info()["resources"]
    missing = [c for c in controllers if c not in res["enforced"]]
    if missing:
        pytest.skip(f"{', '.join(missing)} limits are not enforced here: {res.get('notEnforced')}")


# -- where a container's limits are, per runtime --------------------------------------------------


def _inprocess_cgroup_dirs(pid: int) -> dict[str, str]:
    """{controller: directory} of a process' memory and cpu cgroups (from /proc/<pid>/cgroup)."""
    from runtime.inprocess.cgroups import _below, parse_mountinfo, parse_proc_cgroup

    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    with open(f"/proc/{pid}/cgroup") as f:
        own = parse_proc_cgroup(f.read())
    out = {}
    for ctrl in ("memory", "cpu"):
        m = next((m for m in mounts if m.fstype == "cgroup" and ctrl in m.controllers), None)
        if m is not None and ctrl in own:
            out[ctrl] = _below(m, own[ctrl])
        else:
            unified = next((m for m in mounts if m.fstype == "cgroup2"), None)
            if unified is not None and "" in own:
                out[ctrl] = _below(unified, own[""])
    return out


async def placed(
    st: dict[str, Any], container: str, uid: str, only: tuple[str, ...] = ("memory", "cpu")
) -> dict[str, str]:
    """The in-process container's cgroup dirs, once its process is in them (it is Running from its
    fork on and enters its cgroups at once, before it execs its command)."""
    pid = int(cstatus(st, container)["containerID"].split("://")[1])
    dirs: dict[str, str] = await wait_for(
        lambda: (
            (d := {k: v for k, v in _inprocess_cgroup_dirs(pid).items() if k in only})
            and all(uid in x for x in d.values())
            and d
        ),
        what=f"{container} in its cgroups",
    )
    return dirs


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def applied_limits(runtime: Harness, st: dict[str, Any], container: str) -> dict[str, int | None]:
    """What the container was given: memory bytes, cpu quota and period (µs), cpu shares."""
    cid = cstatus(st, container)["containerID"]
    if runtime.name == "docker":
        hc = runtime.client.api.inspect_container(cid.split("://", 1)[1])["HostConfig"]  # type: ignore[attr-defined]
        return {
            "memory": hc["Memory"] or None,
            "swap": hc["MemorySwap"] or None,
            "quota": hc["CpuQuota"] or None,
            "period": hc["CpuPeriod"] or None,
            "shares": hc["CpuShares"] or None,
        }
    dirs = _inprocess_cgroup_dirs(int(cid.split("://", 1)[1]))
    if os.path.exists(os.path.join(dirs["cpu"], "cpu.max")):  # cgroup v2
        quota, period = _read(os.path.join(dirs["cpu"], "cpu.max")).split()
        from runtime.kernel.resources import shares_to_weight

        weight = int(_read(os.path.join(dirs["cpu"], "cpu.weight")))
        shares = next(s for s in range(2, 262145) if shares_to_weight(s) == weight)
        return {
            "memory": int(_read(os.path.join(dirs["memory"], "memory.max"))),
            "swap": None,
            "quota": int(quota),
            "period": int(period),
            "shares": shares,
        }
    memsw = os.path.join(dirs["memory"], "memory.memsw.limit_in_bytes")
    return {
        "memory": int(_read(os.path.join(dirs["memory"], "memory.limit_in_bytes"))),
        "swap": int(_read(memsw)) if os.path.exists(memsw) else None,
        "quota": int(_read(os.path.join(dirs["cpu"], "cpu.cfs_quota_us"))),
        "period": int(_read(os.path.join(dirs["cpu"], "cpu.cfs_period_us"))),
        "shares": int(_read(os.path.join(dirs["cpu"], "cpu.shares"))),
    }


# -- the tests --------------------------------------------------------------------------------


def _oom(st: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if not st:
        return None
    term = (cstatus(st, "app").get(key) or {}).get("terminated")
    return term if term and term.get("reason") == "OOMKilled" else None


def test_memory_limit_oom_kills_and_restarts(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            need_enforcement(runtime, rt, "memory")
            pod = runtime.pod("greedy", [limited("app", GREEDY, {"memory": "32Mi"})], restart="Always")
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(
                lambda: (s := rt.status(uid)) and cstatus(s, "app")["restartCount"] >= 1 and _oom(s, "lastState"),
                timeout=60,
                what="an OOMKilled container restarted",
            )
            term = _oom(rt.status(uid), "lastState")
            assert term is not None and term["exitCode"] == 137
            assert rt.status(uid)["phase"] == "Running"  # type: ignore[index]
            # Never: it stays terminated, the pod Failed
            once = runtime.pod("greedy-once", [limited("app", GREEDY, {"memory": "32Mi"})], restart="Never")
            uid2 = once["metadata"]["uid"]
            await rt.create_pod(once)
            st = await wait_for(
                lambda: (s := rt.status(uid2)) and s["phase"] == "Failed" and s, timeout=60, what="Failed"
            )
            term = _oom(st, "state")
            assert term is not None and term["exitCode"] == 137, cstatus(st, "app")
            assert cstatus(st, "app")["restartCount"] == 0
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_limits_are_given_as_the_kubelet_computes_them(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            need_enforcement(runtime, rt, "memory", "cpu")
            app = limited("app", POLITE, {"cpu": "250m", "memory": "64Mi"}, {"cpu": "100m"})
            tiny = limited("tiny", POLITE, {"cpu": "1m", "memory": "48Mi"})
            pod = runtime.pod("limits", [app, tiny])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(
                lambda: (s := rt.status(uid)) and all("running" in c["state"] for c in s["containerStatuses"]) and s,
                what="both running",
            )
            if runtime.name == "inprocess":
                for c in ("app", "tiny"):
                    await placed(st, c, uid)
            got = applied_limits(runtime, st, "app")
            # memory in bytes, no swap beyond it; quota = 250m of a 100000 µs period; 100m -> 102 shares
            assert got["memory"] == 64 * 2**20
            assert got["swap"] in (None, 64 * 2**20)
            assert (got["quota"], got["period"], got["shares"]) == (25000, 100000, 102)
            # 1m: the quota is raised to the kernel's minimum (1000 µs); the request defaults to the limit
            got = applied_limits(runtime, st, "tiny")
            assert (got["memory"], got["quota"], got["period"], got["shares"]) == (48 * 2**20, 1000, 100000, 2)
            assert st["qosClass"] == "Burstable"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_qos_class_in_the_status(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            cases = {
                "guaranteed": ([limited("app", POLITE, {"cpu": "100m", "memory": "64Mi"})], "Guaranteed"),
                "burstable": ([sh("app", POLITE, resources={"requests": {"memory": "16Mi"}})], "Burstable"),
                "besteffort": ([sh("app", POLITE)], "BestEffort"),
            }
            uids = {}
            for name, (containers, _) in cases.items():
                pod = runtime.pod(name, containers)
                uids[name] = pod["metadata"]["uid"]
                await rt.create_pod(pod)
            for name, (_, qos) in cases.items():
                st = await wait_for(lambda n=name: rt.status(uids[n]), what=name)
                assert st["qosClass"] == qos, name
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_inprocess_cgroups_go_with_the_pod(runtime: Harness) -> None:
    if runtime.name != "inprocess":
        pytest.skip("the in-process runtime's own cgroups (Docker's engine removes its containers' own)")

    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            need_enforcement(runtime, rt, "memory", "cpu")
            pod = runtime.pod("tidy", [limited("app", POLITE, {"cpu": "100m", "memory": "32Mi"})])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(
                lambda: (s := rt.status(uid)) and "running" in cstatus(s, "app")["state"] and s, what="running"
            )
            dirs = await placed(st, "app", uid)
            assert dirs and all(uid in d for d in dirs.values()), dirs
            assert all(os.path.isdir(d) for d in dirs.values())
            assert not rt.status(uid).get("conditions", [])[-1]["type"].startswith("gitship.io/")  # type: ignore[union-attr]
            await rt.delete_pod(uid, grace_seconds=0)
            assert not any(os.path.exists(d) for d in dirs.values())
            assert not any(os.path.exists(os.path.dirname(d)) for d in dirs.values())  # the pod's tree too
        finally:
            await rt.close(stop_pods=True)
        parents = {os.path.dirname(os.path.dirname(d)) for d in dirs.values()}
        assert not any(os.path.exists(p) for p in parents), "the runtime's parent cgroup is left after close"

    run(main())


def test_inprocess_limits_not_enforced_say_so(runtime: Harness) -> None:
    """Without usable cgroups the pod runs, its limits recorded, and the status says why."""
    if runtime.name != "inprocess":
        pytest.skip("Docker's engine enforces limits itself")

    async def main() -> None:
        from runtime.inprocess.cgroups import ContainerCgroups

        rt = runtime.new()
        # as on a machine where gitship cannot read or write cgroups
        rt.cgroups = ContainerCgroups(runtime.state_dir, mountinfo=os.devnull)  # type: ignore[attr-defined]
        await rt.start(lambda uid: None)
        try:
            pod = runtime.pod("free", [limited("app", POLITE, {"memory": "32Mi"})])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(
                lambda: (s := rt.status(uid)) and "running" in cstatus(s, "app")["state"] and s, what="running"
            )
            cond = next(c for c in st["conditions"] if c["type"] == "gitship.io/ResourcesEnforced")
            assert cond["status"] == "False" and cond["reason"] == "ResourcesNotEnforced"
            assert "memory" in cond["message"]
            assert rt.info()["resources"]["enforced"] == []
            assert "memory" in rt.info()["resources"]["notEnforced"]
            # the process is in no cgroup of the runtime's
            pid = int(cstatus(st, "app")["containerID"].split("://")[1])
            assert uid not in _read(f"/proc/{pid}/cgroup")
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_inprocess_adopted_container_keeps_its_cgroup_and_oom(runtime: Harness) -> None:
    """After a restart of gitship the adopted container stays in its cgroup (the start's sweep keeps
    it); its OOM kill is still reported as OOMKilled (exit 137), though it is not our child."""
    if runtime.name != "inprocess":
        pytest.skip("the in-process runtime's own cgroups")
    grow_later = "echo > $POD_NAME.started; while [ ! -f $POD_NAME.go ]; do busybox sleep 0.1; done; " + GREEDY

    async def first() -> tuple[str, dict[str, str]]:
        rt, _ = await runtime.open()
        need_enforcement(runtime, rt, "memory")
        pod = runtime.pod("adoptee", [limited("app", grow_later, {"memory": "32Mi"})], restart="Never")
        uid = pod["metadata"]["uid"]
        await rt.create_pod(pod)
        st = await wait_for(lambda: (s := rt.status(uid)) and "running" in cstatus(s, "app")["state"] and s)
        dirs = await placed(st, "app", uid, only=("memory",))
        await rt.close(stop_pods=False)
        return uid, dirs

    uid, dirs = run(first())
    assert all(os.path.isdir(d) for d in dirs.values())

    async def second() -> None:
        rt = runtime.new()
        try:
            assert uid in await rt.start(lambda u: None)
            assert all(os.path.isdir(d) for d in dirs.values()), "the sweep removed an adopted pod's cgroup"
            (runtime.tmp_path / "adoptee.go").write_text("")  # now it eats
            st = await wait_for(
                lambda: (s := rt.status(uid)) and s["phase"] == "Failed" and s, timeout=60, what="Failed"
            )
            term = cstatus(st, "app")["state"]["terminated"]
            assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
        finally:
            await rt.close(stop_pods=True)
        assert not any(os.path.exists(d) for d in dirs.values())

    run(second())


def test_missing_command_with_limits_is_a_start_error(runtime: Harness) -> None:
    """A container with limits whose command does not exist fails to start (StartError, 128), as
    without limits: the in-process wrapper does not turn it into an ordinary exit."""

    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            c = {"name": "app", "image": "gitship-test/kubia:v1", "command": ["no-such-command-4711"]}
            c["resources"] = {"limits": {"memory": "32Mi", "cpu": "100m"}}
            pod = runtime.pod("typo", [c], restart="Never")
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            st = await wait_for(lambda: (s := rt.status(uid)) and s["phase"] == "Failed" and s, what="Failed")
            term = cstatus(st, "app")["state"]["terminated"]
            assert (term["reason"], term["exitCode"]) == ("StartError", 128), term
        finally:
            await rt.close(stop_pods=True)

    run(main())
