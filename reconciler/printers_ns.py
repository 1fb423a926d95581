"""kubectl's `get namespaces` table and `describe namespace` page.

Where it sits: pure, beside printers.py, which adds these to its tables (the row takes the object
and its AGE text, as printers_kinds.py's rows do). Columns from kubernetes/kubernetes
pkg/printers/internalversion/printers.go (printNamespace: NAME, STATUS, AGE); the describe page from
staging/src/k8s.io/kubectl/pkg/describe/describe.go (describeNamespace: Status, then the
deletion conditions while one terminates).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .printers_kinds import KindColumns
from .types import Obj


def namespace_phase(o: Obj) -> str:
    return str((o.get("status") or {}).get("phase") or "Active")


def _ns_row(o: Obj, age: str) -> list[Any]:
    return [o["metadata"]["name"], namespace_phase(o), age]


def _no_wide(o: Obj) -> list[Any]:
    return []


def _aligned(rows: list[list[str]]) -> list[str]:
    """Rows as a tab writer aligns them (three spaces between columns)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _ns_describe(o: Obj) -> list[str]:
    lines = [f"Status:         {namespace_phase(o)}"]
    conditions = (o.get("status") or {}).get("conditions") or []
    if conditions:
        rows = [["Type", "Status", "LastTransitionTime", "Reason", "Message"], ["----", "------", "---", "---", "---"]]
        keys = ("type", "status", "lastTransitionTime", "reason", "message")
        rows += [[str(c.get(k, "")) for k in keys] for c in conditions]
        lines += ["", "Conditions:", *_aligned(rows)]
    return lines


NS_COLUMNS: dict[str, KindColumns] = {"Namespace": KindColumns(["NAME", "STATUS", "AGE"], _ns_row, [], _no_wide)}
NS_DESCRIBE: dict[str, Callable[[Obj], list[str]]] = {"Namespace": _ns_describe}
