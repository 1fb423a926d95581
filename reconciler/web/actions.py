"""The web view's buttons: each is a commit, made as the CLI makes it (reconciler/gitops RepoWriter).

pause / resume: ``spec.paused`` in the Deployment's manifest (`gitship rollout pause|resume`);
undo: back to the previous revision (`gitship rollout undo`, reconciler/undo.py: a git revert when
it can be one); revert to here: a ``git revert`` of every commit after the chosen one, newest first
(a commit each), so the branch's manifests are the chosen commit's again. Git runs in a worker
thread; the daemon is asked to look at the source right after.
"""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.errors import GitshipError
from reconciler.types import Obj

FROM_WEB = "Made with gitship's web view."


class ActionError(GitshipError):
    """A button that cannot do what it says now (the message says why)."""


def _deployment(d: Any, ns: str, name: str) -> tuple[Obj, list[Obj]]:
    dep = d.reconciler.cluster.get(("Deployment", ns, name))
    if dep is None:
        raise ActionError(f'deployments.apps "{name}" not found')
    return dep, d.reconciler.cluster.of_kind("ReplicaSet", ns)


def _set_paused(d: Any, ns: str, name: str, paused: bool) -> str:
    dep, _ = _deployment(d, ns, name)
    if bool(dep["spec"].get("paused")) == paused:
        return f"deployment.apps/{name} {'is already paused' if paused else 'is not paused'}"
    sha = d.writer().set_paused("Deployment", ns, name, paused)
    return f"deployment.apps/{name} {'paused' if paused else 'resumed'} (commit {str(sha)[:7]})"


def _undo(d: Any, ns: str, name: str) -> str:
    from reconciler.controllers.deployment import equal_ignore_hash, revisions
    from reconciler.undo import undo_commit

    dep, rss = _deployment(d, ns, name)
    revs = revisions(dep, rss)
    if len(revs) < 2:
        raise ActionError(f"no rollout history found for deployment {name}")
    if dep["spec"].get("paused"):
        raise ActionError("you cannot roll back a paused deployment; resume it first")
    target = revs[-2]
    if equal_ignore_hash(target[1]["spec"]["template"], dep["spec"]["template"]):
        return f"deployment.apps/{name} skipped rollback (current template already matches revision {target[0]})"
    sha, how = undo_commit(d.writer(), dep, revs[-1], target, FROM_WEB)
    return f"deployment.apps/{name} rolled back ({how} {sha[:7]})"


def _revert_to(d: Any, sha: str) -> str:
    w = d.writer()
    commits = w.log(None, 500)
    shas = [c["sha"] for c in commits]
    if not any(s == sha or s.startswith(sha) for s in shas) or len(sha) < 7:
        raise ActionError(f"{sha[:12]} is not on the branch (in its last {len(shas)} commits)")
    later = commits[: next(i for i, s in enumerate(shas) if s.startswith(sha))]
    if not later:
        raise ActionError(f"{sha[:7]} is the branch's head already: nothing to revert")
    made = []
    for c in later:  # newest first: each revert applies cleanly on the one before
        made.append(w.revert(c["sha"], f"Reverting to {sha[:7]}. {FROM_WEB}"))
    return f"reverted {len(later)} commit(s) after {sha[:7]}: " + ", ".join(m[:7] for m in made)


async def run(d: Any, action: str, **kw: str) -> str:
    """Carry out one button in a worker thread; the daemon looks at the source right after."""
    table = {
        "pause": lambda: _set_paused(d, kw["ns"], kw["name"], True),
        "resume": lambda: _set_paused(d, kw["ns"], kw["name"], False),
        "undo": lambda: _undo(d, kw["ns"], kw["name"]),
        "revert": lambda: _revert_to(d, kw["sha"]),
    }
    try:
        message = await asyncio.to_thread(table[action])
    finally:
        d.wake_source()
    d.reconciler.log.info("web_action", action=action, **kw, result=message)
    return message
