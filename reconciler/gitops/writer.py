"""``RepoWriter``: the one object the CLI, the daemon and rollout undo make gitship's commits with.

A ``Repo`` (reconciler.gitops.transaction: the lock, the branch, commit and
push) with one method per edit; each method is a line that hands the work to
the module of its job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.types import Obj

from . import edits, files, history
from .locate import locate
from .transaction import Repo


class RepoWriter(Repo):
    """Makes gitship's commits in the git work tree ``workdir``.

    ``manifests_path`` (relative to ``workdir``) is where manifests live;
    ``branch`` must be the checked-out branch (default: whatever is checked
    out); ``remote`` (e.g. ``"origin"``) turns on fetch + fast-forward before
    and a fast-forward-only push after every commit.

    Every edit returns the new commit's sha, or ``None`` when it would change
    nothing (nothing is committed then). Paths in and out are relative to the
    repository root.
    """

    # ------------------------------------------------------------------ locating
    def find(self, kind: str, namespace: str | None, name: str) -> tuple[str, int]:
        """(file relative to the repository root, 0-based document index) declaring the object.

        Raises NotFound, or GitOpsError when it comes from a ``*.yaml.j2``
        template or is declared more than once.
        """
        loc = locate(self, kind, namespace, name)
        return loc.file, loc.document

    # ------------------------------------------------------------------ edits
    def set_labels(
        self,
        kind: str,
        ns: str | None,
        name: str,
        set: dict[str, str],
        remove: list[str] | None = None,
        overwrite: bool = False,
    ) -> str | None:
        """kubectl label: add/change ``set``, delete ``remove`` (missing ones are ignored).

        Changing an existing label's value needs ``overwrite``. An emptied
        ``labels`` mapping is removed from the manifest.
        """
        mutate = edits.label_mutation(edits.object_ref(kind, ns, name), set, list(remove or []), overwrite)
        return edits.edit(self, kind, ns, name, mutate)

    def set_image(self, kind: str, ns: str | None, name: str, images: dict[str, str]) -> str | None:
        """kubectl set image: ``{container name: image}``; ``"*"`` = every container."""
        return edits.edit(self, kind, ns, name, edits.image_mutation(edits.object_ref(kind, ns, name), images))

    def scale(self, kind: str, ns: str | None, name: str, replicas: int) -> str | None:
        """Set ``spec.replicas`` (Deployment, ReplicaSet, StatefulSet...)."""
        return edits.edit(self, kind, ns, name, edits.scale_mutation(edits.object_ref(kind, ns, name), replicas))

    def delete(self, kind: str, ns: str | None, name: str) -> str:
        """``delete KIND NAME``: the object's document removed from git in one commit."""
        return edits.remove_object(self, kind, ns, name)

    def set_paused(self, kind: str, ns: str | None, name: str, paused: bool) -> str | None:
        """rollout pause (``spec.paused: true``) / resume (deletes ``spec.paused``)."""
        return edits.edit(self, kind, ns, name, edits.pause_mutation(edits.object_ref(kind, ns, name), paused))

    def set_template(
        self,
        kind: str,
        ns: str | None,
        name: str,
        template: Obj,
        message: str,
        annotations: Mapping[str, str | None] | None = None,
    ) -> str | None:
        """Replace ``spec.template`` (rollout undo when a plain revert is not possible).

        ``annotations`` sets (None: removes) metadata annotations in the same commit.
        Parts of the object that do not change keep their text and comments.
        """
        mutate = edits.template_mutation(edits.object_ref(kind, ns, name), template, message, annotations)
        return edits.edit(self, kind, ns, name, mutate)

    def add_file(self, filename: str, data: bytes, overwrite: bool, message: str) -> str | None:
        """``create -f`` (overwrite=False) or ``apply -f`` (overwrite=True) of a manifest file.

        See reconciler.gitops.files. Returns the commit sha, or None when nothing changes.
        """
        return files.add_file(self, filename, data, overwrite, message)

    # ------------------------------------------------------------------ history and revert
    def revert(self, sha: str, message_extra: str = "") -> str:
        """Commit the inverse of ``sha`` (like ``git revert --no-edit``); a conflict changes nothing."""
        return history.revert(self, sha, message_extra)

    def log(self, path: str | None = None, n: int = 50) -> list[dict[str, Any]]:
        """Newest first: dict(sha, short, author, email, time (epoch), subject, files)."""
        return history.log(self, path, n)

    def commit_info(self, sha: str) -> dict[str, Any]:
        return history.commit_info(self, sha)

    def file_at(self, sha: str, path: str) -> bytes | None:
        """The file's content at a commit, or None (no such file or commit)."""
        return history.file_at(self, sha, path)

    def introducing_commit(self, file: str, predicate: Callable[[bytes | None], bool]) -> str | None:
        """Newest commit C touching ``file`` with predicate(file at C) and not predicate(at C^)."""
        return history.introducing_commit(self, file, predicate)

    def changed_files(self, sha: str) -> list[str]:
        """The paths a commit changed."""
        return list(history.commit_info(self, sha)["files"])

    def manifest_files(self, sha: str) -> list[str]:
        """The *.yaml / *.yml files under the manifests path at a commit."""
        return history.manifest_files_at(self, sha)
