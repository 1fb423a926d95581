"""Repository transactions: the lock, the branch, the commit, the push.

``Repo`` is a git work tree gitship commits to. Every change runs inside
``Repo.transaction()``:

* ``fcntl.flock`` on ``<git-common-dir>/gitship.lock`` around every
  (fetch +) edit + commit (+ push): the CLI and the daemon never race
  (reconciler/source/git.py takes the same lock around its fetch).
* With ``remote`` set, the branch is fetched and fast-forwarded before the
  edit, and the commit is pushed (fast-forward only) after; a rejected push
  resets the local branch to where it was (``git reset --keep``) and raises,
  so nothing changed.
* A file with uncommitted changes (staged, unstaged or untracked) is never
  edited: ``GitOpsError`` names it. Only the edited paths are committed
  (``git commit --only -- <paths>``), so whatever else a user has staged
  stays staged and out of gitship's commit. A failed commit restores the
  files it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator

from reconciler.errors import GitOpsError

DEFAULT_AUTHOR = ("gitship", "gitship@localhost")
LOCK_TIMEOUT = 120.0
GIT_TIMEOUT = 300.0
_LOCK_POLL = 0.05

# A parent process's git variables would point our git commands at another repository.
_GIT_SCOPE_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")


def git_env() -> dict[str, str]:
    """The environment git runs in: no inherited repository, no prompts, C locale."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_SCOPE_VARS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    env.setdefault("GIT_EDITOR", "true")
    return env


def run_git(*args: str, cwd: str, input: bytes | None = None, config: tuple[str, ...] = ()) -> Result:
    """Run ``git [-c config]... args`` in ``cwd``; GitOpsError when git is missing or times out."""
    cmd = ["git"]
    for c in config:
        cmd += ["-c", c]
    cmd += list(args)
    try:
        p = subprocess.run(cmd, cwd=cwd, env=git_env(), input=input, capture_output=True, timeout=GIT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise GitOpsError(f"`git {' '.join(args)}` timed out") from e
    except FileNotFoundError as e:
        raise GitOpsError("git is not installed") from e
    return Result(p.returncode, p.stdout, p.stderr)


class Result:
    """A finished git command: exit status, raw output, and the output as text."""

    def __init__(self, returncode: int, out: bytes, err: bytes):
        self.returncode = returncode
        self.raw = out
        self.stdout = out.decode("utf-8", "replace")
        self.stderr = err.decode("utf-8", "replace")


@contextlib.contextmanager
def flocked(path: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); GitOpsError after ``timeout``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GitOpsError(f"another gitship writer holds {path}") from None
                time.sleep(_LOCK_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes | None) -> None:
    """Replace a file atomically, keeping its mode (None: delete it)."""
    if data is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    mode = None
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".gitship-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Repo:
    """A git work tree ``workdir`` that gitship commits to.

    ``manifests_path`` (relative to ``workdir``) is where manifests live;
    ``branch`` must be the checked-out branch (default: whatever is checked
    out); ``remote`` (e.g. ``"origin"``) turns on fetch + fast-forward before
    and a fast-forward-only push after every commit. Paths in and out are
    relative to the repository root, '/'-separated.
    """

    # "Name <email>" for every commit made through this object (None: git's configured user)
    default_author: str | None = None
    # set by reconciler/ops/verify.py sign_commits: ``-c`` options signing each commit; why commits are refused
    commit_config: tuple[str, ...] = ()
    refuse_commits: str | None = None

    def __init__(self, workdir: str, manifests_path: str = "", branch: str | None = None, remote: str | None = None):
        self.workdir = os.path.realpath(workdir)
        if not os.path.isdir(self.workdir):
            raise GitOpsError(f"{workdir} is not a directory")
        top = run_git("rev-parse", "--show-toplevel", cwd=self.workdir)
        if top.returncode != 0:
            raise GitOpsError(f"{workdir} is not a git work tree: {top.stderr.strip()}")
        self.root = os.path.realpath(top.stdout.strip())
        common = self.git("rev-parse", "--git-common-dir").stdout.strip()
        self.git_dir = os.path.realpath(os.path.join(self.root, common))
        self.manifests_dir = os.path.realpath(os.path.join(self.workdir, manifests_path or "."))
        if os.path.commonpath([self.manifests_dir, self.root]) != self.root:
            raise GitOpsError(f"manifests path {manifests_path!r} is outside the repository")
        rel = os.path.relpath(self.manifests_dir, self.root).replace(os.sep, "/")
        self.manifests_rel = "" if rel == "." else rel
        self.branch = branch
        self.remote = remote

    # ------------------------------------------------------------------ git
    def git(self, *args: str, check: bool = True, input: bytes | None = None, config: tuple[str, ...] = ()) -> Result:
        """Run git at the repository root; with ``check``, a failure raises GitOpsError."""
        p = run_git(*args, cwd=self.root, input=input, config=config)
        if check and p.returncode != 0:
            raise GitOpsError(f"`git {' '.join(args)}` failed: {p.stderr.strip()}")
        return p

    def head(self) -> str | None:
        """The checked-out commit, or None on an unborn branch."""
        p = self.git("rev-parse", "--verify", "-q", "HEAD", check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def _current_branch(self) -> str:
        p = self.git("symbolic-ref", "-q", "--short", "HEAD", check=False)
        if p.returncode != 0:
            raise GitOpsError(f"{self.root}: HEAD is detached; gitship commits only to a branch")
        cur = p.stdout.strip()
        if self.branch and cur != self.branch:
            raise GitOpsError(f"{self.root}: branch {cur!r} is checked out, not {self.branch!r}")
        return cur

    def _upstream(self, branch: str) -> str:
        """The remote branch name the local branch tracks (default: same name)."""
        p = self.git("rev-parse", "--abbrev-ref", "--symbolic-full-name", f"{branch}@{{upstream}}", check=False)
        up = p.stdout.strip()
        if p.returncode == 0 and self.remote and up.startswith(self.remote + "/"):
            return up[len(self.remote) + 1 :]
        return branch

    # ------------------------------------------------------------------ files in the work tree
    def abspath(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def read(self, rel: str) -> bytes | None:
        """A work-tree file's bytes, or None when it does not exist."""
        try:
            with open(self.abspath(rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def exists(self, rel: str, follow_symlinks: bool = False) -> bool:
        """Whether the path exists (without ``follow_symlinks``, a dangling symlink does)."""
        path = self.abspath(rel)
        return os.path.exists(path) if follow_symlinks else os.path.lexists(path)

    def check_clean(self, paths: list[str]) -> None:
        """GitOpsError unless every path is committed as it is in the work tree."""
        for path in paths:
            st = self.git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", path).stdout
            if st:
                what = "is not committed" if st.startswith("??") else "has uncommitted changes"
                raise GitOpsError(f"{path} {what}; commit or discard them first (gitship commits only its own edits)")

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(self) -> Iterator[str]:
        """Lock, check the branch, sync with the remote; yields the branch name."""
        with flocked(os.path.join(self.git_dir, "gitship.lock")):
            branch = self._current_branch()
            if self.remote:
                self._sync(self.remote, branch)
            yield branch

    def _sync(self, remote: str, branch: str) -> None:
        rb = self._upstream(branch)
        tracking = f"refs/remotes/{remote}/{rb}"
        p = self.git("fetch", "-q", "--no-tags", remote, f"+refs/heads/{rb}:{tracking}", check=False)
        if p.returncode != 0:
            if "couldn't find remote ref" in p.stderr:
                return  # the remote branch does not exist yet: the push creates it
            raise GitOpsError(f"could not fetch {remote}/{rb}: {p.stderr.strip()}")
        if self.head() is None:  # an unborn branch: check the remote's out
            p = self.git("read-tree", "-m", "-u", tracking, check=False)
            if p.returncode != 0:
                raise GitOpsError(f"cannot check out {remote}/{rb}: {p.stderr.strip()}")
            self.git("update-ref", f"refs/heads/{branch}", tracking)
            return
        p = self.git("merge", "--ff-only", "-q", tracking, check=False)
        if p.returncode != 0:
            raise GitOpsError(
                f"cannot fast-forward {branch} to {remote}/{rb} "
                f"(diverged, or local changes in the way): {p.stderr.strip()}"
            )

    def _author_config(self) -> tuple[str, ...]:
        """``-c user.name=... -c user.email=...`` for what git config does not set."""
        cfg: list[str] = []
        for key, default in (("user.name", DEFAULT_AUTHOR[0]), ("user.email", DEFAULT_AUTHOR[1])):
            p = self.git("config", "--get", key, check=False)
            if p.returncode != 0 or not p.stdout.strip():
                cfg.append(f"{key}={default}")
        return tuple(cfg)

    def commit(self, changes: dict[str, bytes | None], message: str, branch: str, author: str | None = None) -> str:
        """Write ``changes`` (path -> content, None = delete), commit only them, push. Returns the sha.

        Call inside ``transaction()`` (``branch`` is what it yielded). ``author`` ("Name <email>")
        sets the commit's author (the committer stays git's configured user).
        """
        if self.refuse_commits:
            raise GitOpsError(self.refuse_commits)
        paths = sorted(changes)
        self.check_clean(paths)
        old_head = self.head()
        backup = {p: self.read(p) for p in paths}
        try:
            for p in paths:
                write_file(self.abspath(p), changes[p])
            self.git("add", "-A", "--", *paths)
            author = author or self.default_author
            who = (f"--author={author}",) if author else ()
            args = ("commit", "-q", "--no-verify", "--allow-empty-message", *who, "-m", message, "--only", "--", *paths)
            self.git(*args, config=self._author_config() + self.commit_config)
        except BaseException as e:
            self._restore(backup, old_head)
            if isinstance(e, GitOpsError):
                raise GitOpsError(f"commit failed, nothing changed: {e}") from None
            raise
        new_head = self.head()
        assert new_head
        if self.remote:
            self._push(self.remote, branch, old_head, backup)
        return new_head

    def _restore(self, backup: dict[str, bytes | None], old_head: str | None) -> None:
        """Put the files and the index back as they were before a failed commit."""
        paths = sorted(backup)
        for p in paths:
            write_file(self.abspath(p), backup[p])
        if old_head:
            self.git("reset", "-q", old_head, "--", *paths, check=False)
        else:
            self.git("rm", "-q", "--cached", "--ignore-unmatch", "--", *paths, check=False)

    def _push(self, remote: str, branch: str, old_head: str | None, backup: dict[str, bytes | None]) -> None:
        """Push fast-forward only; when rejected, undo the commit and raise."""
        rb = self._upstream(branch)
        p = self.git("push", "-q", "--porcelain", remote, f"refs/heads/{branch}:refs/heads/{rb}", check=False)
        if p.returncode == 0:
            return
        if old_head:
            self.git("reset", "-q", "--keep", old_head, check=False)
        else:
            self.git("update-ref", "-d", f"refs/heads/{branch}", check=False)
            paths = sorted(backup)
            for path in paths:
                write_file(self.abspath(path), backup[path])
            self.git("rm", "-q", "--cached", "--ignore-unmatch", "--", *paths, check=False)
        detail = (p.stderr.strip() or p.stdout.strip()).splitlines()
        raise GitOpsError(
            f"push to {remote}/{rb} was rejected (the remote branch moved since "
            f"gitship fetched it?); the commit was undone, nothing changed" + (f": {detail[-1]}" if detail else "")
        )
