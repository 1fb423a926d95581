"""Probe handlers and defaults shared by every runtime (spec section 7.4).

Where it sits: the in-process and Docker runtimes both probe a pod from the
host: ``httpGet`` (status 200-399 is success) and ``tcpSocket`` (a connect
succeeds) are the same code for both; ``exec`` differs (a local process, or
``docker exec``) and stays with each runtime. No third-party libraries: the
HTTP GET is a few lines over asyncio streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from typing import Any

PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
USER_AGENT = "kube-probe/1.28"
MAX_BODY = 10 * 1024


def with_defaults(probe: Mapping[str, Any]) -> dict[str, Any]:
    """The probe with every numeric default filled in (0 period means the default, as in Kubernetes)."""
    out = dict(probe)
    for k, v in PROBE_DEFAULTS.items():
        if out.get(k) is None:
            out[k] = v
    if not out["periodSeconds"] or out["periodSeconds"] < 0:
        out["periodSeconds"] = PROBE_DEFAULTS["periodSeconds"]
    if not out["timeoutSeconds"] or out["timeoutSeconds"] < 0:
        out["timeoutSeconds"] = PROBE_DEFAULTS["timeoutSeconds"]
    out["successThreshold"] = max(1, int(out["successThreshold"]))
    out["failureThreshold"] = max(1, int(out["failureThreshold"]))
    out["initialDelaySeconds"] = max(0, out["initialDelaySeconds"])
    return out


async def http_get(
    host: str,
    port: int,
    path: str = "/",
    timeout: float = 1.0,
    scheme: str = "HTTP",
    headers: list[Mapping[str, str]] | None = None,
) -> tuple[bool, str]:
    if not path.startswith("/"):
        path = "/" + path
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    hdrs = {"Host": hostport, "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
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
            if 200 <= code < 400:
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


FIRST_READY_RETRY = 0.05  # seconds: the first retry of a readiness probe that has never succeeded


def next_probe_delay(kind: str, period: float, ever_ready: bool, failures_before_ready: int) -> float:
    """Seconds until the next probe.

    Every period, as the kubelet does, with one exception that only makes a pod
    serve sooner: a readiness probe that has never succeeded retries after 50 ms,
    100 ms, 200 ms ... up to its period, so an app that binds its port 30 ms
    after the first probe is Ready in about 50 ms instead of a whole period
    later. Failures before the first success only keep a pod unready, so no
    threshold is reached sooner; startup and liveness probes keep their
    period, since their failures count toward a restart.

    >>> [round(next_probe_delay("readiness", 1.0, False, n), 2) for n in range(1, 7)]
    [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    >>> next_probe_delay("liveness", 1.0, False, 1)
    1.0
    """
    if kind != "readiness" or ever_ready or failures_before_ready < 1:
        return period
    return min(period, FIRST_READY_RETRY * 2 ** (failures_before_ready - 1))
