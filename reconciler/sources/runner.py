"""Several sources in the daemon: each reconciled on its own, composed into the one desired state.

Where it sits: a layer around the existing applier (reconciler/applier.py); the planner, the store's
desired table and the reconcile pass are unchanged and see one desired state. Each source has its own
git reader and loader, its own ``RevisionApplier`` whose store view keeps the source's own status keys
(``source/<name>/ready``, ``.../lastAppliedRevision``, ...; the repository of `gitship up` is the
source ``default`` and keeps the global keys, so single-source commands read what they always read),
and its own prune gate counting only what the source owns.

* ``ComposingLoader``: a source's revision = its own manifests + every other source's applied objects
  (the same dicts: the plan sees no change in them). An object another source owns rejects the
  revision (reconciler/sources/spec.py's ``ownership_conflicts``).
* ``Inventory``: who owns what (meta ``sourceInventory``: name -> [[kind, namespace, name, file, line]]).
  Objects applied before there were several sources belong to ``default``.
  A Namespace another source owns is one the source's objects may use; a source cannot drop a
  Namespace another source's objects still use.
* ``SourcesLoop``: replaces the daemon's source loop when sources are configured: in ``dependsOn``
  order, a source waits (Ready False, DependencyNotReady) until those it depends on are Ready; a
  source gone from the list has what it owned pruned, under the safe-pruning rule (held until
  `gitship approve source:NAME`). Level-triggered: a `--sources FILE` is read again on every pass
  (a change applies without a restart); a rejected revision is tried again when what the other
  sources own changed (their Namespaces, their claims); a source whose entry changed is checked
  again at the same commit. At start every source's image rules come back from its applied revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..applier import RevisionApplier
from ..errors import GitshipError, RevisionRejected, SourceError
from ..manifests.model import Manifest, RepoConfig, Source
from ..ops.prune import APPROVALS, HELD, PruneGate, approvals
from ..prune import decide, effective_threshold, keep_disabled, ref
from ..source.git import GitReader, Revision, clone_or_update, fetch, is_url
from ..source.revision import RevisionLoader
from ..store import Store
from ..types import Key
from .namespaces import namespace_removed_in_use, namespaces_of
from .spec import DEFAULT, SourceSpec, apply_order, ownership_conflicts, waiting_on
from .status import RECORD

INVENTORY = "sourceInventory"
SOURCES = "sources"  # meta: the configured sources, as `gitship status` lists them
STATUS_KEYS = frozenset(
    {"lastAttemptedRevision", "lastAppliedRevision", "lastAttemptedResult", "ready", "sourceError", HELD, "pruneKept"}
)


def prefix(name: str) -> str:
    """Where a source keeps its status keys in meta ("" for default: the global keys)."""
    return "" if name == DEFAULT else f"source/{name}/"


class SourceView:
    """The store as one source's applier sees it: its own status keys, everything else shared."""

    def __init__(self, store: Store, name: str):
        self._store, self._prefix = store, prefix(name)

    def _key(self, key: str) -> str:
        return self._prefix + key if key in STATUS_KEYS else key

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self._store.get_meta(self._key(key), default)

    def set_meta(self, **values: Any) -> None:
        self._store.set_meta(**{self._key(k): v for k, v in values.items()})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class Inventory:
    def __init__(self, store: Store):
        self.store = store
        raw: dict[str, list[list[Any]]] | None = store.get_meta(INVENTORY)
        if raw is None:  # before there were several sources: what is applied is default's
            positions = store.desired_sources()
            raw = {DEFAULT: [[*k, *positions.get(k, ("", 0))] for k in store.desired()]}
            store.set_meta(**{INVENTORY: raw})
        self.by_source = {s: {(e[0], e[1], e[2]): (str(e[3]), int(e[4])) for e in rows} for s, rows in raw.items()}

    def owners(self) -> dict[Key, tuple[str, str, int]]:
        return {k: (s, f, ln) for s, objs in self.by_source.items() for k, (f, ln) in objs.items()}

    def owned(self, name: str) -> set[Key]:
        return set(self.by_source.get(name, {}))

    def names(self) -> list[str]:
        return sorted(self.by_source)

    def set(self, name: str, objects: dict[Key, tuple[str, int]]) -> None:
        self.by_source[name] = dict(objects)
        self._save()

    def drop(self, name: str) -> None:
        self.by_source.pop(name, None)
        self._save()

    def _save(self) -> None:
        raw = {s: [[*k, f, ln] for k, (f, ln) in sorted(objs.items())] for s, objs in self.by_source.items()}
        self.store.set_meta(**{INVENTORY: raw})


def absolute_images(images: list[dict[str, Any]], repo_dir: str) -> list[dict[str, Any]]:
    """A source's image rules with their working directory in its own checkout (several repositories)."""
    return [{**r, "workingDir": os.path.join(repo_dir, r.get("workingDir") or "")} for r in images]


class ComposingLoader:
    """One source's loader that returns the whole desired state: its manifests plus the others' objects."""

    def __init__(
        self, inner: Any, name: str, repo_dir: str, inventory: Inventory, desired: Callable[[], dict[Key, Any]]
    ):
        self.inner, self.name, self.repo_dir = inner, name, repo_dir
        self.inventory, self.desired = inventory, desired
        self.images: dict[str, list[dict[str, Any]]] = {}  # by source, shared by every source's loader
        self.declared: dict[str, dict[Key, tuple[str, int]]] = {}  # by sha: what this source declared
        self.config = RepoConfig()  # of the last revision loaded
        self.seen: frozenset[tuple[Key, str]] | None = None  # the others' objects at the last load

    def others(self) -> frozenset[tuple[Key, str]]:
        """What the other sources own, and who: a rejection may depend on it."""
        return frozenset((k, o[0]) for k, o in self.inventory.owners().items() if o[0] != self.name)

    def load_own(self, sha: str) -> tuple[list[Manifest], RepoConfig]:
        """The source's own manifests; its objects may use the Namespaces the other sources own."""
        owners = self.inventory.owners()
        self.seen = self.others()
        if hasattr(self.inner, "namespaces"):
            self.inner.namespaces = namespaces_of(owners, self.name)
        result: tuple[list[Manifest], RepoConfig] = self.inner.load(sha)
        return result

    def load(self, sha: str) -> tuple[list[Manifest], RepoConfig]:
        manifests, config = self.load_own(sha)
        declared = {m.key: (m.source.file, m.source.line) for m in manifests}
        owners = self.inventory.owners()
        errors = ownership_conflicts(self.name, declared, owners) + namespace_removed_in_use(
            self.name, declared, owners
        )
        if errors:
            raise RevisionRejected(errors)
        self.declared, self.config = {sha: declared}, config
        others = [
            Manifest(obj, Source(owners[k][1], owners[k][2], 0))
            for k, obj in self.desired().items()
            if k in owners and owners[k][0] != self.name and k not in declared
        ]
        self.images[self.name] = absolute_images(config.images, self.repo_dir)
        merged = [r for n in sorted(self.images, key=lambda n: n != self.name) for r in self.images[n]]
        config.images = merged
        return manifests + others, config


@dataclass
class Member:
    spec: SourceSpec
    repo_dir: str
    branch: str
    remote: bool
    reader: GitReader
    applier: RevisionApplier
    loader: ComposingLoader
    last_fetch: float = 0.0
    recheck: bool = False  # its entry changed: look at the commit again even when it was attempted


class SourcesLoop:
    """Every configured source, checked in dependsOn order on each wake-up (the daemon's source loop)."""

    def __init__(self, d: Any, specs: list[SourceSpec]):
        self.d = d
        self.store: Store = d.store
        self.inventory = Inventory(d.store)
        self.lock = asyncio.Lock()
        self.images: dict[str, list[dict[str, Any]]] = {}
        self.members: dict[str, Member] = {}
        self.specs: list[SourceSpec] = []
        self.file_state: tuple[bytes, str] | None = None  # --sources FILE as last read, and its error
        self._adopt_default()
        self.configure(specs)

    def _adopt_default(self) -> None:
        d = self.d
        spec = SourceSpec(DEFAULT, d.opts.source, d.branch, d.opts.path, d.opts.interval)
        loader = ComposingLoader(d.loader, DEFAULT, d.repo_dir, self.inventory, lambda: d.reconciler.desired)
        loader.images = self.images
        d.applier.loader = loader
        if d.applier.prune is not None:
            d.applier.prune.owned = lambda: self.inventory.owned(DEFAULT)
        self.members[DEFAULT] = Member(spec, d.repo_dir, d.branch, d.remote, d.reader, d.applier, loader)

    def _member(self, spec: SourceSpec) -> Member:
        d = self.d
        remote = is_url(spec.url)
        if remote:
            repo_dir = os.path.join(d.state_dir, "sources", spec.name)
            branch = clone_or_update(spec.url, repo_dir, spec.branch)
        else:
            repo_dir = os.path.abspath(spec.url)
            if not GitReader(repo_dir).is_repository():
                raise SourceError(f"source {spec.name!r}: {spec.url} is not a git repository")
            branch = spec.branch or GitReader(repo_dir).current_branch()
        reader = GitReader(repo_dir)
        inner = RevisionLoader(reader, spec.path, d.opts.limits, d.opts.decryption_key_file)
        loader = ComposingLoader(inner, spec.name, repo_dir, self.inventory, lambda: d.reconciler.desired)
        loader.images = self.images
        view: Any = SourceView(self.store, spec.name)
        applier = RevisionApplier(view, loader, d.reconciler, d.runtime, repo_dir, branch, d.log)  # type: ignore[arg-type]
        applier.prune = PruneGate(
            self.store, repo_dir, d.opts.prune_threshold, lambda: self.inventory.owned(spec.name), prefix(spec.name)
        )
        record = {"url": spec.url, "branch": branch, "path": spec.path, "repoDir": repo_dir, "remote": remote}
        self.store.set_meta(**{prefix(spec.name) + RECORD: record})  # `gitship plan/diff --source NAME`
        return Member(spec, repo_dir, branch, remote, reader, applier, loader)

    def configure(self, specs: list[SourceSpec]) -> None:
        """The listed sources (beside default); one that cannot be opened reports it in its status."""
        self.specs = specs
        for spec in specs:
            if spec.name in self.members and self.members[spec.name].spec == spec:
                continue
            try:
                changed = spec.name in self.members
                self.members[spec.name] = self._member(spec)
                self.members[spec.name].recheck = changed
            except GitshipError as e:
                SourceView(self.store, spec.name).set_meta(
                    ready=_ready("False", "SourceUnavailable", str(e)), sourceError=str(e)
                )
                self.d.log.warning("source_unavailable", source=spec.name, error=str(e))
        self.store.set_meta(**{SOURCES: [DEFAULT, *(s.name for s in specs)]})

    def ready(self) -> dict[str, bool]:
        return {
            n: (self.store.get_meta(prefix(n) + "ready") or {}).get("status") == "True"
            for n in [DEFAULT, *(s.name for s in self.specs)]
        }

    async def step(self, m: Member) -> None:
        if m.remote and time.monotonic() - m.last_fetch >= m.spec.interval:
            m.last_fetch = time.monotonic()
            await asyncio.to_thread(fetch, m.repo_dir, m.branch)
            m.applier.set_source_error(None)
        waiting = waiting_on(m.spec, self.ready())
        if waiting:
            msg = f"dependency {', '.join(repr(w) for w in waiting)} is not Ready"
            view = SourceView(self.store, m.spec.name)
            if (view.get_meta("ready") or {}).get("message") != msg:
                m.applier.set_ready("False", "DependencyNotReady", msg)
                self.d.log.info("source_waiting", source=m.spec.name, on=waiting)
            return
        sha = await asyncio.to_thread(m.reader.resolve, f"refs/heads/{m.branch}")
        if sha is None:
            raise SourceError(f"source {m.spec.name!r}: the repository has no branch {m.branch!r}")
        last = self.store.get_meta(prefix(m.spec.name) + "lastAttemptedRevision")
        gate = m.applier.prune
        if sha == last and not (m.recheck or self._context_changed(m) or (gate is not None and gate.retry(sha))):
            return
        m.recheck = False
        async with self.lock:  # one source at a time composes and applies: none undoes another's change
            rev = await asyncio.to_thread(m.reader.revision, sha)
            before = self.inventory.owned(m.spec.name)
            if await m.applier.apply_revision(rev):
                declared = m.loader.declared.get(sha, {})
                kept = {k: self.inventory.by_source.get(m.spec.name, {}).get(k, ("", 0)) for k in before}
                now = self.d.reconciler.desired
                self.inventory.set(m.spec.name, {**{k: p for k, p in kept.items() if k in now}, **declared})
                if m.spec.name == DEFAULT and not self.d.opts.sources_file:  # its gitship.yaml lists the others
                    self.configure(list(m.loader.config.sources))

    def _context_changed(self, m: Member) -> bool:
        """A rejected revision is tried again when what the others own changed since (a Namespace it
        needs came, an object another source claimed went); once after a restart."""
        result = self.store.get_meta(prefix(m.spec.name) + "lastAttemptedResult") or {}
        return result.get("result") == "rejected" and m.loader.seen != m.loader.others()

    def reread_sources_file(self) -> None:
        """``--sources FILE`` read again (level-triggered): a changed list is configured at once; an
        unreadable or invalid one is logged once and the sources as they were keep running."""
        path = self.d.opts.sources_file
        if not path:
            return
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            data = f"{e}".encode()
        if self.file_state is not None and self.file_state[0] == data:
            return
        try:
            specs, error = read_sources_file(path), ""
        except GitshipError as e:
            specs, error = self.specs, str(e)
        self.file_state = (data, error)
        if error:
            self.d.log.error("sources_file_invalid", path=path, error=error)
        elif specs != self.specs:
            self.d.log.info("sources_changed", sources=[DEFAULT, *(s.name for s in specs)])
            self.configure(specs)

    async def restore_images(self) -> None:
        """Every source's image rules (gitship.yaml ``images:``) from its applied revision, at start:
        a source that applies nothing new after a restart keeps its images resolvable."""
        for name, m in sorted(self.members.items(), key=lambda kv: kv[0] != DEFAULT):
            sha = self.store.get_meta(prefix(name) + "lastAppliedRevision")
            if not sha:
                continue
            try:
                _, config = await asyncio.to_thread(m.loader.load_own, sha)
            except GitshipError as e:
                self.d.log.warning("repo_config_restore_failed", source=name, sha=sha, error=str(e))
                continue
            self.images[name] = absolute_images(config.images, m.repo_dir)
        if self.images:
            merged = [r for n in sorted(self.images, key=lambda n: n != DEFAULT) for r in self.images[n]]
            self.d.runtime.set_image_rules(merged, self.d.repo_dir)

    async def remove_gone(self) -> None:
        """Sources in the inventory but no longer listed: prune what they owned (safe-pruning rule)."""
        listed = {DEFAULT, *(s.name for s in self.specs)}
        for name in [n for n in self.inventory.names() if n not in listed]:
            async with self.lock:
                await self._remove(name)

    async def _remove(self, name: str) -> None:
        owned = self.inventory.owned(name)
        applied = {k: v for k, v in self.d.reconciler.desired.items() if k in owned}
        token = f"source:{name}"
        desired: dict[Key, Any] = {}
        kept = keep_disabled(applied, desired)
        v = decide(applied.keys(), desired.keys(), effective_threshold(self.d.opts.prune_threshold, None))
        v = decide(
            applied.keys(), desired.keys(), v.threshold, "approval" if token in approvals(self.store) else "", kept
        )
        view = SourceView(self.store, name)
        if v.held:
            msg = v.message(token).replace(f"revision {token}", f"removing source {name!r}")
            if (view.get_meta(HELD) or {}).get("message") != msg:
                view.set_meta(**{HELD: {"sha": token, "message": msg, **v.summary()}})
                view.set_meta(ready=_ready("False", "PruneHeld", msg))
                self.d.log.warning("source_removal_held", source=name, deletes=[ref(k) for k in v.deletes])
            return
        if not v.deletes:  # only objects gitship.io/prune: disabled keeps: they stay, and so does its inventory
            return
        new = {k: o for k, o in self.d.reconciler.desired.items() if k not in v.deletes}
        self.store.update_desired([], list(v.deletes))
        last = self.store.get_meta(prefix(name) + "lastAppliedRevision") or ""
        rev = Revision(last or "0" * 40, "gitship", "", time.time(), f"source {name} removed")
        self.d.reconciler.set_desired(new, rev, uuid.uuid4().hex[:12])
        if kept:
            self.inventory.set(name, {k: self.inventory.by_source[name][k] for k in kept})
        else:
            self.inventory.drop(name)
            self.store.set_meta(**{APPROVALS: [a for a in approvals(self.store) if a != token]})
            for key in STATUS_KEYS:
                view.set_meta(**{key: None})
        self.d.log.info("source_removed", source=name, deleted=[ref(k) for k in v.deletes], kept=[ref(k) for k in kept])

    async def loop(self) -> None:
        d = self.d
        with contextlib.suppress(Exception):
            await self.restore_images()
        while not d.stopping.is_set():
            d._source_wake.clear()
            try:
                self.reread_sources_file()
            except Exception as e:  # never let the source loop die
                d.log.exception("sources_file_failed", error=str(e))
            listed = {DEFAULT, *(s.name for s in self.specs)}
            for name in apply_order(m.spec for m in self.members.values() if m.spec.name in listed):
                m = self.members[name]
                try:
                    await self.step(m)
                except SourceError as e:
                    m.applier.set_source_error(str(e))
                    d.log.warning("source_error", source=name, error=str(e))
                except Exception as e:  # never let the source loop die
                    d.log.exception("source_loop_failed", source=name, error=str(e))
            with contextlib.suppress(Exception):
                await self.remove_gone()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(d._source_wake.wait(), timeout=2.0)


def _ready(status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": time.time()}


def read_sources_file(path: str) -> list[SourceSpec]:
    """``--sources FILE``: a YAML file with a ``sources:`` list, as in gitship.yaml (same checks, same errors)."""
    from ..manifests.load import parse_repo_config

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise GitshipError(f"cannot read the sources file {path}: {e.strerror}") from e
    return list(parse_repo_config(data, path).sources)


def source_loop(d: Any) -> Coroutine[Any, Any, None]:
    """The daemon's source loop: its own for one source, ``SourcesLoop.loop`` for several."""
    sources = start_sources(d)
    return sources.loop() if sources else d._source_loop()


def start_sources(d: Any) -> SourcesLoop | None:
    """The daemon's applier gets its prune gate (safe pruning, reconciler/ops/prune.py); then the sources
    loop when sources are configured (``--sources FILE``, else the default repository's gitship.yaml at its
    head), else None: the daemon's own single-source loop runs, unchanged."""
    d.applier.prune = PruneGate(d.store, d.repo_dir, d.opts.prune_threshold)
    specs: list[SourceSpec] = []
    if d.opts.sources_file:
        specs = read_sources_file(d.opts.sources_file)
    else:
        head = d.reader.resolve(f"refs/heads/{d.branch}") if d.reader else None
        if head:
            with contextlib.suppress(GitshipError):
                specs = list(d.loader.load(head)[1].sources)
    if not specs and not d.opts.sources_file:
        return None
    loop = SourcesLoop(d, specs)
    d.log.info("sources", sources=[DEFAULT, *(s.name for s in specs)])
    return loop
