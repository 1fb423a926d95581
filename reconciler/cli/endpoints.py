"""PURE: the `gitship status` lines and JSON fields of the daemon's HTTP endpoints (web view,
/metrics, webhook receiver), from the addresses the running daemon recorded in the store's meta.

Where it sits: reconciler/cli/up.py's cmd_status reads the meta keys (``web``, ``metrics``,
``webhook``: reconciler/web and reconciler/ops/start.py write them when they bind) and asks
``endpoint_status`` for ``status.webURL`` / ``metricsURL`` / ``webhookURL``; a stopped daemon
serves nothing, so every URL is None then whatever the meta still holds.
"""

from __future__ import annotations

from typing import Any

META_KEYS = ("web", "metrics", "webhook")


def _url(entry: Any, path: str) -> str | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("url"):
        return str(entry["url"])
    addr = entry.get("address")
    if not addr:
        return None
    host, _, port = str(addr).rpartition(":")
    if ":" in host and not host.startswith("["):  # an IPv6 address goes in brackets in a URL
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def endpoint_status(meta: dict[str, Any], running: bool) -> dict[str, str | None]:
    """``status.webURL``, ``status.metricsURL`` and ``status.webhookURL`` (None: not served)."""
    if not running:
        return {"webURL": None, "metricsURL": None, "webhookURL": None}
    return {
        "webURL": _url(meta.get("web"), ""),
        "metricsURL": _url(meta.get("metrics"), "/metrics"),
        "webhookURL": _url(meta.get("webhook"), "/"),
    }


def endpoint_lines(status: dict[str, Any]) -> list[str]:
    """``Web:``, ``Metrics:`` and ``Webhooks:`` lines for the endpoints served."""
    labels = (("Web:", "webURL"), ("Metrics:", "metricsURL"), ("Webhooks:", "webhookURL"))
    return [f"{label:<15}{status[key]}" for label, key in labels if status.get(key)]
