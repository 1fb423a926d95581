"""History and revert: the log, files at a commit, the commit that introduced a state, revert.

``revert`` commits the inverse of a commit (like ``git revert --no-edit``) as
a per-file three-way merge (``git merge-file``) written to the work tree and
committed with ``--only``, so nothing else a user has staged is touched. A
conflict raises GitOpsError and changes nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from reconciler.errors import GitOpsError

from .locate import MANIFEST_SUFFIXES
from .transaction import Repo

# One record per commit: sha, short sha, author, email, time, subject, then the file names (-z).
_LOG_FMT = "%x1e%H%x1f%h%x1f%an%x1f%ae%x1f%at%x1f%s%x1f"
_LOG_ARGS = ("-z", "--name-only", "--no-renames", f"--format={_LOG_FMT}")


def _parse_log(out: str) -> list[dict[str, Any]]:
    res = []
    for rec in out.split("\x1e"):
        if not rec.strip("\0\n"):
            continue
        fields = rec.split("\x1f")
        if len(fields) < 7:
            continue
        files = [f.strip("\n") for f in fields[6].split("\0") if f.strip("\n")]
        res.append(
            {
                "sha": fields[0],
                "short": fields[1],
                "author": fields[2],
                "email": fields[3],
                "time": int(fields[4] or 0),
                "subject": fields[5],
                "files": files,
            }
        )
    return res


def log(repo: Repo, path: str | None = None, n: int = 50) -> list[dict[str, Any]]:
    """Newest first: dict(sha, short, author, email, time (epoch), subject, files)."""
    if repo.head() is None:
        return []
    args = ["log", f"-n{int(n)}", *_LOG_ARGS, "HEAD", "--"]
    if path:
        args.append(path)
    return _parse_log(repo.git(*args).stdout)


def commit_info(repo: Repo, sha: str) -> dict[str, Any]:
    """One commit as ``log`` describes it; GitOpsError when there is no such commit."""
    p = repo.git("log", "-1", *_LOG_ARGS, sha, "--", check=False)
    got = _parse_log(p.stdout) if p.returncode == 0 else []
    if not got:
        raise GitOpsError(f"no such commit: {sha}")
    return got[0]


def file_at(repo: Repo, sha: str, path: str) -> bytes | None:
    """The file's content at a commit, or None (no such file or commit)."""
    p = repo.git("cat-file", "blob", f"{sha}:{path}", check=False)
    return p.raw if p.returncode == 0 else None


def introducing_commit(repo: Repo, file: str, predicate: Callable[[bytes | None], bool]) -> str | None:
    """Newest commit C touching ``file`` with predicate(file at C) and not predicate(at C^)."""
    if repo.head() is None:
        return None
    shas = repo.git("log", "--format=%H", "HEAD", "--", file).stdout.split()
    cache: dict[str, bool] = {}

    def holds(rev: str) -> bool:
        if rev not in cache:
            cache[rev] = bool(predicate(file_at(repo, rev, file)))
        return cache[rev]

    for c in shas:
        if holds(c) and not holds(c + "^"):
            return c
    return None


def manifest_files_at(repo: Repo, sha: str) -> list[str]:
    """The *.yaml / *.yml files under the manifests path at a commit."""
    rel = os.path.relpath(repo.manifests_dir, os.path.realpath(repo.workdir))
    out = repo.git("ls-tree", "-r", "--name-only", "-z", sha, "--", rel, check=False).stdout
    return [p for p in out.split("\0") if p.endswith(MANIFEST_SUFFIXES)]


# --------------------------------------------------------------------------- revert


def _merge_file(repo: Repo, ours: bytes, base: bytes, theirs: bytes) -> bytes | None:
    """``git merge-file``: the three-way merge, or None on a conflict."""
    with tempfile.TemporaryDirectory(prefix="gitship-merge-") as d:
        names = []
        for n, content in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = os.path.join(d, n)
            with open(path, "wb") as f:
                f.write(content)
            names.append(path)
        p = repo.git("merge-file", "-p", "-q", *names, check=False)
        return p.raw if p.returncode == 0 else None


def _inverse(repo: Repo, sha: str, parent: str | None, p: str) -> tuple[bool, bytes | None, bytes | None]:
    """(conflict?, the file ``p`` with ``sha``'s change to it undone, the file now); None: no file."""
    base = file_at(repo, sha, p)  # what the commit made
    theirs = file_at(repo, parent, p) if parent else None  # what was before
    ours = file_at(repo, "HEAD", p)
    if ours == base:
        return False, theirs, ours
    if ours == theirs:
        return False, ours, ours
    if ours is None or base is None or theirs is None:
        return True, None, ours
    merged = _merge_file(repo, ours, base, theirs)
    return merged is None, merged, ours


def _resolve_commit(repo: Repo, sha: str) -> tuple[str, str | None]:
    """(full sha, its parent or None for a root commit); merges are refused."""
    full = repo.git("rev-parse", "--verify", "-q", f"{sha}^{{commit}}", check=False)
    if full.returncode != 0:
        raise GitOpsError(f"no such commit: {sha}")
    sha = full.stdout.strip()
    parents = repo.git("rev-list", "--parents", "-n", "1", sha).stdout.split()[1:]
    if len(parents) > 1:
        raise GitOpsError(f"{sha[:12]} is a merge commit; gitship does not revert merges")
    return sha, (parents[0] if parents else None)


def revert(repo: Repo, sha: str, message_extra: str = "") -> str:
    """Commit the inverse of ``sha``; returns the new commit's sha."""
    with repo.transaction() as branch:
        sha, parent = _resolve_commit(repo, sha)
        diff_args = ["diff-tree", "-r", "-z", "--no-renames", "--name-only", "--no-commit-id"]
        out = repo.git(*diff_args, *([parent, sha] if parent else ["--root", sha])).stdout
        paths = [p for p in out.split("\0") if p]
        if not paths:
            raise GitOpsError(f"{sha[:12]} changes no files; nothing to revert")
        repo.check_clean(paths)
        changes: dict[str, bytes | None] = {}
        conflicts: list[str] = []
        for p in paths:
            conflict, result, ours = _inverse(repo, sha, parent, p)
            if conflict:
                conflicts.append(p)
            elif result != ours:
                changes[p] = result
        subject = repo.git("log", "-1", "--format=%s", sha).stdout.strip()
        if conflicts:
            raise GitOpsError(
                f"cannot revert {sha[:12]} ({subject}): it conflicts with later "
                f"changes to {', '.join(conflicts)}; nothing was changed"
            )
        if not changes:
            raise GitOpsError(f"reverting {sha[:12]} ({subject}) changes nothing (already reverted?)")
        msg = f'Revert "{subject}"\n\nThis reverts commit {sha}.'
        if message_extra:
            msg += "\n\n" + message_extra.strip()
        return repo.commit(changes, msg, branch)
