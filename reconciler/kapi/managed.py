"""Field managers for server-side apply (pure): which manager set which field, conflicts, removals.

A much smaller model than Kubernetes' structured-merge-diff (sigs.k8s.io/structured-merge-diff
fieldpath), enough for ``kubectl apply --server-side``: an object's fields are its leaves, a leaf is
a path of segments (a map key, or ``{"k": merge key, "v": its value}`` for an item of a list merged
by key, e.g. a container by name); any other list, and any scalar, is one leaf. ``Owners`` maps a
manager to the leaves it set (kept by the write side beside the store: git holds no managedFields).

- ``conflicts``: the leaves an apply would change that another manager owns (409 unless ``force``);
- ``after_apply`` / ``after_update``: the new ownership (an apply owns exactly what it applied; an
  update or patch owns what it changed; a forced apply takes the fields from the others);
- ``removed``: the leaves a manager applied before and no longer applies, that nobody else owns:
  the apply removes them from the object.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.kapi.patch import merge_key
from reconciler.types import Obj

Owners = dict[str, list[str]]  # manager -> leaves (each leaf a JSON text of its segments)
IDENTITY = ('["apiVersion"]', '["kind"]', '["metadata","name"]', '["metadata","namespace"]')


UPDATE = "|Update"  # the owners of fields set by an update or patch: (manager, Update) in Kubernetes


def update_manager(manager: str) -> str:
    """The owner name of ``manager``'s updates and patches: distinct from its applies, as Kubernetes
    keeps (manager, operation) pairs, so ``kubectl scale`` conflicts with ``kubectl apply --server-side``."""
    return manager + UPDATE


def manager_name(owner: str) -> str:
    return owner.removesuffix(UPDATE)


def _leaf(path: list[Any]) -> str:
    return json.dumps(path, separators=(",", ":"))


def leaves(obj: Any, path: list[Any] | None = None, field: str = "") -> dict[str, Any]:
    """Every leaf of ``obj`` (desired state: strip status and server fields first) -> its value."""
    path = path or []
    out: dict[str, Any] = {}
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            out.update(leaves(v, path + [k], k))
        return out
    if isinstance(obj, list) and obj and all(isinstance(i, dict) for i in obj):
        key = merge_key(field, obj)
        if key is not None and all(key in i for i in obj):
            for item in obj:
                out.update(leaves(item, path + [{"k": key, "v": item[key]}], ""))
            return out
    if path:
        out[_leaf(path)] = obj
    return {k: v for k, v in out.items() if k not in IDENTITY}


def shown(leaf: str) -> str:
    """A leaf as Kubernetes prints a field path: ``.spec.template.spec.containers[name="nodejs"].image``."""
    out = ""
    for seg in json.loads(leaf):
        out += f"[{seg['k']}={json.dumps(seg['v'])}]" if isinstance(seg, dict) else f".{seg}"
    return out


def conflicts(owners: Owners, manager: str, applied: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, str]]:
    """(other manager, leaf) for each applied leaf whose value differs from the current one and that
    another manager owns."""
    out = []
    for leaf, value in applied.items():
        if leaf in current and current[leaf] == value:
            continue
        for other, owned in sorted(owners.items()):
            if other != manager and leaf in owned:
                out.append((other, leaf))
    return out


def removed(owners: Owners, manager: str, applied: dict[str, Any]) -> list[str]:
    """Leaves ``manager`` applied before, applies no more, and no other manager owns."""
    others = {leaf for m, owned in owners.items() if m != manager for leaf in owned}
    return [leaf for leaf in owners.get(manager, []) if leaf not in applied and leaf not in others]


def after_apply(owners: Owners, manager: str, applied: dict[str, Any], current: dict[str, Any], force: bool) -> Owners:
    """Ownership after an apply: ``manager`` owns what it applied; a field another manager owned stays
    shared when the value did not change, and moves to ``manager`` when forced."""
    out: Owners = {}
    for other, owned in owners.items():
        if other == manager:
            continue
        keep = [leaf for leaf in owned if not (leaf in applied and (force or current.get(leaf) != applied[leaf]))]
        if keep:
            out[other] = keep
    out[manager] = sorted(applied)
    return out


def after_update(owners: Owners, manager: str, before: dict[str, Any], after: dict[str, Any]) -> Owners:
    """Ownership after an update or patch: the leaves it changed or added are ``manager``'s alone;
    leaves that are gone belong to nobody."""
    changed = {leaf for leaf, v in after.items() if leaf not in before or before[leaf] != v}
    out: Owners = {}
    for other, owned in owners.items():
        keep = [leaf for leaf in owned if leaf in after and (other == manager or leaf not in changed)]
        if other == manager:
            keep = sorted(set(keep) | changed)
        if keep:
            out[other] = keep
    if manager not in out and changed:
        out[manager] = sorted(changed)
    return out


def remove_leaf(obj: Obj, leaf: str) -> None:
    """Delete one leaf from ``obj`` in place (a merge-keyed item's field, a map key); emptied maps stay."""
    segs = json.loads(leaf)
    cur: Any = obj
    for seg in segs[:-1]:
        if isinstance(seg, dict):
            found = (
                [i for i in cur if isinstance(i, dict) and i.get(seg["k"]) == seg["v"]] if isinstance(cur, list) else []
            )
            if not found:
                return
            cur = found[0]
        elif isinstance(cur, dict) and seg in cur:
            cur = cur[seg]
        else:
            return
    last = segs[-1]
    if isinstance(last, dict) and isinstance(cur, list):
        cur[:] = [i for i in cur if not (isinstance(i, dict) and i.get(last["k"]) == last["v"])]
    elif isinstance(cur, dict):
        cur.pop(last, None)
