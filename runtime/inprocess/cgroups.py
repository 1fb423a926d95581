"""Container resources on the in-process runtime: one cgroup per container, OOM kills, and why
limits are not enforced where they cannot be.

Where it sits: the supervisor (supervisor.py) owns one ``ContainerCgroups``; the lifecycle
(lifecycle.py) asks it for the argv prefix that puts a container in its cgroup
(``prepare``) and, when the container's process has ended, whether the kernel OOM-killed in it
(``finish``, which also removes the cgroup). The numbers are the pod kernel's
(runtime/kernel/resources.py: the kubelet's conversions); this module writes them.

Layout
    Under the cgroup gitship itself runs in (so whatever limits the machine puts on gitship
    still hold for its pods, as a nested cgroup manager does), a parent named from the state
    dir, ``gitship-<hash>``; in it a directory per pod uid, in that one per container start
    ``<container>.<restartCount>`` (a fresh cgroup per start, as a container runtime makes a
    new container: its OOM counter starts at zero). cgroup v1: that tree in the memory and the
    cpu hierarchy; cgroup v2 (the unified hierarchy, ``cgroup.controllers`` lists memory and
    cpu): one tree, with the controllers enabled down to it (``cgroup.subtree_control``).
    Only containers that set a cpu or memory limit, or a cpu request, get a cgroup.

Placement
    The container's process enters its cgroup before it execs the container's command: its
    argv starts with ``/bin/sh -c 'echo $$ > .../cgroup.procs ... exec "$@"'``: the shell
    writes its own pid (the Popen pid, the pid the container keeps through exec) and execs
    the rest (``nsenter`` into the pod's sandbox, then the command), so nothing of the
    container runs outside the cgroup even for a moment. No ``preexec_fn`` (unsafe in a
    threaded process). The sandbox's holder process is not in any of them.

OOMKilled
    A container whose cgroup counted an OOM kill (v1 ``memory.oom_control`` ``oom_kill``, v2
    ``memory.events`` ``oom_kill``) ends with reason OOMKilled, as containerd and Docker
    report an OOM event in the container's cgroup; killed by SIGKILL its exit code is 137.

Not enforced
    Not root (and the hierarchy not writable), no cgroup hierarchy with the controller, or a v2
    cgroup that cannot give its controllers to children: the limits are recorded, not
    enforced. ``info()`` says why, and a pod that sets limits gets the condition
    ``gitship.io/ResourcesEnforced`` False with the reason (the reconciler makes a Warning
    event of it, ``gitship describe pod`` shows it under the container's limits).

Cleanup
    A container's cgroup goes when its process has ended (processes it left behind are killed
    first); a pod's tree goes when the pod is deleted; the parent is made by the first container
    that needs it and goes with the last pod; at start, trees of pods the runtime no longer knows
    are swept (adopted pods keep theirs).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..kernel.resources import (
    CgroupLimits,
    cgroup_v1_files,
    cgroup_v2_files,
    container_limits,
    not_enforced_condition,
    qos_class,
)

log = structlog.get_logger("runtime.inprocess")

CONTROLLERS = ("memory", "cpu")
SH = "/bin/sh"
# the wrapper: each argument up to "--" is a cgroup.procs file the shell writes its pid to
WRAPPER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'
_OOM_KILL = re.compile(r"^oom_kill (\d+)$", re.M)


class CgroupError(Exception):
    """A container's cgroup could not be made or given its limits."""


@dataclass(frozen=True)
class Mount:
    root: str  # the path within the hierarchy that is mounted
    point: str  # where
    fstype: str  # cgroup or cgroup2
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts of /proc/self/mountinfo (v1: their controllers from the super options)."""
    out = []
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        opts = frozenset(tail[2].split(",")) if tail[0] == "cgroup" else frozenset()
        out.append(Mount(_unescape(fields[3]), _unescape(fields[4]), tail[0], opts))
    return out


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup: {controller: path}; the v2 entry under "" ."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        names = parts[1].split(",") if parts[1] else [""]
        for name in names:
            out[name] = parts[2]
    return out


def _below(mount: Mount, own: str) -> str:
    """Where the cgroup at ``own`` (a hierarchy path) is, under ``mount``."""
    root = mount.root.rstrip("/")
    if own == root or own.startswith(root + "/"):
        rel = own[len(root) :]
    else:  # not visible through this mount (another cgroup namespace): its root
        rel = ""
    return mount.point.rstrip("/") + rel


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


@dataclass
class Layout:
    """What detection found: the cgroup version, per controller the base directory (the cgroup
    gitship runs in) and, for what cannot be used, why."""

    version: int | None = None
    bases: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def detect(mounts: list[Mount], own: Mapping[str, str], euid: int) -> Layout:
    """Which hierarchy to use and where, from the mounts and the cgroups gitship is in (reads
    ``cgroup.controllers`` and checks that the base directories are writable)."""
    unified = [m for m in mounts if m.fstype == "cgroup2"]
    for m in unified:
        base = _below(m, own.get("", "/"))
        try:
            available = set(_read(os.path.join(base, "cgroup.controllers")).split())
        except OSError:
            continue
        if available & set(CONTROLLERS):
            lay = Layout(2)
            for c in CONTROLLERS:
                if c in available:
                    lay.bases[c] = base
                else:
                    lay.unavailable[c] = f"the {c} controller is not enabled in cgroup {base}"
            return _writable(lay, euid)
    lay = Layout(1)
    for c in CONTROLLERS:
        m1 = next((m for m in mounts if m.fstype == "cgroup" and c in m.controllers), None)
        if m1 is None:
            lay.unavailable[c] = f"no cgroup hierarchy with the {c} controller is mounted"
        else:
            lay.bases[c] = _below(m1, own.get(c, "/"))
    if not lay.bases:
        lay.version = None
    return _writable(lay, euid)


def _writable(lay: Layout, euid: int) -> Layout:
    for c, base in list(lay.bases.items()):
        if not os.access(base, os.W_OK):
            why = "not running as root" if euid != 0 else "read-only"
            lay.unavailable[c] = f"cgroup {base} is not writable ({why})"
            del lay.bases[c]
    return lay


class ContainerCgroups:
    """The cgroups of one runtime's containers (see the module's docstring)."""

    def __init__(
        self,
        state_dir: str,
        *,
        mountinfo: str = "/proc/self/mountinfo",
        proc_cgroup: str = "/proc/self/cgroup",
        euid: int | None = None,
    ) -> None:
        self.name = "gitship-" + hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:12]
        euid = os.geteuid() if euid is None else euid
        try:
            layout = detect(parse_mountinfo(_read(mountinfo)), parse_proc_cgroup(_read(proc_cgroup)), euid)
        except OSError as e:
            layout = Layout(None, {}, {c: f"cannot read the cgroups: {e.strerror}" for c in CONTROLLERS})
        if not os.access(SH, os.X_OK):
            layout = Layout(None, {}, {c: f"{SH} is missing" for c in CONTROLLERS})
        self.version = layout.version if layout.bases else None
        self.unavailable = layout.unavailable
        # controller -> gitship's parent directory (v2: the same directory for both)
        self.parents = {c: os.path.join(base, self.name) for c, base in layout.bases.items()}

    # -- status ------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cgroup": f"v{self.version}" if self.version else None}
        out["enforced"] = sorted(self.parents)
        if self.unavailable:
            out["notEnforced"] = dict(sorted(self.unavailable.items()))
        return out

    def status_fields(self, pod: Mapping[str, Any], since: str) -> dict[str, Any]:
        """The pod_status arguments about resources: its QoS class, and its not-enforced
        condition if its limits need what is unavailable (``since``: the pod's start)."""
        cond = not_enforced_condition(pod, self.unavailable, since)
        return {"qos_class": qos_class(pod), "extra_conditions": [cond] if cond else []}

    # -- the parent ------------------------------------------------------------------------

    def start(self, keep: set[str]) -> None:
        """Sweep the trees of pods not in ``keep`` (and the parent if that empties it); on cgroup v2
        give the controllers to gitship's children now (a controller that cannot be given is
        unavailable from then on). The parent itself is made by the first container that needs it."""
        if self.version == 2:
            for c, parent in list(self.parents.items()):
                try:
                    self._delegate(os.path.dirname(parent))
                except OSError as e:
                    self.unavailable[c] = f"{e.strerror or e}"
                    del self.parents[c]
        for parent in set(self.parents.values()):
            with contextlib.suppress(OSError):
                for uid in os.listdir(parent):
                    if os.path.isdir(os.path.join(parent, uid)) and uid not in keep:
                        self._remove_tree(uid)
                os.rmdir(parent)  # only if nothing is left in it

    def _delegate(self, directory: str) -> None:
        """cgroup v2: the memory and cpu controllers for the children of ``directory``."""
        wanted = " ".join(f"+{c}" for c in self.parents)
        try:
            _write(os.path.join(directory, "cgroup.subtree_control"), wanted)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise OSError(
                    e.errno,
                    f"cgroup {directory} has processes of its own, so cgroup v2 cannot give its controllers "
                    "to children; run gitship in a cgroup of its own (systemd: Delegate=yes)",
                ) from None
            raise

    # -- one container ----------------------------------------------------------------------

    def _dirs(self, uid: str, name: str, attempt: int) -> dict[str, str]:
        return {c: os.path.join(parent, uid, f"{name}.{attempt}") for c, parent in self.parents.items()}

    def wrap(
        self,
        uid: str,
        name: str,
        attempt: int,
        spec: Mapping[str, Any],
        command: list[str],
        env: Mapping[str, str],
        cwd: str | None,
    ) -> list[str]:
        """``command`` as the container is started: behind the wrapper that puts it in its new
        cgroup, or as it is when the container gets none. Raises CgroupError with the container's
        StartError message (a cgroup that cannot be made, or a command that cannot be executed:
        behind the wrapper it would only fail after the fork, as ``exec`` in a shell)."""
        try:
            prefix = self.prepare(uid, name, attempt, spec)
        except CgroupError as e:
            raise CgroupError(f"cannot make the container's cgroup: {e}") from None
        if prefix and command and not _executable(command[0], env, cwd):
            self.finish(uid, name, attempt)
            raise CgroupError(f"failed to start {command[0]!r} in {cwd!r}: No such file or directory")
        return [*prefix, *command]

    def prepare(self, uid: str, name: str, attempt: int, spec: Mapping[str, Any]) -> list[str]:
        """Make the container's cgroup with its limits; the argv prefix that puts the process in
        it ([] when the container sets nothing or nothing can be enforced). Raises CgroupError."""
        try:
            limits = container_limits(spec)
        except ValueError as e:
            raise CgroupError(str(e)) from None
        needed = {c for c in limits.needs() if c in self.parents}
        if limits.empty or not needed:
            return []
        dirs = {c: d for c, d in self._dirs(uid, name, attempt).items() if c in needed}
        try:
            self._make(dirs, limits)
        except OSError as e:
            self.finish(uid, name, attempt)
            raise CgroupError(f"{e.filename or ''}: {e.strerror or e}".lstrip(": ")) from None
        # memory first: once in a cpu cgroup with a tiny quota, the shell itself runs slowly
        procs = list(dict.fromkeys(os.path.join(dirs[c], "cgroup.procs") for c in CONTROLLERS if c in dirs))
        return [SH, "-c", WRAPPER, "sh", *procs, "--"]

    def _make(self, dirs: Mapping[str, str], limits: CgroupLimits) -> None:
        if self.version == 2:
            d = next(iter(dirs.values()))
            pod_dir = os.path.dirname(d)
            if not os.path.isdir(os.path.dirname(pod_dir)):  # made by the first container, gone with the last pod
                os.makedirs(os.path.dirname(pod_dir))
                self._delegate(os.path.dirname(pod_dir))
            os.makedirs(pod_dir, exist_ok=True)
            self._delegate(pod_dir)
            self._fresh(d)
            for fname, text in cgroup_v2_files(limits).items():
                self._write_limit(os.path.join(d, fname), text)
            self._write_limit(os.path.join(d, "memory.oom.group"), "1")  # the kubelet's choice on v2
            return
        for d in set(dirs.values()):
            self._fresh(d)
        for (ctrl, fname), text in cgroup_v1_files(limits).items():
            if ctrl in dirs:
                self._write_limit(os.path.join(dirs[ctrl], fname), text)

    @staticmethod
    def _fresh(d: str) -> None:
        """A new, empty cgroup at ``d`` (one left over from a start with the same number goes)."""
        if os.path.isdir(d):
            _kill_all(d)
            with contextlib.suppress(OSError):
                os.rmdir(d)
        os.makedirs(d, exist_ok=True)

    @staticmethod
    def _write_limit(path: str, text: str) -> None:
        try:
            _write(path, text)
        except FileNotFoundError:
            # optional files: memsw (swap accounting off), memory.swap.max (no swap), memory.oom.group
            if not path.endswith(("memsw.limit_in_bytes", "swap.max", "oom.group")):
                raise

    def finish(self, uid: str, name: str, attempt: int) -> bool:
        """The container's process has ended: whether an OOM kill happened in its cgroup; the
        cgroup goes (what is left in it is killed first; a busy one stays for the pod's removal)."""
        dirs = self._dirs(uid, name, attempt)
        oom = False
        mem = dirs.get("memory")
        if mem is not None and os.path.isdir(mem):
            oom = oom_kills(mem, self.version or 1) > 0
        for d in set(dirs.values()):
            if os.path.isdir(d):
                _kill_all(d)
                with contextlib.suppress(OSError):
                    os.rmdir(d)
        return oom

    # -- a pod -----------------------------------------------------------------------------

    async def remove_pod(self, uid: str, timeout: float = 5.0) -> bool:
        """Remove the pod's tree, killing what is left in it, and the parent when it was the last
        pod (made again by the next container that needs it); True when the pod's tree is gone."""
        if not self.parents:
            return True
        deadline = time.monotonic() + timeout
        while True:
            if await asyncio.to_thread(self._remove_tree, uid):
                for parent in set(self.parents.values()):  # on the loop's thread, as prepare()
                    with contextlib.suppress(OSError):
                        os.rmdir(parent)
                return True
            if time.monotonic() > deadline:
                log.warning("cgroup_not_removed", uid=uid, cgroups=sorted(self.parents.values()))
                return False
            await asyncio.sleep(0.05)

    def remove_all(self, timeout: float = 5.0) -> None:
        """Remove every pod's tree and the parent, killing what is in them (blocks until they are
        gone or ``timeout``: a test's teardown)."""
        deadline = time.monotonic() + timeout
        for parent in set(self.parents.values()):
            while os.path.isdir(parent):
                with contextlib.suppress(OSError):
                    for uid in os.listdir(parent):
                        if os.path.isdir(os.path.join(parent, uid)):
                            self._remove_tree(uid)
                    os.rmdir(parent)
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)

    def _remove_tree(self, uid: str) -> bool:
        gone = True
        for parent in set(self.parents.values()):
            pod_dir = os.path.join(parent, uid)
            if not os.path.isdir(pod_dir):
                continue
            with contextlib.suppress(OSError):
                for child in os.listdir(pod_dir):
                    d = os.path.join(pod_dir, child)
                    if os.path.isdir(d):
                        _kill_all(d)
                        with contextlib.suppress(OSError):
                            os.rmdir(d)
            try:
                os.rmdir(pod_dir)
            except FileNotFoundError:
                pass
            except OSError:
                gone = False
        return gone


def _executable(prog: str, env: Mapping[str, str], cwd: str | None) -> bool:
    """Whether exec would find ``prog`` (with a slash: relative to ``cwd``; else on the PATH)."""
    if "/" in prog:
        path = os.path.join(cwd or os.getcwd(), prog)
        return os.path.isfile(path) and os.access(path, os.X_OK)
    return shutil.which(prog, path=env.get("PATH", os.defpath)) is not None


def oom_kills(memory_dir: str, version: int) -> int:
    """The OOM kills counted in a memory cgroup (v1 memory.oom_control, v2 memory.events)."""
    fname = "memory.events" if version == 2 else "memory.oom_control"
    try:
        m = _OOM_KILL.search(_read(os.path.join(memory_dir, fname)))
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def _kill_all(d: str) -> None:
    """SIGKILL every process in the cgroup at ``d`` (v2: cgroup.kill where the kernel has it)."""
    kill = os.path.join(d, "cgroup.kill")
    if os.path.exists(kill):
        with contextlib.suppress(OSError):
            _write(kill, "1")
            return
    try:
        pids = [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
