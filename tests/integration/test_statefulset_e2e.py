"""StatefulSets and DaemonSets end to end through a real `gitship up` on the in-process runtime:
web-0 then web-1, in order; data written by web-0 survives deleting web-0 (the same claim); scale
down keeps the claims; `nslookup web-0.nginx` from a pod answers web-0's IP; a template change rolls
the highest ordinal first; `rollout undo` reverts it. A DaemonSet: one pod, replaced on a template
change. Waiting is by polling with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SANDBOXES, commit_file, pod_ready, wait_for

needs_sandboxes = pytest.mark.skipif(not SANDBOXES, reason="claims are mounted in pod sandboxes (root)")

STS = """apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  ports:
  - port: 80
    name: web
  selector:
    app: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: {replicas}
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        image: busybox:{tag}
        command: ["sleep", "infinity"]
        volumeMounts:
        - name: www
          mountPath: /www
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 16Mi
"""

DS = """apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      nodeSelector:
        kubernetes.io/os: linux
      terminationGracePeriodSeconds: 2
      containers:
      - name: agent
        image: busybox:{tag}
        command: ["sleep", "infinity"]
"""


def pods(g: Any, prefix: str) -> dict[str, dict]:
    items = g.json("get", "pods")["items"]
    return {p["metadata"]["name"]: p for p in items if p["metadata"]["name"].startswith(prefix)}


def ready(g: Any, name: str) -> dict:
    return dict(wait_for(lambda: (p := g.json("get", "pod", name)) and pod_ready(p) and p, 90, what=f"{name} ready"))


@needs_sandboxes
def test_statefulset_order_claims_dns_rollout_undo(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "web.yaml", STS.format(replicas=2, tag="1"), "web")
    g = gitship_factory(empty_repo)
    # OrderedReady: web-1 exists only once web-0 is Ready
    first = ready(g, "web-0")
    p1 = ready(g, "web-1")
    assert p1["metadata"]["creationTimestamp"] >= first["metadata"]["creationTimestamp"]
    assert first["spec"]["hostname"] == "web-0" and first["spec"]["subdomain"] == "nginx"
    assert g.cli("exec", "web-0", "--", "hostname").stdout.strip() == "web-0"
    hosts = g.cli("exec", "web-0", "--", "cat", "/etc/hosts").stdout
    assert f"{first['status']['podIP']}\tweb-0.nginx.default.svc.cluster.local\tweb-0" in hosts, hosts
    claims = g.json("get", "pvc")["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["www-web-0", "www-web-1"]
    assert g.cli("get", "sts").stdout.split("\n")[1].split()[:2] == ["web", "2/2"]

    # a stable name: web-0.nginx from web-1 answers web-0's IP
    if shutil.which("nslookup"):
        ip0 = first["status"]["podIP"]
        out = wait_for(
            lambda: (
                (o := g.cli("exec", "web-1", "--", "nslookup", "web-0.nginx", check=False).stdout) and ip0 in o and o
            ),
            30,
            what="web-0.nginx resolves",
        )
        assert "web-0.nginx.default.svc.cluster.local" in out

    # data written by web-0 survives its deletion: the new web-0 mounts the same claim
    g.cli("exec", "web-0", "--", "sh", "-c", "echo kept > /www/f")
    uid0 = first["metadata"]["uid"]
    g.cli("delete", "pod", "web-0")
    again = wait_for(
        lambda: (p := g.json("get", "pod", "web-0")) and p["metadata"]["uid"] != uid0 and pod_ready(p) and p,
        90,
        what="web-0 made again",
    )
    assert again["metadata"]["name"] == "web-0"
    assert g.cli("exec", "web-0", "--", "cat", "/www/f").stdout == "kept\n"

    # a template change: web-1 first, then web-0
    seen: list[str] = []

    def rolled() -> bool:
        for name, p in pods(g, "web-").items():
            if p["spec"]["containers"][0]["image"] == "busybox:2" and name not in seen:
                seen.append(name)
        return len(seen) == 2 and all(pod_ready(p) for p in pods(g, "web-").values())

    commit_file(empty_repo, "web.yaml", STS.format(replicas=2, tag="2"), "web: busybox 2")
    wait_for(rolled, 120, interval=0.02, what="both pods at busybox:2")
    assert seen == ["web-1", "web-0"]
    assert "partitioned roll out complete" in g.cli("rollout", "status", "sts/web", "--timeout", "60").stdout
    hist = g.cli("rollout", "history", "statefulset", "web").stdout
    assert hist.splitlines()[0] == "statefulset.apps/web" and len(hist.splitlines()) == 4, hist

    # undo: a commit; the pods go back to busybox:1
    out = g.cli("rollout", "undo", "sts/web").stdout
    assert "rolled back" in out
    wait_for(
        lambda: (
            all(p["spec"]["containers"][0]["image"] == "busybox:1" and pod_ready(p) for p in pods(g, "web-").values())
            and len(pods(g, "web-")) == 2
        ),
        120,
        what="back to busybox:1",
    )

    # scale down: web-1 goes, its claim stays
    g.cli("scale", "sts/web", "--replicas=1")
    wait_for(lambda: set(pods(g, "web-")) == {"web-0"}, 90, what="web-1 gone")
    assert sorted(c["metadata"]["name"] for c in g.json("get", "pvc")["items"]) == ["www-web-0", "www-web-1"]
    assert len(g.json("get", "controllerrevisions")["items"]) >= 2


@needs_sandboxes
def test_daemonset_one_pod_replaced_on_change(empty_repo: Path, gitship_factory) -> None:
    commit_file(empty_repo, "ds.yaml", DS.format(tag="1"), "agent")
    g = gitship_factory(empty_repo)
    first = wait_for(lambda: (p := pods(g, "agent-")) and len(p) == 1 and p, 60, what="one agent pod")
    (name,) = first
    ready(g, name)
    row = g.cli("get", "ds").stdout.splitlines()[1].split()
    assert row[:6] == ["agent", "1", "1", "1", "1", "1"] and row[6] == "kubernetes.io/os=linux"
    commit_file(empty_repo, "ds.yaml", DS.format(tag="2"), "agent: busybox 2")
    wait_for(
        lambda: (
            (p := pods(g, "agent-"))
            and len(p) == 1
            and name not in p
            and all(pod_ready(x) and x["spec"]["containers"][0]["image"] == "busybox:2" for x in p.values())
        ),
        90,
        what="the agent replaced",
    )
    assert "successfully rolled out" in g.cli("rollout", "status", "ds/agent", "--timeout", "60").stdout


# -- the Docker runtime: a named volume per claim, the stable name through gitship's DNS -------------


@pytest.mark.docker
def test_docker_statefulset_claims_and_stable_names(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    import hashlib
    import os

    from tests.dockerimages import docker_client_or_skip, ensure_test_images
    from tests.integration.test_docker_e2e import docker_args, resolve_in

    client = docker_client_or_skip()
    ensure_test_images(client)
    text = STS.format(replicas=2, tag="1").replace("image: busybox:1", "image: gitship-test/kubia:v1")
    text = text.replace('        command: ["sleep", "infinity"]\n', "        imagePullPolicy: IfNotPresent\n")
    commit_file(empty_repo, "web.yaml", text, "web")
    g = gitship_factory(empty_repo, extra=docker_args(tmp_path))
    try:
        first = ready(g, "web-0")
        ready(g, "web-1")
        assert g.cli("exec", "web-0", "--", "hostname").stdout.strip() == "web-0"
        ip0 = first["status"]["podIP"]
        wait_for(lambda: resolve_in(g, "web-1", "web-0.nginx") == [ip0], 30, what="web-0.nginx resolves")
        g.cli("exec", "web-0", "--", "sh", "-c", "echo in-docker > /www/f")
        g.cli("delete", "pod", "web-0")
        wait_for(
            lambda: (
                (p := g.json("get", "pod", "web-0"))
                and p["metadata"]["uid"] != first["metadata"]["uid"]
                and pod_ready(p)
            ),
            90,
            what="web-0 made again",
        )
        assert g.cli("exec", "web-0", "--", "cat", "/www/f").stdout == "in-docker\n"
    finally:
        g.stop()
        instance = hashlib.sha256(os.path.abspath(tmp_path / "state" / "runtime").encode()).hexdigest()[:16]
        for c in client.api.containers(all=True, filters={"label": [f"gitship.instance={instance}"]}):
            client.api.remove_container(c["Id"], force=True)
        for v in client.volumes.list(filters={"label": f"gitship.instance={instance}"}):
            v.remove(force=True)


@needs_sandboxes
def test_template_example_statefulset_and_daemonset(empty_repo: Path, gitship_factory) -> None:
    """repo-template/examples/statefulset.yaml and daemonset.yaml, as the template's README runs them."""
    from tests.integration.test_sandbox_e2e import TEMPLATE, http_get

    for name in ("statefulset.yaml", "daemonset.yaml"):
        commit_file(empty_repo, name, (TEMPLATE / "examples" / name).read_text(), name)
    g = gitship_factory(empty_repo)
    for name in ("web-0", "web-1"):
        ip = ready(g, name)["status"]["podIP"]
        want = f"This is v1 running in pod {name}\n"
        wait_for(lambda ip=ip, want=want: http_get(ip, 8080) == want, 30, what=f"{name} answers")  # no probe
    agent = wait_for(lambda: (p := pods(g, "node-agent-")) and len(p) == 1 and p, 60, what="the node agent")
    assert ready(g, next(iter(agent)))["spec"]["nodeName"]
    names = {line.split()[0] for line in g.cli("get", "pvc").stdout.splitlines()[1:]}
    assert names == {"www-web-0", "www-web-1"}
