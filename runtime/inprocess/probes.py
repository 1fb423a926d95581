"""The in-process runtime's ``exec``: probes and ``gitship exec`` run a local process (in the pod's sandbox if any).

Where it sits: the supervisor builds each probe with ``runtime.probes.make_check`` and
gives it ``exec_check`` (bound to the container's environment and working directory);
``InProcessRuntime.exec`` uses ``run_exec``. httpGet and tcpSocket are shared with the
Docker runtime (runtime/probes.py); the thresholds are runtime/kernel/probe.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping, Sequence

from ..base import ExecResult


def resolve_exe(argv0: str, env: Mapping[str, str], cwd: str | None) -> str | None:
    if "/" in argv0:
        p = argv0 if os.path.isabs(argv0) else os.path.join(cwd or os.getcwd(), argv0)
        return p if os.access(p, os.X_OK) else None
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


async def run_exec(
    argv: list[str], env: Mapping[str, str], cwd: str | None, timeout: float, enter: Sequence[str] = ()
) -> ExecResult:
    """Run argv (no shell) in its own session with env and cwd; capture output.

    ``enter``: a prefix that runs it in the pod's sandbox (nsenter ... --); argv[0] is
    looked up on the host first (the sandbox shares the host's files).
    Raises FileNotFoundError if argv[0] cannot be found and asyncio.TimeoutError
    (after killing the whole process group) on timeout.
    """
    if not argv:
        raise FileNotFoundError("empty command")
    exe = resolve_exe(argv[0], env, cwd)
    if exe is None:
        raise FileNotFoundError(f'exec: "{argv[0]}": executable file not found in $PATH')
    proc = await asyncio.create_subprocess_exec(
        *enter,
        exe,
        *argv[1:],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        raise
    rc = proc.returncode if proc.returncode is not None else -1
    if rc < 0:
        rc = 128 - rc
    return ExecResult(rc, out, err)


async def exec_check(
    argv: list[str], env: Mapping[str, str], cwd: str | None, timeout: float, enter: Sequence[str] = ()
) -> tuple[bool, str]:
    """One exec probe attempt: exit 0 is success."""
    try:
        r = await run_exec(argv, env, cwd, timeout, enter)
    except asyncio.TimeoutError:
        return False, f"command {argv!r} timed out after {timeout:g}s"
    except OSError as e:
        return False, str(e)
    if r.exit_code == 0:
        return True, "exec probe succeeded"
    tail = (r.stdout + r.stderr).decode(errors="replace").strip()[-200:]
    return False, f"command {argv!r} exited with {r.exit_code}" + (f": {tail}" if tail else "")
