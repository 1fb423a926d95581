"""One revision of the git repository -> validated manifests and its ``gitship.yaml``.

Where it sits: the git side of the one loader. ``RevisionLoader`` lists the revision's
tree under the manifests path (``git ls-tree``) and reads the blobs the loader asks for
(one ``git cat-file --batch``); everything else (which files are manifests, symlinks and
sizes refused, parsing, the blob-id cache, duplicates, limits) is decided by the pure
``reconciler.manifests.revision.load_listing``, the same function the tests and the
benchmark drive with files in memory.
"""

from __future__ import annotations

from ..manifests.load import Limits
from ..manifests.model import Manifest, RepoConfig
from ..manifests.revision import BlobCache, load_listing
from .git import GitReader


class RevisionLoader:
    """Loads revisions of one repository, keeping the parsed files of the last one (by blob id)."""

    def __init__(self, reader: GitReader, path: str, limits: Limits):
        self.reader = reader
        self.path = path.strip("/")
        self.limits = limits
        self.cache = BlobCache()

    def load(self, sha: str) -> tuple[list[Manifest], RepoConfig]:
        """The manifests and config of commit ``sha``; raises RevisionRejected with every error."""
        listing = self.reader.tree(sha, self.path)
        return load_listing(listing, self.reader.read_blobs, self.limits, self.cache, self.path)
