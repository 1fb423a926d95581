"""What each page of the web view shows, gathered from the running daemon.

Reads come from the daemon's memory (the live objects of the reconcile pass, the applied state),
its store (revisions, events, meta), the repository (git log, files at a commit) and the reconcile
log file. Git and file reads run in worker threads (``asyncio.to_thread``) so the loop never waits
on them. The shaping of objects is the pure modules' (health, tree, picture).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from typing import Any

import yaml

from reconciler.log import LEVELS, LOG_FILE
from reconciler.redact import redact
from reconciler.source.git import git as rungit
from reconciler.types import Key, Obj

from . import picture, tree
from .health import health

PAGE = 50  # top-level objects per page of the Objects page
CHILDREN = 25  # children shown under a node before "n more"
LOG_TAIL = 4 << 20  # bytes of the reconcile log read for the Log and History pages


def _live(d: Any) -> list[Obj]:
    return list(d.reconciler.cluster.objects.values())


def _declared(d: Any) -> list[Key]:
    return list(d.reconciler.desired)


def _sources(d: Any) -> dict[Key, tuple[str, int]]:
    out: dict[Key, tuple[str, int]] = d.store.desired_sources()
    return out


def _show(d: Any, sha: str, file: str) -> str | None:
    try:
        return str(rungit(d.repo_dir, "show", f"{sha}:{file}").decode(errors="replace"))
    except Exception:
        return None


def excerpt(text: str | None, line: int, around: int = 2) -> list[tuple[int, str, bool]]:
    """Lines ``line - around`` .. ``line + around`` of ``text`` as (number, text, is the line)."""
    if not text or line <= 0:
        return []
    lines = text.splitlines()
    lo, hi = max(1, line - around), min(len(lines), line + around)
    return [(n, lines[n - 1], n == line) for n in range(lo, hi + 1)]


async def rejected_errors(d: Any, sha: str, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A rejected revision's errors, each with the offending lines of its file at that commit."""
    out = []
    prefix = (d.opts.path or "").strip("/")
    for e in errors[:20]:
        file = str(e.get("file") or "")
        text = None
        if file:
            text = await asyncio.to_thread(_show, d, sha, file)
            if text is None and prefix:
                text = await asyncio.to_thread(_show, d, sha, f"{prefix}/{file}")
        out.append({**e, "lines": excerpt(text, int(e.get("line") or 0))})
    return out


async def overview(d: Any) -> dict[str, Any]:
    store = d.store
    meta = {k: store.get_meta(k) for k in ("source", "ready", "lastAppliedRevision", "lastAttemptedRevision")}
    meta["lastAttemptedResult"] = store.get_meta("lastAttemptedResult") or {}
    meta["sourceError"] = store.get_meta("sourceError")
    live, declared = _live(d), _declared(d)
    table = tree.counts(live, declared)
    last = store.revisions(1)
    rejected = None
    if last and last[0]["result"] == "rejected":
        r = last[0]
        rejected = {**r, "errors": await rejected_errors(d, r["sha"], r.get("error") or [])}
    return {
        **meta,
        "runtime": d.runtime.info(),
        "plane": d.plane.info(),
        "counts": table,
        "totals": tree.health_totals(table),
        "rejected": rejected,
        "pods": sum(table.get("Pod", {}).values()),
    }


def _matches(n: tree.Node, q: str) -> bool:
    return not q or q in f"{n.kind}/{n.namespace}/{n.name}".lower() or any(_matches(c, q) for c in n.children)


def objects(d: Any, ns: str = "", kind: str = "", q: str = "", page: int = 1) -> dict[str, Any]:
    """The forest, filtered by namespace, top-level kind and a name fragment, one page of it."""
    forest = tree.build(_live(d), _declared(d), _sources(d))
    q = q.lower()
    shown = [n for n in forest if (not ns or n.namespace == ns) and (not kind or n.kind == kind) and _matches(n, q)]
    pages = max(1, (len(shown) + PAGE - 1) // PAGE)
    page = min(max(page, 1), pages)
    return {
        "nodes": shown[(page - 1) * PAGE : page * PAGE],
        "page": page,
        "pages": pages,
        "total": len(shown),
        "namespaces": sorted({n.namespace for n in forest if n.namespace}),
        "kinds": sorted({n.kind for n in forest}),
        "children": CHILDREN,
        "rollup": tree.rollup,
    }


def detail(d: Any, key: Key, child_page: int = 1) -> dict[str, Any] | None:
    obj = d.reconciler.cluster.get(key)
    declared = d.reconciler.desired.get(key)
    if obj is None and declared is None:
        return None
    h = health(obj, key[0])
    src = _sources(d).get(key)
    node = tree.find(tree.build(_live(d), _declared(d), _sources(d)), key)
    children = node.children if node else []
    pages = max(1, (len(children) + PAGE - 1) // PAGE)
    child_page = min(max(child_page, 1), pages)
    events = d.store.events(kind=key[0], namespace=key[1], name=key[2], limit=50)
    shown = redact(obj if obj is not None else declared)
    containers = [c["name"] for c in ((obj or {}).get("spec") or {}).get("containers") or []] if key[0] == "Pod" else []
    return {
        "key": key,
        "obj": obj,
        "health": h,
        "source": src,
        "conditions": ((obj or {}).get("status") or {}).get("conditions") or [],
        "events": events,
        "yaml": yaml.safe_dump(shown, sort_keys=False, default_flow_style=False),
        "children": children[(child_page - 1) * PAGE : child_page * PAGE],
        "child_page": child_page,
        "child_pages": pages,
        "child_total": len(children),
        "containers": containers,
        "rollup": tree.rollup,
    }


def rollouts(d: Any, ns: str = "", name: str = "") -> list[picture.Rollout]:
    cluster = d.reconciler.cluster
    rss = cluster.of_kind("ReplicaSet")
    out = []
    for dep in sorted(cluster.of_kind("Deployment"), key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])):
        m = dep["metadata"]
        if (ns and m["namespace"] != ns) or (name and m["name"] != name):
            continue
        out.append(picture.model(dep, [r for r in rss if r["metadata"]["namespace"] == m["namespace"]]))
    return out


def _tail_lines(path: str, limit: int = LOG_TAIL) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines[1:] if size > limit else lines


def _records(lines: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def log_filter(commit: str = "", obj: str = "", level: str = "") -> Any:
    """The records the Log page's filters keep (as `gitship events --commit --object --level`)."""
    want_kind, _, want_name = obj.partition("/")
    min_level = LEVELS.get(level or "debug", 0)

    def keep(ev: dict[str, Any]) -> bool:
        if commit:
            c = str(ev.get("commit") or ev.get("sha") or ev.get("revision") or "")
            if not c or not (c.startswith(commit) or commit.startswith(c)):
                return False
        if obj:
            kind = str(ev.get("kind") or "").lower()
            if want_name and (kind != want_kind.lower() or ev.get("name") != want_name):
                return False
            if not want_name and want_kind not in (str(ev.get("name") or ""), kind):
                return False
        return LEVELS.get(str(ev.get("level", "info")), 20) >= min_level

    return keep


def _read_log(path: str, keep: Any, limit: int, needle: str = "") -> list[Obj]:
    lines = [line for line in _tail_lines(path) if needle in line]
    return [r for r in _records(lines) if keep(r)][-limit:]


async def log_records(d: Any, commit: str = "", obj: str = "", level: str = "", limit: int = 300) -> list[Obj]:
    """The newest ``limit`` records the filters keep (read and parsed in a worker thread)."""
    path = os.path.join(d.state_dir, LOG_FILE)
    out: list[Obj] = await asyncio.to_thread(_read_log, path, log_filter(commit, obj, level), limit)
    return out


def _stamp(ts: object) -> float | None:
    """An ISO 8601 UTC log timestamp as seconds (only differences matter)."""
    import datetime

    try:
        return datetime.datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def durations(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Short sha -> {"load": ms to load, validate and plan it (its revision_applied / _rejected record),
    "span": s from its revision_detected record to the last record of its reconcile (the commit's
    records: events, pod batches, ...)}."""
    out: dict[str, dict[str, float]] = {}
    first: dict[str, float] = {}
    for r in records:
        c = str(r.get("commit") or "")
        t = _stamp(r.get("timestamp"))
        if not c or t is None:
            continue
        row = out.setdefault(c, {})
        if r.get("event") == "revision_detected":
            first[c] = t
        elif r.get("event") in ("revision_applied", "revision_rejected") and r.get("duration_ms") is not None:
            row["load"] = float(r["duration_ms"])
        if c in first:
            row["span"] = t - first[c]
    return out


async def history(d: Any, n: int = 40) -> list[dict[str, Any]]:
    """The branch's commits, newest first, each with what gitship did with it (applied, rejected,
    not seen), why, what it changed and how long loading it took."""
    commits = await asyncio.to_thread(lambda: d.writer().log(None, n))
    seen = {r["sha"]: r for r in reversed(d.store.revisions(500))}
    path = os.path.join(d.state_dir, LOG_FILE)
    times = durations(await asyncio.to_thread(_read_log, path, lambda r: True, 1 << 30, '"commit":"'))
    head = commits[0]["sha"] if commits else ""
    out = []
    for c in commits:
        r = seen.get(c["sha"]) or {}
        out.append(
            {
                **c,
                "result": r.get("result") or "not applied",
                "errors": r.get("error") or [],
                "changes": r.get("changes") or [],
                "revertedBy": r.get("revertedBy"),
                "duration": next((v for k, v in times.items() if c["sha"].startswith(k)), {}),
                "head": c["sha"] == head,
            }
        )
    return out


def _load(d: Any, sha: str) -> dict[Key, Obj]:
    manifests, _ = d.loader.load(sha)
    return {m.key: m.obj for m in manifests}


def commit_diff(d: Any, sha: str) -> dict[str, Any]:
    """What a commit changed, per object, as `gitship diff` shows it (its parent's objects -> its own)."""
    from reconciler.plan import plan, render_diff

    parents = rungit(d.repo_dir, "rev-list", "--parents", "-n", "1", sha).decode().split()
    full, parent = parents[0], (parents[1] if len(parents) > 1 else None)
    try:
        after = _load(d, full)
    except Exception as e:
        return {"sha": full, "error": str(e), "objects": []}
    try:
        before = _load(d, parent) if parent else {}
    except Exception:
        before = {}
    objs = []
    for a in plan(before, after):
        objs.append({"op": a.op, "ref": a.ref, "diff": render_diff([a])})
    return {"sha": full, "error": None, "objects": objs}
