"""The pure parts of reconciler/ops: webhook signatures and decisions, the systemd unit, sd_notify's
wire format, health, and the metrics' names and values from plain objects."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.cli.service import absolute_args, grace_periods
from reconciler.ops import health, metrics, sdnotify, systemd, webhook

SECRET = b"top-secret"
BODY = b'{"ref": "refs/heads/main"}'


def _hex(body: bytes = BODY, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


# -- webhook signatures ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers,provider",
    [
        ({"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={_hex()}"}, "github"),
        ({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "top-secret"}, "gitlab"),
        # Gitea and Forgejo also send GitHub's headers: their own decide
        ({"X-GitHub-Event": "push", "X-Gitea-Event": "push", "X-Gitea-Signature": _hex()}, "gitea"),
        ({"X-Gitea-Event": "push", "X-Forgejo-Event": "push", "X-Forgejo-Signature": _hex()}, "forgejo"),
        ({"X-Signature": f"sha256={_hex()}"}, "generic"),
    ],
)
def test_valid_signatures_of_each_provider(headers: dict[str, str], provider: str) -> None:
    assert webhook.provider_of(headers) == provider
    assert webhook.signature_ok(provider, headers, BODY, SECRET)
    if provider != "gitlab":  # GitLab's token is the secret itself: it does not sign the body
        assert not webhook.signature_ok(provider, headers, BODY + b" ", SECRET)  # another body
    assert not webhook.signature_ok(provider, headers, BODY, b"other")  # another secret
    assert not webhook.signature_ok(provider, headers, BODY, b"")  # no secret: nothing passes


@pytest.mark.parametrize(
    "provider,headers",
    [
        ("github", {"X-Hub-Signature-256": _hex()}),  # no sha256= prefix
        ("github", {"X-Hub-Signature-256": "sha1=" + _hex()}),
        ("github", {}),
        ("generic", {"X-Signature": _hex()}),
        ("gitlab", {"X-Gitlab-Token": "top-secre"}),
        ("gitlab", {}),
        ("gitea", {"X-Gitea-Signature": ""}),
        ("unknown", {}),
    ],
)
def test_invalid_or_missing_signatures(provider: str, headers: dict[str, str]) -> None:
    assert not webhook.signature_ok(provider, headers, BODY, SECRET)


def test_signature_hex_case_does_not_matter() -> None:
    assert webhook.signature_ok("gitea", {"X-Gitea-Signature": _hex().upper()}, BODY, SECRET)


def test_events_and_delivery_ids() -> None:
    assert webhook.event_of("gitlab", {"X-Gitlab-Event": "Push Hook"}) == "push"
    assert webhook.event_of("gitlab", {"X-Gitlab-Event": "Tag Push Hook"}) == "tag_push"
    assert webhook.event_of("github", {"X-GitHub-Event": "ping"}) == "ping"
    assert webhook.event_of("generic", {}) == "push"
    assert webhook.delivery_id("github", {"X-GitHub-Delivery": "abc"}, BODY) == "github:abc"
    assert webhook.delivery_id("gitlab", {"Idempotency-Key": "k"}, BODY) == "gitlab:k"
    # without an id, the same body is the same delivery
    assert webhook.delivery_id("generic", {}, BODY) == webhook.delivery_id("generic", {}, BODY)
    assert webhook.delivery_id("generic", {}, BODY) != webhook.delivery_id("generic", {}, BODY + b" ")


def test_decisions() -> None:
    assert webhook.decide("push", {"ref": "refs/heads/main"}, "main").fetch
    assert webhook.decide("push", {}, "main").fetch  # a generic trigger without a ref
    other = webhook.decide("push", {"ref": "refs/heads/mainline"}, "main")
    assert not other.fetch and other.status == 200 and other.result == "ignored"
    assert not webhook.decide("push", {"ref": "refs/tags/main"}, "main").fetch
    assert not webhook.decide("tag_push", {"ref": "refs/heads/main"}, "main").fetch
    assert webhook.decide("ping", None, "main").status == 200
    assert webhook.decide("push", [1], "main").status == 400


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    warning = info


def test_receiver_fetches_once_per_delivery_and_refuses_big_bodies() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    fetches: list[int] = []
    log = _Log()
    receiver = webhook.Receiver(SECRET, lambda: "main", lambda: fetches.append(1), log)

    async def run() -> list[int]:
        async with TestClient(TestServer(receiver.app())) as client:
            statuses = []
            headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "one", "X-Hub-Signature-256": f"sha256={_hex()}"}
            for _ in range(3):
                statuses.append((await client.post("/hook", data=BODY, headers=headers)).status)
            bad = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": "two"}
            statuses.append((await client.post("/", data=BODY, headers=bad)).status)
            big = b"x" * (webhook.MAX_BODY + 1)
            statuses.append((await client.post("/", data=big, headers=headers)).status)

            async def chunks() -> Any:
                for _ in range(20):
                    yield b"y" * 65536

            statuses.append((await client.post("/", data=chunks(), headers=headers)).status)
            return statuses

    assert asyncio.run(run()) == [202, 200, 200, 401, 413, 413]
    assert fetches == [1]  # the replays fetched nothing more
    assert [kw["result"] for _, kw in log.lines] == [
        "accepted",
        "duplicate",
        "duplicate",
        "unauthorized",
        "too_large",
        "too_large",
    ]


# -- sd_notify -------------------------------------------------------------------------------------
def test_notify_socket_addresses() -> None:
    assert sdnotify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert sdnotify.socket_address("@abstract") == "\0abstract"
    assert sdnotify.socket_address("vsock:2:1") is None
    assert sdnotify.socket_address("@") is None
    assert not sdnotify.notify("READY=1", env={})


def test_notify_sends_one_datagram_to_an_abstract_socket() -> None:
    name = f"gitship-unit-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        assert sdnotify.notify("READY=1\nSTATUS=ok", env={"NOTIFY_SOCKET": "@" + name})
        assert s.recv(100) == b"READY=1\nSTATUS=ok"
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "@" + name})  # gone: no error


def test_status_text() -> None:
    assert sdnotify.status_text({}).startswith("Starting")
    ready = {"status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:abc"}
    assert sdnotify.status_text({"ready": ready}) == "Ready: Applied revision: main@sha1:abc"
    bad = {"status": "False", "reason": "ValidationFailed", "message": "revision x\nrejected"}
    text = sdnotify.status_text({"ready": bad, "lastAppliedRevision": "a" * 40})
    assert text == f"Not ready (ValidationFailed): revision x rejected (applied revision: {'a' * 12})"


# -- the systemd unit ------------------------------------------------------------------------------
def _spec(**kw: Any) -> systemd.UnitSpec:
    base: dict[str, Any] = dict(
        command=["/usr/bin/gitship", "up", "https://example.com/r.git", "--state-dir", "/var/lib/gitship"],
        state_dir="/var/lib/gitship",
        source="https://example.com/r.git",
    )
    return systemd.UnitSpec(**{**base, **kw})


def _unit(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_unit_content() -> None:
    u = _unit(systemd.render(_spec(timeout_stop=95)))
    assert u["Type"] == ["notify"] and u["Restart"] == ["on-failure"] and u["KillMode"] == ["process"]
    assert u["TimeoutStopSec"] == ["95"] and u["WorkingDirectory"] == ["/var/lib/gitship"]
    assert u["StateDirectory"] == ["gitship"] and u["WantedBy"] == ["multi-user.target"]
    assert u["StandardOutput"] == ["journal"] and u["StandardError"] == ["journal"]
    assert u["ExecStart"] == ["/usr/bin/gitship up https://example.com/r.git --state-dir /var/lib/gitship"]
    assert "GITSHIP_STATE_DIR=/var/lib/gitship" in u["Environment"]
    user = _unit(systemd.render(_spec(user=True, state_dir="/home/u/.gitship", docker=True)))
    assert user["WantedBy"] == ["default.target"] and "StateDirectory" not in user
    assert "After" not in user  # a user manager has no network-online.target nor docker.service
    system = _unit(systemd.render(_spec(docker=True)))
    assert system["After"] == ["network-online.target docker.service"] == system["Wants"]
    spaced = _unit(systemd.render(_spec(state_dir="/srv/git ship/100%")))
    assert spaced["WorkingDirectory"] == ["/srv/git ship/100%%"]
    assert '"GITSHIP_STATE_DIR=/srv/git ship/100%%"' in spaced["Environment"]


def test_exec_start_quoting() -> None:
    assert systemd.quote("/srv/repo") == "/srv/repo"
    assert systemd.quote("a b") == '"a b"'
    assert systemd.quote('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert systemd.quote("50%") == "50%%"
    assert systemd.quote("$HOME") == '"$$HOME"'
    with pytest.raises(ValueError):
        systemd.quote("a\nb")


def test_stop_timeout_covers_the_longest_grace_period() -> None:
    assert systemd.stop_timeout([]) == systemd.DEFAULT_GRACE + systemd.STOP_MARGIN
    assert systemd.stop_timeout([5, 10]) == 30 + systemd.STOP_MARGIN  # Kubernetes' default is the floor
    assert systemd.stop_timeout([120.5]) == 121 + systemd.STOP_MARGIN
    objs = [
        {"kind": "Pod", "spec": {"terminationGracePeriodSeconds": 90}},
        {"kind": "Deployment", "spec": {"template": {"spec": {"terminationGracePeriodSeconds": 300}}}},
        {
            "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 7}}}}},
        },
        {"kind": "Service", "spec": {}},
    ]
    assert sorted(grace_periods(objs)) == [7.0, 90.0, 300.0]


def test_unit_paths() -> None:
    assert systemd.unit_path(False, "/root") == "/etc/systemd/system/gitship.service"
    assert systemd.unit_path(True, "/home/u") == "/home/u/.config/systemd/user/gitship.service"


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["repo", "--interval", "5", "--decryption-key-file", "k.txt", "--allow-host-path=data", "--path", "apps"]
    assert absolute_args(args, "repo", False) == [
        f"{tmp_path}/repo",
        "--interval",
        "5",
        "--decryption-key-file",
        f"{tmp_path}/k.txt",
        f"--allow-host-path={tmp_path}/data",
        "--path",
        "apps",  # inside the repository: stays as given
    ]
    url = ["--branch", "main", "https://example.com/r.git"]
    assert absolute_args(url, url[2], True) == url


def test_service_install_writes_a_unit_that_systemd_analyze_accepts(tmp_path: Path) -> None:
    import sys

    repo = tmp_path / "repo"
    repo.mkdir()
    unit = tmp_path / "gitship.service"
    p = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "service", "install", "--unit-file", str(unit),
         "--state-dir", str(tmp_path / "state"), str(repo), "--interval", "10", "--metrics-addr", "127.0.0.1:9465"],
        capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[2]),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    u = _unit(unit.read_text())
    exec_start = u["ExecStart"][0].split()
    assert exec_start[exec_start.index("up") + 1 :] == [
        str(repo),
        "--interval",
        "10",
        "--metrics-addr",
        "127.0.0.1:9465",
        "--state-dir",
        str(tmp_path / "state"),
    ]
    assert u["WorkingDirectory"] == [str(tmp_path / "state")]
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert str(unit) not in check.stderr  # no warning about the unit itself


def test_service_install_refuses_a_typo_in_the_up_options(tmp_path: Path) -> None:
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "service", "install", "--print", str(tmp_path), "--intervall", "1"],
        capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[2]),
    )  # fmt: skip
    assert p.returncode == 2 and "--intervall" in p.stderr


def test_unit_mode_is_private_when_the_command_line_holds_a_secret() -> None:
    base = ["/usr/bin/gitship", "up", "/srv/repo", "--interval", "10"]
    assert not systemd.carries_secrets(base) and systemd.unit_mode(base) == 0o644
    slack = "slack+https://hooks.slack.com/services/T0/B0/XXXXSECRET"
    assert systemd.unit_mode([*base, "--notify", slack]) == 0o600
    assert systemd.unit_mode([*base, f"--notify={slack}"]) == 0o600
    assert systemd.unit_mode(["/usr/bin/gitship", "up", "https://user:pw@git.example.com/r.git"]) == 0o600
    assert systemd.unit_mode(["/usr/bin/gitship", "up", "https://TOKEN@git.example.com/r.git"]) == 0o600
    assert systemd.unit_mode(["/usr/bin/gitship", "up", "ssh://git@git.example.com/r.git"]) == 0o644
    assert systemd.written_by_gitship(systemd.render(_spec()))
    assert not systemd.written_by_gitship("[Unit]\nDescription=someone else's\n")


def _service(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "service", *args],
        capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[2]), env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_service_install_mode_and_uninstall(tmp_path: Path) -> None:
    repo, state = tmp_path / "repo", tmp_path / "state"
    repo.mkdir()
    unit = tmp_path / "units" / "gitship.service"
    unit.parent.mkdir()
    p = _service("install", "--unit-file", str(unit), "--state-dir", str(state), str(repo))
    assert p.returncode == 0, p.stderr
    assert unit.stat().st_mode & 0o777 == 0o644
    # again with a Slack URL: the same file becomes readable by its owner alone
    hook = "slack+https://hooks.slack.com/services/T0/B0/SECRET"
    p = _service("install", "--unit-file", str(unit), "--state-dir", str(state), str(repo), "--notify", hook)
    assert p.returncode == 0, p.stderr
    assert unit.stat().st_mode & 0o777 == 0o600 and "SECRET" in unit.read_text()
    assert [f.name for f in unit.parent.iterdir()] == ["gitship.service"]  # no temporary file left
    # an enabled unit has a link in a .wants folder: it goes with the unit
    wants = unit.parent / "multi-user.target.wants"
    wants.mkdir()
    (wants / "gitship.service").symlink_to(unit)
    p = _service("uninstall", "--unit-file", str(unit))
    assert p.returncode == 0, p.stderr
    assert not unit.exists() and not (wants / "gitship.service").is_symlink()
    assert "daemon-reload" in p.stdout and str(state) in p.stdout and state.is_dir()  # the state dir is kept
    again = _service("uninstall", "--unit-file", str(unit))
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_service_uninstall_leaves_a_unit_it_did_not_write(tmp_path: Path) -> None:
    unit = tmp_path / "gitship.service"
    unit.write_text("[Unit]\nDescription=hand-written\n")
    p = _service("uninstall", "--unit-file", str(unit))
    assert p.returncode == 1 and unit.exists()


def test_service_uninstall_with_systemd_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Where systemd is PID 1: disable --now, remove, daemon-reload (systemctl faked on PATH)."""
    import os
    import stat

    from reconciler.cli import main

    home = tmp_path / "home"
    unit = home / ".config" / "systemd" / "user" / "gitship.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(systemd.render(_spec(user=True, state_dir=str(tmp_path / "state"))))
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(systemd, "booted", lambda: True)
    assert main(["service", "uninstall", "--user"]) == 0
    assert calls.read_text().splitlines() == ["--user disable --now gitship.service", "--user daemon-reload"]
    assert not unit.exists()
    assert "Ran systemctl --user daemon-reload" in capsys.readouterr().out


# -- health and metrics ------------------------------------------------------------------------------
def _pod(name: str, phase: str, ready: bool = True, restarts: int = 0, waiting: str | None = None) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "kind": "Pod",
        "metadata": {"namespace": "default", "name": name},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "c", "ready": ready, "restartCount": restarts, "state": state}],
        },
    }


def test_health() -> None:
    assert health.health(_pod("a", "Running")) == "Healthy"
    assert health.health(_pod("a", "Running", ready=False)) == "Progressing"
    assert health.health(_pod("a", "Running", ready=False, waiting="CrashLoopBackOff")) == "Degraded"
    assert health.health(_pod("a", "Failed", ready=False)) == "Degraded"
    assert health.health(_pod("a", "Succeeded", ready=False)) == "Healthy"
    dep = {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2}}
    done = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    assert health.health({**dep, "status": done}) == "Healthy"
    assert health.health({**dep, "status": {**done, "observedGeneration": 1}}) == "Progressing"
    assert health.health({**dep, "status": {**done, "replicas": 3}}) == "Progressing"  # an old pod still there
    stuck = {**done, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}
    assert health.health({**dep, "status": stuck}) == "Degraded"
    assert (
        health.health({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "Degraded"
    )
    assert health.health({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}) == "Progressing"
    assert health.health({"kind": "ConfigMap"}) == "Healthy"


_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _families(collector: Any) -> dict[str, Any]:
    reg = CollectorRegistry()
    reg.register(collector)
    return {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}


def test_state_metrics_from_plain_objects() -> None:
    objects = [
        _pod("a", "Running", restarts=3),
        _pod("b", "Running", ready=False),
        _pod("c", "Failed", ready=False),
        {
            "kind": "Deployment",
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"replicas": 3},
            "status": {"replicas": 3, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1},
        },
        {
            "kind": "Endpoints",
            "metadata": {"namespace": "default", "name": "web"},
            "subsets": [{"addresses": [{"ip": "1"}, {"ip": "2"}], "notReadyAddresses": [{"ip": "3"}]}],
        },
    ]
    meta = {
        "lastAppliedRevision": "f" * 40,
        "source": {"url": "/srv/app.git", "branch": "main"},
        "ready": {"status": "True", "reason": "ReconciliationSucceeded"},
    }
    stats = {"services": {"default/web:80": {"protocol": "TCP", "accepted": 7, "active": 1, "rejected": 0,
                                              "connect_failures": 1, "bytes_up": 10, "bytes_down": 20}}}  # fmt: skip
    fams = _families(metrics.StateCollector(lambda: objects, meta.get, lambda sha: 1234.5, lambda: stats))
    for name, fam in fams.items():
        assert _NAME.match(name) and name.startswith("gitship_"), name
        for s in fam.samples:
            assert all(_LABEL.match(k) for k in s.labels), s
    if_ = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert if_[("gitship_pods", (("phase", "Running"),))] == 2
    assert if_[("gitship_pods", (("phase", "Pending"),))] == 0
    assert if_[("gitship_objects", (("health", "Degraded"), ("kind", "Pod")))] == 1
    assert if_[("gitship_objects", (("health", "Progressing"), ("kind", "Deployment")))] == 1
    assert if_[("gitship_container_restarts_total", (("container", "c"), ("namespace", "default"), ("pod", "a")))] == 3
    assert if_[("gitship_container_ready", (("container", "c"), ("namespace", "default"), ("pod", "b")))] == 0
    dep = (("deployment", "web"), ("namespace", "default"))
    assert [if_[(f"gitship_deployment_{n}", dep)] for n in ("spec_replicas", "status_replicas_updated",
            "status_replicas_ready", "status_replicas_available")] == [3, 2, 1, 1]  # fmt: skip
    assert if_[("gitship_service_endpoints", (("namespace", "default"), ("ready", "true"), ("service", "web")))] == 2
    assert if_[("gitship_service_endpoints", (("namespace", "default"), ("ready", "false"), ("service", "web")))] == 1
    assert if_[("gitship_last_applied_revision_timestamp_seconds", ())] == 1234.5
    assert if_[("gitship_last_applied_revision_info", (("branch", "main"), ("revision", "f" * 40)))] == 1
    assert if_[("gitship_source_ready", (("reason", "ReconciliationSucceeded"),))] == 1
    svc = (("protocol", "TCP"), ("service_port", "default/web:80"))
    assert if_[("gitship_proxy_connections_total", svc)] == 7
    assert if_[("gitship_proxy_bytes_total", (("direction", "up"), *svc))] == 10
    assert if_[("gitship_proxy_active_connections", svc)] == 1


def test_event_metrics_and_the_reconcile_decorator() -> None:
    metrics.notification_failed("slack")
    metrics.webhook_delivery("github", "accepted")

    class Store:
        def get_meta(self, key: str) -> Any:
            return {"url": "https://example.com/team/app.git"}

    class Applier:
        store = Store()

        @metrics.timed_apply
        async def apply_revision(self, ok: bool) -> bool:
            if ok is None:
                raise RuntimeError("boom")
            return ok

    def count(result: str) -> float:
        v = metrics.REGISTRY.get_sample_value(
            "gitship_reconcile_total", {"kind": "GitRepository", "name": "app", "result": result}
        )
        return v or 0.0

    before = {r: count(r) for r in ("success", "failure", "error")}
    assert asyncio.run(Applier().apply_revision(True)) is True
    assert asyncio.run(Applier().apply_revision(False)) is False
    with pytest.raises(RuntimeError):
        asyncio.run(Applier().apply_revision(None))  # type: ignore[arg-type]
    assert {r: count(r) - before[r] for r in before} == {"success": 1, "failure": 1, "error": 1}
    text = generate_latest(metrics.REGISTRY).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"gitship_reconcile_duration_seconds", "gitship_reconcile", "gitship_webhook_deliveries",
            "gitship_notification_failures"} <= names  # fmt: skip
    assert 'gitship_notification_failures_total{url_kind="slack"}' in text
    assert "gitship_reconcile_duration_seconds_bucket{" in text
    assert metrics.source_name({"url": "/srv/repos/site/"}) == "site"
    assert metrics.source_name(None) == "repository"
