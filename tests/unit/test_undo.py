"""rollout undo's choices without a repository: which commit it makes, and the change-cause it restores.

Kubernetes copies the target ReplicaSet's annotations back onto the Deployment on rollback
(kubernetes/kubernetes pkg/controller/deployment/rollback.go), so the new revision's
kubernetes.io/change-cause is the target's; gitship writes it into the manifest.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from reconciler.errors import GitOpsError
from reconciler.gitops.documents import load, split_documents
from reconciler.gitops.edits import template_mutation
from reconciler.gitops.yamlpatch import patch_document
from reconciler.manifests.validate import default_and_validate
from reconciler.undo import change_cause, differs_beyond_template, only_template_changed, undo_commit

CAUSE = "kubernetes.io/change-cause"


def manifest(image: str, cause: str | None = None, replicas: int = 2, extra: str = "") -> str:
    ann = f"    {CAUSE}: {cause}\n" if cause is not None else ""
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        f"  # keep me\n  annotations:\n    team: blue\n{ann}{extra}"
        f"spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: web\n"
        "  template:\n    metadata:\n      labels:\n        app: web\n"
        f"    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    )


class FakeWriter:
    """A linear history of one file, web.yaml; commits are named c0, c1, ..."""

    def __init__(self, *texts: str) -> None:
        self.history: list[bytes] = [t.encode() for t in texts]
        self.reverted: list[str] = []
        self.templates: list[tuple[dict[str, Any], dict[str, str | None] | None]] = []

    def _at(self, sha: str) -> int | None:
        n = int(sha.rstrip("^")[1:]) if sha != "HEAD" else len(self.history) - 1
        n -= sha.count("^")
        return n if 0 <= n < len(self.history) else None

    def changed_files(self, sha: str) -> list[str]:
        return ["web.yaml"]

    def file_at(self, sha: str, path: str) -> bytes | None:
        n = self._at(sha)
        return None if n is None or path != "web.yaml" else self.history[n]

    def manifest_files(self, sha: str) -> list[str]:
        return ["web.yaml"]

    def revert(self, sha: str, message_extra: str = "") -> str:
        self.reverted.append(sha)
        return "r" * 40

    def set_template(
        self,
        kind: str,
        ns: str | None,
        name: str,
        template: dict[str, Any],
        message: str,
        annotations: dict[str, str | None] | None = None,
    ) -> str | None:
        self.templates.append((template, annotations))
        return "s" * 40


def defaulted(text: str) -> dict[str, Any]:
    obj, errors = default_and_validate(yaml.safe_load(text), "web.yaml", 0)
    assert not errors
    return obj


def replicaset(text: str, commit: str, cause: str | None) -> dict[str, Any]:
    """The ReplicaSet of a revision as the store holds it: the template, the commit, the copied change-cause."""
    ann = {"gitship.io/commit": commit, **({CAUSE: cause} if cause is not None else {})}
    return {"metadata": {"annotations": ann}, "spec": {"template": defaulted(text)["spec"]["template"]}}


DEP = defaulted(manifest("app:2"))


# --------------------------------------------------------------------------- pure helpers


def test_change_cause() -> None:
    assert change_cause({"metadata": {"annotations": {CAUSE: "deploy v1"}}}) == "deploy v1"
    assert change_cause({"metadata": {"annotations": {"team": "blue"}}}) is None
    assert change_cause({"metadata": {}}) is None
    assert change_cause({}) is None
    assert change_cause(None) is None
    assert change_cause({"metadata": {"annotations": None}}) is None


@pytest.mark.parametrize(
    ("before", "after", "differs"),
    [
        (manifest("app:1"), manifest("app:2"), False),
        (manifest("app:1", "deploy v1"), manifest("app:2", "deploy v2"), False),
        (manifest("app:1"), manifest("app:2", "deploy v2"), False),  # the annotation added
        (manifest("app:1", "deploy v1"), manifest("app:1"), False),  # removed
        (manifest("app:1"), manifest("app:2", replicas=3), True),
        (manifest("app:1", "x"), manifest("app:2", "y", extra="    other: z\n"), True),
        (manifest("app:1"), manifest("app:1").replace("    team: blue\n", "    team: red\n"), True),
    ],
)
def test_differs_beyond_template(before: str, after: str, differs: bool) -> None:
    assert differs_beyond_template(defaulted(before), defaulted(after)) is differs


def test_differs_beyond_template_leaves_its_arguments_alone() -> None:
    a, b = defaulted(manifest("app:1", "x")), defaulted(manifest("app:2", "y"))
    a0, b0 = copy.deepcopy(a), copy.deepcopy(b)
    differs_beyond_template(a, b)
    assert (a, b) == (a0, b0)


def test_only_template_changed_reports_the_change_cause_before() -> None:
    w = FakeWriter(manifest("app:1", "deploy v1"), manifest("app:2", "deploy v2"), manifest("app:3", "deploy v2"))
    key = ("Deployment", "default", "web")
    got = only_template_changed(w, "c1", key)
    assert got is not None and got.cause_changed and got.cause == "deploy v1"
    assert got.template["spec"]["containers"][0]["image"] == "app:1"
    got = only_template_changed(w, "c2", key)
    assert got is not None and not got.cause_changed and got.cause == "deploy v2"
    w = FakeWriter(manifest("app:1"), manifest("app:2", replicas=5))
    assert only_template_changed(w, "c1", key) is None


# --------------------------------------------------------------------------- the edit


def test_template_mutation_sets_and_removes_annotations() -> None:
    obj = yaml.safe_load(manifest("app:2", "deploy v2"))
    tmpl = {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    template_mutation("deployment/web", tmpl, "undo", {CAUSE: "deploy v1"})(obj)
    assert obj["metadata"]["annotations"] == {"team": "blue", CAUSE: "deploy v1"}
    template_mutation("deployment/web", tmpl, "undo", {CAUSE: None})(obj)
    assert obj["metadata"]["annotations"] == {"team": "blue"}
    template_mutation("deployment/web", tmpl, "undo", {"team": None})(obj)
    assert "annotations" not in obj["metadata"]  # an emptied mapping goes
    template_mutation("deployment/web", tmpl, "undo", {CAUSE: None})(obj)  # removing what is absent: nothing
    assert "annotations" not in obj["metadata"]
    empty = {"metadata": {"name": "web", "annotations": {}}, "spec": {}}
    template_mutation("deployment/web", tmpl, "undo", {CAUSE: None})(empty)
    assert empty["metadata"] == {"name": "web", "annotations": {}}  # untouched when nothing changes
    with pytest.raises(GitOpsError, match="metadata is not a mapping"):
        template_mutation("deployment/web", tmpl, "undo", {CAUSE: "x"})({"metadata": [], "spec": {}})


def test_removing_the_change_cause_keeps_the_rest_of_the_text() -> None:
    text = manifest("app:2", "deploy v2")
    (chunk,) = split_documents(text)
    obj = load(chunk)
    template_mutation("deployment/web", obj["spec"]["template"], "undo", {CAUSE: None})(obj)
    assert patch_document(chunk, obj) == manifest("app:2")
    template_mutation("deployment/web", obj["spec"]["template"], "undo", {CAUSE: "deploy v1"})(obj)
    assert yaml.safe_load(patch_document(chunk, obj))["metadata"]["annotations"][CAUSE] == "deploy v1"
    assert "# keep me" in patch_document(chunk, obj)


# --------------------------------------------------------------------------- revert or commit


def test_a_commit_of_template_and_change_cause_is_reverted() -> None:
    v1, v2 = manifest("app:1", "deploy v1"), manifest("app:2", "deploy v2")
    w = FakeWriter(v1, v2)
    sha, how = undo_commit(w, DEP, (2, replicaset(v2, "c1", "deploy v2")), (1, replicaset(v1, "c0", "deploy v1")))
    assert w.reverted == ["c1"] and not w.templates and how.startswith("git revert")


def test_a_template_only_commit_is_reverted_when_the_change_cause_already_matches() -> None:
    v1, v2 = manifest("app:1", "same"), manifest("app:2", "same")
    w = FakeWriter(v1, v2)
    undo_commit(w, DEP, (2, replicaset(v2, "c1", "same")), (1, replicaset(v1, "c0", "same")))
    assert w.reverted == ["c1"]


def test_a_revert_that_would_leave_another_change_cause_becomes_a_commit() -> None:
    # revision 2's commit changed only the image; a later commit set a change-cause the target never had
    v1, v2, later = manifest("app:1"), manifest("app:2"), manifest("app:2", "hotfix")
    w = FakeWriter(v1, v2, later)
    sha, how = undo_commit(w, DEP, (2, replicaset(v2, "c1", "hotfix")), (1, replicaset(v1, "c0", None)))
    assert not w.reverted and how == "commit"
    ((template, annotations),) = w.templates
    assert annotations == {CAUSE: None} and template["spec"]["containers"][0]["image"] == "app:1"


def test_reverting_is_right_when_the_target_took_a_later_change_cause() -> None:
    # revision 1 took "deploy v1b" while it was the new revision (an annotation-only commit): the revert restores it
    v1, v1b, v2 = manifest("app:1", "deploy v1"), manifest("app:1", "deploy v1b"), manifest("app:2", "deploy v2")
    w = FakeWriter(v1, v1b, v2)
    undo_commit(w, DEP, (2, replicaset(v2, "c2", "deploy v2")), (1, replicaset(v1, "c0", "deploy v1b")))
    assert w.reverted == ["c2"]


def test_a_revert_that_would_restore_another_change_cause_becomes_a_commit() -> None:
    # a commit removed the change-cause, but the controller only adds annotations to a ReplicaSet:
    # revision 1 kept "deploy v1", and Kubernetes would copy that back
    v1, bare, v2 = manifest("app:1", "deploy v1"), manifest("app:1"), manifest("app:2", "deploy v2")
    w = FakeWriter(v1, bare, v2)
    undo_commit(w, DEP, (2, replicaset(v2, "c2", "deploy v2")), (1, replicaset(v1, "c0", "deploy v1")))
    assert not w.reverted
    ((_, annotations),) = w.templates
    assert annotations == {CAUSE: "deploy v1"}


def test_undo_to_an_older_revision_commits_its_template_and_change_cause() -> None:
    v1, v2, v3 = manifest("app:1", "deploy v1"), manifest("app:2", "deploy v2"), manifest("app:3", "deploy v3")
    w = FakeWriter(v1, v2, v3)
    undo_commit(w, DEP, (3, replicaset(v3, "c2", "deploy v3")), (1, replicaset(v1, "c0", "deploy v1")))
    assert not w.reverted
    ((template, annotations),) = w.templates
    assert annotations == {CAUSE: "deploy v1"}
    # the template as written in git at the target's commit, not the defaulted one
    assert template == yaml.safe_load(v1)["spec"]["template"]
