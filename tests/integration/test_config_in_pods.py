"""Issue 13, end to end: a pod reads its configuration from a ConfigMap and a Secret, through a
real `gitship up` (env and a mounted file in the pod's sandbox); a commit that changes the
ConfigMap changes the mounted file in place, without restarting the pod, while the environment
keeps its start value, as on Kubernetes. Waiting is by polling with deadlines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import SANDBOXES, commit_file, pod_ready, wait_for

pytestmark = pytest.mark.skipif(not SANDBOXES, reason="volume mounts need pod sandboxes (root)")

CONFIG = """apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: "{greeting}"
  app.conf: |
    color=blue
"""

SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: s3cr3t-pw-42
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: busybox
    command: ["sleep", "infinity"]
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: web-config, key: greeting}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: web-secret, key: password}
    envFrom:
    - configMapRef: {name: web-config}
      prefix: CFG_
    volumeMounts:
    - name: config
      mountPath: /etc/web
      readOnly: true
  volumes:
  - name: config
    configMap:
      name: web-config
"""


def test_env_and_mounted_configmap_follow_kubernetes(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "config.yaml", CONFIG.format(greeting="hello"), "config")
    commit_file(empty_repo, "secret.yaml", SECRET, "secret")
    commit_file(empty_repo, "pod.yaml", POD, "the pod")
    g = gitship_factory(empty_repo)
    pod = wait_for(lambda: (p := g.json("get", "pod", "web")) and pod_ready(p) and p, 60, what="web ready")
    uid = pod["metadata"]["uid"]

    env = g.cli("exec", "web", "--", "env").stdout.splitlines()
    assert "GREETING=hello" in env and "PASSWORD=s3cr3t-pw-42" in env and "CFG_greeting=hello" in env, env
    assert g.cli("exec", "web", "--", "cat", "/etc/web/greeting").stdout == "hello"
    assert g.cli("exec", "web", "--", "cat", "/etc/web/app.conf").stdout == "color=blue\n"
    assert not os.path.exists("/etc/web/greeting")  # the mount is the pod's own, not the host's

    commit_file(empty_repo, "config.yaml", CONFIG.format(greeting="bonjour"), "a new greeting")
    wait_for(
        lambda: g.cli("exec", "web", "--", "cat", "/etc/web/greeting").stdout == "bonjour",
        30,
        what="the mounted file to change in place",
    )
    again = g.json("get", "pod", "web")
    assert again["metadata"]["uid"] == uid and again["status"]["containerStatuses"][0]["restartCount"] == 0
    assert "GREETING=hello" in g.cli("exec", "web", "--", "env").stdout.splitlines()  # env keeps its start value

    # the secret's value is in the pod, never in the state dir's logs
    for path in Path(g.state_dir).rglob("*.log"):
        assert "s3cr3t-pw-42" not in path.read_text(errors="replace"), path
