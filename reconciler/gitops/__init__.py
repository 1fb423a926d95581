"""Commits gitship makes: layout-keeping YAML edits, revert, push.

Every change of desired state made through gitship (``label``, ``set image``,
``scale``, ``rollout pause/resume/undo``, ``create -f``/``apply -f``) is an edit
of a manifest file in the repository, committed with a message that names the
object and the change. ``RepoWriter`` makes those commits.

The package, one module per job:

    documents    a YAML stream as text: documents split on ``^---``, equality as YAML sees it  (pure)
    yamltext     scalars, flow collections and new subtrees written like the document    (pure)
    yamlpatch    the text-patching engine: ``patch_document`` (minimal splices, round-trip fallback)  (pure)
    transaction  ``Repo``: the flock in the git dir, the branch, commit only the edited paths, push
    locate       which file and document of the repository declares an object
    edits        label, set image, scale, pause/resume, pod template (mutations + ``edit``)
    files        ``create -f`` / ``apply -f``
    history      log, files at a commit, the commit that introduced a state, revert
    writer       ``RepoWriter``: a ``Repo`` with one method per edit

Only one document of a file is ever rewritten; every other document stays
byte-identical. Files rendered from ``*.yaml.j2`` templates are never edited.

Public API: ``RepoWriter`` (``find``, ``set_labels``, ``set_image``, ``scale``,
``set_paused``, ``set_template``, ``add_file``, ``revert``, ``log``,
``commit_info``, ``file_at``, ``introducing_commit``, ``changed_files``,
``manifest_files``, ``head``), ``patch_document`` and ``split_documents`` (the
text engine, usable on its own), ``DEFAULT_AUTHOR``.

``RepoWriter`` and ``DEFAULT_AUTHOR`` are imported on first use, so importing
the pure text engine (``reconciler.gitops.yamlpatch``) loads no git or file
machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .documents import split_documents
from .yamlpatch import patch_document

if TYPE_CHECKING:
    from .transaction import DEFAULT_AUTHOR
    from .writer import RepoWriter

__all__ = ["RepoWriter", "patch_document", "split_documents", "DEFAULT_AUTHOR"]


def __getattr__(name: str) -> Any:
    if name == "RepoWriter":
        from .writer import RepoWriter

        return RepoWriter
    if name == "DEFAULT_AUTHOR":
        from .transaction import DEFAULT_AUTHOR

        return DEFAULT_AUTHOR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
