"""sd_notify(3) without libsystemd: one datagram to the socket systemd names in ``NOTIFY_SOCKET``.

Where it sits: `gitship up` under a ``Type=notify`` unit (reconciler/ops/systemd.py) says READY=1
when a revision is applied, STATUS=... when its Ready condition changes and STOPPING=1 when it
shuts down (reconciler/ops/start.py sends them). Without ``NOTIFY_SOCKET`` nothing is sent.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def socket_address(value: str) -> str | None:
    """The AF_UNIX address of a ``NOTIFY_SOCKET`` value: a path, or an abstract name written with a
    leading '@' (a NUL byte on the wire); None for anything else (vsock: not supported)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (newline-separated ``KEY=VALUE`` assignments); True when a datagram went out.
    Errors are swallowed: a supervisor that went away never stops gitship."""
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    addr = socket_address(value)
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(state.encode("utf-8", errors="replace"))
    except OSError:
        return False
    return True


def status_text(meta: Mapping[str, object]) -> str:
    """The one-line STATUS= of `systemctl status gitship`: the Ready condition and what is applied."""
    ready = meta.get("ready")
    applied = meta.get("lastAppliedRevision")
    short = str(applied)[:12] if applied else "none"
    if not isinstance(ready, dict):
        return f"Starting (applied revision: {short})"
    reason = ready.get("reason") or ""
    message = " ".join(str(ready.get("message") or "").split())
    if ready.get("status") == "True":
        return f"Ready: {message or reason}"[:400]
    return f"Not ready ({reason}): {message} (applied revision: {short})"[:400]
