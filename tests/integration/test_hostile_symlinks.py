"""Issue 20 item 4, end to end: symlinks a pod writes into its volumes, then mounted by another pod
or container with ``subPath`` (CVE-2017-1002101), and links planted in a ConfigMap volume before
an update (CVE-2017-1002102). A canary directory and file in the test's tmp dir stand for
"outside" (never a real /etc file): nothing of it may be readable or writable through a pod.

In-process (pod sandboxes, root): a local-path claim written by one pod, mounted by new pods with
``subPath``/``subPathExpr`` naming the links; Docker: an init container plants the links in an
emptyDir, the app container mounts them. The refused containers wait as CreateContainerConfigError
with a message naming the volume and the subPath; a subPath to a real directory still starts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SANDBOXES, commit_file, pod_ready, wait_for

CLAIM = """apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
"""

WRITER = """apiVersion: v1
kind: Pod
metadata:
  name: writer
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "mkdir -p /data/ok && ln -s {out} /data/thelink && ln -s / /data/root &&
      ln -s {out}/canary /data/file && ln -s ../../../.. /data/up && touch /data/ok/done && sleep 100000"]
    volumeMounts:
    - {{name: data, mountPath: /data}}
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: data}}
"""

READER = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "100000"]
    env:
    - {{name: WHICH, value: "{sub}"}}
    volumeMounts:
    - {{name: data, mountPath: "{mnt}", {key}: "{value}"}}
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: data}}
"""

CONFIG = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  app.conf: "{value}"
"""

CFG_POD = """apiVersion: v1
kind: Pod
metadata:
  name: cfg
spec:
  containers:
  - name: app
    image: {image}
    command: ["sh", "-c", "sleep 100000"]
    volumeMounts:
    - {{name: cfg, mountPath: /cfg}}
  volumes:
  - name: cfg
    configMap: {{name: cfg}}
"""

BAD = ("thelink", "root", "file", "up")


def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "canary").write_text("canary\n")
    os.chmod(out, 0o777)
    return out


def _intact(out: Path) -> None:
    assert sorted(os.listdir(out)) == ["canary"], os.listdir(out)
    assert (out / "canary").read_text() == "canary\n"


def _waiting(g: Any, name: str) -> dict[str, Any] | None:
    p = g.json("get", "pod", name)
    for s in (p.get("status") or {}).get("containerStatuses") or []:
        w = (s.get("state") or {}).get("waiting") or {}
        if w.get("reason") == "CreateContainerConfigError":
            return dict(w)
    return None


def _refused(g: Any, name: str, sub: str) -> None:
    w = wait_for(lambda: _waiting(g, name), 60, what=f"{name} refused")
    assert repr(sub) in w["message"] and "'data'" in w["message"], w
    assert "leads out of the volume" in w["message"], w


def _ready(g: Any, name: str, timeout: float = 90) -> Any:
    return wait_for(lambda: (p := g.json("get", "pod", name)) and pod_ready(p) and p, timeout, what=f"{name} ready")


@pytest.mark.skipif(not SANDBOXES, reason="volume mounts need pod sandboxes (root)")
def test_inprocess_subpath_symlinks_out_of_a_claim_are_refused(
    empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    out = _outside(tmp_path)
    mnt = tmp_path / "mnt"
    commit_file(empty_repo, "claim.yaml", CLAIM, "a claim")
    commit_file(empty_repo, "writer.yaml", WRITER.format(out=out), "a pod plants links")
    g = gitship_factory(empty_repo)
    _ready(g, "writer")
    claim = wait_for(lambda: (c := g.json("get", "pvc", "data"))["status"].get("phase") == "Bound" and c, 60)
    folder = Path(g.json("get", "pv", claim["spec"]["volumeName"])["spec"]["hostPath"]["path"])
    wait_for(lambda: (folder / "ok" / "done").exists(), 30, what="the links planted")
    readers = {f"r-{s}": ("subPath", s) for s in BAD}
    readers["r-expr"] = ("subPathExpr", "$(WHICH)")
    readers["r-ok"] = ("subPath", "ok")
    for name, (key, value) in readers.items():
        sub = "thelink" if name == "r-expr" else value
        commit_file(
            empty_repo,
            f"{name}.yaml",
            READER.format(name=name, sub=sub, mnt=mnt / name, key=key, value=value),
            f"{name} mounts a link",
        )
    _ready(g, "r-ok")
    assert g.cli("exec", "r-ok", "--", "ls", str(mnt / "r-ok")).stdout.split() == ["done"]
    for name, (_key, value) in readers.items():
        if name != "r-ok":
            _refused(g, name, "thelink" if name == "r-expr" else value)
    _intact(out)
    assert not any((mnt / n).exists() and os.listdir(mnt / n) for n in readers if n != "r-ok")


@pytest.mark.skipif(not SANDBOXES, reason="volume mounts need pod sandboxes (root)")
def test_inprocess_configmap_volume_is_read_only_and_updates_do_not_follow_links(
    empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    _configmap_case(empty_repo, gitship_factory, tmp_path, [], "busybox")


def _configmap_case(empty_repo: Path, gitship_factory, tmp_path: Path, extra: list[str], image: str) -> Any:
    out = tmp_path / "outside" if (tmp_path / "outside").exists() else _outside(tmp_path)
    commit_file(empty_repo, "cfg.yaml", CONFIG.format(value="one"), "a config")
    commit_file(empty_repo, "pod.yaml", CFG_POD.format(image=image), "a pod reads it")
    g = gitship_factory(empty_repo, extra=extra)
    _ready(g, "cfg")
    for cmd in (f"ln -sfn {out} /cfg/..data", f"ln -s {out} /cfg/evil", "echo x > /cfg/new", "rm /cfg/app.conf"):
        r = g.cli("exec", "cfg", "--", "sh", "-c", cmd, check=False)
        assert r.returncode != 0, cmd  # a ConfigMap is mounted read-only, whatever the mount says
    commit_file(empty_repo, "cfg.yaml", CONFIG.format(value="two"), "a new value")
    wait_for(lambda: g.cli("exec", "cfg", "--", "cat", "/cfg/app.conf").stdout == "two", 30, what="the update")
    _intact(out)
    return g


# -- Docker: an init container plants the links in an emptyDir ---------------------------------------

DOCKER_POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  initContainers:
  - name: plant
    image: gitship-test/kubia:v1
    command: ["sh", "-c", "mkdir -p /v/ok && ln -s {out} /v/thelink && ln -s / /v/root &&
      ln -s {out}/canary /v/file && ln -s ../../../.. /v/up && touch /v/ok/done"]
    volumeMounts:
    - {{name: data, mountPath: /v}}
  containers:
  - name: app
    image: gitship-test/kubia:v1
    command: ["sleep", "100000"]
    env:
    - {{name: WHICH, value: "{sub}"}}
    volumeMounts:
    - {{name: data, mountPath: /escape, {key}: "{value}"}}
  volumes:
  - name: data
    emptyDir: {{}}
"""


@pytest.mark.docker
def test_docker_subpath_symlinks_and_configmap_links_are_refused(
    empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    from tests.dockerimages import docker_client_or_skip, ensure_test_images
    from tests.integration.test_docker_e2e import docker_args

    client = docker_client_or_skip()
    ensure_test_images(client)
    out = _outside(tmp_path)
    pods = {f"d-{s}": ("subPath", s) for s in BAD}
    pods["d-expr"] = ("subPathExpr", "$(WHICH)")
    pods["d-ok"] = ("subPath", "ok")
    for name, (key, value) in pods.items():
        doc = DOCKER_POD.format(name=name, out=out, sub="thelink", key=key, value=value)
        commit_file(empty_repo, f"{name}.yaml", doc, name)
    made: list[Any] = []

    def factory(repo: Path, extra: list[str]) -> Any:
        made.append(gitship_factory(repo, extra=extra))
        return made[-1]

    try:
        g = _configmap_case(empty_repo, factory, tmp_path, docker_args(tmp_path), "gitship-test/kubia:v1")
        _ready(g, "d-ok")
        assert g.cli("exec", "d-ok", "--", "ls", "/escape").stdout.split() == ["done"]
        for name, (_key, value) in pods.items():
            if name != "d-ok":
                _refused(g, name, "thelink" if name == "d-expr" else value)
        _intact(out)
    finally:
        for made_g in made:
            made_g.stop()
        instance = hashlib.sha256(os.path.abspath(tmp_path / "state" / "runtime").encode()).hexdigest()[:16]
        _cleanup_docker(client, instance)


def _cleanup_docker(client: Any, instance: str) -> None:
    """What this test's instance left behind (only its own label is touched)."""
    for c in client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]}):
        client.api.remove_container(c["Id"], force=True)
    for v in client.volumes.list(filters={"label": f"gitship.instance={instance}"}):
        v.remove(force=True)
