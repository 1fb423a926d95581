"""Every runtime: pods consume ConfigMaps and Secrets (Runtime.set_config_objects).

Environment (every runtime, every mode): ``envFrom`` and ``configMapKeyRef``/``secretKeyRef``
are resolved when a container starts; a missing object keeps the container waiting with
CreateContainerConfigError and the kubelet's message, and it starts once the object is given.

Volumes need a mount namespace per pod: on the in-process runtime that is a pod sandbox
(root, a routable pod CIDR), so the volume tests run it in sandbox mode on a bridge and pod range
of the test's own (removed afterwards), and skip without root; a pod that mounts volumes in host
mode waits with a message saying mounts need pod sandboxes. Mount paths are under the test's
tmp_path, so nothing is made on the host outside it.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.base import Runtime
from tests.conformance.conftest import (
    RUNTIMES,
    DockerHarness,
    Harness,
    InProcessHarness,
    cstatus,
    run,
    sh,
    wait_for,
    waiting_reason,
)

QUIET = "trap 'exit 0' TERM; while :; do busybox sleep 1 & wait $!; done"


def cm(name: str, data: dict[str, str], ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def secret(name: str, data: dict[str, str], ns: str = "default") -> dict[str, Any]:
    enc = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "data": enc,
    }


def objects(*objs: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}


async def poll(cond: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = await cond()
            if last:
                return last
        await _sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def sh_out(rt: Runtime, uid: str, container: str, script: str) -> str:
    res = await rt.exec(uid, container, ["busybox", "sh", "-c", script])
    return res.stdout.decode()


def running(rt: Runtime, uid: str, container: str = "main") -> bool:
    st = rt.status(uid)
    return bool(st) and "running" in cstatus(st, container)["state"]


# ----------------------------------------------------------------------------- environment


def test_env_from_a_configmap_and_a_secret(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            rt.set_config_objects(
                objects(cm("app", {"GREETING": "hello", "COLOR": "blue"}), secret("db", {"pw": "s3cr3t"}))
            )
            c = sh("main", 'echo "G=$GREETING C=$COLOR PW=$PW APP_COLOR=$APP_COLOR"; ' + QUIET)
            c["envFrom"] = [{"configMapRef": {"name": "app"}}, {"configMapRef": {"name": "app"}, "prefix": "APP_"}]
            c["env"] = [
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
                {"name": "COLOR", "value": "red"},  # env wins over envFrom
            ]
            pod = runtime.pod("envy", [c])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await poll(lambda: _has_log(rt, uid, b"PW=s3cr3t"), "the variables in the output")
            assert b"G=hello C=red PW=s3cr3t APP_COLOR=blue" in await rt.logs(uid, "main")
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_missing_configmap_keeps_the_container_waiting_until_it_is_given(runtime: Harness) -> None:
    async def main() -> None:
        rt, _ = await runtime.open()
        try:
            c = sh("main", 'echo "V=$V"; ' + QUIET)
            c["env"] = [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "v"}}}]
            pod = runtime.pod("waiter", [c])
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: waiting_reason(rt.status(uid), "main") == "CreateContainerConfigError", 30)
            assert cstatus(rt.status(uid), "main")["state"]["waiting"]["message"] == 'configmap "later" not found'
            assert rt.status(uid)["phase"] == "Pending"  # type: ignore[index]
            rt.set_config_objects(objects(cm("later", {"other": "x"})))  # the key is still missing
            await wait_for(
                lambda: (
                    "couldn't find key v in ConfigMap default/later"
                    in str(cstatus(rt.status(uid), "main")["state"].get("waiting", {}).get("message"))
                ),
                30,
                what="the missing key's message",
            )
            rt.set_config_objects(objects(cm("later", {"v": "now"})))
            await poll(lambda: _has_log(rt, uid, b"V=now"), "the container started with the value")
        finally:
            await rt.close(stop_pods=True)

    run(main())


async def _has_log(rt: Runtime, uid: str, needle: bytes) -> bool:
    return needle in await rt.logs(uid, "main")


def test_mounts_without_a_sandbox_say_they_need_one(tmp_path: Path) -> None:
    """In-process host mode (the conformance harness's loopback range): no mount namespace per pod."""
    h = InProcessHarness(tmp_path)

    async def main() -> None:
        rt, _ = await h.open()
        try:
            c = sh("main", QUIET)
            c["volumeMounts"] = [{"name": "scratch", "mountPath": str(tmp_path / "mnt")}]
            pod = h.pod("hosted", [c])
            pod["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: waiting_reason(rt.status(uid), "main") == "CreateContainerConfigError", 30)
            assert "pod sandboxes" in cstatus(rt.status(uid), "main")["state"]["waiting"]["message"]
        finally:
            await rt.close(stop_pods=True)

    try:
        run(main())
    finally:
        h.remove_leftovers()


# ----------------------------------------------------------------------------- volumes


def _free_slash24s(n: int) -> list[str]:
    """/24s of 10.128.0.0/9 that no address or route of this machine overlaps."""
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used = []
    for line in out.splitlines():
        words = [w for w in line.split() if w not in ("local", "broadcast", "unreachable", "blackhole", "prohibit")]
        with contextlib.suppress(ValueError, IndexError):
            if words[0] != "default":
                used.append(ipaddress.ip_network(words[0], strict=False))
    picked: list[str] = []
    while len(picked) < n:
        cand = ipaddress.ip_network(f"10.{random.randrange(128, 256)}.{random.randrange(256)}.0/24")
        if not any(cand.overlaps(u) for u in used) and str(cand) not in picked:
            picked.append(str(cand))
    return picked


class SandboxHarness(InProcessHarness):
    """The in-process runtime in sandbox mode on a bridge and ranges of this test's own."""

    name = "inprocess-sandbox"

    def __init__(self, tmp_path: Path) -> None:
        if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "nsenter", "ip")):
            pytest.skip("in-process volumes need pod sandboxes: root, unshare, nsenter and ip")
        super().__init__(tmp_path)
        self.pod_cidr, self.service_cidr = _free_slash24s(2)
        self.bridge = "gsc" + uuid.uuid4().hex[:10]

    def kwargs(self) -> dict[str, Any]:
        return {
            **super().kwargs(),
            "pod_cidr": self.pod_cidr,
            "service_cidr": self.service_cidr,
            "bridge": self.bridge,
            "isolation": "sandbox",
        }

    def remove_leftovers(self) -> None:
        from runtime.inprocess import sandbox
        from runtime.net import bridge as br

        sandbox.sweep(self.state_dir)
        super().remove_leftovers()
        for uid in self.uids:
            br.delete_link_sync(br.veth_name(uid))
        br.teardown_host_network(self.bridge, self.service_cidr)


MOUNTING: dict[str, Callable[[Path], Harness]] = {"inprocess-sandbox": SandboxHarness, "docker": DockerHarness}
# swarm: not here; its files are Swarm configs replaced with the task, not host paths (docs/swarm.md)
assert set(RUNTIMES) <= {"inprocess", "docker", "swarm"}, "a new runtime: say here how it mounts volumes"


@pytest.fixture(params=[pytest.param(n, marks=[pytest.mark.docker] if n == "docker" else []) for n in MOUNTING])
def mounting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """A harness for each runtime, in the mode where pods get volumes."""
    h = MOUNTING[request.param](tmp_path)
    try:
        yield h
    finally:
        h.remove_leftovers()


def test_a_mounted_configmap_changes_in_place_while_env_keeps_its_start_value(mounting: Harness) -> None:
    mnt = str(mounting.tmp_path / "etc" / "app")

    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            rt.set_config_objects(objects(cm("app", {"greeting": "v1"}), secret("db", {"pw": "s3cr3t"})))
            c = sh("main", QUIET)
            c["env"] = [
                {"name": "G", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "greeting"}}},
                {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ]
            c["volumeMounts"] = [
                {"name": "cfg", "mountPath": mnt, "readOnly": True},
                {"name": "creds", "mountPath": mnt + "-secret"},
                {"name": "cfg", "mountPath": mnt + "-one/greeting.txt", "subPath": "greeting"},
                {"name": "scratch", "mountPath": mnt + "-expr", "subPathExpr": "$(MY_POD)"},
            ]
            pod = mounting.pod("mounted", [c])
            pod["spec"]["volumes"] = [
                {"name": "cfg", "configMap": {"name": "app"}},
                {"name": "creds", "secret": {"secretName": "db", "defaultMode": 0o400}},
                {"name": "scratch", "emptyDir": {}},
            ]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: running(rt, uid), 60, what="the container running")
            assert await sh_out(rt, uid, "main", f"busybox cat {mnt}/greeting") == "v1"
            assert await sh_out(rt, uid, "main", f"busybox cat {mnt}-secret/pw") == "s3cr3t"
            perm = await sh_out(rt, uid, "main", f"busybox stat -L -c %a {mnt}-secret/pw")
            assert perm.strip() == "400"
            assert await sh_out(rt, uid, "main", f"busybox cat {mnt}-one/greeting.txt") == "v1"
            await sh_out(rt, uid, "main", f"echo x > {mnt}-expr/f")
            named = await sh_out(rt, uid, "main", f"busybox cat {mnt}-expr/f")
            assert named == "x\n"
            # subPathExpr: $(MY_POD) named the directory of the volume
            assert os.path.isfile(os.path.join(mounting.state_dir, "volumes", uid, "scratch", "mounted", "f"))
            ro = await rt.exec(uid, "main", ["busybox", "sh", "-c", f"echo x > {mnt}/new"])
            assert ro.exit_code != 0  # readOnly
            rt.set_config_objects(objects(cm("app", {"greeting": "v2"}), secret("db", {"pw": "s3cr3t"})))
            await poll(
                lambda: _eq(sh_out(rt, uid, "main", f"busybox cat {mnt}/greeting"), "v2"), "the file to change", 20
            )
            assert (await sh_out(rt, uid, "main", 'echo "$G"')).strip() == "v1"  # env keeps its start value
            # a subPath mount binds the file itself: it keeps the old content (as in Kubernetes)
            assert await sh_out(rt, uid, "main", f"busybox cat {mnt}-one/greeting.txt") == "v1"
            assert cstatus(rt.status(uid), "main")["restartCount"] == 0
        finally:
            await rt.close(stop_pods=True)

    run(main())


async def _eq(coro: Awaitable[str], want: str) -> bool:
    return (await coro) == want


def test_a_missing_configmap_volume_keeps_the_pod_creating_until_it_is_given(mounting: Harness) -> None:
    mnt = str(mounting.tmp_path / "conf")

    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            c = sh("main", QUIET)
            c["volumeMounts"] = [{"name": "cfg", "mountPath": mnt}]
            pod = mounting.pod("creating", [c])
            pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "later"}}]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            want = 'MountVolume.SetUp failed for volume "cfg" : configmap "later" not found'
            await wait_for(
                lambda: cstatus(rt.status(uid), "main")["state"].get("waiting", {}).get("message") == want,
                60,
                what="the FailedMount message",
            )
            assert waiting_reason(rt.status(uid), "main") == "ContainerCreating"
            rt.set_config_objects(objects(cm("later", {"k": "here"})))
            await wait_for(lambda: running(rt, uid), 60, what="the container running")
            assert await sh_out(rt, uid, "main", f"busybox cat {mnt}/k") == "here"
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_an_empty_dir_is_shared_by_the_containers_of_a_pod(mounting: Harness) -> None:
    data = str(mounting.tmp_path / "data")

    async def main() -> None:
        rt, _ = await mounting.open()
        try:
            writer = sh("writer", f"echo from-writer > {data}/note; " + QUIET)
            writer["volumeMounts"] = [{"name": "scratch", "mountPath": data}]
            reader = sh("reader", QUIET)
            reader["volumeMounts"] = [{"name": "scratch", "mountPath": data + "-ro", "readOnly": True}]
            mem = sh("mem", QUIET)
            mem["volumeMounts"] = [{"name": "fast", "mountPath": data + "-mem"}]
            pod = mounting.pod("shared", [writer, reader, mem])
            pod["spec"]["volumes"] = [
                {"name": "scratch", "emptyDir": {}},
                {"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
            ]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: all(running(rt, uid, n) for n in ("writer", "reader", "mem")), 60)
            got = await poll(lambda: sh_out(rt, uid, "reader", f"busybox cat {data}-ro/note"), "the shared file")
            assert got == "from-writer\n"
            fs = await sh_out(rt, uid, "mem", f"busybox df -T {data}-mem 2>/dev/null || busybox mount")
            assert "tmpfs" in fs
            assert (await rt.exec(uid, "mem", ["busybox", "sh", "-c", f"echo m > {data}-mem/f"])).exit_code == 0
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_after_a_restart_updates_still_reach_the_mounted_files(mounting: Harness) -> None:
    """A new runtime instance adopts the pod (its mounts live on) and keeps its volumes up to date."""
    mnt = str(mounting.tmp_path / "conf")

    async def main() -> None:
        rt, _ = await mounting.open()
        c = sh("main", QUIET)
        c["volumeMounts"] = [{"name": "cfg", "mountPath": mnt}]
        pod = mounting.pod("adopted", [c])
        pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "app"}}]
        uid = pod["metadata"]["uid"]
        try:
            rt.set_config_objects(objects(cm("app", {"k": "v1"})))
            await rt.create_pod(pod)
            await wait_for(lambda: running(rt, uid), 60, what="the container running")
        finally:
            await rt.close(stop_pods=False)
        rt2 = mounting.new()
        rt2.set_config_objects(objects(cm("app", {"k": "v1"})))  # as the daemon has them at start
        try:
            adopted = await rt2.start(lambda uid: None)
            assert uid in adopted
            await wait_for(lambda: running(rt2, uid), 60, what="the adopted container running")
            assert await sh_out(rt2, uid, "main", f"busybox cat {mnt}/k") == "v1"
            rt2.set_config_objects(objects(cm("app", {"k": "v2"})))
            await poll(lambda: _eq(sh_out(rt2, uid, "main", f"busybox cat {mnt}/k"), "v2"), "the file to change", 20)
            assert cstatus(rt2.status(uid), "main")["restartCount"] == 0
        finally:
            await rt2.close(stop_pods=True)

    run(main())
