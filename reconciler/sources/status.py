"""`gitship status` with several sources: one line per source, from the store's meta (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .spec import DEFAULT

STATUS_PREFIX = "source/"


def sources_status(get_meta: Callable[[str], Any]) -> list[dict[str, Any]]:
    """Each configured source: name, Ready condition, applied and attempted revisions, objects owned."""
    names = get_meta("sources") or []
    inventory = get_meta("sourceInventory") or {}
    out = []
    for name in names:
        pre = "" if name == DEFAULT else f"{STATUS_PREFIX}{name}/"
        ready = get_meta(pre + "ready") or {"status": "Unknown", "reason": "Progressing", "message": ""}
        out.append(
            {
                "name": name,
                "ready": ready,
                "lastAppliedRevision": get_meta(pre + "lastAppliedRevision"),
                "lastAttemptedRevision": get_meta(pre + "lastAttemptedRevision"),
                "objects": len(inventory.get(name) or []),
            }
        )
    return out


def sources_lines(sources: list[dict[str, Any]]) -> list[str]:
    if not sources:
        return []
    lines = ["Sources:"]
    for s in sources:
        r = s["ready"]
        applied = (s["lastAppliedRevision"] or "<none>")[:7]
        lines.append(
            f"  {s['name']:<16} Ready {r.get('status')} ({r.get('reason')}) applied {applied}, "
            f"{s['objects']} object(s) {r.get('message', '')}".rstrip()
        )
    return lines
