"""gitship's error hierarchy.

    GitshipError                      anything gitship reports to a user
    ├── ManifestError                 one bad document: file, line, document index, field path
    │   └── (collected in) RevisionRejected   a revision with one or more ManifestErrors
    ├── SelectorError                 a label selector that does not parse or validate
    ├── SourceError                   git could not be read, fetched or cloned
    ├── GitOpsError                   a commit gitship makes could not be made (conflict,
    │                                 rejected push, a file it can't edit)
    ├── StoreError                    the state dir or its SQLite store is unusable
    └── NotFound                      an object the CLI asked for does not exist

Broad exceptions are caught only at the per-object boundary of a reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass


class GitshipError(Exception):
    """Base of every error gitship reports to a user."""


@dataclass
class ManifestError(GitshipError):
    """One problem in one document of one file.

    ``file`` is relative to the repository root; ``line`` is 1-based (0 when
    unknown); ``document`` is the 0-based index of the YAML document in the
    file; ``field`` is a Kubernetes field path such as
    ``spec.template.spec.containers[0].ports[0].containerPort`` ("" when the
    problem is the document as a whole).
    """

    file: str
    message: str
    line: int = 0
    document: int = 0
    field: str = ""

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
        where += f" (document {self.document + 1})"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "document": self.document,
            "field": self.field,
            "message": self.message,
        }


class RevisionRejected(GitshipError):
    """A revision whose manifests did not all load and validate; nothing of it is applied."""

    def __init__(self, errors: list[ManifestError]):
        self.errors = errors
        first = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} error(s): {first}{more}")


class SelectorError(GitshipError):
    """A label selector that does not parse or validate."""


class SourceError(GitshipError):
    """The git source could not be read, cloned or fetched."""


class GitOpsError(GitshipError):
    """A commit gitship makes to the repository could not be made."""


class StoreError(GitshipError):
    """The state dir or the SQLite store is unusable."""


class NotFound(GitshipError):
    """The object asked for does not exist."""
