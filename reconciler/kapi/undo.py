"""``kubectl rollout undo`` through the API as gitship's own undo: a git revert when it can be one.

kubectl undoes a Deployment's rollout by patching it (kubectl pkg/polymorphichelpers/rollback.go,
a JSON patch replacing ``/spec/template`` by the old ReplicaSet's template and ``/metadata/annotations``).
That would work as a plain patch commit; but when the new template is the template of one of the
Deployment's older ReplicaSets, and nothing else but annotations changes, the write is handed to
reconciler/undo.py ``undo_commit``, as ``gitship rollout undo`` does: a ``git revert`` of the commit
that introduced the current revision when that reverts cleanly to the target, else a commit putting
the target's template back. Anything else is a plain patch commit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from reconciler.controllers.deployment import equal_ignore_hash, revisions
from reconciler.types import Obj
from reconciler.undo import Revision, undo_commit


def _rest(obj: Obj) -> Obj:
    """The desired object without its pod template and annotations: kubectl replaces the Deployment's
    annotations by the old ReplicaSet's (which the controller copied from the Deployment back then);
    gitship's undo restores the template and change-cause and leaves the other annotations alone."""
    out = copy.deepcopy(obj)
    (out.get("spec") or {}).pop("template", None)
    (out.get("metadata") or {}).pop("annotations", None)
    return out


def undo_target(live: Obj, rss: list[Obj], before: Obj, after: Obj) -> tuple[Revision, Revision] | None:
    """(current revision, target revision) when ``before`` -> ``after`` (desired state, stripped) is a
    rollback of the Deployment ``live`` to an older revision of its ReplicaSets ``rss``; else None."""
    if live.get("kind") != "Deployment":
        return None
    t_before = (before.get("spec") or {}).get("template")
    t_after = (after.get("spec") or {}).get("template")
    if not isinstance(t_before, dict) or not isinstance(t_after, dict) or equal_ignore_hash(t_before, t_after):
        return None
    if _rest(before) != _rest(after):
        return None
    revs = revisions(live, rss)
    if len(revs) < 2:
        return None
    for n, rs in reversed(revs[:-1]):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, t_after):
            return revs[-1], (n, rs)
    return None


def undo(writer: Any, live: Obj, current: Revision, target: Revision, user: str) -> tuple[str, str]:
    """Make the undo commit (see reconciler/undo.py); returns (sha, how it was made)."""
    make: Callable[..., tuple[str, str]] = undo_commit
    return make(writer, live, current, target, f"kubectl rollout undo through gitship's API, by {user}")
