"""Desired vs applied: the ordered plan of a revision.

Where it sits: after load + validate, before the controllers. ``plan`` is a
pure function from the applied desired state and the new desired state to an
ordered list of creates, updates and deletes (objects removed from git are
pruned). Order: what others depend on first (ConfigMaps and Secrets, Services and Endpoints, then
Deployments, ReplicaSets, Pods) for creates and updates; deletes in reverse.
It is what ``gitship diff`` prints and what the reconcile log records.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .redact import redact_pair
from .types import Key

# ConfigMaps and Secrets first: the pods that read them start after they exist
ORDER = {"ConfigMap": 0, "Secret": 0, "Service": 1, "Endpoints": 2, "Deployment": 3, "ReplicaSet": 4, "Pod": 5}


@dataclass(frozen=True)
class Action:
    op: str  # "create" | "update" | "delete"
    key: Key
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None

    @property
    def ref(self) -> str:
        kind, ns, name = self.key
        return f"{kind.lower()}/{name}" if ns in ("default", "") else f"{kind.lower()}/{ns}/{name}"

    def summary(self) -> dict[str, str]:
        return {"op": self.op, "kind": self.key[0], "namespace": self.key[1], "name": self.key[2]}


def _sort_key(key: Key) -> tuple[int, str, str]:
    return (ORDER.get(key[0], 9), key[1], key[2])


def plan(applied: Mapping[Key, Mapping[str, Any]], desired: Mapping[Key, Mapping[str, Any]]) -> list[Action]:
    """The ordered actions that take ``applied`` to ``desired``; unchanged objects yield nothing."""
    creates, updates, deletes = [], [], []
    for key in sorted(desired, key=_sort_key):
        before = applied.get(key)
        if before is None:
            creates.append(Action("create", key, None, desired[key]))
        elif before is not desired[key] and before != desired[key]:
            updates.append(Action("update", key, before, desired[key]))
    for key in sorted((k for k in applied if k not in desired), key=_sort_key, reverse=True):
        deletes.append(Action("delete", key, applied[key], None))
    return creates + updates + deletes


def _yaml(obj: Mapping[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    text: str = yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False)
    return text.splitlines(keepends=True)


def render_diff(actions: list[Action]) -> str:
    """A unified YAML diff per object, as ``gitship diff`` prints it; a Secret's values shown as
    their sizes (reconciler/redact.py), never as themselves."""
    out: list[str] = []
    for a in actions:
        label = a.ref
        before, after = redact_pair(a.before, a.after)
        lines = difflib.unified_diff(
            _yaml(before),
            _yaml(after),
            fromfile=f"applied/{label}" if a.before is not None else "/dev/null",
            tofile=f"desired/{label}" if a.after is not None else "/dev/null",
        )
        out.extend(lines)
    return "".join(out)
