"""`gitship up`'s ingress options and the ingress line of `gitship status`."""

from __future__ import annotations

import argparse
from typing import Any


def add_ingress_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--ingress-http-port", type=int, default=80, help="the Ingress controller's HTTP port (default 80)")
    s.add_argument(
        "--ingress-https-port", type=int, default=443, help="the Ingress controller's HTTPS port (default 443)"
    )


def ingress_lines(info: dict[str, Any] | None) -> list[str]:
    """``Ingress:`` in `gitship status`: the engine's state, what it listens on, what it could not bind."""
    if not info:
        return []
    state = info.get("state")
    if state == "idle":
        text = f"haproxy, idle (starts with the first Ingress; ports {info.get('http')}, {info.get('https')})"
    elif state == "running":
        text = f"haproxy, running on {', '.join(info.get('bound') or []) or 'no port'}"
    else:
        text = f"haproxy, failed: {info.get('error')}"
    lines = [f"Ingress:       {text}"]
    for addr, why in (info.get("bindFailed") or {}).items():
        lines.append(f"               cannot listen on {addr}: {why}")
    return lines
