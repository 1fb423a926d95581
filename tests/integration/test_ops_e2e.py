"""Operating gitship (docs/operations.md): /metrics read by prometheus-client's own parser, push
webhooks posted by real HTTP clients to a daemon following a file:// URL, sd_notify to a socket the
test binds, and a restart-on-failure supervisor bringing a kill -9'd daemon back to adopt its pods.

Pods are loopback `sleep`s (--isolation host): no sandboxes, nothing in the kernel to clean up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.store import Store
from tests.conftest import ROOT, Gitship, commit_file, git, pod_ready, wait_for

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
FAILING = """apiVersion: v1
kind: Pod
metadata: {name: oneshot}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: ["false"]}]
"""
SLEEPER = """apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  terminationGracePeriodSeconds: 2
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""
LOOPBACK = ["--isolation", "host", "--api-addr", "none"]


def _repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Author")
    git(path, "config", "user.email", "author@example.com")
    return path


def _meta(g: Gitship, key: str) -> Any:
    store = Store(g.state_dir, readonly=True)
    try:
        return store.get_meta(key)
    finally:
        store.close()


def _address(g: Gitship, what: str) -> str:
    return str(wait_for(lambda: (_meta(g, what) or {}).get("address"), 30, what=f"the {what} address"))


def _scrape(addr: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, **labels: str) -> float | None:
    return samples.get((metric, tuple(sorted(labels.items()))))


@pytest.fixture
def loopback(gitship_factory):  # type: ignore[no-untyped-def]
    def make(source: str, *extra: str, start: bool = True, env: dict[str, str] | None = None) -> Gitship:
        g = gitship_factory(source, extra=[*LOOPBACK, *extra], start=False)
        g.env.update(env or {})
        return g.start() if start else g

    return make


def test_metrics_match_the_running_state(tmp_path: Path, loopback) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path / "repo")
    commit_file(repo, "web.yaml", DEPLOY, "web")
    sha = commit_file(repo, "oneshot.yaml", FAILING, "a pod that fails")
    started = time.time()
    g = loopback(str(repo), "--metrics-addr", "127.0.0.1:0")
    g.wait_applied(sha)
    addr = _address(g, "metrics")

    def settled() -> Any:
        pods = g.pods()
        running = [p for p in pods if p["status"].get("phase") == "Running" and pod_ready(p)]
        failed = [p for p in pods if p["status"].get("phase") == "Failed"]
        dep = g.json("get", "deployment", "web")
        return len(running) == 2 and len(failed) == 1 and dep["status"].get("availableReplicas") == 2 and pods

    pods = wait_for(settled, 60, what="2 running web pods and a failed one")

    def matches() -> Any:
        m = _scrape(addr)
        want = {
            ("gitship_pods", "Running"): 2.0,
            ("gitship_pods", "Failed"): 1.0,
            ("gitship_pods", "Pending"): 0.0,
        }
        ok = all(_value(m, name, phase=phase) == v for (name, phase), v in want.items())
        ok = ok and _value(m, "gitship_service_endpoints", namespace="default", service="web", ready="true") == 2.0
        return ok and m

    m = wait_for(matches, 30, what="/metrics to show the pods")
    dep = dict(namespace="default", deployment="web")
    for name in ("spec_replicas", "status_replicas_updated", "status_replicas_ready", "status_replicas_available"):
        assert _value(m, f"gitship_deployment_{name}", **dep) == 2.0, name
    assert _value(m, "gitship_service_endpoints", namespace="default", service="web", ready="false") == 0.0
    assert _value(m, "gitship_objects", kind="Deployment", health="Healthy") == 1.0
    assert _value(m, "gitship_objects", kind="Pod", health="Degraded") == 1.0
    assert _value(m, "gitship_objects", kind="Pod", health="Healthy") == 2.0
    for p in pods:
        labels = dict(namespace="default", pod=p["metadata"]["name"], container="c")
        status = p["status"]["containerStatuses"][0]
        assert _value(m, "gitship_container_restarts_total", **labels) == float(status["restartCount"])
        assert _value(m, "gitship_container_ready", **labels) == (1.0 if status["ready"] else 0.0)
    assert _value(m, "gitship_last_applied_revision_info", revision=sha, branch="main") == 1.0
    applied_at = _value(m, "gitship_last_applied_revision_timestamp_seconds")
    assert applied_at is not None and started <= applied_at <= time.time()
    assert _value(m, "gitship_source_ready", reason="ReconciliationSucceeded") == 1.0
    ok = _value(m, "gitship_reconcile_total", kind="GitRepository", name="repo", result="success")
    assert ok is not None and ok >= 1.0
    assert (
        _value(m, "gitship_reconcile_duration_seconds_count", kind="GitRepository", name="repo", result="success") or 0
    ) >= 1

    # a rejected revision is counted as a failure, and the source is no longer Ready
    commit_file(repo, "bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {}\n", "bad")
    m = wait_for(
        lambda: (
            (s := _scrape(addr))
            and _value(s, "gitship_reconcile_total", kind="GitRepository", name="repo", result="failure") == 1.0
            and s
        ),
        30,
        what="the rejected revision in /metrics",
    )
    assert _value(m, "gitship_source_ready", reason="ValidationFailed") == 0.0
    assert _value(m, "gitship_last_applied_revision_info", revision=sha, branch="main") == 1.0


def test_metrics_address_taken_is_a_warning(tmp_path: Path, loopback) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path / "repo")
    sha = commit_file(repo, "p.yaml", SLEEPER.replace("NAME", "p"), "p")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        g = loopback(str(repo), "--metrics-addr", f"127.0.0.1:{port}")
        g.wait_applied(sha)
        log = Path(g.state_dir, "reconcile.log").read_text()
        assert '"event":"metrics_unavailable"' in log
        assert _meta(g, "metrics") is None


# -- webhooks --------------------------------------------------------------------------------------
SECRET = b"s3cret-for-the-test"


def _github(body: bytes, delivery: str, secret: bytes = SECRET, event: str = "push") -> dict[str, str]:
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": f"sha256={sig}"}


def _post(addr: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"http://{addr}/hook", data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps({"ref": ref, "after": uuid.uuid4().hex}).encode()


def _webhook_daemon(tmp_path: Path, loopback) -> tuple[Gitship, Path, str]:  # type: ignore[no-untyped-def]
    work = _repo(tmp_path / "work")
    commit_file(work, "a.yaml", SLEEPER.replace("NAME", "a"), "a")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    git(work, "remote", "add", "origin", str(bare))
    secret = tmp_path / "webhook-secret"
    secret.write_bytes(SECRET + b"\n")
    # an hour between fetches: only a webhook brings a new commit in during the test
    g = loopback(
        f"file://{bare}",
        "--interval",
        "3600",
        "--webhook-addr",
        "127.0.0.1:0",
        "--webhook-secret-file",
        str(secret),
        "--metrics-addr",
        "127.0.0.1:0",
    )
    return g, work, _address(g, "webhook")


def _pushed(work: Path, name: str) -> str:
    sha = commit_file(work, f"{name}.yaml", SLEEPER.replace("NAME", name), name)
    git(work, "push", "-q", "origin", "main")
    return sha


def _applied(g: Gitship) -> str:
    return str(g.status()["status"]["lastAttemptedRevision"])


def test_github_push_fetches_at_once_and_bad_deliveries_do_not(tmp_path: Path, loopback) -> None:  # type: ignore[no-untyped-def]
    g, work, addr = _webhook_daemon(tmp_path, loopback)
    first = _applied(g)
    sha = _pushed(work, "b")

    # unsigned, wrongly signed, signed with another secret: 401, logged, nothing fetched
    body = _push()
    assert _post(addr, body, {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d0"})[0] == 401
    bad = _github(body, "d1")
    bad["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    assert _post(addr, body, bad)[0] == 401
    assert _post(addr, body, _github(body, "d2", secret=b"another"))[0] == 401
    assert _post(addr, body, {})[0] == 401
    # a push to another branch and a ping: acknowledged, ignored
    other = _push("refs/heads/feature")
    status, answer = _post(addr, other, _github(other, "d3"))
    assert status == 200 and answer["result"] == "ignored"
    assert _post(addr, b"{}", _github(b"{}", "d4", event="ping"))[0] == 200
    log = Path(g.state_dir, "reconcile.log").read_text()
    assert log.count('"result":"unauthorized"') == 4
    assert _applied(g) == first  # none of them fetched

    status, answer = _post(addr, body, _github(body, "d5"))
    assert status == 202 and answer["result"] == "accepted"
    wait_for(lambda: _applied(g) == sha, 20, what="the pushed commit applied after the webhook")
    wait_for(lambda: (p := g.json("get", "pod", "b")) and pod_ready(p), 30, what="pod b ready")

    # the same delivery again: acknowledged as a duplicate, nothing more happens
    sha2 = _pushed(work, "c")
    status, answer = _post(addr, body, _github(body, "d5"))
    assert status == 200 and answer["result"] == "duplicate"
    m = _scrape(_address(g, "metrics"))
    st = g.status()["status"]  # `gitship status` names both endpoints while the daemon runs
    assert st["metricsURL"] == f"http://{_address(g, 'metrics')}/metrics" and st["webhookURL"] == f"http://{addr}/"
    text = g.cli("status").stdout
    assert f"Metrics:       {st['metricsURL']}" in text and f"Webhooks:      http://{addr}/" in text
    assert _value(m, "gitship_webhook_deliveries_total", provider="github", result="duplicate") == 1.0
    assert _value(m, "gitship_webhook_deliveries_total", provider="github", result="accepted") == 1.0
    assert _value(m, "gitship_webhook_deliveries_total", provider="github", result="unauthorized") == 3.0
    assert _value(m, "gitship_webhook_deliveries_total", provider="unknown", result="unauthorized") == 1.0
    assert _applied(g) == sha
    # a new delivery brings c in
    body2 = _push()
    assert _post(addr, body2, _github(body2, "d6"))[0] == 202
    wait_for(lambda: _applied(g) == sha2, 20, what="the second push applied")


def test_gitlab_gitea_forgejo_generic_and_oversized(tmp_path: Path, loopback) -> None:  # type: ignore[no-untyped-def]
    g, work, addr = _webhook_daemon(tmp_path, loopback)

    def hexsig(body: bytes, secret: bytes = SECRET) -> str:
        return hmac.new(secret, body, hashlib.sha256).hexdigest()

    async def deliveries() -> None:
        async with aiohttp.ClientSession() as http:

            async def post(body: bytes, headers: dict[str, str]) -> int:
                async with http.post(f"http://{addr}/", data=body, headers=headers) as r:
                    return r.status

            for i, (name, good, wrong) in enumerate(
                [
                    (
                        "gitlab",
                        lambda b: {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET.decode()},
                        lambda b: {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"},
                    ),
                    (
                        "gitea",
                        lambda b: {"X-Gitea-Event": "push", "X-Gitea-Signature": hexsig(b)},
                        lambda b: {"X-Gitea-Event": "push", "X-Gitea-Signature": hexsig(b, b"x")},
                    ),
                    (
                        "forgejo",
                        lambda b: {"X-Forgejo-Event": "push", "X-Forgejo-Signature": hexsig(b)},
                        lambda b: {"X-Forgejo-Event": "push", "X-Forgejo-Signature": hexsig(b)[:-1] + "0"},
                    ),
                    ("generic", lambda b: {"X-Signature": f"sha256={hexsig(b)}"}, lambda b: {"X-Signature": hexsig(b)}),
                ]
            ):
                sha = await asyncio.to_thread(_pushed, work, f"p{i}")
                body = _push()
                assert await post(body, wrong(body)) == 401, name
                assert await post(body, good(body)) == 202, name
                await asyncio.to_thread(wait_for, lambda sha=sha: _applied(g) == sha, 20, 0.05, f"{name} push")
                assert await post(body, good(body)) == 200, name  # a replay

    asyncio.run(deliveries())

    # a body over 1 MiB: 413 from its Content-Length, before the body is sent
    with socket.create_connection(tuple(addr.rsplit(":", 1)), timeout=10) as s:  # type: ignore[arg-type]
        s.sendall(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
            b'Content-Length: 2097152\r\n\r\n{"ref": '
        )
        assert s.recv(4096).split(b"\r\n")[0].split()[1] == b"413"
    # and a chunked one, refused when it passes 1 MiB
    with socket.create_connection(tuple(addr.rsplit(":", 1)), timeout=10) as s:  # type: ignore[arg-type]
        s.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        status = b""
        for _ in range(40):
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                break
        status = s.recv(4096).split(b"\r\n")[0]
        assert status.split()[1] == b"413"
    m = _scrape(_address(g, "metrics"))
    assert _value(m, "gitship_webhook_deliveries_total", provider="github", result="too_large") == 2.0


# -- systemd: sd_notify and restart on failure -----------------------------------------------------
class NotifySocket:
    """A datagram socket where the daemon's sd_notify messages arrive (as systemd's would)."""

    def __init__(self, tmp_path: Path, abstract: bool):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"gitship-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = str(tmp_path / "notify.sock")
            self.sock.bind(path)
            self.env = path
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, socket.timeout, BlockingIOError):
                return self.messages

    def assignments(self) -> list[str]:
        return [line for m in self.collect() for line in m.split("\n")]


@pytest.mark.parametrize("abstract", [True, False], ids=["abstract", "path"])
def test_sd_notify_ready_status_stopping(tmp_path: Path, loopback, abstract: bool) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path / "repo")
    sha = commit_file(repo, "p.yaml", SLEEPER.replace("NAME", "p"), "p")
    ns = NotifySocket(tmp_path, abstract)
    g = loopback(str(repo), "--metrics-addr", "none", env={"NOTIFY_SOCKET": ns.env})
    wait_for(lambda: "READY=1" in ns.assignments(), 30, what="READY=1")
    assert _meta(g, "lastAppliedRevision") == sha  # READY comes once a revision is applied
    status = [a for a in ns.assignments() if a.startswith("STATUS=")]
    wait_for(lambda: any(sha[:12] in a or "Applied revision" in a for a in ns.assignments()), 10, what="STATUS")
    assert status
    commit_file(repo, "bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {}\n", "bad")
    wait_for(
        lambda: any(a.startswith("STATUS=Not ready (ValidationFailed)") for a in ns.assignments()), 30, what="STATUS"
    )
    assert ns.assignments().count("READY=1") == 1
    assert g.stop() == 0
    assert "STOPPING=1" in ns.assignments()


def _supervise(
    cmd: list[str], env: dict[str, str], log: Path, stop: threading.Event, runs: list[subprocess.Popen[bytes]]
) -> None:
    """Restart=on-failure, in a few lines: run ``cmd``; when it exits non-zero (or by a signal
    other than the test's stop), run it again; a clean exit ends the supervision."""
    while True:
        with open(log, "ab") as out:
            p = subprocess.Popen(
                cmd, env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        runs.append(p)
        if p.wait() == 0 or stop.is_set():
            return


def test_supervisor_restarts_after_kill9_and_the_pods_are_adopted(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    sha = commit_file(repo, "p.yaml", SLEEPER.replace("NAME", "p"), "p")
    g = Gitship(repo, tmp_path / "state", [*LOOPBACK, "--metrics-addr", "none"])
    ns = NotifySocket(tmp_path, abstract=True)
    env = {**g.env, "NOTIFY_SOCKET": ns.env}
    cmd = [sys.executable, "-m", "reconciler.cli", "up", str(repo), "--state-dir", g.state_dir, *g.net_args(), *g.extra]
    runs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    sup = threading.Thread(target=_supervise, args=(cmd, env, tmp_path / "up.log", stop, runs), daemon=True)
    sup.start()
    try:
        wait_for(lambda: "READY=1" in ns.assignments(), 60, what="READY=1")
        g.wait_applied(sha)
        pod = wait_for(lambda: (p := g.json("get", "pod", "p")) and pod_ready(p) and p, 30, what="pod p ready")
        pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("//")[1])
        ns.messages.clear()

        runs[0].kill()  # a crash: SIGKILL, the supervisor sees a failure and starts gitship again
        wait_for(lambda: len(runs) == 2, 30, what="the supervisor's restart")
        wait_for(lambda: "READY=1" in ns.assignments(), 60, what="READY=1 after the restart")
        os.kill(pid, 0)  # the pod's process survived the crash ...
        again = wait_for(lambda: (p := g.json("get", "pod", "p")) and pod_ready(p) and p, 30, what="adopted")
        assert again["metadata"]["uid"] == pod["metadata"]["uid"]  # ... and was adopted, not replaced
        assert (
            again["status"]["containerStatuses"][0]["containerID"]
            == pod["status"]["containerStatuses"][0]["containerID"]
        )

        runs[1].send_signal(signal.SIGTERM)  # a stop: exit 0, the supervisor does not restart it
        sup.join(60)
        assert not sup.is_alive() and runs[1].returncode == 0 and len(runs) == 2
        assert "STOPPING=1" in ns.assignments()
    finally:
        stop.set()
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
        from tests.conftest import _kill_leftovers

        _kill_leftovers(tmp_path)


HTTP = """apiVersion: apps/v1
kind: Deployment
metadata: {name: http}
spec:
  replicas: 1
  selector: {matchLabels: {app: http}}
  template:
    metadata: {labels: {app: http}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: c
        image: python
        command: [python3, -m, http.server, --bind, $(POD_IP), "8080"]
        env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: http}
spec:
  selector: {app: http}
  ports: [{name: web, port: 80, targetPort: 8080}]
"""


def test_proxy_connections_and_bytes(tmp_path: Path, loopback) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path / "repo")
    sha = commit_file(repo, "http.yaml", HTTP, "http")
    g = loopback(str(repo), "--data-plane", "proxy", "--metrics-addr", "127.0.0.1:0")
    g.wait_applied(sha)
    addr = _address(g, "metrics")
    ip = wait_for(lambda: g.json("get", "service", "http")["spec"].get("clusterIP"), 30, what="a ClusterIP")

    def get() -> bytes:
        with urllib.request.urlopen(f"http://{ip}:80/", timeout=5) as r:
            return bytes(r.read())

    body = wait_for(get, 60, what="the Service to answer")
    for _ in range(2):
        body += get()

    def counted() -> Any:
        m = _scrape(addr)
        keys = [dict(k[1]) for k in m if k[0] == "gitship_proxy_connections_total"]
        key = next((k for k in keys if k.get("service_port", "").startswith("default/http:")), None)
        return key and (m[("gitship_proxy_connections_total", tuple(sorted(key.items())))] >= 3) and (m, key)

    m, key = wait_for(counted, 30, what="3 proxied connections in /metrics")
    down = _value(m, "gitship_proxy_bytes_total", **key, direction="down")
    up = _value(m, "gitship_proxy_bytes_total", **key, direction="up")
    assert down is not None and down >= len(body)  # the responses, headers and all
    assert up is not None and up > 0  # the requests
    assert _value(m, "gitship_service_endpoints", namespace="default", service="http", ready="true") == 1.0
