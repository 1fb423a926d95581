"""hostPath volumes: the operator's prefixes and the ``type`` checks (runtime/kernel/volumes.py), and
their I/O (runtime/volumes.py) on a temporary directory: symlinks and ``..`` cannot escape a prefix."""

import os
import socket
import stat

import pytest

from runtime import volumes
from runtime.kernel import ConfigError
from runtime.kernel.volumes import (
    HostPathTypeError,
    VolumeError,
    host_path_action,
    host_path_allowed,
    under_prefix,
    volume_plan,
)


def pod(volumes_, mounts=()):
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u-1"},
        "spec": {"containers": [{"name": "c", "volumeMounts": list(mounts)}], "volumes": volumes_},
    }


def hp(path, type_=None, name="data"):
    spec = {"path": path} if type_ is None else {"path": path, "type": type_}
    return {"name": name, "hostPath": spec}


# ----------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    ("path", "prefix", "under"),
    [
        ("/srv/a", "/srv/a", True),
        ("/srv/a/b/c", "/srv/a", True),
        ("/srv/ab", "/srv/a", False),
        ("/srv", "/srv/a", False),
        ("/etc", "/srv", False),
        ("/srv/a/", "/srv/a/", True),
        ("/anything", "/", True),
    ],
)  # fmt: skip
def test_under_prefix_goes_element_by_element(path, prefix, under):
    assert under_prefix(path, prefix) is under


def test_a_path_outside_every_prefix_is_a_config_error_naming_volume_path_and_flag():
    host_path_allowed("data", "/srv/a/x", "/srv/a/x", ["/srv/a"])  # allowed: nothing raised
    with pytest.raises(ConfigError) as e:
        host_path_allowed("data", "/srv/x", "/srv/x", ["/srv/a", "/opt"])
    assert e.value.reason == "CreateContainerConfigError"
    assert e.value.message == 'hostPath volume "data": /srv/x is not under an --allow-host-path prefix'
    with pytest.raises(ConfigError):
        host_path_allowed("data", "/srv/x", "/srv/x", [])  # no prefix: nothing is allowed
    with pytest.raises(ConfigError) as e:  # only the resolved path counts
        host_path_allowed("data", "/srv/a/link", "/etc", ["/srv/a"])
    assert "/srv/a/link (it resolves to /etc) is not under" in e.value.message


def test_the_plan_normalizes_and_validates():
    p = volume_plan(pod([]), hp("/srv//a/./b/", "Directory"), None)
    assert (p.kind, p.host_path, p.host_type) == ("hostPath", "/srv/a/b", "Directory")
    with pytest.raises(ConfigError) as e:
        volume_plan(pod([]), hp("relative/x"), None)
    assert e.value.reason == "CreateContainerConfigError"
    with pytest.raises(VolumeError) as e:
        volume_plan(pod([]), hp("/srv", "Folder"), None)
    assert "Folder is an invalid volume type" in e.value.message


@pytest.mark.parametrize(
    ("type_", "found", "result"),
    [
        ("", None, None),
        ("", "char", None),
        ("DirectoryOrCreate", None, "mkdir"),
        ("DirectoryOrCreate", "directory", None),
        ("Directory", "directory", None),
        ("FileOrCreate", None, "create"),
        ("FileOrCreate", "file", None),
        ("File", "file", None),
        ("Socket", "socket", None),
        ("CharDevice", "char", None),
        ("BlockDevice", "block", None),
    ],
)  # fmt: skip
def test_type_checks_that_pass(type_, found, result):
    assert host_path_action("v", "/x", type_, found) == result


@pytest.mark.parametrize(
    ("type_", "found", "what"),
    [
        ("Directory", None, "is not a directory"),
        ("Directory", "file", "is not a directory"),
        ("DirectoryOrCreate", "file", "is not a directory"),
        ("File", None, "is not a file"),
        ("File", "directory", "is not a file"),
        ("FileOrCreate", "socket", "is not a file"),
        ("Socket", "file", "is not a socket file"),
        ("CharDevice", "block", "is not a character device"),
        ("BlockDevice", "char", "is not a block device"),
    ],
)  # fmt: skip
def test_type_checks_that_fail_with_the_kubelets_failed_mount(type_, found, what):
    with pytest.raises(HostPathTypeError) as e:
        host_path_action("v", "/x", type_, found)
    assert e.value.reason == "ContainerCreating"
    assert e.value.message == f'MountVolume.SetUp failed for volume "v" : hostPath type check failed: /x {what}'


# ----------------------------------------------------------------------------- with the filesystem


@pytest.fixture
def tree(tmp_path):
    """allowed/ (the prefix) with dir/, file, sock, a link out of it and a link within it; outside/."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "dir").mkdir(parents=True)
    outside.mkdir()
    (allowed / "file").write_text("f")
    (allowed / "out").symlink_to(outside)
    (allowed / "in").symlink_to(allowed / "dir")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(allowed / "sock"))
    yield tmp_path
    s.close()


def prepare(tmp_path, vol, allow):
    return volumes.prepare_pod(str(tmp_path / "state"), pod([vol]), {}, "", allow)


def test_prefix_escapes_through_dotdot_and_symlinks_are_refused(tree):
    allow = [str(tree / "allowed")]
    prepare(tree, hp(str(tree / "allowed" / "dir")), allow)
    prepare(tree, hp(str(tree / "allowed" / "in")), allow)  # a link that stays inside
    for escape in (str(tree / "allowed" / ".." / "outside"), str(tree / "allowed" / "out"), "/etc"):
        with pytest.raises(ConfigError) as e:
            prepare(tree, hp(escape), allow)
        assert e.value.reason == "CreateContainerConfigError" and "--allow-host-path" in e.value.message
    # a prefix given through a symlink means where it leads
    (tree / "alias").symlink_to(tree / "allowed")
    prepare(tree, hp(str(tree / "allowed" / "dir")), [str(tree / "alias")])


def test_each_type_on_disk(tree):
    allow = [str(tree / "allowed")]
    a = tree / "allowed"
    prepare(tree, hp(str(a / "dir"), "Directory"), allow)
    prepare(tree, hp(str(a / "file"), "File"), allow)
    prepare(tree, hp(str(a / "sock"), "Socket"), allow)
    prepare(tree, hp(str(a / "in"), "Directory"), allow)  # a symlink to a directory is one
    for path, type_ in (("file", "Directory"), ("dir", "File"), ("file", "Socket"), ("nope", "Directory")):
        with pytest.raises(HostPathTypeError):
            prepare(tree, hp(str(a / path), type_), allow)
    if os.path.exists("/dev/null"):
        prepare(tree, hp("/dev/null", "CharDevice"), ["/dev"])
        with pytest.raises(HostPathTypeError):
            prepare(tree, hp("/dev/null", "BlockDevice"), ["/dev"])


def test_directory_or_create_and_file_or_create(tree):
    allow = [str(tree / "allowed")]
    a = tree / "allowed"
    old = os.umask(0o022)
    try:
        prepare(tree, hp(str(a / "new" / "deep"), "DirectoryOrCreate"), allow)
        prepare(tree, hp(str(a / "made.txt"), "FileOrCreate"), allow)
    finally:
        os.umask(old)
    assert (a / "new" / "deep").is_dir() and stat.S_IMODE((a / "new" / "deep").stat().st_mode) == 0o755
    made = a / "made.txt"
    assert made.is_file() and made.read_bytes() == b"" and stat.S_IMODE(made.stat().st_mode) == 0o644
    with pytest.raises(HostPathTypeError) as e:  # FileOrCreate makes no parent directory
        prepare(tree, hp(str(a / "missing" / "f"), "FileOrCreate"), allow)
    assert not (a / "missing").exists() and "no such file or directory" in e.value.message
    with pytest.raises(ConfigError):  # outside: nothing is created
        prepare(tree, hp(str(tree / "elsewhere"), "DirectoryOrCreate"), allow)
    assert not (tree / "elsewhere").exists()
    with pytest.raises(ConfigError):  # through a link out of the prefix: nothing is created either
        prepare(tree, hp(str(a / "out" / "made"), "DirectoryOrCreate"), allow)
    assert not (tree / "outside" / "made").exists()


def test_mounts_bind_the_resolved_path_and_sub_paths_stay_inside(tree):
    allow = [str(tree / "allowed")]
    a = tree / "allowed"
    state = str(tree / "state")
    mounts = [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"name": "data", "mountPath": "/sub", "subPath": "made/here"},
    ]
    p = pod([hp(str(a / "in"))], mounts)
    volumes.prepare_pod(state, p, {}, "", allow)
    got = volumes.host_mounts(state, p, p["spec"]["containers"][0], {}, allow)
    assert [(s, t, ro) for s, t, ro, _m in got] == [
        (str(a / "dir"), "/data", True),
        (str(a / "dir" / "made" / "here"), "/sub", False),
    ]
    assert (a / "dir" / "made" / "here").is_dir()
    with pytest.raises(ConfigError):  # not allowed: host_mounts checks again
        volumes.host_mounts(state, p, p["spec"]["containers"][0], {}, [])
    (a / "dir" / "up").symlink_to(tree / "outside")
    bad = pod([hp(str(a / "dir"))], [{"name": "data", "mountPath": "/x", "subPath": "up/new"}])
    with pytest.raises(ConfigError) as e:
        volumes.host_mounts(state, bad, bad["spec"]["containers"][0], {}, allow)
    assert "leads out of the volume" in e.value.message
    assert not (tree / "outside" / "new").exists()


def test_removing_the_pod_leaves_the_host_path_alone(tree):
    allow = [str(tree / "allowed")]
    state = str(tree / "state")
    volumes.prepare_pod(state, pod([hp(str(tree / "allowed" / "dir"))]), {}, "", allow)
    volumes.remove_pod(state, "u-1")
    assert (tree / "allowed" / "dir").is_dir() and (tree / "allowed" / "file").is_file()


def test_up_passes_every_allow_host_path_to_the_daemon_options(monkeypatch, tmp_path):
    import reconciler.daemon
    from reconciler.cli import build_parser

    got = []
    monkeypatch.setattr(reconciler.daemon, "run", lambda opts: got.append(opts) or 0)
    argv = ["up", str(tmp_path), "--state-dir", str(tmp_path / "s"), "--allow-host-path", "/srv/a"]
    args = build_parser().parse_args([*argv, "--allow-host-path", "rel"])
    assert args.func(args) == 0
    assert got[0].allow_host_paths == ("/srv/a", os.path.abspath("rel"))
    args = build_parser().parse_args(argv[:4])
    args.func(args)
    assert got[1].allow_host_paths == ()  # none by default
