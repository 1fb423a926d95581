"""Edits made for the Kubernetes API's write verbs (reconciler/kapi/writes.py): one object's document
replaced, added or removed, the whole revision checked before the commit, the request's user as author.

``change_object`` is ``edits.edit`` with two more steps inside the lock: ``check(changes)`` sees the
files as they would be committed and may raise (nothing is written then), and the commit carries
an author. ``add_object`` writes a new file (``new_object_path`` says where); ``remove_document``
is ``edits.remove_object`` with the same check and author.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import yaml

from reconciler.errors import GitOpsError
from reconciler.types import Obj

from .documents import has_content, load, same, split_documents
from .locate import locate
from .transaction import Repo
from .yamlpatch import patch_document

# Sees {path: new bytes or None (deleted)} before the commit; raises to refuse it.
Check = Callable[[dict[str, "bytes | None"]], None]


def _text(repo: Repo, rel: str) -> str:
    raw = repo.read(rel)
    if raw is None:
        raise GitOpsError(f"{rel} is gone")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GitOpsError(f"{rel} is not UTF-8 text") from None


def change_object(
    repo: Repo,
    kind: str,
    ns: str | None,
    name: str,
    mutate: Callable[[Obj], Obj],
    message: str,
    check: Check,
    author: str | None = None,
) -> tuple[str | None, str]:
    """Replace the object's document by ``mutate(document as written)``, keeping the text of what
    did not change. Returns (commit sha or None when nothing changes, the file edited)."""
    with repo.transaction() as branch:
        loc = locate(repo, kind, ns, name)
        if loc.file.endswith(".j2"):
            raise GitOpsError(f"{kind.lower()}/{name} is declared by the template {loc.file}: edit the template")
        repo.check_clean([loc.file])
        chunks = split_documents(_text(repo, loc.file))
        old = load(chunks[loc.chunk])
        new = mutate(copy.deepcopy(old))
        if same(old, new):
            return None, loc.file
        chunks[loc.chunk] = patch_document(chunks[loc.chunk], new)
        changes: dict[str, bytes | None] = {loc.file: "".join(chunks).encode("utf-8")}
        check(changes)
        return repo.commit(changes, message, branch, author), loc.file


def document_text(obj: Obj) -> str:
    """A new manifest's text: block style, fields in the object's order."""
    text: str = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text


def add_object(repo: Repo, rel: str, obj: Obj, message: str, check: Check, author: str | None = None) -> str:
    """A new object: appended as a document of ``rel`` (made when missing). Returns the commit sha."""
    with repo.transaction() as branch:
        repo.check_clean([rel])
        old = repo.read(rel)
        text = document_text(obj)
        if old is not None and old.strip():
            base = old.decode("utf-8", "surrogateescape")
            text = base + ("" if base.endswith("\n") else "\n") + "---\n" + text
        changes: dict[str, bytes | None] = {rel: text.encode("utf-8", "surrogateescape")}
        check(changes)
        return repo.commit(changes, message, branch, author)


def remove_document(
    repo: Repo, kind: str, ns: str | None, name: str, message: str, check: Check, author: str | None = None
) -> tuple[str, str]:
    """The object's document removed from its file (the file too when nothing else is left in it).
    Returns (commit sha, the file)."""
    with repo.transaction() as branch:
        loc = locate(repo, kind, ns, name)
        if loc.file.endswith(".j2"):
            raise GitOpsError(f"{kind.lower()}/{name} is declared by the template {loc.file}: edit the template")
        repo.check_clean([loc.file])
        chunks = split_documents(_text(repo, loc.file))
        gone = chunks.pop(loc.chunk)
        if loc.chunk == 0:  # the file's opening comments stay
            chunks.insert(0, _leading_comments(gone))
        data = "".join(chunks).encode("utf-8") if any(has_content(c) for c in chunks) else None
        changes: dict[str, bytes | None] = {loc.file: data}
        check(changes)
        return repo.commit(changes, message, branch, author), loc.file


def _leading_comments(chunk: str) -> str:
    out = []
    for line in chunk.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        out.append(line)
    return "".join(out)
