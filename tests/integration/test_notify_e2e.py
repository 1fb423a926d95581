"""Notifications end to end: a real daemon with --notify (generic JSON and Slack's format) posting
to a receiver this test runs on 127.0.0.1, first unreachable (a listener that never answers),
then started: the queued notifications are retried and arrive, and revisions applied meanwhile."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, wait_for

GOOD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  colour: {colour}
"""
BAD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    "bad key!": x
data:
  colour: red
"""


class Receiver:
    """An HTTP server on a given port recording every POST (path, JSON body)."""

    def __init__(self, port: int):
        got: list[tuple[str, dict]] = []
        self.got = got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def generic(self, event: str) -> list[dict]:
        return [b for p, b in self.got if p == "/hook" and b.get("event") == event]

    def slack(self, word: str) -> list[dict]:
        return [b for p, b in self.got if p == "/slack" and word in b.get("text", "")]


def commit(repo: Path, text: str, message: str) -> str:
    (repo / "cfg.yaml").write_text(text)
    git(repo, "add", "cfg.yaml")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def _noticed(g: Any, event: str) -> bool:
    """The daemon's notification watcher logged ``event`` (reconcile.log, one JSON object a line)."""
    try:
        lines = Path(g.state_dir, "reconcile.log").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "notification" and rec.get("notification") == event:
            return True
    return False


def test_notifications_survive_a_down_receiver(tmp_path: Path, gitship_factory) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first = commit(repo, GOOD.format(colour="red"), "red")

    # the receiver's port, held by a listener that accepts connections and never answers
    hang = socket.socket()
    hang.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)
    port = hang.getsockname()[1]
    notify = ["--notify", f"http://127.0.0.1:{port}/hook", "--notify", f"slack+http://127.0.0.1:{port}/slack"]
    receiver = None
    try:
        g = gitship_factory(repo, notify + ["--api-addr", "none"])
        wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == first, 60, what="the first revision")

        # while nothing answers, revisions still apply (notifying never holds a reconcile up)
        second = commit(repo, GOOD.format(colour="blue"), "blue")
        wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == second, 30, what="applied while down")
        assert g.json("get", "configmap", "cfg")["data"]["colour"] == "blue"
        bad = commit(repo, BAD, "bad label")
        wait_for(lambda: g.status()["status"]["lastAttemptedRevision"] == bad, 30, what="rejected while down")
        # the source goes away (the branch is renamed) and comes back
        git(repo, "branch", "-m", "main", "elsewhere")
        wait_for(lambda: g.status()["status"].get("sourceError"), 30, what="the source error")
        # notifications are derived from the recorded state every 0.5 s: an outage shorter than that
        # may go unnoticed, so the branch comes back once the watcher has seen it go
        wait_for(lambda: _noticed(g, "source_unreachable"), 30, what="the outage noticed")
        git(repo, "branch", "-m", "elsewhere", "main")
        wait_for(lambda: not g.status()["status"].get("sourceError"), 30, what="the source back")

        hang.close()
        receiver = Receiver(port)  # started late: the queued notifications are retried and arrive
        wait_for(lambda: len(receiver.generic("revision_applied")) >= 2, 90, what="applied notifications")
        wait_for(lambda: receiver.generic("source_recovered"), 90, what="all generic notifications")
        applied = [b["metadata"]["revision"] for b in receiver.generic("revision_applied")]
        assert applied[:2] == [first, second]
        [rejected] = receiver.generic("revision_rejected")
        assert rejected["severity"] == "error" and rejected["metadata"]["revision"] == bad
        assert any(e["file"] == "cfg.yaml" and e["line"] and "labels" in e["field"] for e in rejected["errors"])
        assert receiver.generic("source_unreachable")
        order = [b["event"] for p, b in receiver.got if p == "/hook"]
        assert order.index("source_unreachable") < order.index("source_recovered")  # delivered in order
        wait_for(lambda: receiver.slack("Source recovered"), 90, what="the Slack-format notifications")
        assert receiver.slack("Revision rejected") and all("blocks" in b for _, b in receiver.got if _ == "/slack")
    finally:
        hang.close()
        if receiver:
            receiver.stop()


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    gitship.io/auto-rollback: "true"
spec:
  replicas: 2
  progressDeadlineSeconds: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nodejs
        image: qinchaowhut/allen:v1
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet:
            port: PROBE
          periodSeconds: 1
"""


def _ssh_key(d: Path, name: str) -> Path:
    key = d / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen is not installed")
def test_rollouts_and_a_signed_automatic_rollback_are_notified(
    empty_repo: Path, tmp_path: Path, gitship_factory
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    dev, mine = _ssh_key(trust, "dev"), _ssh_key(trust, "gitship")
    signers = trust / "allowed_signers"
    signers.write_text("".join(f"{k.name}@example.com {Path(str(k) + '.pub').read_text()}" for k in (dev, mine)))

    def signed(text: str, message: str) -> str:
        (empty_repo / "web.yaml").write_text(text)
        git(empty_repo, "add", "web.yaml")
        git(empty_repo, "-c", "gpg.format=ssh", "-c", f"user.signingkey={dev}", "commit", "-q", "-S", "-m", message)
        return git(empty_repo, "rev-parse", "HEAD")

    receiver = Receiver(0)
    port = receiver.server.server_address[1]
    try:
        signed(DEPLOY.replace("PROBE", "8080"), "web v1")
        extra = ["--verify-signatures", str(signers), "--signing-key", str(mine), "--api-addr", "none"]
        g = gitship_factory(empty_repo, extra + ["--notify", f"http://127.0.0.1:{port}/hook"])
        done = wait_for(lambda: receiver.generic("rollout_complete"), 90, what="rollout complete")
        assert done[0]["involvedObject"] == {"kind": "Deployment", "namespace": "default", "name": "web"}

        # v2's probe asks a port nothing listens on: the deadline passes, gitship reverts (a signed commit)
        bad = signed(DEPLOY.replace("PROBE", "9999").replace("allen:v1", "allen:v2"), "web v2, never ready")
        failed = wait_for(lambda: receiver.generic("rollout_failed"), 90, what="rollout failed")
        assert failed[0]["reason"] == "ProgressDeadlineExceeded"
        [rollback] = wait_for(lambda: receiver.generic("rollback_committed"), 60, what="rollback committed")
        revert = rollback["metadata"]["revision"]
        assert revert == git(empty_repo, "rev-parse", "HEAD") and revert != bad
        assert rollback["involvedObject"]["name"] == "web"
        # the revert is gitship's own commit: signed with --signing-key, verified and applied
        wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == revert, 60, what="the revert applied")
        wait_for(lambda: len(receiver.generic("rollout_complete")) >= 2, 90, what="rollout complete again")
    finally:
        receiver.stop()
