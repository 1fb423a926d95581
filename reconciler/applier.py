"""Applying a revision: load and validate it, record it, hand it to the reconciler.

Where it sits: between the source loop (reconciler/daemon.py, which finds a new commit) and
the reconcile pass. A rejected revision changes nothing that runs; an applied one is planned
against the applied state (reconciler/plan.py), written to the store, and becomes the
reconciler's desired state. The Ready condition `gitship status` shows is kept here.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from runtime.base import Runtime

from .errors import RevisionRejected, SourceError
from .log import Logger
from .manifests.model import Manifest
from .ops.metrics import timed_apply
from .ops.prune import PruneGate
from .plan import plan
from .reconcile import Reconciler
from .source.git import Revision
from .source.git import GitReader
from .source.git import git as rungit
from .source.revision import RevisionLoader
from .store import Store
from .sync.immutable import at_field_lines, immutable_field_errors

_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{40})")

# the reason of a loader warning's event, by how its message starts
_WARNING_REASONS = (("unknown field", "UnknownField"), ("duplicate field", "DuplicateField"))


def warning_records(manifests: Sequence[Manifest]) -> list[dict[str, Any]]:
    """The loader's warnings (unknown or duplicated fields under ``validation: warn`` in
    gitship.yaml) as Warning events on their objects, one per warning, with the position the
    reconcile log line carries (file, line, field)."""
    out: list[dict[str, Any]] = []
    for m in manifests:
        kind, namespace, name = m.key
        for w in m.warnings:
            reason = next((r for start, r in _WARNING_REASONS if w.message.startswith(start)), "FieldWarning")
            out.append(
                {
                    "type": "Warning",
                    "reason": reason,
                    "kind": kind,
                    "namespace": namespace,
                    "name": name,
                    "message": f"{w.message} (validation: warn in gitship.yaml)",
                    "file": w.file,
                    "line": w.line,
                    "field": w.field,
                }
            )
    return out


class RevisionApplier:
    verify: Callable[[Revision], Awaitable[bool]] | None = None  # reconciler/ops/verify.py: signed commits only
    on_source_change: Callable[[str | None], None] | None = None  # each outage edge (reconciler/ops/notify.py)
    on_applied: Callable[[str], None] | None = None  # each revision applied (reconciler/ops/notify.py)

    def __init__(
        self,
        store: Store,
        loader: RevisionLoader,
        reconciler: Reconciler,
        runtime: Runtime,
        repo_dir: str,
        branch: str,
        log: Logger,
    ):
        self.store = store
        self.loader = loader
        self.reconciler = reconciler
        self.runtime = runtime
        self.repo_dir = repo_dir
        self.branch = branch
        self.log = log
        self.prune: PruneGate | None = None  # safe pruning (reconciler/ops/prune.py); the daemon sets it

    def set_source_error(self, error: str | None) -> None:
        prev = self.store.get_meta("sourceError")
        if prev != error:
            self.store.set_meta(sourceError=error)
            if self.on_source_change is not None:
                self.on_source_change(error)
            if error:
                self.set_ready("False", "SourceUnavailable", error)
            else:
                last = self.store.get_meta("lastAttemptedResult", {})
                if last.get("result") == "applied":
                    self.set_ready("True", "ReconciliationSucceeded", last.get("message", ""))

    def set_ready(self, status: str, reason: str, message: str) -> None:
        self.store.set_meta(
            ready={
                "type": "Ready",
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": time.time(),
            }
        )

    def _reverts_in(self, sha: str) -> list[str]:
        """The commits a revert commit names ("This reverts commit <sha>.")."""
        reader = getattr(self.loader, "reader", None)  # a composing loader (several sources) has none
        if isinstance(reader, GitReader):  # kept from reading the revision: no `git show` process
            body = reader.message(sha)
        else:
            body = rungit(self.repo_dir, "show", "-s", "--format=%B", sha).decode(errors="replace")
        return _REVERTS.findall(body)

    def _read(self, sha: str, file: str) -> str | None:
        """A file of a commit as written (``file`` relative to the repository root), None when unreadable."""
        try:
            return rungit(self.repo_dir, "show", f"{sha}:{file}").decode(errors="replace")
        except SourceError:  # the error keeps its document's line
            return None

    def _warn(self, manifests: Sequence[Manifest], rev: Revision, rid: str, log: Logger) -> None:
        """The loader's warnings, once for the revision: a Warning event on each object and one
        structured line each in the reconcile log (`gitship events`)."""
        records = warning_records(manifests)
        for r in records:
            log.warning(
                "manifest_warning",
                **{k: r[k] for k in ("kind", "namespace", "name", "file", "line", "field", "reason", "message")},
            )
        self.store.add_events(
            {
                **{k: r[k] for k in ("type", "reason", "kind", "namespace", "name", "message")},
                "reconcile_id": rid,
                "revision": rev.sha,
            }
            for r in records
        )

    @timed_apply  # gitship_reconcile_duration_seconds, gitship_reconcile_total (reconciler/ops/metrics.py)
    async def apply_revision(self, rev: Revision) -> bool:
        if self.verify is not None and not await self.verify(rev):
            return False  # not signed by a trusted key: nothing changes
        rid = uuid.uuid4().hex[:12]
        log = self.log.bind(reconcile_id=rid, commit=rev.short)
        t0 = time.perf_counter()
        log.info("revision_detected", sha=rev.sha, author=rev.author, subject=rev.subject)
        try:
            manifests, config = await asyncio.to_thread(self.loader.load, rev.sha)
            errors = self.reconciler.check_revision(manifests)
            immutable = immutable_field_errors(manifests, self.reconciler.cluster.objects)
            if immutable:
                errors = [
                    *errors,
                    *await asyncio.to_thread(at_field_lines, immutable, lambda f: self._read(rev.sha, f)),
                ]
            if errors:
                raise RevisionRejected(errors)
        except RevisionRejected as e:
            errs = [x.to_dict() for x in e.errors]
            self.store.add_revision(rev.to_dict(), "rejected", error=errs)
            self.store.set_meta(
                lastAttemptedRevision=rev.sha, lastAttemptedResult={"result": "rejected", "message": str(e)}
            )
            self.set_ready("False", "ValidationFailed", f"revision {rev.short} rejected: {e}")
            log.error("revision_rejected", errors=errs, duration_ms=round((time.perf_counter() - t0) * 1000, 2))
            self.store.add_events(
                [
                    {
                        "type": "Warning",
                        "reason": "RevisionRejected",
                        "kind": "Revision",
                        "namespace": "",
                        "name": rev.short,
                        "message": str(e),
                        "reconcile_id": rid,
                        "revision": rev.sha,
                    }
                ]
            )
            return False
        desired = {m.key: m.obj for m in manifests}
        if self.prune and await self.prune.hold(self, rev, desired, self.reconciler.desired, config, log, rid):
            return False  # held: deletes too much (reconciler/prune.py); what runs keeps running
        # the applied state in memory holds the loader's cached objects: unchanged ones compare by identity
        actions = plan(self.reconciler.desired, desired)
        for reverted in await asyncio.to_thread(self._reverts_in, rev.sha):
            self.store.mark_reverted(reverted, rev.sha)
        changed = {a.key for a in actions if a.op != "delete"}
        self.store.update_desired(
            ((m.obj, m.source.file, m.source.line) for m in manifests if m.key in changed),
            [a.key for a in actions if a.op == "delete"],
        )
        self.store.add_revision(rev.to_dict(), "applied", objects=list(desired), changes=[a.summary() for a in actions])
        msg = f"Applied revision: {self.branch}@sha1:{rev.sha}"
        self.store.set_meta(
            lastAttemptedRevision=rev.sha,
            lastAppliedRevision=rev.sha,
            lastAttemptedResult={"result": "applied", "message": msg},
        )
        self.set_ready("True", "ReconciliationSucceeded", msg)
        if self.on_applied is not None:
            self.on_applied(rev.sha)
        for a in actions:
            log.info("object_planned", action=a.op, kind=a.key[0], namespace=a.key[1], name=a.key[2])
        self._warn(manifests, rev, rid, log)
        self.runtime.set_image_rules(config.images, self.repo_dir)
        self.reconciler.set_desired(desired, rev, rid)
        log.info(
            "revision_applied",
            sha=rev.sha,
            objects=len(desired),
            actions=len(actions),
            duration_ms=round((time.perf_counter() - t0) * 1000, 2),
        )
        return True
