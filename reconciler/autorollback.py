"""Automatic rollback: a rollout that misses its progress deadline is reverted by a commit.

Where it sits: after the reconcile pass. Opt-in per Deployment with the
annotation ``gitship.io/auto-rollback: "true"``. ``decide`` is pure: from the
Deployments, their ReplicaSets and what gitship has already reverted, it says
which commit to revert for which Deployment. The daemon carries it out with the
same code as ``gitship rollout undo`` (undo.py), so the revert is an ordinary
commit that the watcher applies like any other.

Guards, so it never loops:
- only a Deployment whose Progressing condition is False with reason
  ProgressDeadlineExceeded, and whose failing template is still its newest;
- never a commit already reverted, nor a commit gitship made itself as an
  automatic rollback (a bad previous version is not reverted back and forth);
- never a commit another commit has superseded: the failing ReplicaSet must
  still be the Deployment's new one, with a previous revision to go back to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import annotation_keys as keys
from .controllers import deployment as deployctl

DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class Rollback:
    namespace: str
    name: str
    commit: str  # the commit that introduced the failing template
    current_revision: int
    target_revision: int
    message: str  # the condition's message


def enabled(dep: dict[str, Any]) -> bool:
    return str((dep["metadata"].get("annotations") or {}).get(keys.AUTO_ROLLBACK, "")).lower() in ("true", "yes", "1")


def decide(
    deployments: list[dict[str, Any]], rss: list[dict[str, Any]], reverted: set[str], own_rollbacks: set[str]
) -> list[Rollback]:
    out = []
    for dep in deployments:
        if not enabled(dep) or dep["spec"].get("paused"):
            continue
        cond = deployctl.get_condition(dep.get("status") or {}, "Progressing")
        if not cond or cond.get("status") != "False" or cond.get("reason") != DEADLINE_EXCEEDED:
            continue
        ns = dep["metadata"]["namespace"]
        revs = deployctl.revisions(dep, [r for r in rss if r["metadata"]["namespace"] == ns])
        if len(revs) < 2:
            continue
        current_n, current = revs[-1]
        new_rs = deployctl.find_new_rs(dep, [r for r in rss if r["metadata"]["namespace"] == ns])
        if new_rs is None or new_rs["metadata"]["name"] != current["metadata"]["name"]:
            continue  # superseded: the template moved on since
        commit = (current["metadata"].get("annotations") or {}).get(keys.COMMIT)
        if not commit or commit in reverted or commit in own_rollbacks:
            continue
        out.append(Rollback(ns, dep["metadata"]["name"], commit, current_n, revs[-2][0], cond.get("message", "")))
    return out
