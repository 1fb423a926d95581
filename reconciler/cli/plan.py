"""`gitship plan [REV]` and `gitship validate [PATH...]`: what a revision would do, and whether files load.

Both work without a daemon and without the repository's pods (pre-commit hooks, CI): exit 0 when
the revision would apply (plan) or every file loads (validate), 1 otherwise, with the daemon's own
``file:line (document N): field: message`` errors.

plan compares REV (default: the tracked branch's head, else HEAD) with the applied state of the
state dir when there is one, with ``--base REV`` when given, else with nothing; it prints the creates,
updates and deletes (reconciler/plan.py), the objects ``gitship.io/prune: disabled`` keeps, and the
safe-pruning verdict (reconciler/prune.py) with the commit's trailer and `gitship approve`'s
approvals counted. `gitship diff` is the same comparison as a YAML diff. With several sources
(reconciler/sources), ``--source NAME`` picks the source (default: the repository of `gitship up`):
its checkout, branch and path as the daemon recorded them, compared with what that source owns, its
objects free to use the Namespaces the other sources declare.

validate reads files from disk (the working tree, uncommitted changes included) through the one
loader (reconciler/manifests/revision.py), with the gitship.yaml of each directory given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.cli.common import Subparsers, state_dir
from reconciler.errors import GitshipError, ManifestError, RevisionRejected
from reconciler.manifests.model import Manifest, RepoConfig
from reconciler.plan import Action, plan
from reconciler.prune import OFF, Verdict, allows_prune, decide, effective_threshold, keep_disabled, parse_threshold
from reconciler.types import Key, Obj


def _threshold_arg(text: str) -> str:
    try:
        parse_threshold(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_prune_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--prune-threshold",
        metavar="PERCENT",
        type=_threshold_arg,
        default=None,
        help="hold a revision that would delete all the applied objects or more than PERCENT%% of them "
        f"(default: gitship.yaml's pruneThreshold, else 50; {OFF!r}: never hold)",
    )


def prune_status_lines(st: dict[str, Any]) -> list[str]:
    """`gitship status`: the held revision and the objects kept by gitship.io/prune: disabled."""
    lines = []
    held = st.get("pruneHeld")
    if held:
        lines.append(f"Prune held:    {held.get('message', '')}")
    kept = st.get("pruneKept") or []
    if kept:
        lines.append(f"Prune kept:    {', '.join(kept)} (gitship.io/prune: disabled; their manifests left git)")
    return lines


# -------------------------------------------------------------------------------------- validate


def _listing(root: str) -> dict[str, bytes]:
    """Every regular file under ``root`` (dot-directories skipped), by path as the user names it."""
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = os.path.normpath(os.path.join(dirpath, name))
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    files[path] = f.read()
    return files


def load_files(files: dict[str, bytes], root: str, key_file: str | None) -> tuple[list[Manifest], RepoConfig]:
    from reconciler.manifests.load import Limits
    from reconciler.manifests.revision import RevisionFile, git_blob_id, load_listing
    from reconciler.source.revision import read_age_keys

    ids = {p: git_blob_id(data) for p, data in files.items()}
    by_blob = {ids[p]: data for p, data in files.items()}
    listing = [RevisionFile(p, ids[p], len(data)) for p, data in files.items()]
    return load_listing(
        listing, lambda blobs: {b: by_blob[b] for b in blobs}, Limits(), None, root, None, read_age_keys(key_file)
    )


def _validate_dir(path: str, key_file: str | None) -> int:
    """The objects of the directory ``path``; errors name files as ``path/...`` (as the user wrote it)."""
    here = os.getcwd()
    try:
        os.chdir(path)
        files = _listing(".")
    finally:
        os.chdir(here)
    try:
        return len(load_files(files, "", key_file)[0])
    except RevisionRejected as e:
        prefix = "" if os.path.normpath(path) == "." else path.rstrip("/") + "/"
        raise RevisionRejected([replace(x, file=prefix + x.file) for x in e.errors]) from None


def cmd_validate(args: argparse.Namespace) -> int:
    dirs = [p for p in args.paths if os.path.isdir(p)]
    files = [p for p in args.paths if not os.path.isdir(p)]
    missing = [p for p in files if not os.path.isfile(p)]
    if missing:
        print(f"error: {missing[0]}: no such file or directory", file=sys.stderr)
        return 1
    loose: dict[str, bytes] = {}
    given: dict[str, str] = {}  # the listing's path (absolute, without its leading /) -> as the user wrote it
    for p in files:
        key = os.path.abspath(p).lstrip("/")
        given[key] = p
        with open(p, "rb") as f:
            loose[key] = f.read()
    errors: list[ManifestError] = []
    count = 0
    for target, only in [*((d, {}) for d in dirs), *([("", loose)] if loose else [])]:
        try:
            count += (
                len(load_files(only, "", args.decryption_key_file)[0])
                if only
                else _validate_dir(target, args.decryption_key_file)
            )
        except RevisionRejected as e:
            errors.extend(replace(x, file=given.get(x.file, x.file)) for x in e.errors)
    for err in errors:
        print(str(err))
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"ok: {count} object(s) in {', '.join(args.paths)}")
    return 0


def add_validate(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "validate", parents=[common], help="check manifests on disk as the daemon would (exit 1 on any error)"
    )
    s.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="directories or files (default: .)")
    s.add_argument("--decryption-key-file", metavar="PATH", help="age identities for SOPS-encrypted files")
    s.set_defaults(func=cmd_validate)


# ------------------------------------------------------------------------------------------ plan


def add_source_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--source", metavar="NAME", help="with several sources: which one (default: the repository of `gitship up`)"
    )


@dataclass
class SourceState:
    """What the state dir knows of one source: its record (url, branch, path, repoDir), what it has
    applied (None: no state dir), the approvals, and the Namespaces the other sources declare."""

    source: dict[str, Any] = field(default_factory=dict)
    applied: dict[Key, Obj] | None = None
    approvals: list[str] = field(default_factory=list)
    namespaces: set[str] = field(default_factory=set)


def source_state(store: Any, name: str | None) -> SourceState:
    """``name``'s state in an open store (None or "default": the repository of `gitship up`)."""
    from reconciler.sources.spec import DEFAULT
    from reconciler.sources.status import namespaces_elsewhere, owned_keys, source_record

    name = name or DEFAULT
    src = source_record(store.get_meta, name)
    if src is None and name != DEFAULT:
        listed = ", ".join(store.get_meta("sources") or [DEFAULT])
        raise GitshipError(f"no source named {name!r} in the state dir (sources: {listed})")
    desired = store.desired()
    owned = owned_keys(store.get_meta, name)
    if owned is not None:  # several sources: this source's own objects
        desired = {k: v for k, v in desired.items() if k in owned}
    approvals = list(store.get_meta("pruneApprovals") or [])
    return SourceState(src or {}, desired, approvals, namespaces_elsewhere(store.get_meta, name))


def _store_state(args: argparse.Namespace) -> SourceState:
    """The state dir's view of the source ``--source`` names (empty without a state dir)."""
    from reconciler.store import Store, db_path

    sd = state_dir(args)
    if not os.path.exists(db_path(sd)):
        if getattr(args, "source", None):
            raise GitshipError(f"--source {args.source}: there is no state dir at {sd}")
        return SourceState()
    store = Store(sd, readonly=True)
    try:
        return source_state(store, getattr(args, "source", None))
    finally:
        store.close()


def _git_manifests(
    repo: str, path: str, sha: str, key_file: str | None, namespaces: set[str] | None = None
) -> tuple[list[Manifest], RepoConfig]:
    from reconciler.source.git import GitReader
    from reconciler.manifests.load import Limits
    from reconciler.source.revision import RevisionLoader

    reader = GitReader(repo)
    try:
        loader = RevisionLoader(reader, path, Limits(), key_file)
        loader.namespaces = namespaces or set()
        return loader.load(sha)
    finally:
        reader.close()


def _resolve(repo: str, rev: str) -> str:
    from reconciler.source.git import git

    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except GitshipError:
        raise GitshipError(f"unknown revision {rev!r} in {repo}") from None


def plan_revision(args: argparse.Namespace) -> dict[str, Any]:
    """The plan of REV as plain data: actions, kept objects, the prune verdict, or the errors."""
    from reconciler.source.git import git

    state = _store_state(args)
    src, applied, approved, namespaces = state.source, state.applied, state.approvals, state.namespaces
    if args.base:
        applied, approved = None, []
    repo = os.path.abspath(args.repo or src.get("repoDir") or ".")
    path = args.path if args.path is not None else src.get("path", "")
    rev = args.rev or (f"refs/heads/{src['branch']}" if src.get("branch") else "HEAD")
    sha = _resolve(repo, rev)
    out: dict[str, Any] = {"revision": sha, "repository": repo, "path": path}
    if args.base:
        base = _resolve(repo, args.base)
        applied = {m.key: m.obj for m in _git_manifests(repo, path, base, args.decryption_key_file, namespaces)[0]}
        out["base"] = base
    out["against"] = (
        "revision " + out["base"][:7] if args.base else ("applied state" if applied is not None else "nothing")
    )
    applied = applied or {}
    try:
        manifests, config = _git_manifests(repo, path, sha, args.decryption_key_file, namespaces)
    except RevisionRejected as e:
        return {
            **out,
            "valid": False,
            "errors": [x.to_dict() for x in e.errors],
            "messages": [str(x) for x in e.errors],
        }
    desired = {m.key: m.obj for m in manifests}
    kept = keep_disabled(applied, desired)
    threshold = effective_threshold(args.prune_threshold, config.prune_threshold)
    verdict = decide(applied.keys(), desired.keys(), threshold, kept=kept)
    if verdict.over:
        message = git(repo, "show", "-s", "--format=%B", sha).decode(errors="replace")
        allowed = "approval" if sha in approved else "trailer" if allows_prune(message) else ""
        verdict = decide(applied.keys(), desired.keys(), threshold, allowed, kept)
    actions = plan(applied, desired)
    return {**out, "valid": True, "actions": [a.summary() for a in actions], "verdict": verdict, "plan": actions}


def _action_line(a: Action) -> str:
    sign = {"create": "+", "update": "~", "delete": "-"}[a.op]
    return f"  {sign} {a.op:6} {a.ref}"


def plan_lines(result: dict[str, Any]) -> list[str]:
    short = result["revision"][:7]
    if not result["valid"]:
        return [*result["messages"], f"revision {short} would be rejected: {len(result['messages'])} error(s)"]
    actions: list[Action] = result["plan"]
    v: Verdict = result["verdict"]
    counts = {op: sum(1 for a in actions if a.op == op) for op in ("create", "update", "delete")}
    head = f"Plan for {short} against {result['against']}: " + ", ".join(f"{n} to {op}" for op, n in counts.items())
    lines = [head + (f", {len(v.kept)} kept" if v.kept else "")]
    lines += [_action_line(a) for a in actions]
    lines += [f"  = keep   {a} (gitship.io/prune: disabled)" for a in (v.summary()["kept"])]
    if v.held:
        lines.append(f"Prune: HELD: {v.message(short)}")
    elif v.allowed_by:
        lines.append(f"Prune: allowed: {v.message(short)}")
    else:
        lines.append("Prune: ok" + ("" if v.threshold is not None else " (threshold off)"))
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    result = plan_revision(args)
    ok = result["valid"] and not result["verdict"].held
    if args.output == "json":
        data = {k: v for k, v in result.items() if k not in ("plan", "verdict", "messages")}
        if result["valid"]:
            data["prune"] = result["verdict"].summary()
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(plan_lines(result)))
    return 0 if ok else 1


def add_plan(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "plan", parents=[common], help="what applying a revision would create, update and delete, and the prune verdict"
    )
    s.add_argument("rev", nargs="?", help="a commit, branch or tag (default: the tracked branch, else HEAD)")
    s.add_argument("--repo", help="the repository (default: the one the state dir tracks, else .)")
    s.add_argument("--path", default=None, help="the folder of the repository that holds the manifests")
    s.add_argument("--base", help="compare with this revision instead of the applied state")
    add_source_option(s)
    s.add_argument("--decryption-key-file", metavar="PATH", help="age identities for SOPS-encrypted files")
    s.add_argument("-o", "--output", choices=["json"])
    add_prune_options(s)
    s.set_defaults(func=cmd_plan)
