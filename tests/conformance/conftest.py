"""The runtime conformance suite: what every runtime must do, run against each runtime.

Every test takes the ``runtime`` fixture, a :class:`Harness` for one runtime. The harness
builds runtime instances exactly as that runtime's own tests do, gives pods portable
containers (``busybox sh -c SCRIPT``: the host's busybox in-process, the test image's
busybox under Docker), and after the test removes whatever a pod left behind.

Adding a runtime is one entry in :data:`RUNTIMES` and its harness class (a factory taking
the test's ``tmp_path``). A runtime whose engine does not answer is skipped with the
reason printed.

Waiting is by polling with generous deadlines (``wait_for``), never by fixed sleeps.
Addresses are loopback only: in-process pods get a /24 of 127.77.0.0/16, a range only
this suite uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.base import Runtime
from tests.conftest import ROOT
from tests.conftest import async_wait_for as wait_for

__all__ = ["Harness", "Recorder", "RUNTIMES", "wait_for", "run", "ready", "cstatus", "waiting_reason", "http_get"]

# The image every conformance container names. Docker runs it (busybox with every applet);
# the in-process runtime runs the container's command on the host and ignores the image.
IMAGE = "gitship-test/kubia:v1"
HTTP_PORT = 8080


# ----------------------------------------------------------------------------- small helpers


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one test body on a fresh event loop (the runtimes' own tests do the same)."""
    return asyncio.run(coro)


def ready(st: dict[str, Any] | None) -> bool:
    """The pod's Ready condition is True."""
    return bool(st) and any(c["type"] == "Ready" and c["status"] == "True" for c in st["conditions"])  # type: ignore[index]


def cstatus(st: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """One container's status in a PodStatus."""
    return next(c for c in (st or {}).get("containerStatuses", []) if c["name"] == name)


def waiting_reason(st: dict[str, Any] | None, name: str) -> str | None:
    return cstatus(st, name)["state"].get("waiting", {}).get("reason") if st else None


def http_get(ip: str, port: int = HTTP_PORT, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=5) as r:
        return r.read().decode()


class Recorder:
    """The ``on_change`` callback: records every uid it is called with, and the status then."""

    def __init__(self) -> None:
        self.rt: Runtime | None = None
        self.seen: list[tuple[str, dict[str, Any] | None]] = []

    def __call__(self, uid: str) -> None:
        self.seen.append((uid, self.rt.status(uid) if self.rt is not None else None))

    def count(self, uid: str) -> int:
        return sum(1 for u, _ in self.seen if u == uid)

    def readiness(self, uid: str) -> list[bool]:
        """The pod's Ready condition at each call for ``uid``."""
        return [ready(st) for u, st in self.seen if u == uid and st]

    def reasons(self, uid: str, container: str) -> list[str]:
        """Distinct successive waiting reasons the callback saw for one container."""
        out: list[str] = []
        for u, st in self.seen:
            if u == uid and st:
                r = waiting_reason(st, container)
                if r and (not out or out[-1] != r):
                    out.append(r)
        return out


# ----------------------------------------------------------------------------- pods


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A container running a POSIX sh script under busybox; call applets as ``busybox APPLET``."""
    return {"name": name, "image": IMAGE, "command": ["busybox", "sh", "-c", script], **extra}


def web(name: str = "web", flag: bool = False, **extra: Any) -> dict[str, Any]:
    """An HTTP server on $POD_IP:8080 serving ./$POD_NAME/ in its working directory, written
    at each start: with ``flag`` a file ``flag`` (else it removes it), then ``index.html``
    saying the pod's name.
    SIGTERM stops it with exit code 0 at once (as PID 1 in a container, too)."""
    script = (
        "trap 'kill $pid 2>/dev/null; exit 0' TERM; "
        'd="$POD_NAME"; busybox mkdir -p "$d"; '
        + ('echo ok > "$d/flag"; ' if flag else 'busybox rm -f "$d/flag"; ')
        + 'echo "hello from $POD_NAME" > "$d/index.html"; '
        + f'busybox httpd -f -p "$POD_IP:{HTTP_PORT}" -h "$d" & pid=$!; '
        + "echo serving; wait $pid"
    )
    return sh(name, script, ports=[{"name": "http", "containerPort": HTTP_PORT}], **extra)


# A loop that exits 0 at once on SIGTERM (``wait`` returns when the trap fires).
POLITE = "trap 'echo got TERM; exit 0' TERM; echo started; while :; do busybox sleep 1 & wait $!; done"
# A loop that ignores SIGTERM: only SIGKILL ends it.
STUBBORN = "trap '' TERM; echo started; while :; do busybox sleep 1; done"


def trapping(name: str, script: str) -> dict[str, Any]:
    """A container running ``script`` (one of the loops above) that is Ready only once its shell
    has set its TERM trap (it writes ./$POD_NAME.trapped after the trap): a test that stops it
    then knows the signal meets the trap, not a shell still starting."""
    script = script.replace("echo started;", 'echo started; echo > "$POD_NAME.trapped";', 1)
    probe = {"exec": {"command": ["busybox", "sh", "-c", 'test -f "$POD_NAME.trapped"']}, "periodSeconds": 1}
    return sh(name, script, readinessProbe=probe)


# ----------------------------------------------------------------------------- harnesses


class Harness:
    """One runtime under test. Subclasses say how to build it and how to find leftovers."""

    name = "abstract"
    # where the runtime writes a container's output to a file (``log_path`` is not None)
    log_file = False

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state_dir = str(tmp_path / "state")
        self.uids: set[str] = set()
        self.opened: list[Runtime] = []

    # -- to override

    def kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON-able) shared by every instance of this harness:
        a new instance with the same kwargs is the same runtime after a crash."""
        raise NotImplementedError

    @staticmethod
    def build(state_dir: str, kwargs: dict[str, Any]) -> Runtime:
        raise NotImplementedError

    def leftovers(self, uids: set[str]) -> list[str]:
        """What still runs for these pod uids (processes, containers), described for a message."""
        raise NotImplementedError

    def remove_leftovers(self) -> None:
        raise NotImplementedError

    # -- shared

    def new(self, **kw: Any) -> Runtime:
        """A new runtime instance on this harness's state (dir, instance label)."""
        rt = self.build(self.state_dir, {**self.kwargs(), **kw})
        self.opened.append(rt)
        return rt

    async def open(self, **kw: Any) -> tuple[Runtime, Recorder]:
        """A new instance, started: (runtime, its on_change recorder)."""
        rt = self.new(**kw)
        rec = Recorder()
        rec.rt = rt
        await rt.start(rec)
        return rt, rec

    def pod(
        self, name: str, containers: list[dict[str, Any]], restart: str = "Always", grace: float = 5
    ) -> dict[str, Any]:
        uid = str(uuid.uuid4())
        self.uids.add(uid)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": uid, "labels": {"app": name}},
            "spec": {"containers": containers, "restartPolicy": restart, "terminationGracePeriodSeconds": grace},
        }

    def crash_child(
        self, pod: dict[str, Any], objects: list[dict[str, Any]] | None = None, **kw: Any
    ) -> subprocess.Popen[str]:
        """A separate Python process that starts this runtime, creates ``pod`` and prints one
        JSON line (the pod's status) once the pod is Running and ready; the test kills it -9.
        ``objects`` (ConfigMaps, claims ...) are given to the runtime (set_config_objects) first."""
        spec = {
            "harness": self.name,
            "stateDir": self.state_dir,
            "kwargs": {**self.kwargs(), **kw},
            "pod": pod,
            "objects": objects or [],
        }
        return subprocess.Popen(
            [sys.executable, "-m", "tests.conformance.crashchild", json.dumps(spec)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
            start_new_session=True,
        )


class InProcessHarness(Harness):
    name = "inprocess"
    log_file = True

    def __init__(self, tmp_path: Path) -> None:
        if shutil.which("busybox") is None:  # the containers' commands are busybox applets
            pytest.skip("the in-process conformance tests run `busybox`, which is not on PATH")
        super().__init__(tmp_path)

    def kwargs(self) -> dict[str, Any]:
        # a /24 of this suite's 127.77.0.0/16 per test, so runs side by side never share an IP
        n = zlib.crc32(self.state_dir.encode()) % 256
        return {
            "pod_cidr": f"127.77.{n}.0/24",
            "repo_dir": str(self.tmp_path),
            "backoff_base": 0.2,
            "backoff_max": 1.0,
        }

    @staticmethod
    def build(state_dir: str, kwargs: dict[str, Any]) -> Runtime:
        from runtime.inprocess import InProcessRuntime

        return InProcessRuntime(state_dir, **kwargs)

    def _pids(self, uids: set[str]) -> list[int]:
        from runtime.inprocess import procid

        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                st = procid.read_stat(int(entry))
                if st is None or st[0] in ("Z", "X"):
                    continue
                with open(f"/proc/{entry}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                if any(
                    kv.startswith(f"{procid.UID_ENV}=".encode()) and kv.split(b"=", 1)[1].decode() in uids for kv in env
                ):
                    out.append(int(entry))
        return out

    def leftovers(self, uids: set[str]) -> list[str]:
        return [f"pid {pid}" for pid in self._pids(uids)]

    def remove_leftovers(self) -> None:
        for pid in self._pids(self.uids):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


class DockerHarness(Harness):
    name = "docker"
    NETWORK = "gitship-test"

    def __init__(self, tmp_path: Path) -> None:
        from tests.dockerimages import docker_client_or_skip, ensure_test_images

        self.client = docker_client_or_skip()
        ensure_test_images(self.client)
        super().__init__(tmp_path)
        self.instance = "conformance-" + uuid.uuid4().hex[:10]

    def kwargs(self) -> dict[str, Any]:
        return {"instance": self.instance, "network": self.NETWORK, "backoff_base": 0.2, "backoff_max": 1.0}

    @staticmethod
    def build(state_dir: str, kwargs: dict[str, Any]) -> Runtime:
        from runtime.docker import DockerRuntime

        return DockerRuntime(state_dir, **kwargs)

    def _containers(self, uids: set[str] | None = None) -> list[Any]:
        from runtime.docker import LABEL_INSTANCE

        found = self.client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={self.instance}"})
        if uids is None:
            return list(found)
        return [c for c in found if c.labels.get("gitship.pod.uid") in uids]

    def leftovers(self, uids: set[str]) -> list[str]:
        return [f"container {c.name}" for c in self._containers(uids)]

    def remove_leftovers(self) -> None:
        for c in self._containers():
            with contextlib.suppress(Exception):
                c.remove(force=True)
        self.client.close()


# One line per runtime: its name and its harness factory (given the test's tmp_path).
RUNTIMES: dict[str, Callable[[Path], Harness]] = {
    "inprocess": InProcessHarness,
    "docker": DockerHarness,
}
MARKS = {"docker": [pytest.mark.docker], "swarm": [pytest.mark.docker]}
if os.environ.get("GITSHIP_CONFORMANCE_SWARM") == "1":  # opt-in: it starts a 3-node Swarm (tests/swarmlab.py)
    from tests.conformance.swarmharness import SwarmHarness, swarm_conformance_lab  # noqa: F401 (a fixture)

    RUNTIMES["swarm"] = SwarmHarness


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, [])) for name in RUNTIMES])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """A :class:`Harness` for each runtime in :data:`RUNTIMES` (a test the runtime does not support,
    by its harness's ``unsupported``, is skipped with the reason)."""
    factory = RUNTIMES[request.param]
    why = getattr(factory, "unsupported", {}).get(getattr(request.node, "originalname", request.node.name))
    if why:
        pytest.skip(f"{request.param}: {why}")
    if request.param == "swarm":
        request.getfixturevalue("swarm_conformance_lab")
    h = factory(tmp_path)
    try:
        yield h
    finally:
        h.remove_leftovers()
