"""Performing probes, for every runtime: the httpGet and tcpSocket handlers and the probe worker.

Where it sits: the in-process and Docker runtimes both probe a pod from the host:
``httpGet`` (status 200-399 is success) and ``tcpSocket`` (a connect succeeds) are the same
code for both; ``exec`` differs (a local process, or ``docker exec``) and each runtime
passes its own. What a result means (thresholds, schedule) is decided by the pure
``runtime.kernel.probe.ProbeMachine``; ``ProbeWorker`` only drives it on the event loop.
See docs/kubernetes.md §7.4. No third-party libraries: the HTTP GET is a few lines over
asyncio streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from runtime.kernel.probe import PROBE_DEFAULTS, ProbeMachine, next_probe_delay, resolve_port, with_defaults

__all__ = [
    "PROBE_DEFAULTS",
    "Check",
    "ExecCheck",
    "ProbeWorker",
    "http_get",
    "make_check",
    "next_probe_delay",
    "tcp_check",
    "with_defaults",
]

USER_AGENT = "kube-probe/1.28"
MAX_BODY = 10 * 1024

Check = Callable[[], Awaitable[tuple[bool, str]]]
ExecCheck = Callable[[list[str], float], Awaitable[tuple[bool, str]]]


async def http_get(
    host: str,
    port: int,
    path: str = "/",
    timeout: float = 1.0,
    scheme: str = "HTTP",
    headers: list[Mapping[str, str]] | None = None,
    *,
    any_status: bool = False,
    user_agent: str = USER_AGENT,
) -> tuple[bool, str]:
    """One GET: success is a status 200-399 (probes), or any answer at all with ``any_status``
    (lifecycle hooks: the kubelet only fails one whose request fails)."""
    if not path.startswith("/"):
        path = "/" + path
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    hdrs = {"Host": hostport, "User-Agent": user_agent, "Accept": "*/*", "Connection": "close"}
    for h in headers or []:
        if h.get("name"):
            hdrs[str(h["name"])] = str(h.get("value", ""))
    ctx = None
    if str(scheme).upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the kubelet does not verify probe certificates either

    async def go() -> tuple[bool, str]:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        try:
            req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
            writer.write(req.encode("latin-1"))
            await writer.drain()
            line = await reader.readline()
            parts = line.decode("latin-1").split()
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                return False, f"HTTP probe failed: malformed status line {line[:80]!r}"
            code = int(parts[1])
            with contextlib.suppress(Exception):  # read (and ignore) at most 10 KiB of headers + body
                await asyncio.wait_for(reader.read(MAX_BODY), 0.05)
            if 200 <= code < 400 or any_status:
                return True, f"HTTP probe succeeded with statuscode: {code}"
            return False, f"HTTP probe failed with statuscode: {code}"
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    try:
        return await asyncio.wait_for(go(), timeout)
    except asyncio.TimeoutError:
        return False, f'Get "http://{hostport}{path}": context deadline exceeded (timeout {timeout:g}s)'
    except OSError as e:
        return False, f'Get "http://{hostport}{path}": {e.strerror or e}'


async def tcp_check(host: str, port: int, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as e:
        return False, f"dial tcp {host}:{port}: {e.strerror or e}"
    w.close()
    with contextlib.suppress(Exception):
        await w.wait_closed()
    return True, "tcp connect succeeded"


def make_check(probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, exec_check: ExecCheck) -> Check:
    """A zero-argument coroutine function running one attempt of the probe's handler.

    ``httpGet`` and ``tcpSocket`` go to ``host`` (default: the pod IP); ``port`` may name
    one of the container's ports. ``exec`` runs through the runtime's ``exec_check(argv,
    timeout)``. A handler gitship does not perform (``grpc``) counts as success, so a pod
    that declares one is not killed for it.
    """
    p = with_defaults(probe)
    timeout = float(p["timeoutSeconds"])
    h = p.get("httpGet")
    if h is not None:

        async def http() -> tuple[bool, str]:
            try:
                port = resolve_port(h.get("port"), container)
            except ValueError as e:
                return False, str(e)
            host = h.get("host") or pod_ip
            return await http_get(
                host, port, h.get("path") or "/", timeout, h.get("scheme") or "HTTP", h.get("httpHeaders")
            )

        return http
    t = p.get("tcpSocket")
    if t is not None:

        async def tcp() -> tuple[bool, str]:
            try:
                port = resolve_port(t.get("port"), container)
            except ValueError as e:
                return False, str(e)
            return await tcp_check(t.get("host") or pod_ip, port, timeout)

        return tcp
    ex = p.get("exec")
    if ex is not None:
        argv = [str(a) for a in (ex.get("command") or [])]

        async def run() -> tuple[bool, str]:
            return await exec_check(argv, timeout)

        return run

    async def unsupported() -> tuple[bool, str]:
        return True, "probe handler not performed by gitship (only exec, httpGet, tcpSocket): counted as success"

    return unsupported


class ProbeWorker:
    """Runs one probe of one container incarnation until stopped (the kubelet's prober worker).

    ``on_result(result, message)`` is called when the effective result changes (see
    ``runtime.kernel.probe.ProbeMachine``). ``clock`` gives seconds since the epoch (the
    clock of ``container_started_at``).
    """

    def __init__(
        self,
        kind: str,
        probe: Mapping[str, Any],
        check: Check,
        on_result: Callable[[bool, str], None],
        container_started_at: float,
        initial: bool | None,
        clock: Callable[[], float] = time.time,
    ):
        self.kind = kind
        self.machine = ProbeMachine(kind, probe, initial)
        self.check = check
        self.on_result = on_result
        self.started_at = container_started_at
        self.clock = clock
        self.last_message = ""
        self.task: asyncio.Task[None] | None = None

    @property
    def result(self) -> bool | None:
        return self.machine.result

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name=f"probe-{self.kind}")

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _attempt(self) -> tuple[bool, str]:
        try:
            return await self.check()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in a handler is a failed probe, not a dead worker
            return False, f"probe error: {e!r}"

    async def _loop(self) -> None:
        m = self.machine
        delay = m.first_delay(self.started_at, self.clock())
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            t0 = time.monotonic()
            ok, msg = await self._attempt()
            self.last_message = msg
            if m.record(ok):
                self.on_result(ok, msg)
            if m.done:
                return
            await asyncio.sleep(max(0.0, m.next_delay() - (time.monotonic() - t0)))
