"""Process identity and the per-pod state files the in-process runtime adopts from.

Where it sits: the supervisor (supervisor.py) writes ``{state_dir}/pods/{uid}.json``
whenever a pod's containers change (launch, exit, restart, readiness), and reads
them back in ``start()`` after gitship was restarted (or killed with -9).

A pid alone does not identify a process: pids are reused. A recorded process is
ours only if all of these hold:

* the machine has not rebooted since (``/proc/sys/kernel/random/boot_id``);
* ``/proc/<pid>/stat`` field 22 (start time in clock ticks since boot) is the one
  recorded when we started it;
* the process is not a zombie;
* ``/proc/<pid>/environ`` does not name another pod (``GITSHIP_POD_UID=<other uid>``).
  Its absence proves nothing: programs that set their process title (redis-server,
  postgres, nginx) write over the memory ``environ`` shows, so pid + start time + boot
  id is the identity and the environment only rules out a pod mix-up.

Everything here is synchronous and small; Linux only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

UID_ENV = "GITSHIP_POD_UID"
STATE_VERSION = 1


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_ticks: int
    boot_id: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "startTicks": self.start_ticks, "bootId": self.boot_id}

    @classmethod
    def from_json(cls, d: Any) -> ProcessIdentity | None:
        try:
            return cls(int(d["pid"]), int(d["startTicks"]), str(d["bootId"]))
        except (KeyError, TypeError, ValueError):
            return None


_boot_id_cache: str | None = None


def boot_id() -> str:
    global _boot_id_cache
    if _boot_id_cache is None:
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
                _boot_id_cache = f.read().strip()
        except OSError:
            _boot_id_cache = ""
    return _boot_id_cache


def read_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, process group id, start time in ticks) of a pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # comm (field 2) is in parentheses and may contain spaces or ')': split at the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        # rest[0] is field 3 (state), so field n is rest[n - 3].
        return rest[0].decode(), int(rest[2]), int(rest[19])
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    st = read_stat(pid)
    return st[2] if st else None


def identity_of(pid: int) -> ProcessIdentity | None:
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    return ProcessIdentity(pid, ticks, boot_id())


def environ_value(pid: int, key: str) -> str | None:
    """The value of ``key`` in the process's /proc/<pid>/environ; None if absent or unreadable
    (a process that rewrote its title has overwritten that memory)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return None
    prefix = f"{key}=".encode()
    for entry in data.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def is_ours(ident: ProcessIdentity, uid: str) -> bool:
    """Whether the live process ``ident.pid`` is the one we recorded for pod ``uid``."""
    if ident.boot_id != boot_id():
        return False
    st = read_stat(ident.pid)
    if st is None:
        return False
    state, _pgrp, ticks = st
    if ticks != ident.start_ticks or state in ("Z", "X"):
        return False
    other = environ_value(ident.pid, UID_ENV)
    return other is None or other == uid


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    out: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        st = read_stat(int(name))
        if st and st[1] == pgid and st[0] not in ("Z", "X"):
            out.append(int(name))
    return out


# --- state files ------------------------------------------------------------


def pods_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "pods")


def state_path(state_dir: str, uid: str) -> str:
    return os.path.join(pods_dir(state_dir), f"{uid}.json")


def atomic_write_json(path: str, data: Any) -> None:
    # json.dumps, not json.dump: dump encodes in Python, piece by piece (a pod's state took about
    # 2 ms of the daemon's loop); dumps is one call into the C encoder
    text = json.dumps(data, separators=(",", ":"), default=str)
    d = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    except FileNotFoundError:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_state(state_dir: str, uid: str, data: dict[str, Any]) -> None:
    atomic_write_json(state_path(state_dir, uid), {"version": STATE_VERSION, **data})


def remove_state(state_dir: str, uid: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_path(state_dir, uid))


def read_states(state_dir: str) -> dict[str, dict[str, Any]]:
    """{uid: state dict} of every readable state file; unreadable ones are skipped."""
    out: dict[str, dict[str, Any]] = {}
    d = pods_dir(state_dir)
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            with open(os.path.join(d, name), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("pod"), dict):
            out[name[: -len(".json")]] = data
    return out
