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
from typing import Any

import yaml

from .errors import GitOpsError
from .manifests.validate import default_and_validate

COMMIT_ANNOTATION = "gitship.io/commit"
HASH_LABEL = "pod-template-hash"


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return t


def _objects(data: bytes | None, path: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
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


def only_template_changed(w: Any, commit: str, key: tuple[str, str, str]) -> dict[str, Any] | None:
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


def _raw_template(w: Any, commit: str | None, key: tuple[str, str, str]) -> dict[str, Any] | None:
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
            if (isinstance(d, dict) and d.get("kind") == key[0]
                    and (d.get("metadata") or {}).get("name") == key[2]
                    and (d.get("metadata") or {}).get("namespace", "default") == key[1]):
                return (d.get("spec") or {}).get("template")
    return None


def undo_commit(w: Any, store: Any, dep: dict[str, Any], current_n: int, commit: str | None,
                target_n: int, target: dict[str, Any], want: dict[str, Any],
                reason: str = "") -> tuple[str, str]:
    """Make the commit that brings ``target``'s template back. Returns (sha, how)."""
    ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
    key = ("Deployment", ns, name)
    if commit:
        before = only_template_changed(w, commit, key)
        if before is not None and _strip_hash(before) == want:
            extra = f"rollout undo deployment/{name}: revision {current_n} -> {target_n}"
            if reason:
                extra += f"\n\n{reason}"
            return w.revert(commit, extra), "git revert of " + commit[:7] + ", commit"
    target_commit = (target["metadata"].get("annotations") or {}).get(COMMIT_ANNOTATION)
    raw = _raw_template(w, target_commit, key)
    template = raw if raw is not None and _strip_hash(default_template(raw, dep)) == want else want
    msg = (f"rollout undo deployment/{name}: revision {current_n} -> {target_n}\n\n"
           f"Restores the pod template of revision {target_n}"
           + (f" (introduced by {target_commit[:7]})" if target_commit else "")
           + f", replacing revision {current_n}" + (f" (introduced by {commit[:7]})" if commit else "") + ".")
    if reason:
        msg += f"\n{reason}"
    try:
        return w.set_template("Deployment", ns, name, template, msg), "commit"
    except GitOpsError:
        raise


def default_template(template: dict[str, Any], dep: dict[str, Any]) -> dict[str, Any]:
    """The template as validation defaults it inside this Deployment."""
    d = copy.deepcopy(dep)
    d["spec"]["template"] = copy.deepcopy(template)
    for k in ("status",):
        d.pop(k, None)
    obj, _ = default_and_validate(d, "<undo>", 0)
    return obj["spec"]["template"]
