"""The in-process runtime's cgroups (runtime/inprocess/cgroups.py) on a fake cgroup tree: which
hierarchy is used where, what is written, what is not enforced and why; and describe's lines."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler import printers
from runtime.inprocess import cgroups as cg

MOUNTINFO_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / {root}/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw
"""
PROC_V1 = "4:memory:/svc/gs\n1:cpu,cpuacct:/\n0::/\n"


def v1_tree(tmp: Path) -> dict[str, Path]:
    (tmp / "memory/svc/gs").mkdir(parents=True)
    (tmp / "cpu,cpuacct").mkdir()
    (tmp / "unified").mkdir()
    (tmp / "unified/cgroup.controllers").write_text("")  # hybrid: an empty unified hierarchy
    (tmp / "mountinfo").write_text(MOUNTINFO_V1.format(root=tmp))
    (tmp / "cgroup").write_text(PROC_V1)
    return {"memory": tmp / "memory/svc/gs", "cpu": tmp / "cpu,cpuacct"}


def make(tmp: Path, euid: int = 0) -> cg.ContainerCgroups:
    return cg.ContainerCgroups(
        str(tmp / "state"), mountinfo=str(tmp / "mountinfo"), proc_cgroup=str(tmp / "cgroup"), euid=euid
    )


def spec(**limits: str) -> dict[str, Any]:
    return {"name": "app", "resources": {"limits": limits}}


def test_parse_mountinfo_and_proc_cgroup() -> None:
    mounts = cg.parse_mountinfo(
        MOUNTINFO_V1.format(root="/sys/fs/cgroup") + "50 1 0:5 / /x\\040y rw - ext4 /dev/a rw\n"
    )
    assert [(m.point, m.fstype) for m in mounts] == [
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup"),
        ("/sys/fs/cgroup/memory", "cgroup"),
        ("/sys/fs/cgroup/unified", "cgroup2"),
    ]
    assert mounts[0].controllers == {"rw", "cpu", "cpuacct"}
    assert cg.parse_proc_cgroup(PROC_V1) == {"memory": "/svc/gs", "cpu": "/", "cpuacct": "/", "": "/"}
    # a mount of a sub-tree (a cgroup namespace): paths are relative to its root
    m = cg.Mount("/svc", "/sys/fs/cgroup/memory", "cgroup", frozenset({"memory"}))
    assert cg._below(m, "/svc/gs") == "/sys/fs/cgroup/memory/gs"
    assert cg._below(m, "/other") == "/sys/fs/cgroup/memory"


def test_v1_layout_under_gitships_own_cgroup(tmp_path: Path) -> None:
    bases = v1_tree(tmp_path)
    c = make(tmp_path)
    assert c.version == 1 and not c.unavailable
    assert c.parents == {"memory": str(bases["memory"] / c.name), "cpu": str(bases["cpu"] / c.name)}
    assert c.name.startswith("gitship-") and c.name == make(tmp_path).name  # from the state dir
    c.start(set())
    prefix = c.prepare("uid1", "app", 0, spec(cpu="250m", memory="32Mi"))
    mem, cpu = bases["memory"] / c.name / "uid1/app.0", bases["cpu"] / c.name / "uid1/app.0"
    assert (mem / "memory.limit_in_bytes").read_text() == str(32 * 2**20)
    assert (cpu / "cpu.cfs_quota_us").read_text() == "25000"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.shares").read_text() == "256"
    # the wrapper writes its pid to memory first, then cpu, then execs the rest
    assert prefix == [cg.SH, "-c", cg.WRAPPER, "sh", str(mem / "cgroup.procs"), str(cpu / "cgroup.procs"), "--"]
    assert c.prepare("uid1", "plain", 0, {"name": "plain"}) == []  # nothing to enforce: no cgroup
    assert not (bases["memory"] / c.name / "uid1/plain.0").exists()
    # the OOM counter of the container's memory cgroup
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert c.finish("uid1", "app", 0) is True
    # a start sweeps the trees of pods it does not keep
    for uid in ("gone", "kept"):  # (empty: a plain directory with files in it cannot be rmdir'ed as a cgroup can)
        (bases["memory"] / c.name / uid / "app.0").mkdir(parents=True)
    c.start({"kept"})
    assert not (bases["memory"] / c.name / "gone").exists()
    assert (bases["memory"] / c.name / "kept").exists()


def test_v2_layout_and_files(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(f"41 31 0:38 / {tmp_path}/cg rw,relatime - cgroup2 cgroup2 rw\n")
    (tmp_path / "cgroup").write_text("0::/\n")
    (tmp_path / "cg").mkdir()
    (tmp_path / "cg/cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    c = make(tmp_path)
    assert c.version == 2 and c.parents == {
        "memory": str(tmp_path / "cg" / c.name),
        "cpu": str(tmp_path / "cg" / c.name),
    }
    c.start(set())
    assert (tmp_path / "cg/cgroup.subtree_control").read_text() == "+memory +cpu"
    prefix = c.prepare("u", "app", 3, spec(cpu="1", memory="64Mi"))
    d = tmp_path / "cg" / c.name / "u/app.3"
    assert (d / "memory.max").read_text() == str(64 * 2**20)
    assert (d / "cpu.max").read_text() == "100000 100000"
    assert (d / "cpu.weight").read_text() == "39"
    assert (d / "memory.oom.group").read_text() == "1"
    assert (tmp_path / "cg" / c.name / "u/cgroup.subtree_control").read_text() == "+memory +cpu"
    assert prefix[-2:] == [str(d / "cgroup.procs"), "--"]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 0\n")
    assert c.finish("u", "app", 3) is False


def test_v2_without_the_controllers_and_v1_without_memory(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(
        f"41 31 0:38 / {tmp_path}/cg rw - cgroup2 cgroup2 rw\n32 31 0:29 / {tmp_path}/cpu rw - cgroup cgroup rw,cpu\n"
    )
    (tmp_path / "cgroup").write_text("0::/\n1:cpu:/\n")
    (tmp_path / "cg").mkdir()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cg/cgroup.controllers").write_text("pids\n")  # v2 without memory or cpu: v1 is looked at
    c = make(tmp_path)
    assert c.version == 1 and set(c.parents) == {"cpu"}
    assert "memory" in c.unavailable["memory"] and "mounted" in c.unavailable["memory"]
    pod = {"spec": {"containers": [spec(memory="32Mi", cpu="1")]}}
    fields = c.status_fields(pod, "t")
    assert fields["qos_class"] == "Guaranteed"
    (cond,) = fields["extra_conditions"]
    assert cond["reason"] == "ResourcesNotEnforced" and cond["message"].startswith("memory limits")
    # the cpu part is still enforced
    c.start(set())
    assert len(c.prepare("u", "app", 0, spec(memory="32Mi", cpu="1"))) == 6
    assert c.info() == {"cgroup": "v1", "enforced": ["cpu"], "notEnforced": {"memory": c.unavailable["memory"]}}


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_not_root_is_not_enforced(tmp_path: Path) -> None:
    v1_tree(tmp_path)
    for d in ("memory/svc/gs", "cpu,cpuacct"):
        os.chmod(tmp_path / d, 0o555)
    c = make(tmp_path, euid=os.geteuid())
    assert not c.parents and "not running as root" in c.unavailable["memory"]


def test_unwritable_base_is_not_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1_tree(tmp_path)
    monkeypatch.setattr(cg.os, "access", lambda path, mode: mode != os.W_OK)
    c = make(tmp_path, euid=1000)
    assert c.version is None and not c.parents
    assert all("not writable (not running as root)" in why for why in c.unavailable.values())
    assert c.prepare("u", "app", 0, spec(memory="1Gi")) == []  # runs without a cgroup
    assert c.info()["enforced"] == [] and c.info()["cgroup"] is None
    assert asyncio.run(c.remove_pod("u")) is True


def test_unreadable_proc_is_not_enforced(tmp_path: Path) -> None:
    c = cg.ContainerCgroups(str(tmp_path), mountinfo=str(tmp_path / "missing"))
    assert not c.parents and set(c.unavailable) == {"memory", "cpu"}


def test_describe_shows_limits_requests_and_not_enforced() -> None:
    c = {"name": "app", "resources": {"limits": {"memory": "32Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}}}
    assert printers.describe_container_resources(c) == [
        "    Limits:",
        "      cpu:     500m",
        "      memory:  32Mi",
        "    Requests:",
        "      cpu:  250m",
    ]
    lines = printers.describe_container_resources(c, "memory limits are recorded but not enforced: not root")
    assert lines[3] == "      (not enforced: memory limits are recorded but not enforced: not root)"
    assert printers.describe_container_resources({"name": "x"}) == []
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [c]},
        "status": {
            "qosClass": "Burstable",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {
                    "type": "gitship.io/ResourcesEnforced",
                    "status": "False",
                    "reason": "ResourcesNotEnforced",
                    "message": "cpu and memory limits are recorded but not enforced: not running as root",
                },
            ],
        },
    }
    text = printers.describe(pod, [], 0.0)
    assert "      (not enforced: cpu and memory limits are recorded but not enforced: not running as root)" in text
    assert "QoS Class:       Burstable" in text.splitlines()
