"""Fixtures that build real git repositories and run the real `gitship` CLI and daemon.

Nothing here mocks git, processes or sockets. Waiting is by polling with generous
deadlines (``wait_for``), never by fixed sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# The CLI and the daemons the tests start run from bytecode as on a user's machine: with
# PYTHONDONTWRITEBYTECODE set, each of the suite's thousands of `gitship` calls compiled ~200 modules
# again (~0.1 s of CPU a call on this project's CI machine).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# Property-based tests: the same examples on every run (a flaky test blocks every landing), no
# per-example deadline (a loaded 2-core CI machine is slow; timing is bench/'s business). A local
# run that explores new examples: GITSHIP_FUZZ_EXAMPLES=2000 (tests/unit/fuzzing.py) or
# GITSHIP_HYPOTHESIS_RANDOM=1; a failure it finds becomes a test of its own.
RANDOM = bool(os.environ.get("GITSHIP_HYPOTHESIS_RANDOM") or os.environ.get("GITSHIP_FUZZ_EXAMPLES"))
settings.register_profile("gitship", deadline=None, derandomize=not RANDOM)
settings.load_profile("gitship")
TEMPLATE = ROOT / "repo-template"

# As root, daemons give their pods sandboxes (own network namespace on a bridge of the test's
# own), as gitship does by default; the template's app binds 0.0.0.0:8080 in every replica,
# which needs them. Without root, pods share the host's network on loopback addresses.
SANDBOXES = os.geteuid() == 0 and all(shutil.which(t) for t in ("unshare", "nsenter", "ip"))
NEEDS_SANDBOXES = "the template's app binds 0.0.0.0:8080 in every replica: that needs pod sandboxes (root)"


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # the condition may raise while things start
            last_exc = e
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or cond}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


async def async_wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """``wait_for`` for tests that run an event loop (the runtimes' own tests)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def pod_ready(pod: dict[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def git(repo: Path | str, *args: str, check: bool = True) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author",
        "GIT_COMMITTER_EMAIL": "author@example.com",
    }
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {p.stderr}")
    return p.stdout.strip()


def commit_file(repo: Path, rel: str, text: str, message: str) -> str:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", rel)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def remove_file(repo: Path, rel: str, message: str) -> str:
    git(repo, "rm", "-q", rel)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


class Gitship:
    """One `gitship up` daemon on a temporary state dir, and the CLI pointed at it."""

    def __init__(self, repo: Path | str, state_dir: Path, extra: list[str] | None = None):
        self.repo = str(repo)
        self.state_dir = str(state_dir)
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "GITSHIP_STATE_DIR": self.state_dir, "PYTHONUNBUFFERED": "1"}

    def net_args(self) -> list[str]:
        """Ranges of this test's own, so tests running side by side never share an IP: on the
        test's bridge (10.x, sandboxes, as root) or on loopback (127.x)."""
        x = 100 + zlib.crc32(self.state_dir.encode()) % 140
        given = self.extra[self.extra.index("--pod-cidr") + 1] if "--pod-cidr" in self.extra else None
        sandboxed = SANDBOXES and "host" not in self.extra and not (given or "").startswith("127.")
        first = 10 if sandboxed else 127
        args = []
        if given is None:
            args += ["--pod-cidr", f"{first}.{x}.0.0/17"]
        if "--service-cidr" not in self.extra:
            args += ["--service-cidr", f"{first}.{x}.128.0/17"]
        if "--dns-addr" not in self.extra and not sandboxed:
            args += ["--dns-addr", "127.0.0.1:0"]
        return args

    def service_cidr(self) -> str:
        args = self.extra + self.net_args()
        return args[args.index("--service-cidr") + 1]

    def start(self, wait_applied: bool = True) -> "Gitship":
        self.log = open(os.path.join(os.path.dirname(self.state_dir), "gitship-up.log"), "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "up",
                self.repo,
                "--state-dir",
                self.state_dir,
                *self.net_args(),
                *([] if "--prune-threshold" in self.extra else ["--prune-threshold", "off"]),  # tests prune freely
                *self.extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=str(ROOT),
            start_new_session=True,
        )
        # The daemon answers on its socket once it has installed its signal handlers and adopted
        # what runs. A socket file alone proves nothing: a daemon killed with -9 leaves one behind.
        wait_for(lambda: self._answers() or self._died(), 60, what="gitship up to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"gitship up exited {self.proc.returncode}: {self.output()}")
        if wait_applied:
            wait_for(lambda: self.status()["status"].get("lastAttemptedRevision"), 60, what="the first revision")
        return self

    def _answers(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(os.path.join(self.state_dir, "gitship.sock"))
            except OSError:
                return False
        return True

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def output(self) -> str:
        path = os.path.join(os.path.dirname(self.state_dir), "gitship-up.log")
        return Path(path).read_text(errors="replace")[-5000:] if os.path.exists(path) else ""

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self) -> None:
        assert self.proc
        self.proc.kill()
        self.proc.wait()

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # the state dir reaches the CLI through GITSHIP_STATE_DIR, as a user would set it
        p = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=str(ROOT),
            timeout=timeout,
            input=input,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"gitship {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def status(self) -> Any:
        return self.json("status")

    def pods(self, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", "pods"] + (["-l", selector] if selector else [])
        return self.json(*args)["items"]

    def running_pods(self, selector: str | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods(selector)
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions", [])
            )
        ]

    def wait_applied(self, sha: str, timeout: float = 30) -> None:
        wait_for(lambda: self.status()["status"]["lastAttemptedRevision"] == sha, timeout, what=f"revision {sha[:7]}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repository made by `gitship init` from repo-template/."""
    if not SANDBOXES:
        pytest.skip(NEEDS_SANDBOXES)
    dest = tmp_path / "repo"
    p = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "init", str(dest)], capture_output=True, text=True, cwd=str(ROOT)
    )
    assert p.returncode == 0, p.stderr
    git(dest, "config", "user.name", "Test Author")
    git(dest, "config", "user.email", "author@example.com")
    return dest


def make_app_repo(
    dest: Path, author: str = "Test Author", email: str = "author@example.com", commit: bool = True
) -> Path:
    """A new repository holding the template's app and gitship.yaml, and no manifests."""
    if not SANDBOXES:
        pytest.skip(NEEDS_SANDBOXES)
    dest.mkdir()
    shutil.copytree(TEMPLATE / "app", dest / "app")
    shutil.copy(TEMPLATE / "gitship.yaml", dest / "gitship.yaml")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", author)
    git(dest, "config", "user.email", email)
    git(dest, "add", "-A")
    if commit:
        git(dest, "commit", "-q", "-m", "start")
    return dest


@pytest.fixture
def empty_repo(tmp_path: Path) -> Path:
    """A repository with only gitship.yaml and the app: tests add their own manifests."""
    return make_app_repo(tmp_path / "repo")


@pytest.fixture
def gitship_factory(tmp_path: Path) -> Iterator[Callable[..., Gitship]]:
    made: list[Gitship] = []

    def make(
        repo: Path | str, extra: list[str] | None = None, start: bool = True, state_dir: Path | None = None
    ) -> Gitship:
        g = Gitship(repo, state_dir or tmp_path / "state", extra)
        made.append(g)
        return g.start() if start else g

    yield make
    for g in made:
        g.stop()
    _kill_leftovers(tmp_path)
    for g in made:
        _remove_network(g.state_dir)


def _remove_network(state_dir: str) -> None:
    """What a daemon killed with -9 leaves in the kernel: sandboxes, its bridge, its nftables table."""
    from reconciler.dataplane import table_name
    from runtime.inprocess.sandbox import sweep
    from runtime.net.bridge import bridge_name, teardown_host_network
    from runtime.net.kernelproxy import delete_table

    if os.geteuid() != 0:
        return
    sweep(os.path.join(state_dir, "runtime"))
    delete_table(table_name(state_dir))
    teardown_host_network(bridge_name(state_dir))


def _kill_leftovers(tmp_path: Path) -> None:
    """No test leaks a process: kill every process group a pod state file under this test still names."""
    for state in tmp_path.glob("**/runtime/pods/*.json"):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        for c in (
            (data.get("containers") or {}).values()
            if isinstance(data.get("containers"), dict)
            else data.get("containers") or []
        ):
            if not isinstance(c, dict):
                continue
            pid = c.get("pid") or (c.get("process") or {}).get("pid")  # the state file's old and new shape
            if pid:
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except OSError:
                    pass
