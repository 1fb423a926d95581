"""Rolling back is a commit.

Where it sits: used by `gitship rollout undo` and by the daemon's automatic
rollback. Given a Deployment, its current revision (with the commit that
introduced it, recorded on the ReplicaSet as ``gitship.io/commit``) and the
target revision, it either reverts that commit (when the commit changed
nothing but this Deployment's pod template and its ``kubernetes.io/change-cause``,
and the revert brings back the target's template and change-cause) or commits
the target's template and change-cause into the manifest, keeping the file's
comments and layout.

The change-cause: Kubernetes copies the target ReplicaSet's annotations back
onto the Deployment on rollback (kubernetes/kubernetes
pkg/controller/deployment/rollback.go ``rollbackToTemplate``, util
``SetDeploymentAnnotationsTo``), so the new revision's CHANGE-CAUSE is the
target's. The target ReplicaSet carries the Deployment's change-cause from the
time it was the new revision (the deployment controller copies the
Deployment's annotations onto its new ReplicaSet); undo writes that value to
the Deployment in git, or removes it when the target had none. gitship's other
annotations in git (configuration such as ``gitship.io/auto-rollback``) stay.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import NamedTuple, Protocol

import yaml

from . import annotation_keys as keys
from .controllers.deployment import equal_ignore_hash, normalize_template
from .errors import GitOpsError
from .manifests.validate import default_and_validate
from .types import Key, Obj

Revision = tuple[int, Obj]  # (revision number, its ReplicaSet)


class Writer(Protocol):
    """What undo needs of reconciler.gitops.RepoWriter."""

    def changed_files(self, sha: str) -> list[str]: ...

    def file_at(self, sha: str, path: str) -> bytes | None: ...

    def manifest_files(self, sha: str) -> list[str]: ...

    def revert(self, sha: str, message_extra: str = "") -> str: ...

    def set_template(
        self,
        kind: str,
        ns: str | None,
        name: str,
        template: Obj,
        message: str,
        annotations: Mapping[str, str | None] | None = None,
    ) -> str | None: ...


CHANGE_CAUSE = keys.KUBERNETES_CHANGE_CAUSE


def change_cause(obj: Obj | None) -> str | None:
    """An object's ``kubernetes.io/change-cause`` annotation, or None."""
    meta = (obj or {}).get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    value = ann.get(CHANGE_CAUSE) if isinstance(ann, dict) else None
    return None if value is None else str(value)


def _beyond_template(obj: Obj) -> Obj:
    """A copy without what undo may change: ``spec.template`` and the change-cause annotation."""
    out = copy.deepcopy(obj)
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec.pop("template", None)
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(CHANGE_CAUSE, None)
        if not meta["annotations"]:
            del meta["annotations"]
    return out


def differs_beyond_template(before: Obj, after: Obj) -> bool:
    """Whether two versions of a Deployment differ in more than its pod template and change-cause."""
    return _beyond_template(before) != _beyond_template(after)


class Before(NamedTuple):
    """What a commit changed of one Deployment, when that is all it changed."""

    template: Obj  # the pod template before the commit
    cause_changed: bool  # whether the commit changed kubernetes.io/change-cause
    cause: str | None  # the change-cause before the commit


def _objects(data: bytes | None, path: str) -> dict[Key, Obj]:
    out: dict[Key, Obj] = {}
    if data is None:
        return out
    try:
        docs = list(yaml.load_all(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError:
        return out
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or "kind" not in d:
            continue
        obj, _ = default_and_validate(d, path, i)
        meta = obj.get("metadata") or {}
        out[(obj["kind"], meta.get("namespace", "default"), str(meta.get("name")))] = obj
    return out


def only_template_changed(w: Writer, commit: str, key: Key) -> Before | None:
    """If ``commit`` changed nothing but the pod template (and change-cause) of ``key``, what was before."""
    found = None
    for path in w.changed_files(commit):
        before = _objects(w.file_at(commit + "^", path), path)
        after = _objects(w.file_at(commit, path), path)
        for k in set(before) | set(after):
            b, a = before.get(k), after.get(k)
            if a == b:
                continue
            if k != key or a is None or b is None or differs_beyond_template(b, a):
                return None
            found = Before(b["spec"]["template"], change_cause(b) != change_cause(a), change_cause(b))
    return found


def _raw_object(w: Writer, commit: str | None, key: Key) -> Obj | None:
    """The object as written in git at ``commit`` (not defaulted), to keep the manifest tidy."""
    if not commit:
        return None
    for path in w.manifest_files(commit):
        data = w.file_at(commit, path)
        try:
            docs = list(yaml.safe_load_all(data or b""))
        except yaml.YAMLError:
            continue
        for d in docs:
            if not isinstance(d, dict) or d.get("kind") != key[0] or not isinstance(d.get("metadata"), dict):
                continue
            if d["metadata"].get("name") == key[2] and d["metadata"].get("namespace", "default") == key[1]:
                return d
    return None


def _raw_template(w: Writer, commit: str | None, key: Key) -> Obj | None:
    """The template as written in git at ``commit`` (not defaulted)."""
    obj = _raw_object(w, commit, key)
    spec = obj.get("spec") if obj is not None else None
    template = spec.get("template") if isinstance(spec, dict) else None
    return template if isinstance(template, dict) else None


def _revertible(w: Writer, commit: str, key: Key, want: Obj, want_cause: str | None) -> bool:
    """Whether reverting ``commit`` brings back exactly the template ``want`` and the change-cause ``want_cause``."""
    before = only_template_changed(w, commit, key)
    if before is None or not equal_ignore_hash(before.template, want):
        return False
    # a clean revert restores the change-cause the commit changed; one it did not change stays as HEAD has it
    cause = before.cause if before.cause_changed else change_cause(_raw_object(w, "HEAD", key))
    return cause == want_cause


def _commit_of(rs: Obj) -> str | None:
    return (rs["metadata"].get("annotations") or {}).get(keys.COMMIT)


def undo_commit(w: Writer, dep: Obj, current: Revision, target: Revision, reason: str = "") -> tuple[str, str]:
    """Make the commit that brings ``target``'s template and change-cause back in place of ``current``'s.

    Returns (sha, how).
    """
    ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
    kind = str(dep.get("kind") or "Deployment")  # a StatefulSet's or DaemonSet's revisions read the same way
    key = (kind, ns, name)
    (current_n, current_rs), (target_n, target_rs) = current, target
    want, want_cause = target_rs["spec"]["template"], change_cause(target_rs)
    commit = _commit_of(current_rs)
    if commit and _revertible(w, commit, key, want, want_cause):
        extra = f"rollout undo {kind.lower()}/{name}: revision {current_n} -> {target_n}"
        if reason:
            extra += f"\n\n{reason}"
        return w.revert(commit, extra), "git revert of " + commit[:7] + ", commit"
    target_commit = _commit_of(target_rs)
    raw = _raw_template(w, target_commit, key)
    template = (
        raw if raw is not None and equal_ignore_hash(default_template(raw, dep), want) else normalize_template(want)
    )
    msg = (
        f"rollout undo {kind.lower()}/{name}: revision {current_n} -> {target_n}\n\n"
        f"Restores the pod template of revision {target_n}"
        + (f" (introduced by {target_commit[:7]})" if target_commit else "")
        + f", replacing revision {current_n}"
        + (f" (introduced by {commit[:7]})" if commit else "")
        + (f", with its change-cause {want_cause!r}" if want_cause is not None else "")
        + "."
    )
    if reason:
        msg += f"\n{reason}"
    sha = w.set_template(kind, ns, name, template, msg, {CHANGE_CAUSE: want_cause})
    if sha is None:  # git already holds the target's template: the cluster has not caught up yet
        raise GitOpsError(
            f"{kind.lower()}/{name}: the manifest already has the pod template of revision {target_n}; "
            "nothing to commit"
        )
    return sha, "commit"


def default_template(template: Obj, dep: Obj) -> Obj:
    """The template as validation defaults it inside this Deployment."""
    d = copy.deepcopy(dep)
    d["spec"]["template"] = copy.deepcopy(template)
    for k in ("status",):
        d.pop(k, None)
    obj, _ = default_and_validate(d, "<undo>", 0)
    template_out: Obj = obj["spec"]["template"]
    return template_out
