"""Performing a lifecycle hook's handler (postStart, preStop), for every runtime.

Where it sits: the in-process runtime (runtime/inprocess/hooks.py) and the Docker runtime
(runtime/docker/containers.py) call ``run_handler`` with their own way to run a command in the
container (a local process in the pod's sandbox, or ``docker exec``); ``httpGet`` is the probes'
HTTP GET (runtime/probes.py, one home) sent to the pod's IP (or ``host``), where any answer is
success as in the kubelet; ``sleep`` sleeps. When to run a hook and what its failure means is
the pod kernel's (runtime/kernel/hooks.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from runtime.kernel.hooks import exec_failure, handler_kind, http_failure, sleep_seconds
from runtime.kernel.probe import resolve_port

from .probes import http_get

# runs argv in the container: (exit code, output); raises OSError when it cannot run at all
ExecRun = Callable[[list[str]], Awaitable[tuple[int, str]]]

HTTP_TIMEOUT = 30.0
USER_AGENT = "kube-lifecycle/1.29"


async def run_handler(
    handler: Mapping[str, Any],
    *,
    container_spec: Mapping[str, Any],
    pod_ip: str,
    pod: str,
    exec_run: ExecRun,
) -> str | None:
    """Run one handler to its end: None when it succeeded, else the kubelet's failure message.

    ``pod`` names the pod in messages (runtime/kernel/hooks.py pod_ref). The caller bounds the
    time (preStop: the grace period) by cancelling."""
    name = str(container_spec.get("name", ""))
    kind = handler_kind(handler)
    if kind == "exec":
        argv = [str(a) for a in (handler["exec"].get("command") or [])]
        try:
            code, out = await exec_run(argv)
        except OSError as e:
            return exec_failure(argv, name, pod, str(e), "")
        if code == 0:
            return None
        return exec_failure(argv, name, pod, f"command '{' '.join(argv)}' exited with {code}", out.strip()[-400:])
    if kind == "httpGet":
        h = handler["httpGet"]
        path = str(h.get("path") or "/")
        try:
            port = resolve_port(h.get("port"), container_spec)
        except ValueError as e:
            return http_failure(path, name, pod, str(e))
        ok, msg = await http_get(
            str(h.get("host") or pod_ip),
            port,
            path,
            HTTP_TIMEOUT,
            str(h.get("scheme") or "HTTP"),
            h.get("httpHeaders"),
            any_status=True,
            user_agent=USER_AGENT,
        )
        return None if ok else http_failure(path, name, pod, msg)
    if kind == "sleep":
        await asyncio.sleep(sleep_seconds(handler))
    return None  # tcpSocket (kept by the API for compatibility, does nothing) or nothing to run
