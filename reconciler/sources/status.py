"""`gitship status` with several sources: one line per source, from the store's meta (pure); and what
`gitship plan` / `diff --source NAME` read there: a source's checkout, what it owns, the Namespaces
the others declare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.types import Key

from .spec import DEFAULT

STATUS_PREFIX = "source/"
RECORD = "source"  # meta: a source's url, branch, path and checkout (the default's is the global ``source``)


def meta_prefix(name: str) -> str:
    return "" if name == DEFAULT else f"{STATUS_PREFIX}{name}/"


def source_record(get_meta: Callable[[str], Any], name: str) -> dict[str, Any] | None:
    """The source's ``{url, branch, path, repoDir}`` as the daemon recorded it (None: not known)."""
    rec = get_meta(meta_prefix(name) + RECORD)
    return rec if isinstance(rec, dict) else None


def owned_keys(get_meta: Callable[[str], Any], name: str) -> set[Key] | None:
    """What the source owns (None: a single source, which owns everything applied)."""
    inventory = get_meta("sourceInventory")
    if inventory is None:
        return None
    return {(r[0], r[1], r[2]) for r in inventory.get(name) or []}


def namespaces_elsewhere(get_meta: Callable[[str], Any], name: str) -> set[str]:
    """The Namespaces the other sources own: the source's objects may live in them."""
    inventory = get_meta("sourceInventory") or {}
    return {r[2] for src, rows in inventory.items() if src != name for r in rows if r[0] == "Namespace"}


def sources_status(get_meta: Callable[[str], Any]) -> list[dict[str, Any]]:
    """Each configured source: name, Ready condition, applied and attempted revisions, objects owned."""
    inventory = get_meta("sourceInventory") or {}
    listed = list(get_meta("sources") or [])
    names = listed + sorted(n for n in inventory if n not in listed) if listed else []  # + those being removed
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
                "removed": name not in listed,
                "pruneHeld": get_meta(pre + "pruneHeld"),
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
            f"{s['objects']} object(s){' (removed from the list)' if s.get('removed') else ''} "
            f"{r.get('message', '')}".rstrip()
        )
        if s.get("pruneHeld") and s["name"] != DEFAULT:
            lines.append(f"    Prune held: {s['pruneHeld'].get('message', '')}")
    return lines
