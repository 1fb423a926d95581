"""One revision's files to validated manifests, parsing only what changed.

Where it sits: between the git reader and the store. Parsed files are cached
by blob id (and, for Jinja templates, by the values they were rendered with),
so a commit that changes one file of ten thousand parses one file. The cache
holds only the files of the last revision loaded, so it stays bounded.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import posixpath
from dataclasses import replace

from ..errors import ManifestError, RevisionRejected
from ..manifests.load import Limits, is_manifest_path, load_file
from ..manifests.model import Manifest, RepoConfig, parse_repo_config
from .git import MODE_SYMLINK, GitReader

CONFIG_FILES = ("gitship.yaml", "gitship.yml")


class RevisionLoader:
    def __init__(self, reader: GitReader, path: str, limits: Limits):
        self.reader = reader
        self.path = path.strip("/")
        self.limits = limits
        self._cache: dict[tuple[str, str], list[Manifest]] = {}

    def _rel(self, path: str) -> str:
        return posixpath.relpath(path, self.path) if self.path else path

    def load(self, sha: str) -> tuple[list[Manifest], RepoConfig]:
        entries = self.reader.tree(sha, self.path)
        errors: list[ManifestError] = []
        config = RepoConfig()
        for e in entries:
            if self._rel(e.path) in CONFIG_FILES:
                if e.mode == MODE_SYMLINK:
                    errors.append(ManifestError(e.path, "is a symbolic link; gitship does not follow links"))
                    continue
                data = self.reader.read_blobs([e.blob])[e.blob]
                try:
                    config = parse_repo_config(data, e.path)
                except ManifestError as err:
                    errors.append(err)
        values_key = hashlib.sha1(json.dumps(config.values, sort_keys=True, default=str).encode()).hexdigest()
        wanted = []
        for e in entries:
            rel = self._rel(e.path)
            if not is_manifest_path(rel) or any(fnmatch.fnmatch(rel, pat) for pat in config.ignore):
                continue
            if e.mode == MODE_SYMLINK:
                errors.append(
                    ManifestError(
                        e.path,
                        "is a symbolic link; gitship does not follow links"
                        " (a manifest must be a regular file inside the repository)",
                    )
                )
                continue
            if e.size > self.limits.max_file_bytes:
                errors.append(
                    ManifestError(
                        e.path,
                        f"is {e.size} bytes, over the limit of {self.limits.max_file_bytes} bytes per manifest file",
                    )
                )
                continue
            ck = (e.blob, values_key if e.path.endswith(".j2") else "")
            wanted.append((e, ck))
        missing = [e.blob for e, ck in wanted if ck not in self._cache]
        blobs = self.reader.read_blobs(sorted(set(missing)))
        cache: dict[tuple[str, str], list[Manifest]] = {}
        manifests: list[Manifest] = []
        for e, ck in wanted:
            got = self._cache.get(ck) or cache.get(ck)
            if got is not None and got and got[0].source.file != e.path:
                # the same bytes under another name (a copy): its own path in errors and sources
                got = [Manifest(m.obj, replace(m.source, file=e.path)) for m in got]
            if got is None:
                try:
                    got = load_file(e.path, blobs[e.blob], config.values, self.limits)
                except RevisionRejected as rej:
                    errors.extend(rej.errors)
                    continue
            cache[ck] = got
            manifests.extend(got)
        self._cache = cache
        errors.extend(duplicates(manifests))
        if len(manifests) > self.limits.max_objects:
            errors.append(
                ManifestError(
                    self.path or ".", f"{len(manifests)} objects, over the limit of {self.limits.max_objects}"
                )
            )
        if errors:
            raise RevisionRejected(errors)
        return manifests, config


def duplicates(manifests: list[Manifest]) -> list[ManifestError]:
    seen: dict[tuple[str, str, str], Manifest] = {}
    out = []
    for m in manifests:
        first = seen.get(m.key)
        if first is None:
            seen[m.key] = m
            continue
        kind, ns, name = m.key
        out.append(
            ManifestError(
                m.source.file,
                f"duplicate object {kind} {ns}/{name}: already declared in "
                f"{first.source.file}:{first.source.line} (document {first.source.document + 1})",
                line=m.source.line,
                document=m.source.document,
                field="metadata.name",
            )
        )
    return out
