"""Safe pruning in the daemon: the gate a revision passes between validation and the plan.

Where it sits: ``RevisionApplier.apply_revision`` calls ``PruneGate.hold`` with the revision's desired
objects once they validate; the decision is the pure reconciler/prune.py. What this module adds is
the I/O: the commit message (its ``Gitship-Allow-Prune`` trailer), the approvals `gitship approve`
records in the store (meta ``pruneApprovals``), and what a held revision leaves behind: Ready False
with reason PruneHeld, a ``held`` row in the history, a Warning event, meta ``pruneHeld`` (what
`gitship status` shows), and a log line. Objects kept by ``gitship.io/prune: disabled`` are logged
(``object_prune_disabled``), get a Normal event, and are listed in meta ``pruneKept``.

A held revision is the last attempted one; the source loop looks at it again when an approval for it
appears (``retry``), so `gitship approve` works while the daemon runs (it also nudges it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import SourceError
from ..log import Logger
from ..manifests.model import RepoConfig
from ..prune import Verdict, allows_prune, decide, effective_threshold, keep_disabled, ref
from ..source.git import Revision
from ..source.git import git as rungit
from ..store import Store
from ..types import Key, Obj

APPROVALS = "pruneApprovals"  # meta: full shas `gitship approve` allowed to prune
HELD = "pruneHeld"  # meta: the held revision {sha, message, deletes, live, threshold}, or None
KEPT = "pruneKept"  # meta: objects kept by gitship.io/prune: disabled (refs)
MAX_APPROVALS = 100


class ReadySetter(Protocol):
    def set_ready(self, status: str, reason: str, message: str) -> None: ...


def approvals(store: Store) -> list[str]:
    return list(store.get_meta(APPROVALS) or [])


def approve(store: Store, sha: str) -> None:
    """Record that ``sha`` may prune what it prunes (`gitship approve`; the store may be the daemon's)."""
    shas = [s for s in approvals(store) if s != sha] + [sha]
    store.set_meta(**{APPROVALS: shas[-MAX_APPROVALS:]})


def last_attempted(applier: Any) -> str | None:
    """The daemon's last attempted revision, or None when it is the held one and `gitship approve` let it
    through since (the daemon then applies it again)."""
    sha: str | None = applier.store.get_meta("lastAttemptedRevision")
    return None if sha and applier.prune is not None and applier.prune.retry(sha) else sha


def commit_message(repo_dir: str, sha: str) -> str:
    try:
        return rungit(repo_dir, "show", "-s", "--format=%B", sha).decode(errors="replace")
    except SourceError:
        return ""


class PruneGate:
    """``threshold``: ``--prune-threshold`` as given (None: the revision's gitship.yaml, else 50%).
    ``owned``: the applied keys this gate counts (a source's own objects when there are several;
    None: every applied object)."""

    def __init__(
        self,
        store: Store,
        repo_dir: str,
        threshold: str | None = None,
        owned: Callable[[], set[Key]] | None = None,
        meta_prefix: str = "",
    ):
        self.store = store
        self.repo_dir = repo_dir
        self.threshold = threshold
        self.owned = owned
        self.prefix = meta_prefix

    def retry(self, sha: str) -> bool:
        """Whether the held revision ``sha`` was approved since (the source loop applies it again)."""
        held = self.store.get_meta(self.prefix + HELD)
        return bool(held and held.get("sha") == sha and sha in approvals(self.store))

    async def verdict(
        self, rev: Revision, desired: dict[Key, Obj], applied: dict[Key, Obj], config: RepoConfig
    ) -> Verdict:
        """Carry over the objects whose pruning is disabled (into ``desired``), then decide."""
        mine = applied if self.owned is None else {k: v for k, v in applied.items() if k in self.owned()}
        kept = keep_disabled(mine, desired)
        threshold = effective_threshold(self.threshold, config.prune_threshold)
        v = decide(mine.keys(), desired.keys(), threshold, kept=kept)
        if v.over:
            if rev.sha in approvals(self.store):
                v = decide(mine.keys(), desired.keys(), threshold, "approval", kept)
            elif allows_prune(await asyncio.to_thread(commit_message, self.repo_dir, rev.sha)):
                v = decide(mine.keys(), desired.keys(), threshold, "trailer", kept)
        return v

    async def hold(
        self,
        ready: ReadySetter,
        rev: Revision,
        desired: dict[Key, Obj],
        applied: dict[Key, Obj],
        config: RepoConfig,
        log: Logger,
        rid: str,
    ) -> bool:
        """True when ``rev`` is held (recorded; the caller applies nothing). ``desired`` gains the kept objects."""
        v = await self.verdict(rev, desired, applied, config)
        self._report_kept(v, rev, log, rid)
        if not v.held:
            if v.allowed_by:
                log.warning("prune_allowed", allowed_by=v.allowed_by, deletes=len(v.deletes), live=v.live)
            self.store.set_meta(**{self.prefix + HELD: None})
            return False
        message = v.message(rev.short)
        self.store.add_revision(rev.to_dict(), "held", error=[{"message": message}], changes=_deletes(v))
        self.store.set_meta(
            **{
                self.prefix + "lastAttemptedRevision": rev.sha,
                self.prefix + "lastAttemptedResult": {"result": "held", "message": message},
                self.prefix + HELD: {"sha": rev.sha, "message": message, **v.summary()},
            }
        )
        ready.set_ready("False", "PruneHeld", message)
        log.warning("revision_prune_held", sha=rev.sha, live=v.live, deletes=[ref(k) for k in v.deletes])
        self.store.add_events([_event("Warning", "PruneHeld", ("Revision", "", rev.short), message, rid, rev.sha)])
        return True

    def _report_kept(self, v: Verdict, rev: Revision, log: Logger, rid: str) -> None:
        previous = self.store.get_meta(self.prefix + KEPT) or []
        refs = [ref(k) for k in v.kept]
        if refs != previous:
            self.store.set_meta(**{self.prefix + KEPT: refs})
        new = [k for k in v.kept if ref(k) not in previous]
        for k in new:
            log.info("object_prune_disabled", kind=k[0], namespace=k[1], name=k[2])
        msg = "kept: its manifest left git, and gitship.io/prune: disabled keeps it"
        self.store.add_events(_event("Normal", "PruneDisabled", k, msg, rid, rev.sha) for k in new)


def _deletes(v: Verdict) -> list[dict[str, str]]:
    return [{"op": "delete", "kind": k[0], "namespace": k[1], "name": k[2]} for k in v.deletes]


def _event(type_: str, reason: str, key: Key, message: str, rid: str, sha: str) -> dict[str, Any]:
    return {
        "type": type_,
        "reason": reason,
        "kind": key[0],
        "namespace": key[1],
        "name": key[2],
        "message": message,
        "reconcile_id": rid,
        "revision": sha,
    }
