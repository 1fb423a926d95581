"""What every part of the Docker runtime shares: labels, constants, small helpers, the per-pod state."""

from __future__ import annotations

import asyncio
import io
import subprocess
import tarfile
from dataclasses import dataclass, field
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import requests.exceptions

from runtime.base import Pod, RuntimeError_
from runtime.kernel import Backoff
from runtime.probes import ProbeWorker

LABEL_INSTANCE = "gitship.instance"
LABEL_UID = "gitship.pod.uid"
LABEL_NAME = "gitship.pod.name"
LABEL_NAMESPACE = "gitship.pod.namespace"
LABEL_CONTAINER = "gitship.container"
LABEL_OWNER = "gitship.owner"
LABEL_SPEC = "gitship.pod.spec"
LABEL_ATTEMPT = "gitship.attempt"
SANDBOX = "POD"
PAUSE_IMAGE = "gitship/pause:1"
BUSYBOX = "/usr/bin/busybox"
SANDBOX_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done'
RESYNC_SECONDS = 5.0
EXPOSE_DEV = "lo"
EXPOSE_LABEL = "lo:gitship"


def docker_time(s: str | None) -> str | None:
    """Docker's '2026-11-25T20:00:00.123456789Z' -> '2026-11-25T20:00:00Z' (None for zero)."""
    if not s or s.startswith("0001-"):
        return None
    return s[:19] + "Z"


def split_ref(image: str) -> tuple[str, str | None]:
    """(repository, tag) to pull; a reference with a digest is pulled as written (tag None)."""
    if "@" in image:
        return image, None
    head, _, last = image.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (head + "/" + name if head else name), tag
    return image, "latest"


def busybox_rootfs_tar(files: dict[str, tuple[bytes, int]] | None = None, busybox: str = BUSYBOX) -> bytes:
    """A tar of a tiny root filesystem: /bin/busybox with every applet linked in /bin,
    empty /tmp /etc /proc /sys /dev, plus ``files`` ({path: (content, mode)})."""
    applets = subprocess.run([busybox, "--list"], capture_output=True, check=True, text=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(path: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(path)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tar.addfile(ti)

        for d in ("bin", "etc", "proc", "sys", "dev", "root", "var", "www"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        with open(busybox, "rb") as f:
            data = f.read()
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode = len(data), 0o755
        tar.addfile(ti, io.BytesIO(data))
        for a in applets:
            if a == "busybox":
                continue
            ti = tarfile.TarInfo(f"bin/{a}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(ti)
        for path, (content, mode) in (files or {}).items():
            ti = tarfile.TarInfo(path.lstrip("/"))
            ti.size, ti.mode = len(content), mode
            tar.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


class EngineUnreachable(RuntimeError_):
    """The Docker Engine does not answer (yet); the runtime retries with back-off."""


def engine_down(exc: BaseException) -> bool:
    if isinstance(exc, EngineUnreachable):
        return True
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    if isinstance(exc, docker.errors.DockerException) and not isinstance(exc, docker.errors.APIError):
        return True
    return False


@dataclass
class DContainer:
    spec: dict[str, Any]
    name: str
    image: str
    crash: Backoff
    pull: Backoff
    cid: str | None = None
    attempt: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    image_id: str | None = None
    running: bool = False
    ready: bool = False
    started: bool = False
    want_start: bool = True  # (re)create at the next sync
    done: bool = False  # terminated for good (restart policy says no)
    exited_cid: str | None = None  # last container id whose exit was handled
    finished: float | None = None  # monotonic time of the last exit (the crash back-off's event)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    probes: list[ProbeWorker] = field(default_factory=list)
    kill_reason: str | None = None
    previous_cid: str | None = None

    def cancel(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()
        for p in self.probes:
            p.stop()
        self.probes.clear()


@dataclass
class DPod:
    pod: Pod
    uid: str
    name: str
    namespace: str
    containers: dict[str, DContainer]
    start_time: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sandbox_id: str | None = None
    sandbox_attempt: int = 0
    pod_ip: str | None = None
    deleting: bool = False
    delete_task: asyncio.Task[None] | None = None
    sync_pending: bool = False
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_status: str | None = None
    error: str | None = None
    initialized: bool = False  # the init containers completed in this sandbox (runtime/docker/inits.py)

    @property
    def restart_policy(self) -> str:
        return str(self.pod.get("spec", {}).get("restartPolicy", "Always"))

    @property
    def grace(self) -> float:
        g = self.pod.get("spec", {}).get("terminationGracePeriodSeconds")
        return 30.0 if g is None else float(g)
