"""``create -f`` and ``apply -f``: adding a manifest file, replacing declared objects in place.

create: GitOpsError "AlreadyExists" if any object of the file is already
declared in the repository (or the file exists); else the file is added
verbatim under the manifests path.
apply: each document whose object is already declared somewhere is replaced
in place (verbatim; left alone when it loads the same); the other documents
go to the named file (created, or appended to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import GitOpsError, NotFound
from reconciler.types import Key

from .documents import doc_indices, ensure_nl, load, newline_of, replace_chunk, same, split_documents, split_header
from .locate import MANIFEST_SUFFIXES, TEMPLATE_SUFFIXES, Located, build_index, locate, lower_key, obj_key, ref
from .transaction import Repo


@dataclass
class _NewDoc:
    chunk: int  # index into the new file's chunks
    obj: Any
    key: Key


def target_path(manifests_rel: str, filename: str) -> str:
    """Where a file named ``filename`` goes in the repository (``.json`` and no suffix become ``.yaml``)."""
    if not filename or filename.startswith("/") or "\\" in filename:
        raise GitOpsError(f"invalid manifest file name {filename!r}")
    parts = [p for p in filename.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or p.startswith(".") for p in parts):
        raise GitOpsError(f"invalid manifest file name {filename!r}")
    base = parts[-1]
    if base.endswith(TEMPLATE_SUFFIXES):
        raise GitOpsError(f"{filename}: gitship does not write templates")
    if base.endswith(".json"):
        base = base[: -len(".json")] + ".yaml"
    elif not base.endswith(MANIFEST_SUFFIXES):
        base += ".yaml"
    parts[-1] = base
    return "/".join(([manifests_rel] if manifests_rel else []) + parts)


def _parse(filename: str, chunks: list[str]) -> list[_NewDoc]:
    """The objects of the new file; each needs kind and name, and none twice."""
    docs: list[_NewDoc] = []
    seen: set[Key] = set()
    for ci, (c, di) in enumerate(zip(chunks, doc_indices(chunks))):
        if di is None:
            continue
        try:
            obj = load(c)
        except yaml.YAMLError as e:
            raise GitOpsError(f"{filename} (document {di + 1}) is not valid YAML: {e}") from None
        if obj is None:
            continue
        k = obj_key(obj)
        if k is None:
            raise GitOpsError(f"{filename} (document {di + 1}): every document needs kind and metadata.name")
        if lower_key(k) in seen:
            raise GitOpsError(f"{filename}: {ref(*k)} is declared twice")
        seen.add(lower_key(k))
        docs.append(_NewDoc(ci, obj, k))
    if not docs:
        raise GitOpsError(f"{filename} declares no objects")
    return docs


def _locate_all(repo: Repo, docs: list[_NewDoc], overwrite: bool) -> dict[int, Located]:
    """Where each object of the new file is declared already (by chunk index)."""
    located: dict[int, Located] = {}
    index = build_index(repo)
    for d in docs:
        try:
            located[d.chunk] = locate(repo, *d.key, index=index)
        except NotFound:
            continue
        except GitOpsError as e:
            if overwrite or "rendered from the template" not in str(e):
                raise
            raise GitOpsError(f'AlreadyExists: {d.key[0].lower()} "{d.key[2]}" already exists ({e})') from None
    return located


def _replace_in_place(
    repo: Repo, chunks: list[str], docs: list[_NewDoc], located: dict[int, Located]
) -> dict[str, bytes | None]:
    """apply: the files whose documents change, with the new documents spliced in verbatim."""
    new_texts: dict[str, list[str]] = {}
    for d in docs:
        loc = located.get(d.chunk)
        if loc is None:
            continue
        if loc.file not in new_texts:
            new_texts[loc.file] = split_documents((repo.read(loc.file) or b"").decode("utf-8"))
        fchunks = new_texts[loc.file]
        if same(load(fchunks[loc.chunk]), d.obj):
            continue
        fchunks[loc.chunk] = replace_chunk(fchunks[loc.chunk], chunks[d.chunk], last=loc.chunk == len(fchunks) - 1)
    changes: dict[str, bytes | None] = {}
    for f, fchunks in new_texts.items():
        new = "".join(fchunks).encode("utf-8")
        if new != repo.read(f):
            changes[f] = new
    return changes


def _appended(base: bytes, chunks: list[str], rest: list[int]) -> bytes:
    """``base`` with the documents ``rest`` appended, each under a ``---`` line."""
    btxt = base.decode("utf-8")
    nl = newline_of(btxt)
    if btxt and not btxt.endswith(("\n", "\r")):
        btxt += nl
    for ci in rest:
        btxt += "---" + nl + ensure_nl(split_header(chunks[ci])[1], nl)
    return btxt.encode("utf-8")


def _only(chunks: list[str], rest: list[int], nl: str) -> bytes:
    """A new file of just the documents ``rest``, separated by ``---`` lines."""
    out = ""
    for j, ci in enumerate(rest):
        out += ("---" + nl if j else "") + ensure_nl(split_header(chunks[ci])[1], nl)
    return out.encode("utf-8")


def add_file(repo: Repo, filename: str, data: bytes, overwrite: bool, message: str) -> str | None:
    """``create -f`` (overwrite=False) or ``apply -f`` (overwrite=True). Returns the sha, or None: no change."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise GitOpsError(f"{filename} is not UTF-8 text") from None
    chunks = split_documents(text)
    docs = _parse(filename, chunks)
    target = target_path(repo.manifests_rel, filename)

    with repo.transaction() as branch:
        located = _locate_all(repo, docs, overwrite)
        if not overwrite:
            if located:
                ci = next(iter(located))
                k = next(d.key for d in docs if d.chunk == ci)
                where = located[ci].file
                raise GitOpsError(f'AlreadyExists: {k[0].lower()} "{k[2]}" already exists (declared in {where})')
            if repo.exists(target):
                raise GitOpsError(f"AlreadyExists: {target} already exists in the repository")
            return repo.commit({target: data}, message, branch)

        changes = _replace_in_place(repo, chunks, docs, located)
        rest = [d.chunk for d in docs if d.chunk not in located]
        if rest:
            if target in changes or repo.exists(target, follow_symlinks=True):
                changes[target] = _appended(changes.get(target) or repo.read(target) or b"", chunks, rest)
            elif len(rest) == len(docs):
                changes[target] = data
            else:
                changes[target] = _only(chunks, rest, newline_of(text))
        if not changes:
            return None
        return repo.commit(changes, message, branch)
