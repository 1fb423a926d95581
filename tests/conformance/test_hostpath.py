"""Every runtime: hostPath volumes, only under the operator's --allow-host-path prefixes.

The runtimes get ``allow_host_paths`` (the daemon passes the flag's values); the repository cannot
widen it. Runs in the mode where pods get volumes (test_config.py's ``mounting`` harnesses: the
in-process runtime in sandbox mode, which needs root, and Docker); every host path and mount path
is under the test's tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.conftest import Harness, cstatus, run, sh, wait_for, waiting_reason
from tests.conformance.test_config import MOUNTING, QUIET, poll, running, sh_out


@pytest.fixture(params=[pytest.param(n, marks=[pytest.mark.docker] if n == "docker" else []) for n in MOUNTING])
def mounting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """A harness for each runtime, in the mode where pods get volumes (as in test_config.py)."""
    h = MOUNTING[request.param](tmp_path)
    try:
        yield h
    finally:
        h.remove_leftovers()


def _waiting_message(rt, uid: str) -> str:  # type: ignore[no-untyped-def]
    return str(cstatus(rt.status(uid), "main")["state"].get("waiting", {}).get("message"))


def test_a_pod_writes_into_an_allowed_host_path_and_the_host_sees_it(mounting: Harness) -> None:
    host = mounting.tmp_path / "host"
    (host / "data").mkdir(parents=True)
    (host / "data" / "seed").write_text("from-host\n")
    mnt = str(mounting.tmp_path / "mnt")

    async def main() -> None:
        rt, _ = await mounting.open(allow_host_paths=[str(host)])
        try:
            c = sh("main", f"echo from-pod > {mnt}/data/out; " + QUIET)
            c["volumeMounts"] = [
                {"name": "data", "mountPath": f"{mnt}/data"},
                {"name": "data", "mountPath": f"{mnt}/ro", "readOnly": True},
                {"name": "made", "mountPath": f"{mnt}/made"},
                {"name": "data", "mountPath": f"{mnt}/sub", "subPath": "nested"},
            ]
            pod = mounting.pod("hosted", [c])
            pod["spec"]["volumes"] = [
                {"name": "data", "hostPath": {"path": str(host / "data"), "type": "Directory"}},
                {"name": "made", "hostPath": {"path": str(host / "new" / "dir"), "type": "DirectoryOrCreate"}},
            ]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            await wait_for(lambda: running(rt, uid), 60, what="the container running")
            await poll(lambda: _read(host / "data" / "out"), "the pod's file on the host")
            assert (host / "data" / "out").read_text() == "from-pod\n"
            assert await sh_out(rt, uid, "main", f"busybox cat {mnt}/ro/seed") == "from-host\n"
            ro = await rt.exec(uid, "main", ["busybox", "sh", "-c", f"echo x > {mnt}/ro/new"])
            assert ro.exit_code != 0 and not (host / "data" / "new").exists()  # readOnly
            assert (host / "new" / "dir").is_dir()  # DirectoryOrCreate made it
            await sh_out(rt, uid, "main", f"echo m > {mnt}/made/f; echo s > {mnt}/sub/g")
            assert (host / "new" / "dir" / "f").read_text() == "m\n"
            assert (host / "data" / "nested" / "g").read_text() == "s\n"
        finally:
            await rt.close(stop_pods=True)
        assert (host / "data" / "out").is_file()  # the pod went, the host's files stay

    run(main())


async def _read(path: os.PathLike[str]) -> bool:
    return os.path.isfile(path) and open(path).read() == "from-pod\n"


def test_a_host_path_outside_the_prefixes_keeps_the_container_waiting(mounting: Harness) -> None:
    allowed = mounting.tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape").symlink_to(mounting.tmp_path)
    elsewhere = mounting.tmp_path / "elsewhere"

    async def main() -> None:
        rt, _ = await mounting.open(allow_host_paths=[str(allowed)])
        try:
            uids = []
            for name, path in (("outside", elsewhere), ("linked", allowed / "escape" / "elsewhere")):
                c = sh("main", QUIET)
                c["volumeMounts"] = [{"name": "data", "mountPath": str(mounting.tmp_path / "mnt" / name)}]
                pod = mounting.pod(name, [c])
                pod["spec"]["volumes"] = [
                    {"name": "data", "hostPath": {"path": str(path), "type": "DirectoryOrCreate"}}
                ]
                await rt.create_pod(pod)
                uids.append(pod["metadata"]["uid"])
            await wait_for(
                lambda: all(waiting_reason(rt.status(u), "main") == "CreateContainerConfigError" for u in uids), 60
            )
            assert _waiting_message(rt, uids[0]) == (
                f'hostPath volume "data": {elsewhere} is not under an --allow-host-path prefix'
            )
            assert "is not under an --allow-host-path prefix" in _waiting_message(rt, uids[1])
            assert not elsewhere.exists()  # DirectoryOrCreate made nothing outside the prefix
        finally:
            await rt.close(stop_pods=True)

    run(main())


def test_a_failed_type_check_waits_with_the_failed_mount_message(mounting: Harness) -> None:
    host = mounting.tmp_path / "host"
    host.mkdir()
    (host / "plain").write_text("x")

    async def main() -> None:
        rt, _ = await mounting.open(allow_host_paths=[str(host)])
        try:
            c = sh("main", QUIET)
            c["volumeMounts"] = [{"name": "v", "mountPath": str(mounting.tmp_path / "mnt")}]
            pod = mounting.pod("typed", [c])
            pod["spec"]["volumes"] = [{"name": "v", "hostPath": {"path": str(host / "plain"), "type": "Directory"}}]
            uid = pod["metadata"]["uid"]
            await rt.create_pod(pod)
            want = 'MountVolume.SetUp failed for volume "v" : hostPath type check failed: '
            want += f"{host / 'plain'} is not a directory"
            await wait_for(lambda: _waiting_message(rt, uid) == want, 60, what="the FailedMount message")
            assert waiting_reason(rt.status(uid), "main") == "ContainerCreating"
        finally:
            await rt.close(stop_pods=True)

    run(main())
