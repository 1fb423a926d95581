"""One manifest file's bytes -> validated ``Manifest`` objects, under limits.

Where it sits: pure. ``manifests/revision.py`` hands each file of a revision
(bytes, and the path the revision names it by) to ``load_file``; this module
renders ``*.j2`` (``render.py``), parses YAML, checks kinds, applies defaults
and validation (``validate``) and returns ``Manifest`` objects, or raises
``RevisionRejected`` listing *every* problem of the file (file, line,
document, field). ``parse_repo_config`` parses ``gitship.yaml`` under the same
limits.

Strict fields, as kubectl's default ``--validate=strict``: a field the kind's
schema does not define (``schema.py``, generated from Kubernetes' OpenAPI
definitions) is ``unknown field "spec.replica"``, and a key written twice in
one mapping is ``duplicate field "spec.replicas"`` (at the second one's line).
Both are checked on the document as written, before defaults. They are errors,
or, for a file under a ``validation: warn`` rule of ``gitship.yaml``, warnings
carried by the ``Manifest`` (``Manifest.warnings``).

Parsing, the limits on hostile input (``Limits``) and error positions are in ``yamlsafe.py``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from reconciler.errors import ManifestError, RevisionRejected
from reconciler.manifests.inert import api_versions
from reconciler.manifests.model import (
    KINDS,
    REPO_CONFIG_FILES,
    STRICT,
    WARN,
    Manifest,
    RepoConfig,
    Source,
    is_custom_api_version,
    repo_config_from,
)
from reconciler.manifests.render import render
from reconciler.manifests.schema import unknown_fields
from reconciler.manifests.sops import AgeKeys, SopsError, decrypt_text, is_encrypted
from reconciler.manifests.validate import default_and_validate_in_place
from reconciler.manifests.yamlsafe import Limits, compose, decode, documents, field_line, safe_load_documents, too_big

__all__ = ["Limits", "is_manifest_path", "load_file", "parse_repo_config", "supported_kinds", "too_big"]


# --------------------------------------------------------------------------- paths

_MANIFEST_SUFFIXES = (".yaml", ".yml", ".yaml.j2", ".yml.j2")


@lru_cache(maxsize=1 << 16)
def is_manifest_path(path: str) -> bool:
    """``*.yaml``, ``*.yml``, ``*.yaml.j2``, ``*.yml.j2``; not ``gitship.yaml``/``.yml`` (the repo
    config, at any depth) and not under any component starting with ``.`` (``.github/``, ``.x.yaml``)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    if not parts:
        return False
    if any(p.startswith(".") for p in parts):
        return False
    if parts[-1] in REPO_CONFIG_FILES:
        return False
    return parts[-1].endswith(_MANIFEST_SUFFIXES)


# --------------------------------------------------------------------------- one file


def supported_kinds() -> str:
    """The kinds gitship accepts, with their apiVersions, as error messages list them."""
    return ", ".join(f"{k} ({'|'.join(api_versions(k, v))})" for k, v in KINDS.items())


def _check_kind(file: str, index: int, line: int, obj: dict[str, Any]) -> ManifestError | None:
    kind = obj.get("kind")
    api = obj.get("apiVersion")
    if kind is None or kind == "":
        return ManifestError(
            file, f"Required value: every document needs a `kind`; supported: {supported_kinds()}", line, index, "kind"
        )
    if isinstance(kind, str) and kind not in KINDS and is_custom_api_version(api):
        return None  # a custom resource: the revision must hold its CustomResourceDefinition (crd.py)
    if not isinstance(kind, str) or kind not in KINDS:
        return ManifestError(
            file,
            f"Unsupported value: kind {kind!r} with apiVersion {api!r}; supported: {supported_kinds()}",
            line,
            index,
            "kind",
        )
    if api not in api_versions(kind, KINDS[kind]):
        if api is None or api == "":
            return ManifestError(
                file, f"Required value: kind {kind!r} needs apiVersion {KINDS[kind]!r}", line, index, "apiVersion"
            )
        return ManifestError(
            file,
            f"Invalid value: apiVersion {api!r} with kind {kind!r}: {kind} is served as apiVersion {KINDS[kind]!r}",
            line,
            index,
            "apiVersion",
        )
    return None


class _Positions:
    """The composed node trees of one file, composed once and only when an error needs a line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes: list[Any] | None = None

    def locate(self, errors: list[ManifestError], index: int, line: int) -> None:
        """Set the line of each error from its field path (deepest existing node)."""
        if self.nodes is None:
            self.nodes = compose(self.text)
        node = self.nodes[index] if index < len(self.nodes) else None
        for e in errors:
            e.line = field_line(node, e.field) if node is not None else line


def _unknown_field_errors(file: str, index: int, obj: dict[str, Any]) -> list[ManifestError]:
    return [ManifestError(file, f'unknown field "{path}"', 0, index, path) for path in unknown_fields(obj)]


def _load_file(
    file: str,
    data: bytes,
    values: dict[str, Any],
    limits: Limits,
    errors: list[ManifestError],
    warn: bool,
    age_keys: AgeKeys | None = None,
) -> list[Manifest]:
    decoded = decode(file, data, limits)
    if isinstance(decoded, ManifestError):
        errors.append(decoded)
        return []
    text = decoded
    if not file.endswith(".j2") and is_encrypted(text):
        # a SOPS file: decrypted here, in memory only; the message never carries a value
        try:
            text = decrypt_text(text, age_keys or AgeKeys())
        except SopsError as e:
            errors.append(ManifestError(file, f"cannot decrypt this SOPS file: {e}"))
            return []
    if file.endswith(".j2"):
        try:
            text = render(file, text, values, max_output=limits.max_file_bytes)
        except ManifestError as e:
            errors.append(e)
            return []
    out: list[Manifest] = []
    positions = _Positions(text)
    for index, line, obj, strict in documents(file, text, limits, errors):
        if obj is None:
            continue
        if type(obj) is not dict:
            errors.append(
                ManifestError(
                    file, f"a document must be a mapping (a Kubernetes object), not {type(obj).__name__}", line, index
                )
            )
            continue
        err = _check_kind(file, index, line, obj)
        if err is not None:
            errors.append(err)
            continue
        unknown = _unknown_field_errors(file, index, obj)  # the document as written, before defaults
        if unknown:
            positions.locate(unknown, index, line)
            strict = strict + unknown
        problems = default_and_validate_in_place(obj, file, index)
        if problems:
            positions.locate(problems, index, line)
        if not warn:
            problems = strict + problems
        if problems:
            errors.extend(problems)
            continue
        out.append(Manifest(obj, Source(file, line, index), tuple(strict) if warn else ()))
    return out


def load_file(
    file: str,
    data: bytes,
    values: dict[str, Any],
    limits: Limits | None = None,
    validation: str = STRICT,
    age_keys: AgeKeys | None = None,
) -> list[Manifest]:
    """Load one file; raises RevisionRejected with every ManifestError found in it.

    ``validation`` is the file's mode from ``gitship.yaml`` (``RepoConfig.validation_mode``):
    under ``strict`` an unknown or duplicated field is an error; under ``warn`` the document
    loads and the field is in its ``Manifest.warnings``. A SOPS-encrypted file (a top-level
    ``sops:`` mapping) is decrypted first with the age identities of ``age_keys`` (``manifests/sops.py``).
    """
    errors: list[ManifestError] = []
    manifests = _load_file(file, data, values, limits or Limits(), errors, validation == WARN, age_keys)
    if errors:
        raise RevisionRejected(errors)
    return manifests


def parse_repo_config(data: bytes, file: str = "gitship.yaml", limits: Limits | None = None) -> RepoConfig:
    """Parse the repository's ``gitship.yaml`` under the same limits as a manifest.

    Raises ManifestError naming the file, the line and the field path.
    """
    try:
        docs = safe_load_documents(file, data, limits or Limits())
    except RevisionRejected as e:
        raise e.errors[0] from None
    return repo_config_from(docs, file)
