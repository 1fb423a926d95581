"""Container probes (startup, readiness, liveness) for the in-process runtime.

Where it sits: the supervisor starts one ``ProbeWorker`` per probe of a running
container and reacts to its results (spec section 7.4):

* handlers: ``httpGet`` (GET ``scheme://host:port/path``, host defaults to the
  pod IP; status 200-399 is success), ``tcpSocket`` (connect succeeds),
  ``exec`` (argv run with the container's env and working directory; exit 0);
  a timeout is a failure. ``port`` may name a ``containerPort``.
* the first probe runs ``initialDelaySeconds`` after the container started,
  then every ``periodSeconds``;
* results are thresholded like the kubelet's worker: a result only takes
  effect after ``successThreshold`` / ``failureThreshold`` consecutive
  identical outcomes; ``on_result`` is called only when the effective result
  changes.

The httpGet and tcpSocket handlers are shared with the Docker runtime (runtime/probes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..base import ExecResult
from ..probes import MAX_BODY, PROBE_DEFAULTS, USER_AGENT, http_get, next_probe_delay, tcp_check, with_defaults  # noqa: F401


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """A probe port: a number, a numeric string, or the name of one of the container's ports."""
    if isinstance(port, bool):
        raise ValueError(f"invalid port {port!r}")
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for p in container.get("ports") or []:
            if p.get("name") == port and p.get("containerPort") is not None:
                return int(p["containerPort"])
        raise ValueError(f"no containerPort named {port!r}")
    raise ValueError(f"invalid port {port!r}")


# --- handlers -----------------------------------------------------------------


def resolve_exe(argv0: str, env: Mapping[str, str], cwd: str | None) -> str | None:
    if "/" in argv0:
        p = argv0 if os.path.isabs(argv0) else os.path.join(cwd or os.getcwd(), argv0)
        return p if os.access(p, os.X_OK) else None
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


async def run_exec(argv: list[str], env: Mapping[str, str], cwd: str | None, timeout: float) -> ExecResult:
    """Run argv (no shell) in its own session with env and cwd; capture output.

    Raises FileNotFoundError if argv[0] cannot be found and asyncio.TimeoutError
    (after killing the whole process group) on timeout.
    """
    if not argv:
        raise FileNotFoundError("empty command")
    exe = resolve_exe(argv[0], env, cwd)
    if exe is None:
        raise FileNotFoundError(f'exec: "{argv[0]}": executable file not found in $PATH')
    proc = await asyncio.create_subprocess_exec(
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


async def exec_check(argv: list[str], env: Mapping[str, str], cwd: str | None, timeout: float) -> tuple[bool, str]:
    try:
        r = await run_exec(argv, env, cwd, timeout)
    except asyncio.TimeoutError:
        return False, f"command {argv!r} timed out after {timeout:g}s"
    except OSError as e:
        return False, str(e)
    if r.exit_code == 0:
        return True, "exec probe succeeded"
    tail = (r.stdout + r.stderr).decode(errors="replace").strip()[-200:]
    return False, f"command {argv!r} exited with {r.exit_code}" + (f": {tail}" if tail else "")


def make_check(
    probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, env: Mapping[str, str], cwd: str | None
) -> Callable[[], Awaitable[tuple[bool, str]]]:
    """A zero-argument coroutine function running one attempt of the probe's handler."""
    p = with_defaults(probe)
    timeout = float(p["timeoutSeconds"])
    if "httpGet" in p and p["httpGet"] is not None:
        h = p["httpGet"]

        async def check() -> tuple[bool, str]:
            try:
                port = resolve_port(h.get("port"), container)
            except ValueError as e:
                return False, str(e)
            return await http_get(
                h.get("host") or pod_ip,
                port,
                h.get("path") or "/",
                timeout,
                h.get("scheme") or "HTTP",
                h.get("httpHeaders"),
            )

        return check
    if "tcpSocket" in p and p["tcpSocket"] is not None:
        t = p["tcpSocket"]

        async def check() -> tuple[bool, str]:
            try:
                port = resolve_port(t.get("port"), container)
            except ValueError as e:
                return False, str(e)
            return await tcp_check(t.get("host") or pod_ip, port, timeout)

        return check
    if "exec" in p and p["exec"] is not None:
        argv = [str(a) for a in (p["exec"].get("command") or [])]

        async def check() -> tuple[bool, str]:
            return await exec_check(argv, env, cwd, timeout)

        return check

    async def unsupported() -> tuple[bool, str]:
        return False, "probe has no supported handler (exec, httpGet, tcpSocket)"

    return unsupported


class ProbeWorker:
    """Runs one probe of one container incarnation until stopped.

    ``kind`` is "startup", "readiness" or "liveness". ``initial`` is the
    effective result before the first thresholded one (readiness: False,
    liveness: True, startup: None). ``on_result(result, message)`` is called
    when the effective result changes. Startup stops after its first effective
    result; liveness stops after a failure (the container is being killed).
    """

    def __init__(
        self,
        kind: str,
        probe: Mapping[str, Any],
        check: Callable[[], Awaitable[tuple[bool, str]]],
        on_result: Callable[[bool, str], None],
        container_started_at: float,
        initial: bool | None,
    ):
        self.kind = kind
        self.probe = with_defaults(probe)
        self.check = check
        self.on_result = on_result
        self.started_at = container_started_at
        self.result = initial
        self.last_message = ""
        self._last_raw: bool | None = None
        self._run = 0
        self._ever_ok = False
        self._fails_before_ok = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name=f"probe-{self.kind}")

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _loop(self) -> None:
        p = self.probe
        delay = self.started_at + float(p["initialDelaySeconds"]) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        period = float(p["periodSeconds"])
        while True:
            t0 = time.monotonic()
            try:
                ok, msg = await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug in a handler is a failed probe, not a dead worker
                ok, msg = False, f"probe error: {e!r}"
            self.last_message = msg
            if ok == self._last_raw:
                self._run += 1
            else:
                self._last_raw, self._run = ok, 1
            threshold = p["successThreshold"] if ok else p["failureThreshold"]
            if self._run >= threshold and self.result != ok:
                self.result = ok
                self.on_result(ok, msg)
                if self.kind == "startup" or (self.kind == "liveness" and not ok):
                    return
            elif self.kind == "startup" and ok and self._run >= threshold:
                return
            if ok:
                self._ever_ok = True
            else:
                self._fails_before_ok += 1
            wait = next_probe_delay(self.kind, period, self._ever_ok, self._fails_before_ok)
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - t0)))
