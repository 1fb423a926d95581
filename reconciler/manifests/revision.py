"""A revision's files -> validated manifests and its ``gitship.yaml``, parsing only what changed.

Where it sits: pure, between the source and the store. This is the one loader: the
daemon's ``source.revision.RevisionLoader`` hands it the revision's listing (path, blob
id, size, symlink or not, from ``git ls-tree``) and a function that reads blobs (one
``git cat-file --batch``); the tests and the benchmark hand it files in memory through
``load_revision``. Both go through ``load_listing``.

What it decides, for every revision:

* which files are manifests: ``load.is_manifest_path`` on the path relative to the
  manifests root, minus the ``ignore`` globs of ``gitship.yaml``;
* a symbolic link is refused, never followed; a file over ``Limits.max_file_bytes`` is
  refused from its listed size, before its bytes are read;
* parsed files are cached by blob id (and, for Jinja templates, by the hash of the values
  they were rendered with), so a commit that changes one file of ten thousand reads and
  parses one file. The cache keeps the files of the last revision loaded, so it stays
  bounded however long the daemon runs;
* a custom resource needs the CustomResourceDefinition of its kind in the same revision
  (``crd.resolve``, after every file is loaded: the two may sit in different files);
* every problem of the revision is reported at once (``RevisionRejected``): the files'
  own errors, the same object defined twice (naming both places), and more than
  ``Limits.max_objects`` objects. Nothing of a rejected revision is returned;
* strict fields: an unknown or duplicated field is an error, except in a file under a
  ``validation: warn`` rule of ``gitship.yaml`` (``RepoConfig.validation_mode``), where it is
  a warning carried by its ``Manifest`` (``warnings_of`` lists a revision's warnings). A file
  loaded under ``warn`` is cached under its own key, so it loads again (and fails) once its rule
  is gone.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any, NamedTuple

from reconciler.errors import ManifestError, RevisionRejected
from reconciler.manifests import crd
from reconciler.manifests.namespaces import check_namespaces
from reconciler.manifests.load import Limits, is_manifest_path, load_file, parse_repo_config, supported_kinds, too_big
from reconciler.manifests.model import REPO_CONFIG_FILES, STRICT, WARN, Manifest, RepoConfig, format_key
from reconciler.manifests.sops import AgeKeys
from reconciler.types import Key

CacheKey = tuple[str, str]
ReadBlobs = Callable[[list[str]], Mapping[str, bytes]]


class RevisionFile(NamedTuple):
    """One file of a revision, as the source lists it."""

    path: str  # as the revision names it (relative to the repository root): in errors and sources
    blob: str  # content id (git's blob id): equal ids mean equal bytes
    size: int = -1  # in bytes, when the listing knows it (-1: unknown)
    symlink: bool = False


class BlobCache:
    """The parsed files of the last revision loaded: ``(blob_id, values_hash) -> list[Manifest]``
    ("" as values_hash for non-``.j2`` files; ``|warn`` appended for a file loaded under a
    ``validation: warn`` rule).

    Only files that loaded without errors are cached. Each load replaces the contents with
    the files of that revision, so the cache is bounded by one revision however long the
    daemon runs. The cached ``Manifest`` objects are shared between revisions: treat them
    as read-only.
    """

    def __init__(self) -> None:
        self._data: dict[CacheKey, list[Manifest]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> list[Manifest] | None:
        found = self._data.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def lookup(self, keys: Sequence[CacheKey]) -> list[list[Manifest] | None]:
        """``get`` of every key, in order."""
        get = self._data.get
        found = [get(key) for key in keys]
        misses = found.count(None)
        self.misses += misses
        self.hits += len(found) - misses
        return found

    def replace(self, entries: dict[CacheKey, list[Manifest]]) -> None:
        """The files of the revision just loaded become the contents."""
        self._data = entries

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data = {}


def values_hash(values: Mapping[str, Any]) -> str:
    """A stable hash of template values (part of the cache key of ``.j2`` files)."""
    blob = json.dumps(values, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def git_blob_id(data: bytes) -> str:
    """The id git gives these bytes as a blob (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def warnings_of(manifests: Sequence[Manifest]) -> list[ManifestError]:
    """The warnings of a loaded revision (unknown or duplicated fields under ``validation: warn``),
    in file and document order: for the daemon to log and record as events, never to drop."""
    return [w for m in manifests for w in m.warnings]


def _renamed(manifests: list[Manifest], path: str) -> list[Manifest]:
    """Cached manifests of the same bytes under another path (a rename or a copy)."""
    return [
        Manifest(m.obj, replace(m.source, file=path), tuple(replace(w, file=path) for w in m.warnings))
        for m in manifests
    ]


def validate_unique(manifests: Sequence[Manifest]) -> list[ManifestError]:
    """One error per object defined more than once (same kind/namespace/name), naming both places."""
    seen: dict[Key, Manifest] = {}
    errors: list[ManifestError] = []
    for m in manifests:
        first = seen.get(m.key)
        if first is None:
            seen[m.key] = m
            continue
        errors.append(
            ManifestError(
                m.source.file,
                f"duplicate object {format_key(m.key)}: already declared in {first.source}",
                m.source.line,
                m.source.document,
                "metadata.name",
            )
        )
    return errors


# --------------------------------------------------------------------------- one revision


def _relative(path: str, root: str) -> str | None:
    """``path`` relative to the manifests root ``root``; None when it lies outside."""
    if not root:
        return path
    if path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return None


def _symlink_error(path: str, manifest: bool) -> ManifestError:
    why = " (a manifest must be a regular file inside the repository)" if manifest else ""
    return ManifestError(path, f"is a symbolic link; gitship does not follow links{why}")


def _load_config(
    listing: Sequence[RevisionFile], read: ReadBlobs, root: str, limits: Limits, errors: list[ManifestError]
) -> RepoConfig:
    """The ``gitship.yaml`` (or ``.yml``) at the manifests root; ``RepoConfig()`` when there is none."""
    config = RepoConfig()
    for f in listing:
        if not f.path.endswith(REPO_CONFIG_FILES) or _relative(f.path, root) not in REPO_CONFIG_FILES:
            continue
        problem = _symlink_error(f.path, manifest=False) if f.symlink else too_big(f.path, f.size, limits)
        if problem is not None:
            errors.append(problem)
            continue
        try:
            config = parse_repo_config(read([f.blob])[f.blob], f.path, limits)
        except ManifestError as err:
            errors.append(err)
    return config


def _manifest_files(
    listing: Sequence[RevisionFile], root: str, config: RepoConfig, limits: Limits, errors: list[ManifestError]
) -> list[RevisionFile]:
    """The manifests of the listing, in path order; refused files go to ``errors``."""
    out: list[RevisionFile] = []
    ignore = config.ignore
    max_bytes = limits.max_file_bytes
    prefix = root + "/" if root else ""
    skip = len(prefix)
    for f in sorted(listing, key=itemgetter(0)):
        path = f.path
        if prefix and not path.startswith(prefix):
            continue
        rel = path[skip:]
        if not is_manifest_path(rel) or (ignore and any(fnmatch.fnmatch(rel, pat) for pat in ignore)):
            continue
        if f.symlink:
            errors.append(_symlink_error(path, manifest=True))
            continue
        big = too_big(path, f.size, limits) if f.size > max_bytes else None
        if big is not None:
            errors.append(big)
            continue
        out.append(f)
    return out


def _parse_files(
    files: Sequence[RevisionFile],
    read: ReadBlobs,
    values: dict[str, Any],
    limits: Limits,
    cache: BlobCache,
    errors: list[ManifestError],
    modes: Sequence[str] | None,
    age_keys: AgeKeys | None = None,
) -> list[Manifest]:
    """Load ``files`` (``modes``: each one's validation mode; None when all are strict)."""
    vhash = values_hash(values) if any(f.path.endswith(".j2") for f in files) else ""
    keys = [(f.blob, vhash if f.path.endswith(".j2") else "") for f in files]
    if modes is not None:
        # a file loaded under ``warn`` is cached apart: the same bytes under ``strict`` load again (and fail)
        keys = [(blob, f"{vh}|{WARN}" if mode == WARN else vh) for (blob, vh), mode in zip(keys, modes)]
    found = cache.lookup(keys)
    missing = sorted({f.blob for f, got in zip(files, found) if got is None})
    blobs = read(missing) if missing else {}
    current: dict[CacheKey, list[Manifest]] = {}
    manifests: list[Manifest] = []
    try:
        for i, (f, key, got) in enumerate(zip(files, keys, found)):
            if got is None:
                got = current.get(key)  # the same bytes earlier in this revision
            if got is None:
                try:
                    got = load_file(
                        f.path, blobs[f.blob], values, limits, modes[i] if modes is not None else STRICT, age_keys
                    )
                except RevisionRejected as rejected:
                    errors.extend(rejected.errors)
                    continue
            elif got and got[0].source.file != f.path:
                # the same bytes under another name (a rename or a copy): its own path in errors and sources
                got = _renamed(got, f.path)
            current[key] = got
            manifests.extend(got)
            if len(manifests) > limits.max_objects:
                errors.append(ManifestError(f.path, f"the revision has more than {limits.max_objects} objects"))
                raise RevisionRejected(errors)
    finally:
        cache.replace(current)
    return manifests


def load_listing(
    listing: Sequence[RevisionFile],
    read: ReadBlobs,
    limits: Limits | None = None,
    cache: BlobCache | None = None,
    root: str = "",
    values: dict[str, Any] | None = None,
    age_keys: AgeKeys | None = None,
    namespaces: Collection[str] = (),
) -> tuple[list[Manifest], RepoConfig]:
    """Load one revision: its ``gitship.yaml`` and every manifest under ``root``, in path order.

    ``read(blob_ids)`` returns the bytes of those blobs; it is called only for blobs the
    cache does not hold. ``values`` (when given) replace the config's template values.
    Raises RevisionRejected with every error of the revision; nothing of it is returned.
    Warnings (``validation: warn``) ride on the manifests: ``warnings_of(manifests)``.
    ``age_keys``: the age identities for SOPS-encrypted files (one that cannot be decrypted is an error).
    ``namespaces``: Namespaces declared outside this revision (by other sources) its objects may use.
    """
    limits = limits or Limits()
    root = root.strip("/")
    errors: list[ManifestError] = []
    config = _load_config(listing, read, root, limits, errors)
    files = _manifest_files(listing, root, config, limits, errors)
    template_values = config.values if values is None else values
    skip = len(root) + 1 if root else 0
    modes = [config.validation_mode(f.path[skip:]) for f in files] if config.validation else None
    cache = cache if cache is not None else BlobCache()
    manifests = _parse_files(files, read, template_values, limits, cache, errors, modes, age_keys)
    manifests, undefined = crd.resolve(manifests, supported_kinds())  # custom resources need their CRD
    errors.extend(undefined)
    errors.extend(validate_unique(manifests))
    errors.extend(check_namespaces(manifests, namespaces))  # objects need their namespace
    if errors:
        raise RevisionRejected(errors)
    return manifests, config


def load_revision(
    files: Mapping[str, bytes],
    values: dict[str, Any] | None = None,
    limits: Limits | None = None,
    cache: BlobCache | None = None,
    blob_ids: Mapping[str, str] | None = None,
    age_keys: AgeKeys | None = None,
) -> list[Manifest]:
    """``load_listing`` over files in memory (``{path: bytes}``), for tests and the benchmark.

    Blob ids default to git's own (``git_blob_id``); ``values`` (when given) replace the
    template values of a ``gitship.yaml`` among the files.
    """
    ids = {path: (blob_ids or {}).get(path) or git_blob_id(data) for path, data in files.items()}
    by_blob = {ids[path]: data for path, data in files.items()}
    listing = [RevisionFile(path, ids[path], len(data)) for path, data in files.items()]

    def read(blobs: list[str]) -> Mapping[str, bytes]:
        return {b: by_blob[b] for b in blobs}

    manifests, _ = load_listing(listing, read, limits, cache, values=values, age_keys=age_keys)
    return manifests
