"""Automatic rollback, the loop: reverts a failed rollout as a git commit.

Where it sits: beside the reconcile loop. Each second it asks the pure rule
(reconciler/autorollback.py) which Deployments that opted in (``gitship.io/auto-rollback``)
missed their progress deadline, and commits the revert of the commit that made the failed
revision (reconciler/undo.py). The source loop applies that commit like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from . import autorollback
from .cluster import Cluster
from .controllers import deployment as deployctl
from .errors import GitshipError
from .log import Logger
from .store import Store
from .undo import undo_commit


class AutoRollbacks:
    def __init__(
        self,
        store: Store,
        cluster: Cluster,
        writer: Callable[[], Any],
        log: Logger,
        stopping: asyncio.Event,
        wake_source: Callable[[], None],
    ):
        self.store = store
        self.cluster = cluster
        self.writer = writer
        self.log = log
        self.stopping = stopping
        self.wake_source = wake_source

    async def loop(self) -> None:
        attempted: set[str] = set()
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=1.0)
            try:
                await self.once(attempted)
            except Exception as e:  # never let it take the daemon down
                self.log.exception("auto_rollback_failed", error=str(e))

    async def once(self, attempted: set[str]) -> None:
        cluster = self.cluster
        deps = [d for d in cluster.of_kind("Deployment") if autorollback.enabled(d)]
        if not deps:
            return
        own = self.store.get_meta("autoRollbacks", {})
        reverted = {r["sha"] for r in self.store.revisions(500) if r.get("revertedBy")}
        rss = cluster.of_kind("ReplicaSet")
        for rb in autorollback.decide(deps, rss, reverted | attempted, set(own.values())):
            attempted.add(rb.commit)
            dep = cluster.get(("Deployment", rb.namespace, rb.name))
            if dep is None:
                continue
            revs = dict(deployctl.revisions(dep, rss))
            rid = uuid.uuid4().hex[:12]
            reason = (
                f"Automatic rollback by gitship: revision {rb.current_revision} of deployment/{rb.name} "
                f"failed (Progressing=False, {autorollback.DEADLINE_EXCEEDED}: {rb.message}); "
                f"reconcile {rid}."
            )
            try:
                sha, how = await asyncio.to_thread(
                    undo_commit,
                    self.writer(),
                    dep,
                    (rb.current_revision, revs[rb.current_revision]),
                    (rb.target_revision, revs[rb.target_revision]),
                    reason,
                )
            except GitshipError as e:
                self.log.error(
                    "auto_rollback_failed", reconcile_id=rid, deployment=rb.name, commit=rb.commit[:7], error=str(e)
                )
                self.store.add_events(
                    [
                        {
                            "type": "Warning",
                            "reason": "AutoRollbackFailed",
                            "kind": "Deployment",
                            "namespace": rb.namespace,
                            "name": rb.name,
                            "message": str(e),
                            "reconcile_id": rid,
                            "revision": rb.commit,
                        }
                    ]
                )
                continue
            own[rb.commit] = sha
            self.store.set_meta(autoRollbacks=own)
            msg = (
                f"rolled back revision {rb.current_revision} (commit {rb.commit[:7]}) to revision "
                f"{rb.target_revision}: {how} {sha[:7]}"
            )
            self.log.warning(
                "auto_rollback_committed",
                reconcile_id=rid,
                deployment=rb.name,
                failed_commit=rb.commit,
                commit=sha[:7],
                condition=autorollback.DEADLINE_EXCEEDED,
                message=msg,
            )
            self.store.add_events(
                [
                    {
                        "type": "Warning",
                        "reason": "AutoRollback",
                        "kind": "Deployment",
                        "namespace": rb.namespace,
                        "name": rb.name,
                        "message": msg,
                        "reconcile_id": rid,
                        "revision": sha,
                    }
                ]
            )
            self.wake_source()
