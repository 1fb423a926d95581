"""Rolling back is a commit.

Where it sits: used by `gitship rollout undo` and by the daemon's automatic
rollback. Given a Deployment, its current revision (with the commit that
introduced it, recorded on the ReplicaSet as ``gitship.io/commit``) and the
target revision, it either reverts that commit (when the commit changed
nothing but this Deployment's pod template, and the template before it is the
target's) or commits the target's template into the manifest, keeping the
file's comments and layout.
"""

from __future__ import annotations

import copy
from typing import Protocol

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

    def set_template(self, kind: str, ns: str | None, name: str, template: Obj, message: str) -> str | None: ...


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


def only_template_changed(w: Writer, commit: str, key: Key) -> Obj | None:
    """If ``commit`` changed nothing but the pod template of ``key``, the template before it; else None."""
    files = w.changed_files(commit)
    before_tmpl = None
    for path in files:
        before = _objects(w.file_at(commit + "^", path), path)
        after = _objects(w.file_at(commit, path), path)
        for k in set(before) | set(after):
            b, a = before.get(k), after.get(k)
            if a == b:
                continue
            if k != key or a is None or b is None:
                return None
            b2, a2 = copy.deepcopy(b), copy.deepcopy(a)
            b2["spec"].pop("template", None)
            a2["spec"].pop("template", None)
            if a2 != b2:
                return None
            before_tmpl = b["spec"]["template"]
    return before_tmpl


def _raw_template(w: Writer, commit: str | None, key: Key) -> Obj | None:
    """The template as written in git at ``commit`` (not defaulted), to keep the manifest tidy."""
    if not commit:
        return None
    for path in w.manifest_files(commit):
        data = w.file_at(commit, path)
        try:
            docs = list(yaml.safe_load_all(data or b""))
        except yaml.YAMLError:
            continue
        for d in docs:
            if (
                isinstance(d, dict)
                and d.get("kind") == key[0]
                and (d.get("metadata") or {}).get("name") == key[2]
                and (d.get("metadata") or {}).get("namespace", "default") == key[1]
            ):
                return (d.get("spec") or {}).get("template")
    return None


def _commit_of(rs: Obj) -> str | None:
    return (rs["metadata"].get("annotations") or {}).get(keys.COMMIT)


def undo_commit(w: Writer, dep: Obj, current: Revision, target: Revision, reason: str = "") -> tuple[str, str]:
    """Make the commit that brings ``target``'s template back in place of ``current``'s. Returns (sha, how)."""
    ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
    key = ("Deployment", ns, name)
    (current_n, current_rs), (target_n, target_rs) = current, target
    want = target_rs["spec"]["template"]
    commit = _commit_of(current_rs)
    if commit:
        before = only_template_changed(w, commit, key)
        if before is not None and equal_ignore_hash(before, want):
            extra = f"rollout undo deployment/{name}: revision {current_n} -> {target_n}"
            if reason:
                extra += f"\n\n{reason}"
            return w.revert(commit, extra), "git revert of " + commit[:7] + ", commit"
    target_commit = _commit_of(target_rs)
    raw = _raw_template(w, target_commit, key)
    template = (
        raw if raw is not None and equal_ignore_hash(default_template(raw, dep), want) else normalize_template(want)
    )
    msg = (
        f"rollout undo deployment/{name}: revision {current_n} -> {target_n}\n\n"
        f"Restores the pod template of revision {target_n}"
        + (f" (introduced by {target_commit[:7]})" if target_commit else "")
        + f", replacing revision {current_n}"
        + (f" (introduced by {commit[:7]})" if commit else "")
        + "."
    )
    if reason:
        msg += f"\n{reason}"
    sha = w.set_template("Deployment", ns, name, template, msg)
    if sha is None:  # git already holds the target's template: the cluster has not caught up yet
        raise GitOpsError(
            f"deployment/{name}: the manifest already has the pod template of revision {target_n}; nothing to commit"
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
