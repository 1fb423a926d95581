"""Locating an object's file and document in the repository.

The manifests are the YAML files under the manifests path that git tracks or
would track (``.gitignore`` and the ``ignore`` globs of the repository's
``gitship.yaml`` respected, dot-directories skipped). An object is located by
its lowercased kind, namespace and name; an object declared twice, or one
rendered from a ``*.yaml.j2`` template (gitship never edits templates), is an
error naming the files.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import GitOpsError, NotFound
from reconciler.types import Key

from .documents import FastLoader, doc_indices, load, split_documents
from .transaction import Repo

MANIFEST_SUFFIXES = (".yaml", ".yml")
TEMPLATE_SUFFIXES = (".yaml.j2", ".yml.j2")


@dataclass
class Located:
    file: str  # relative to the repository root, '/'-separated
    chunk: int  # index into split_documents(text)
    document: int  # index as safe_load_all counts documents


@dataclass
class Index:
    """Where each object is declared (by lowercased key), and the template files."""

    objects: dict[Key, list[Located]]
    templates: list[str]


def meta(obj: Any) -> dict[str, Any]:
    m = obj.get("metadata") if isinstance(obj, dict) else None
    return m if isinstance(m, dict) else {}


def obj_key(obj: Any) -> Key | None:
    """(kind, namespace, name) of a manifest object (namespace "default" when unset), or None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        return None
    name = meta(obj).get("name")
    if not isinstance(name, str):
        return None
    ns = meta(obj).get("namespace") or "default"
    return obj["kind"], str(ns), name


def lower_key(k: Key) -> Key:
    return k[0].lower(), k[1], k[2]


def ref(kind: str, ns: str, name: str) -> str:
    """How messages name an object: ``kind/name``, with the namespace when not default."""
    s = f"{kind.lower()}/{name}"
    return s if ns == "default" else f"{s} (namespace {ns})"


def _ignore_patterns(repo: Repo) -> list[str]:
    """The `ignore` globs of the repository's gitship.yaml (files that are not manifests)."""
    data = repo.read(os.path.join(repo.manifests_rel or "", "gitship.yaml"))
    if not data:
        return []
    try:
        conf = yaml.safe_load(data) or {}
    except yaml.YAMLError:
        return []
    pats = conf.get("ignore") if isinstance(conf, dict) else None
    return [p for p in pats if isinstance(p, str)] if isinstance(pats, list) else []


def manifest_files(repo: Repo) -> list[str]:
    """The manifest and template files in the work tree (tracked, or untracked and not ignored)."""
    out = repo.git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", repo.manifests_rel or ".")
    files = sorted({f for f in out.stdout.split("\0") if f})
    ignore = _ignore_patterns(repo)
    res = []
    for f in files:
        if any(part.startswith(".") for part in f.split("/")[:-1]):
            continue
        rel = os.path.relpath(f, repo.manifests_rel) if repo.manifests_rel else f
        if any(fnmatch.fnmatch(rel, pat) for pat in ignore):
            continue
        if f.endswith(MANIFEST_SUFFIXES + TEMPLATE_SUFFIXES) and os.path.isfile(repo.abspath(f)):
            res.append(f)
    return res


def _scan(repo: Repo, rel: str) -> list[tuple[int, int, Any]]:
    """(chunk index, document index, object) for each parseable document of a file."""
    data = repo.read(rel)
    if data is None:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    chunks = split_documents(text)
    out: list[tuple[int, int, Any]] = []
    for i, (c, d) in enumerate(zip(chunks, doc_indices(chunks))):
        if d is None:
            continue
        try:
            obj = load(c)
        except yaml.YAMLError:
            continue
        out.append((i, d, obj))
    return out


def build_index(repo: Repo) -> Index:
    index = Index({}, [])
    for rel in manifest_files(repo):
        if rel.endswith(TEMPLATE_SUFFIXES):
            index.templates.append(rel)
            continue
        for ci, di, obj in _scan(repo, rel):
            k = obj_key(obj)
            if k:
                index.objects.setdefault(lower_key(k), []).append(Located(rel, ci, di))
    return index


def _render_template(repo: Repo, rel: str, text: str) -> str | None:
    try:
        from reconciler.manifests.render import render
    except Exception:
        return None
    values: dict[str, Any] = {}
    for cfg in ("gitship.yaml", "gitship.yml"):
        raw = repo.read(cfg)
        if raw is not None:
            try:
                v = (yaml.safe_load(raw) or {}).get("values") or {}
                values = v if isinstance(v, dict) else {}
            except (yaml.YAMLError, AttributeError):
                pass
            break
    try:
        return render(rel, text, values)
    except Exception:
        return None


def _template_declares(repo: Repo, rel: str, key: Key) -> bool:
    text = (repo.read(rel) or b"").decode("utf-8", "replace")
    rendered = _render_template(repo, rel, text)
    if rendered is not None:
        try:
            return any(
                (k := obj_key(obj)) and lower_key(k) == lower_key(key)
                for obj in yaml.load_all(rendered, Loader=FastLoader)
            )
        except yaml.YAMLError:
            pass
    # heuristic: a document with `kind: <kind>` and `name: <name>` lines
    kind_re = re.compile(rf"^\s*kind:\s*[\"']?{re.escape(key[0])}[\"']?\s*(#.*)?$", re.M | re.I)
    name_re = re.compile(rf"^\s*name:\s*[\"']?{re.escape(key[2])}[\"']?\s*(#.*)?$", re.M)
    return any(kind_re.search(c) and name_re.search(c) for c in split_documents(text))


def locate(repo: Repo, kind: str, namespace: str | None, name: str, index: Index | None = None) -> Located:
    """Where the object is declared; NotFound, or GitOpsError (declared twice, or by a template)."""
    ns = namespace or "default"
    idx = index or build_index(repo)
    hits = idx.objects.get((kind.lower(), ns, name), [])
    if len(hits) > 1:
        where = ", ".join(f"{h.file} (document {h.document + 1})" for h in hits)
        raise GitOpsError(f"{ref(kind, ns, name)} is declared more than once: {where}")
    if hits:
        return hits[0]
    for rel in idx.templates:
        if _template_declares(repo, rel, (kind, ns, name)):
            raise GitOpsError(
                f"{ref(kind, ns, name)} is rendered from the template {rel}; edit the template and commit it yourself"
            )
    where = repo.manifests_rel or "the repository"
    raise NotFound(f'{kind.lower()} "{name}" not found in namespace {ns} (no manifest under {where} declares it)')
