"""One revision of the git repository -> validated manifests and its ``gitship.yaml``.

Where it sits: the git side of the one loader. ``RevisionLoader`` lists the revision's
tree under the manifests path (``git ls-tree``) and reads the blobs the loader asks for
(one ``git cat-file --batch``); everything else (which files are manifests, symlinks and
sizes refused, parsing, the blob-id cache, duplicates, limits) is decided by the pure
``reconciler.manifests.revision.load_listing``, the same function the tests and the
benchmark drive with files in memory.

SOPS keys: ``read_age_keys`` reads the age identities (``--decryption-key-file``, else the file
named by SOPS_AGE_KEY_FILE, else SOPS_AGE_KEY) at every load, so a key file put in place or
rotated is used from the next commit on; a key file that cannot be read makes every encrypted
file of the revision an error naming the key file (never its contents).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

from ..manifests.load import Limits
from ..manifests.model import Manifest, RepoConfig
from ..manifests.revision import BlobCache, load_listing
from ..manifests.sops import AgeKeys, SopsError, parse_identities
from .git import GitReader


def read_age_keys(key_file: str | None = None, env: Mapping[str, str] | None = None) -> AgeKeys:
    """The age identities to decrypt SOPS files with: from ``key_file``, else the file named by
    SOPS_AGE_KEY_FILE, else the text of SOPS_AGE_KEY (sops' own variables); none when none is set."""
    env = os.environ if env is None else env
    path: str | None = key_file or env.get("SOPS_AGE_KEY_FILE")
    if path:
        where = "--decryption-key-file" if key_file else "SOPS_AGE_KEY_FILE"
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            return AgeKeys(problem=f"cannot read the age key file {path} ({where}): {reason}")
        try:
            return AgeKeys(parse_identities(text))
        except SopsError as e:
            return AgeKeys(problem=f"the age key file {path} ({where}): {e}")
    inline = env.get("SOPS_AGE_KEY")
    if inline:
        try:
            return AgeKeys(parse_identities(inline))
        except SopsError as e:
            return AgeKeys(problem=f"SOPS_AGE_KEY: {e}")
    return AgeKeys()


class RevisionLoader:
    """Loads revisions of one repository, keeping the parsed files of the last one (by blob id)."""

    def __init__(self, reader: GitReader, path: str, limits: Limits, key_file: str | None = None):
        self.reader = reader
        self.path = path.strip("/")
        self.limits = limits
        self.key_file = key_file
        self.cache = BlobCache()
        self.namespaces: Collection[str] = ()  # Namespaces other sources declare (reconciler/sources)

    def load(self, sha: str) -> tuple[list[Manifest], RepoConfig]:
        """The manifests and config of commit ``sha``; raises RevisionRejected with every error."""
        listing = self.reader.tree(sha, self.path)
        age_keys = read_age_keys(self.key_file)
        return load_listing(
            listing,
            self.reader.read_blobs,
            self.limits,
            self.cache,
            self.path,
            age_keys=age_keys,
            namespaces=self.namespaces,
        )
