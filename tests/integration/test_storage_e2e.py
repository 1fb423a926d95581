"""Issue 13 storage, end to end through a real `gitship up` on the in-process runtime: a claim of
the built-in `local-path` class (WaitForFirstConsumer) gets a folder under the state dir when its
first pod exists; data written by one pod is read by the next; it survives `kill -9` of gitship
and a restart; a claim removed from git takes its data with it under reclaimPolicy Delete (with an
event) and leaves it under Retain. Waiting is by polling with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SANDBOXES, commit_file, pod_ready, remove_file, wait_for

pytestmark = pytest.mark.skipif(not SANDBOXES, reason="volume mounts need pod sandboxes (root)")

CLAIM = """apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
{extra}"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "infinity"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
"""

RETAIN_CLASS = """apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: keep
provisioner: gitship.io/local-path
reclaimPolicy: Retain
volumeBindingMode: Immediate
"""


def ready(g: Any, name: str) -> Any:
    return wait_for(lambda: (p := g.json("get", "pod", name)) and pod_ready(p) and p, 90, what=f"pod {name} ready")


def rows(g: Any, *args: str) -> list[list[str]]:
    return [line.split() for line in g.cli("get", *args).stdout.splitlines()]


def bound_volume(g: Any) -> dict:
    claim = wait_for(
        lambda: (c := g.json("get", "pvc", "data")) and c["status"].get("phase") == "Bound" and c,
        60,
        what="the claim Bound",
    )
    return dict(g.json("get", "pv", claim["spec"]["volumeName"]))


def folder_of(pv: dict) -> Path:
    return Path(pv["spec"]["hostPath"]["path"])


def pv_gone(g: Any, name: str) -> bool:
    return g.cli("get", "pv", name, check=False).returncode != 0


def test_claim_data_survives_pods_and_kill9_and_goes_with_the_claim(
    empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    commit_file(empty_repo, "claim.yaml", CLAIM.format(extra=""), "a claim")
    g = gitship_factory(empty_repo)
    # WaitForFirstConsumer: Pending, nothing provisioned, until a pod uses it
    claim = wait_for(lambda: g.json("get", "pvc", "data"), 30, what="the claim")
    assert claim["spec"]["storageClassName"] == "local-path" and claim["status"]["phase"] == "Pending"
    assert rows(g, "sc")[1][:3] == ["local-path", "(default)", "gitship.io/local-path"]
    assert "waiting for first consumer" in g.cli("describe", "pvc", "data").stdout

    commit_file(empty_repo, "writer.yaml", POD.format(name="writer"), "a writer")
    ready(g, "writer")
    pv = bound_volume(g)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert rows(g, "pvc")[1][:6] == ["data", "Bound", pv["metadata"]["name"], "64Mi", "RWO", "local-path"]
    assert folder_of(pv).is_relative_to(Path(g.state_dir))
    g.cli("exec", "writer", "--", "sh", "-c", "echo persisted > /data/f")
    assert (folder_of(pv) / "f").read_text() == "persisted\n"

    # the pod goes, the data stays; the next pod reads it
    remove_file(empty_repo, "writer.yaml", "the writer goes")
    commit_file(empty_repo, "reader.yaml", POD.format(name="reader"), "a reader")
    ready(g, "reader")
    assert g.cli("exec", "reader", "--", "cat", "/data/f").stdout == "persisted\n"

    # kill -9 and a restart: same claim, same volume, same data
    g.kill9()
    g2 = gitship_factory(empty_repo, state_dir=tmp_path / "state")
    ready(g2, "reader")
    assert bound_volume(g2)["metadata"]["name"] == pv["metadata"]["name"]
    assert g2.cli("exec", "reader", "--", "cat", "/data/f").stdout == "persisted\n"

    # the claim leaves git: it waits for its pod (pvc-protection), then it and its data go
    remove_file(empty_repo, "claim.yaml", "the claim goes")
    wait_for(lambda: g2.json("get", "pvc", "data")["metadata"].get("deletionTimestamp"), 30, what="Terminating")
    assert folder_of(pv).exists()
    remove_file(empty_repo, "reader.yaml", "the reader goes")
    wait_for(lambda: pv_gone(g2, pv["metadata"]["name"]), 60, what="the volume deleted")
    assert not folder_of(pv).exists()
    assert "VolumeDelete" in g2.cli("events").stdout


def test_retain_keeps_the_data_released(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "class.yaml", RETAIN_CLASS, "a Retain class")
    commit_file(empty_repo, "claim.yaml", CLAIM.format(extra="  storageClassName: keep\n"), "a claim")
    g = gitship_factory(empty_repo)
    pv = bound_volume(g)  # Immediate: provisioned without a pod
    (folder_of(pv) / "kept").write_text("still here")
    remove_file(empty_repo, "claim.yaml", "the claim goes")
    wait_for(lambda: g.cli("get", "pvc", "data", check=False).returncode != 0, 30, what="the claim gone")
    wait_for(lambda: g.json("get", "pv", pv["metadata"]["name"])["status"]["phase"] == "Released", 30, what="Released")
    assert (folder_of(pv) / "kept").read_text() == "still here"
    assert os.path.isdir(folder_of(pv))


# -- the Docker runtime: a named volume per claim ----------------------------------------------------

DOCKER_POD = POD.replace("image: busybox", "image: gitship-test/kubia:v1")


@pytest.mark.docker
def test_docker_named_volume_outlives_pods_and_goes_with_the_claim(
    empty_repo: Path, gitship_factory, tmp_path: Path
) -> None:
    from tests.dockerimages import docker_client_or_skip, ensure_test_images
    from tests.integration.test_docker_e2e import docker_args

    client = docker_client_or_skip()
    ensure_test_images(client)
    commit_file(empty_repo, "claim.yaml", CLAIM.format(extra=""), "a claim")
    commit_file(empty_repo, "writer.yaml", DOCKER_POD.format(name="writer"), "a writer")
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    try:
        ready(g, "writer")
        pv = bound_volume(g)
        handle = pv["spec"]["csi"]["volumeHandle"]
        assert client.volumes.get(handle)
        assert "CSI" in g.cli("describe", "pv", pv["metadata"]["name"]).stdout
        g.cli("exec", "writer", "--", "sh", "-c", "echo in-docker > /data/f")
        remove_file(empty_repo, "writer.yaml", "the writer goes")
        commit_file(empty_repo, "reader.yaml", DOCKER_POD.format(name="reader"), "a reader")
        ready(g, "reader")
        assert g.cli("exec", "reader", "--", "cat", "/data/f").stdout == "in-docker\n"
        remove_file(empty_repo, "reader.yaml", "the reader goes")
        remove_file(empty_repo, "claim.yaml", "the claim goes")
        wait_for(lambda: pv_gone(g, pv["metadata"]["name"]), 90, what="the volume deleted")
        assert not [v for v in client.volumes.list() if v.name == handle]
    finally:
        g.stop()
        # what this test's instance left behind (only its own label is touched)
        instance = hashlib.sha256(os.path.abspath(tmp_path / "state" / "runtime").encode()).hexdigest()[:16]
        for c in client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]}):
            client.api.remove_container(c["Id"], force=True)
        for v in client.volumes.list(filters={"label": f"gitship.instance={instance}"}):
            v.remove(force=True)
