"""A write's revision checked before it is committed: the tracked branch's HEAD with the changed
files put in, loaded by the one loader (reconciler/manifests/revision.py), plus the immutable fields
against the live object. Only problems the change brings are held against it: errors the HEAD
revision already has are not (a write elsewhere may be what fixes them).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from reconciler.errors import ManifestError, RevisionRejected
from reconciler.manifests.load import Limits
from reconciler.manifests.model import Manifest
from reconciler.manifests.revision import BlobCache, RevisionFile, git_blob_id, load_listing
from reconciler.source.git import GitReader
from reconciler.source.revision import read_age_keys
from reconciler.sync.immutable import at_field_lines, immutable_field_errors
from reconciler.types import Key, Obj

_lock = threading.Lock()
_cache = BlobCache()


def _load(
    reader: GitReader, listing: list[RevisionFile], extra: Mapping[str, bytes], root: str
) -> tuple[list[Manifest], list[ManifestError]]:
    def read(blobs: list[str]) -> Mapping[str, bytes]:
        out = {b: extra[b] for b in blobs if b in extra}
        rest = [b for b in blobs if b not in extra]
        if rest:
            out.update(reader.read_blobs(rest))
        return out

    try:
        manifests, _ = load_listing(sorted(listing), read, Limits(), _cache, root, age_keys=read_age_keys())
    except RevisionRejected as e:
        return [], list(e.errors)
    return manifests, []


def check_revision(
    repo_dir: str, manifests_path: str, changes: Mapping[str, bytes | None], live: Mapping[Key, Obj]
) -> list[Manifest]:
    """The manifests of HEAD with ``changes`` ({path from the repository root: bytes or None}); raises
    RevisionRejected with the errors the change brings (immutable fields of ``live`` objects included)."""
    root = manifests_path.strip("/")
    with _lock:
        reader = GitReader(repo_dir)
        try:
            head = reader.resolve("HEAD")
            base = reader.tree(head, root) if head else []
            _, before = _load(reader, base, {}, root) if head else ([], [])
            listing = [f for f in base if f.path not in changes]
            extra: dict[str, bytes] = {}
            for path, data in changes.items():
                if data is not None:
                    blob = git_blob_id(data)
                    extra[blob] = data
                    listing.append(RevisionFile(path, blob, len(data)))
            manifests, after = _load(reader, listing, extra, root)
        finally:
            reader.close()
    known = {str(e) for e in before}
    errors = [e for e in after if str(e) not in known]
    if not errors and after:  # the revision still fails, but only as HEAD already does
        return []

    def text(file: str) -> str | None:
        data = changes.get(file)
        return data.decode("utf-8", "replace") if data is not None else None

    errors += at_field_lines(immutable_field_errors([m for m in manifests if m.key in live], live), text)
    if errors:
        raise RevisionRejected(errors)
    return manifests
