"""The pure parts of the in-process runtime's sandboxes: which isolation, names, addresses, argv.

The namespaces themselves are tested for real in tests/integration/test_sandbox.py (root only).
"""

from __future__ import annotations

import pytest

from runtime.inprocess import procid, sandbox
from runtime.inprocess.isolation import choose_isolation
from runtime.net import bridge as br


@pytest.mark.parametrize(
    ("requested", "cidr", "euid", "missing", "mode", "reason"),
    [
        ("auto", "10.244.0.0/16", 0, None, "sandbox", "each pod has its own network, UTS, IPC and mount namespaces"),
        ("sandbox", "10.244.0.0/16", 0, None, "sandbox", "each pod has its own network, UTS, IPC and mount namespaces"),
        ("auto", "10.244.0.0/16", 1000, None, "host", "pods share the host's network: not running as root"),
        (
            "auto",
            "127.244.0.0/16",
            0,
            None,
            "host",
            "pods share the host's network: pod CIDR 127.244.0.0/16 is loopback",
        ),
        ("auto", "10.244.0.0/16", 0, "nsenter", "host", "pods share the host's network: nsenter not found"),
        ("host", "10.244.0.0/16", 0, None, "host", "pods share the host's network: isolation=host was asked for"),
        # not root comes first: it is the reason a user can act on
        ("sandbox", "127.0.0.0/8", 1000, "ip", "host", "pods share the host's network: not running as root"),
    ],
)
def test_choose_isolation(requested, cidr, euid, missing, mode, reason):
    assert choose_isolation(requested, cidr, euid, missing) == (mode, reason)


def test_choose_isolation_rejects_unknown_modes():
    with pytest.raises(ValueError):
        choose_isolation("vm", "10.244.0.0/16", 0, None)


def test_veth_names_fit_and_differ():
    a, b = br.veth_name("5b0c6f7e-0000-4000-8000-000000000001"), br.veth_name("5b0c6f7e-0000-4000-8000-000000000002")
    assert len(a) <= br.IFNAME_MAX and a.startswith("gsv") and a != b
    assert br.veth_name("x") == br.veth_name("x")


def test_bridge_name_per_state_dir():
    a, b = br.bridge_name("/var/lib/gitship"), br.bridge_name("/tmp/other")
    assert a != b and a == br.bridge_name("/var/lib/gitship/") and len(a) <= br.IFNAME_MAX
    assert not a.startswith("gsv") and br.check_ifname(a) == a


def test_gateway_is_the_first_host_address():
    assert br.gateway("10.244.0.0/16") == ("10.244.0.1", 16)
    assert br.gateway("10.244.7.9/24") == ("10.244.7.1", 24)
    with pytest.raises(ValueError):
        br.gateway("10.0.0.0/31")


@pytest.mark.parametrize("name", ["", "a" * 16, "bad name", "a/b", ".."])
def test_bad_interface_names(name):
    with pytest.raises(ValueError):
        br.check_ifname(name)


def test_pod_mac_follows_the_ip():
    assert sandbox.pod_mac("10.244.1.2") == "0a:58:0a:f4:01:02"


def test_pod_files_are_written(tmp_path):
    resolv, hosts = sandbox.write_files(str(tmp_path / "sb"), "nameserver 10.0.0.10\n", "127.0.0.1\tlocalhost\n")
    assert open(resolv).read() == "nameserver 10.0.0.10\n"
    assert open(hosts).read() == "127.0.0.1\tlocalhost\n"


def test_enter_argv_execs_in_place():
    tools = sandbox.Tools("/u/unshare", "/u/nsenter", "/u/ip", "/u/sleep")
    argv = sandbox.enter_argv(tools, 42, "/srv/app")
    assert argv == ["/u/nsenter", "--target=42", "--net", "--uts", "--ipc", "--mount", "--wd=/srv/app", "--"]
    assert "--pid" not in argv and "--fork" not in argv  # nsenter must exec, not fork: the pid is the container's


def test_sandbox_record_round_trips():
    sb = sandbox.Sandbox(procid.ProcessIdentity(7, 99, "boot"), "gsv1", "10.244.0.5", "web-0", True)
    assert sandbox.Sandbox.from_json(sb.to_json()) == sb
    assert sandbox.Sandbox.from_json(None) is None
    assert sandbox.Sandbox.from_json({"veth": "x"}) is None


def test_process_identity_is_pid_start_time_and_boot_not_the_environment():
    """A process that rewrote its title (redis-server does) has no readable environment left:
    it is still ours by pid, start time and boot id; one that names another pod is not."""
    import subprocess
    import time

    uid = "pod-a"
    procs = {
        "ours": subprocess.Popen(["sleep", "60"], env={procid.UID_ENV: uid}),
        "blank": subprocess.Popen(["sleep", "60"], env={}),
        "other": subprocess.Popen(["sleep", "60"], env={procid.UID_ENV: "pod-b"}),
    }
    try:
        # a process just past exec shows an empty environ until the kernel has set it up
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            open(f"/proc/{procs[n].pid}/environ", "rb").read() for n in ("ours", "other")
        ):
            time.sleep(0.01)
        seen = {}
        for name, p in procs.items():
            ident = procid.identity_of(p.pid)
            assert ident is not None
            seen[name] = procid.is_ours(ident, uid)
        assert seen == {"ours": True, "blank": True, "other": False}
        ident = procid.identity_of(procs["ours"].pid)
        assert ident is not None
        stale = procid.ProcessIdentity(ident.pid, ident.start_ticks + 1, ident.boot_id)
        assert not procid.is_ours(stale, uid)
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
