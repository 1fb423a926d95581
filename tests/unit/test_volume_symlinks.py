"""Symlinks planted in a pod's volumes (issue 20 item 4): the subPath rule (CVE-2017-1002101), the
safe open below a volume, and the ``..data`` writer that must not follow or remove through a link a
container planted (CVE-2017-1002102). Only temp dirs of the test; a canary stands for "outside"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime import volumes
from runtime.kernel import ConfigError
from runtime.kernel.volumes import READ_ONLY_KINDS, container_mounts
from runtime.safepath import fd_path, open_beneath

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}}


def _canary(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("secret canary\n")
    return outside


def _pod(volume: dict, sub_path: str = "thelink") -> tuple[dict, dict]:
    pod = {**POD, "spec": {"volumes": [{"name": "v", **volume}]}}
    c = {"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": sub_path}]}
    return pod, c


@pytest.mark.parametrize("target", ["outside", "/", "../../..", "outside/canary", "outside/missing"])
def test_a_subpath_symlink_out_of_an_emptydir_is_refused(tmp_path: Path, target: str) -> None:
    outside = _canary(tmp_path)
    state = tmp_path / "state"
    vol = Path(volumes.volume_dir(str(state), "u1", "v"))
    vol.mkdir(parents=True)
    link = str(tmp_path / target) if target.startswith("outside") else target
    os.symlink(link, vol / "thelink")
    pod, c = _pod({"emptyDir": {}})
    with pytest.raises(ConfigError) as e:
        volumes.host_mounts(str(state), pod, c)
    assert e.value.reason == "CreateContainerConfigError"
    assert "'thelink'" in e.value.message and "'v'" in e.value.message and "leads out of the volume" in e.value.message
    assert not (outside / "missing").exists() and (outside / "canary").read_text() == "secret canary\n"


def test_a_symlink_inside_the_volume_is_followed_and_bound_resolved(tmp_path: Path) -> None:
    state = tmp_path / "state"
    vol = Path(volumes.volume_dir(str(state), "u1", "v"))
    (vol / "real").mkdir(parents=True)
    os.symlink("real", vol / "thelink")
    pod, c = _pod({"emptyDir": {}})
    [(source, target, _ro, _m, root)] = volumes.mount_sources(str(state), pod, c)
    assert source == os.path.realpath(vol / "real") and target == "/x" and root == os.path.realpath(vol)


def test_a_missing_subpath_is_made_inside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    pod, c = _pod({"emptyDir": {}}, "a/b")
    [(source, _t, _ro, _m, _root)] = volumes.mount_sources(str(state), pod, c)
    assert os.path.isdir(source) and source.endswith("/v/a/b")


def test_a_subpath_through_a_symlinked_hostpath_dir_stays_inside_the_resolved_dir(tmp_path: Path) -> None:
    outside = _canary(tmp_path)
    allowed = tmp_path / "allowed"
    (allowed / "real").mkdir(parents=True)
    os.symlink(allowed / "real", allowed / "link")  # the hostPath's last component is a symlink: allowed
    os.symlink(outside, allowed / "real" / "thelink")
    pod, c = _pod({"hostPath": {"path": str(allowed / "link")}})
    with pytest.raises(ConfigError):
        volumes.host_mounts(str(tmp_path / "state"), pod, c, allow_host_paths=[str(allowed)])
    pod, c = _pod({"hostPath": {"path": str(allowed / "link")}}, "")
    [(source, *_rest)] = volumes.host_mounts(str(tmp_path / "state"), pod, c, allow_host_paths=[str(allowed)])
    assert source == str((allowed / "real").resolve())


def test_a_hostpath_symlink_to_outside_the_allowed_prefix_is_refused(tmp_path: Path) -> None:
    outside = _canary(tmp_path)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    os.symlink(outside, allowed / "link")
    pod, c = _pod({"hostPath": {"path": str(allowed / "link")}}, "")
    with pytest.raises(ConfigError):
        volumes.host_mounts(str(tmp_path / "state"), pod, c, allow_host_paths=[str(allowed)])


def test_open_beneath_refuses_a_symlink_swapped_in_after_the_check(tmp_path: Path) -> None:
    outside = _canary(tmp_path)
    root = tmp_path / "vol"
    (root / "d" / "e").mkdir(parents=True)
    fd = open_beneath(str(root), str(root / "d" / "e"))
    try:
        assert os.path.samefile(fd_path(fd), root / "d" / "e")
    finally:
        os.close(fd)
    # what the check saw was a directory; now a link out of the volume stands in its place
    os.rename(root / "d", root / "d.old")
    os.symlink(outside, root / "d")
    for path in (root / "d" / "e", root / "d"):
        with pytest.raises(ConfigError):
            os.close(open_beneath(str(root), str(path)))
    with pytest.raises(ConfigError):
        open_beneath(str(root), str(outside))


def test_file_volumes_are_always_mounted_read_only() -> None:
    for kind, src in (("configMap", {"name": "c"}), ("secret", {"secretName": "s"}), ("emptyDir", {})):
        pod, c = _pod({kind: src}, "")
        [m] = container_mounts(pod, c)
        assert m.read_only is (kind in READ_ONLY_KINDS)


def test_the_data_writer_neither_follows_nor_removes_through_a_planted_link(tmp_path: Path) -> None:
    outside = _canary(tmp_path)
    d = str(tmp_path / "vol")
    assert volumes.write_atomic(d, {"a": (b"1", 0o644)})
    for planted in (str(outside), "../outside", "/"):
        os.unlink(os.path.join(d, "..data"))
        os.symlink(planted, os.path.join(d, "..data"))
        assert volumes.write_atomic(d, {"a": (b"2", 0o644)})  # rewritten, not read through the link
        assert (outside / "canary").read_text() == "secret canary\n"
        assert open(os.path.join(d, "a")).read() == "2"
    # a top-level name replaced by a link out of the volume is left alone, not written through
    os.unlink(os.path.join(d, "a"))
    os.symlink(outside / "canary", os.path.join(d, "a"))
    volumes.write_atomic(d, {"a": (b"3", 0o644)})
    assert (outside / "canary").read_text() == "secret canary\n"


def test_the_data_writer_does_not_read_a_planted_link_in_the_payload(tmp_path: Path) -> None:
    outside = _canary(tmp_path)
    d = str(tmp_path / "vol")
    volumes.write_atomic(d, {"a": (b"secret canary\n", 0o644)})
    payload = os.path.join(d, os.readlink(os.path.join(d, "..data")))
    os.unlink(os.path.join(payload, "a"))
    os.symlink(outside / "canary", os.path.join(payload, "a"))
    assert volumes.write_atomic(d, {"a": (b"secret canary\n", 0o644)})  # the link's content did not count
    assert not os.path.islink(os.path.join(d, os.readlink(os.path.join(d, "..data")), "a"))


def test_docker_binds_refuse_a_planted_link_and_bind_the_resolved_path(tmp_path: Path) -> None:
    from runtime.docker.mounts import container_mounts as docker_mounts

    outside = _canary(tmp_path)
    state = tmp_path / "state"
    vol = Path(volumes.volume_dir(str(state), "u1", "v"))
    (vol / "real").mkdir(parents=True)
    os.symlink(outside, vol / "thelink")
    os.symlink("real", vol / "inside")
    pod, c = _pod({"emptyDir": {}})
    with pytest.raises(ConfigError) as e:
        docker_mounts(str(state), "inst", pod, c, {})
    assert "'thelink'" in e.value.message and "'v'" in e.value.message
    pod, c = _pod({"emptyDir": {}}, "inside")
    [m] = docker_mounts(str(state), "inst", pod, c, {})
    assert m["Source"] == os.path.realpath(vol / "real") and m["Target"] == "/x"
    pod, c = _pod({"configMap": {"name": "c"}}, "")
    [m] = docker_mounts(str(state), "inst", pod, c, {})
    assert m["ReadOnly"] is True
    _intact_canary = (outside / "canary").read_text()
    assert _intact_canary == "secret canary\n" and os.listdir(outside) == ["canary"]
