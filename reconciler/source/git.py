"""Reading a git repository at a revision.

Where it sits: the first step of the pipeline. ``GitReader`` turns a branch
into a ``Revision`` (sha, author, subject, time) and reads the manifest files
of a revision: ``git ls-tree`` for the blob ids, one long-lived
``git cat-file --batch`` process for the contents (about 8x faster than
GitPython's object layer for a thousand blobs), so the loader can cache parsed
files by blob id and a commit that changes one file costs one file.
GitPython does the remote work it is made for (clone, fetch).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import SourceError
from ..manifests.revision import RevisionFile

MODE_SYMLINK = b"120000"
BATCH = 500  # blob requests per write to `git cat-file --batch` (41 bytes each: well under a pipe buffer)
MODE_GITLINK = b"160000"


@dataclass(frozen=True)
class Revision:
    sha: str
    author: str
    email: str
    time: float
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:7]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# One file of a revision as ``git ls-tree`` lists it (path from the repository root, blob id,
# size, symlink or not): the loader's own listing type.
TreeEntry = RevisionFile


def git(repo: str, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", repo, *args], input=input, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SourceError(f"git {' '.join(args)} failed: {e}") from e
    if check and proc.returncode != 0:
        raise SourceError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


class GitReader:
    """Reads revisions of one repository. Thread-safe."""

    def __init__(self, repo_dir: str):
        self.repo_dir = repo_dir
        self._lock = threading.Lock()
        self._batch: subprocess.Popen[bytes] | None = None
        self._common_dir: str | None = None
        self._message: tuple[str, str] | None = None  # (sha, message) of the last revision read

    def close(self) -> None:
        with self._lock:
            if self._batch:
                self._batch.kill()
                self._batch.wait()
                self._batch = None

    def is_repository(self) -> bool:
        proc = subprocess.run(["git", "-C", self.repo_dir, "rev-parse", "--git-dir"], capture_output=True)
        return proc.returncode == 0

    def current_branch(self) -> str:
        out = git(self.repo_dir, "symbolic-ref", "--short", "-q", "HEAD", check=False).decode().strip()
        return out or "main"

    def resolve(self, ref: str) -> str | None:
        loose = self._loose_branch(ref)
        if loose is not None:
            return loose
        out = git(self.repo_dir, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False).decode().strip()
        return out or None

    def _loose_branch(self, ref: str) -> str | None:
        """A branch's sha read from its loose ref file (``refs/heads/<name>`` in the common git dir, as
        git writes it: lock file + rename), without starting git; None (ask git) when there is no such
        file (a packed ref, a reftable repository) or it does not hold a plain sha. The daemon resolves
        its branch on every wake-up: a `git rev-parse` was one of the four git processes between a
        commit and its pods."""
        if not ref.startswith("refs/heads/") or ".." in ref:
            return None
        if self._common_dir is None:
            out = git(self.repo_dir, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
            path = out.decode(errors="replace").strip()
            self._common_dir = path if os.path.isabs(path) and os.path.isdir(path) else ""
        if not self._common_dir:
            return None
        try:
            with open(os.path.join(self._common_dir, ref), "rb") as f:
                text = f.read(100).decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text) else None

    def revision(self, sha: str) -> Revision:
        """Who committed ``sha`` and its subject, read through the long-lived ``git cat-file --batch``
        (no `git show` process); its message is kept for ``message``."""
        raw = None
        if len(sha) in (40, 64) and all(c in "0123456789abcdef" for c in sha):  # a full sha, not a name
            try:
                raw = self.read_blobs([sha]).get(sha)
            except (OSError, ValueError, SourceError):
                raw = None
        parsed = parse_commit(sha, raw) if raw is not None else None
        if parsed is None:  # not a commit object we can read ourselves: git formats it
            out = git(self.repo_dir, "show", "-s", "--format=%H%x00%an%x00%ae%x00%at%x00%s", sha).decode()
            h, an, ae, at, s = out.rstrip("\n").split("\x00", 4)
            return Revision(h, an, ae, float(at), s)
        rev, self._message = parsed, (sha, commit_body(raw or b""))
        return rev

    def message(self, sha: str) -> str:
        """The full message of commit ``sha`` (`git show -s --format=%B`), from the last ``revision``
        when it is that commit's."""
        if self._message is not None and self._message[0] == sha:
            return self._message[1]
        return git(self.repo_dir, "show", "-s", "--format=%B", sha).decode(errors="replace")

    def tree(self, sha: str, path: str = "") -> list[TreeEntry]:
        """Every blob under ``path`` at ``sha``. Symlinks are listed (``symlink``) for the loader to refuse."""
        args = ["ls-tree", "-r", "-l", "-z", sha]
        if path.strip("/"):
            args += ["--", path.strip("/") + "/"]
        out = git(self.repo_dir, *args)
        entries = []
        for rec in out.split(b"\x00"):
            if not rec:
                continue
            meta, _, name = rec.partition(b"\t")
            mode, typ, blob, size = meta.split()
            if typ != b"blob":
                continue
            entries.append(
                TreeEntry(
                    name.decode("utf-8", "surrogateescape"),
                    blob.decode(),
                    int(size) if size != b"-" else 0,
                    mode == MODE_SYMLINK,
                )
            )
        return entries

    def read_blobs(self, blobs: list[str]) -> dict[str, bytes]:
        """Contents of many blobs through one ``git cat-file --batch`` process."""
        out: dict[str, bytes] = {}
        if not blobs:
            return out
        with self._lock:
            for attempt in range(2):
                try:
                    proc = self._ensure_batch()
                    assert proc.stdin and proc.stdout
                    # in chunks that fit the pipe: writing every request before reading any
                    # answer deadlocks once both pipes are full
                    for i in range(0, len(blobs), BATCH):
                        chunk = blobs[i : i + BATCH]
                        proc.stdin.write(b"".join(b.encode() + b"\n" for b in chunk))
                        proc.stdin.flush()
                        for b in chunk:
                            header = proc.stdout.readline().split()
                            if len(header) < 3:
                                raise SourceError(f"blob {b} is missing")
                            size = int(header[2])
                            out[b] = proc.stdout.read(size)
                            proc.stdout.read(1)
                    return out
                except (OSError, ValueError, BrokenPipeError):
                    if self._batch:
                        self._batch.kill()
                        self._batch = None
                    if attempt:
                        raise
        return out

    def _ensure_batch(self) -> subprocess.Popen[bytes]:
        if self._batch is None or self._batch.poll() is not None:
            self._batch = subprocess.Popen(
                ["git", "-C", self.repo_dir, "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._batch

    def file_at(self, sha: str, path: str) -> bytes | None:
        proc = subprocess.run(["git", "-C", self.repo_dir, "show", f"{sha}:{path}"], capture_output=True)
        return proc.stdout if proc.returncode == 0 else None


def parse_commit(sha: str, raw: bytes) -> Revision | None:
    """A raw commit object (as `git cat-file` prints it) as a Revision: author name, email and time,
    and the subject as git's ``%s`` gives it (the first paragraph, its lines joined by spaces). None
    for what this does not read (no author line, a message in another encoding than UTF-8)."""
    head, _, _ = raw.partition(b"\n\n")
    author = None
    for line in head.split(b"\n"):
        if line.startswith(b"author "):
            author = line[7:]
        elif line.startswith(b"encoding ") and line[9:].strip().lower() not in (b"utf-8", b"utf8"):
            return None
    if author is None or b"<" not in author or b">" not in author:
        return None
    name, _, rest = author.partition(b"<")
    email, _, when = rest.rpartition(b">")
    try:
        at = float(when.split()[0])
    except (IndexError, ValueError):
        return None
    subject: list[str] = []
    for text in commit_body(raw).split("\n"):
        if not text.strip():
            if subject:
                break
            continue
        subject.append(text.rstrip())  # as git's %s: trailing blanks go, leading ones stay
    author_name, author_email = name.strip().decode("utf-8", "replace"), email.decode("utf-8", "replace")
    return Revision(sha, author_name, author_email, at, " ".join(subject))


def commit_body(raw: bytes) -> str:
    """The message of a raw commit object (everything after its headers)."""
    return raw.partition(b"\n\n")[2].decode("utf-8", "replace")


def is_url(source: str) -> bool:
    return (
        "://" in source
        or (source.count(":") == 1 and "@" in source.split(":")[0])
        or source.endswith(".git")
        and not os.path.isdir(source)
    )


def clone_or_update(url: str, dest: str, branch: str | None) -> str:
    """Keep gitship's own clone of a URL repository in ``dest``; returns the branch tracked."""
    import git as gitpython  # GitPython: clone and fetch are what it is made for

    try:
        if not os.path.isdir(os.path.join(dest, ".git")):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if branch:
                repo = gitpython.Repo.clone_from(url, dest, branch=branch)
            else:
                repo = gitpython.Repo.clone_from(url, dest)
        else:
            repo = gitpython.Repo(dest)
            if repo.remotes.origin.url != url:
                repo.remotes.origin.set_url(url)
            repo.remotes.origin.fetch(prune=True)
        tracked = branch or repo.active_branch.name
        return tracked
    except gitpython.GitCommandError as e:
        raise SourceError(f"cannot clone or fetch {url}: {e.stderr.strip() if e.stderr else e}") from e


def fetch(dest: str, branch: str) -> str | None:
    """Fetch origin and move the local branch to origin's (our clone: never has local work). Returns the sha."""
    import git as gitpython

    # the same lock as gitops.RepoWriter: a CLI commit being pushed never races the fetch
    with open(os.path.join(dest, ".git", "gitship.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            repo = gitpython.Repo(dest)
            repo.remotes.origin.fetch(prune=True)
        except gitpython.GitCommandError as e:
            raise SourceError(f"fetch failed: {e.stderr.strip() if e.stderr else e}") from e
        sha = GitReader(dest).resolve(f"refs/remotes/origin/{branch}")
        if sha is None:
            raise SourceError(f"the remote has no branch {branch!r}")
        git(dest, "checkout", "-q", "-f", "-B", branch, sha)
        git(dest, "branch", "-q", "--set-upstream-to", f"origin/{branch}", branch, check=False)
        return sha
