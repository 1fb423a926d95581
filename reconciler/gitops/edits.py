"""The edits: label, set image, scale, pause/resume, replace the pod template.

Each edit is a *mutation* (built by a pure function below: it changes a copy
of the object in place and returns the commit message, or None when there is
nothing to do) applied by ``edit``: locate the object's document, mutate a
copy, patch the document's text (reconciler.gitops.yamlpatch), commit only
that file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

from reconciler.errors import GitOpsError
from reconciler.selectors import validate_label_key, validate_label_value
from reconciler.types import Obj

from .documents import has_content, load, same, split_documents
from .locate import locate, ref
from .transaction import Repo
from .yamlpatch import patch_document

# Changes the object in place; returns the commit message, or None: nothing to commit.
Mutation = Callable[[Obj], "str | None"]

_UNSCALABLE = ("pod", "service", "configmap", "secret")


def edit(repo: Repo, kind: str, ns: str | None, name: str, mutate: Mutation) -> str | None:
    """Locate, mutate a copy of the object, patch its document, commit. Returns the sha or None."""
    with repo.transaction() as branch:
        loc = locate(repo, kind, ns, name)
        repo.check_clean([loc.file])
        raw = repo.read(loc.file)
        assert raw is not None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GitOpsError(f"{loc.file} is not UTF-8 text") from None
        chunks = split_documents(text)
        old = load(chunks[loc.chunk])
        new = copy.deepcopy(old)
        message = mutate(new)
        if message is None or same(old, new):
            return None
        chunks[loc.chunk] = patch_document(chunks[loc.chunk], new)
        return repo.commit({loc.file: "".join(chunks).encode("utf-8")}, message, branch)


def remove_object(repo: Repo, kind: str, ns: str | None, name: str) -> str:
    """``delete KIND NAME`` of an object git declares: its document leaves its file (the file goes
    when nothing else is left in it), in one commit; the daemon then prunes the object, and the
    garbage collector its dependents (a ReplicationController's pods)."""
    ref_ = object_ref(kind, ns, name)
    with repo.transaction() as branch:
        loc = locate(repo, kind, ns, name)
        if loc.file.endswith(".j2"):
            raise GitOpsError(f"{ref_} is declared by the template {loc.file}: edit the template")
        repo.check_clean([loc.file])
        raw = repo.read(loc.file)
        assert raw is not None
        chunks = split_documents(raw.decode("utf-8", "surrogateescape"))
        gone = chunks.pop(loc.chunk)
        if loc.chunk == 0:  # the file's opening comments stay
            chunks.insert(0, _leading_comments(gone))
        left = "".join(chunks)
        data = left.encode("utf-8", "surrogateescape") if any(has_content(c) for c in chunks) else None
        return repo.commit({loc.file: data}, f"delete {ref_}", branch)


def _leading_comments(chunk: str) -> str:
    """The comment and blank lines a chunk opens with."""
    out = []
    for line in chunk.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        out.append(line)
    return "".join(out)


# --------------------------------------------------------------------------- label


def check_label(key: str, value: str | None) -> None:
    """GitOpsError when ``key`` (or ``value``, unless None) breaks Kubernetes' label grammar."""
    err = validate_label_key(key)
    if err:
        raise GitOpsError(f"invalid label key {key!r}: {err}")
    err = validate_label_value(value) if value is not None else None
    if err:
        raise GitOpsError(f"invalid label value {value!r} for {key!r}: {err}")


def label_mutation(ref_: str, set_: dict[str, str], remove: list[str], overwrite: bool) -> Mutation:
    """kubectl label: add/change ``set_``, delete ``remove``; an emptied ``labels`` mapping is removed."""
    for k, v in set_.items():
        check_label(k, str(v))
    for k in remove:
        check_label(k, None)
        if k in set_:
            raise GitOpsError(f"can not both modify and remove the label {k!r} in the same command")

    def mutate(obj: Obj) -> str | None:
        meta = obj.setdefault("metadata", {})
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = {}
        changed: list[str] = []
        for k, v in set_.items():
            v = str(v)
            if k in labels:
                if labels[k] == v:
                    continue
                if not overwrite:
                    raise GitOpsError(f"'{k}' already has a value ({labels[k]}), and --overwrite is false")
            labels[k] = v
            changed.append(f"{k}={v}")
        for k in remove:
            if k in labels:
                del labels[k]
                changed.append(f"{k}-")
        if not changed:
            return None
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        return f"label {ref_}: {', '.join(changed)}"

    return mutate


# --------------------------------------------------------------------------- set image


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec of a Pod, or of a workload's pod template (a CronJob's job template's)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    kind = str(obj.get("kind", "")).lower()
    if kind == "pod":
        return spec
    if kind == "cronjob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    tmpl = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        inner: Obj = tmpl["spec"]
        return inner
    return None


def image_mutation(ref_: str, images: dict[str, str]) -> Mutation:
    """kubectl set image: ``{container name: image}``; ``"*"`` = every container (init containers too)."""
    if not images:
        raise GitOpsError("at least one image update is required")

    def mutate(obj: Obj) -> str | None:
        spec = pod_spec(obj)
        if spec is None:
            raise GitOpsError(f"{ref_} has no pod template")
        containers = [
            c for key in ("initContainers", "containers") for c in (spec.get(key) or []) if isinstance(c, dict)
        ]
        changed: list[str] = []
        for cname, image in images.items():
            if not image:
                raise GitOpsError(f"an image is required for container {cname}")
            targets = containers if cname == "*" else [c for c in containers if c.get("name") == cname]
            if not targets:
                raise GitOpsError(f"unable to find container named {cname}")
            if any(c.get("image") != image for c in targets):
                for c in targets:
                    c["image"] = image
                changed.append(f"{cname}={image}")
        if not changed:
            return None
        return f"set image {ref_}: {', '.join(changed)}"

    return mutate


# --------------------------------------------------------------------------- scale, pause, template


def scale_mutation(ref_: str, replicas: int) -> Mutation:
    """Set ``spec.replicas`` (Deployment, ReplicaSet, StatefulSet...)."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise GitOpsError(f"replicas must be a non-negative integer, not {replicas!r}")

    def mutate(obj: Obj) -> str | None:
        if str(obj.get("kind", "")).lower() in _UNSCALABLE:
            raise GitOpsError(f"{ref_} cannot be scaled")
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            raise GitOpsError(f"{ref_}: spec is not a mapping")
        before = spec.get("replicas", 1)
        if same(before, replicas):
            return None
        spec["replicas"] = replicas
        return f"scale {ref_}: replicas {before} -> {replicas}"

    return mutate


def pause_mutation(ref_: str, paused: bool) -> Mutation:
    """rollout pause (``spec.paused: true``) / resume (deletes ``spec.paused``)."""

    def mutate(obj: Obj) -> str | None:
        if str(obj.get("kind", "")).lower() != "deployment":
            raise GitOpsError(f"{ref_}: only deployments can be paused and resumed")
        spec = obj.setdefault("spec", {})
        now = spec.get("paused") is True
        if paused:
            if now:
                raise GitOpsError(f"{ref_} is already paused")
            spec["paused"] = True
            return f"rollout pause {ref_}"
        if not now:
            raise GitOpsError(f"{ref_} is not paused")
        del spec["paused"]
        return f"rollout resume {ref_}"

    return mutate


def template_mutation(
    ref_: str, template: Obj, message: str, annotations: Mapping[str, str | None] | None = None
) -> Mutation:
    """Replace ``spec.template`` (rollout undo when a plain revert is not possible).

    ``annotations`` sets (a None value: removes) ``metadata.annotations`` keys in the same
    edit, as undo restores the target revision's ``kubernetes.io/change-cause``; an emptied
    ``annotations`` mapping is removed.
    """
    if not isinstance(template, dict):
        raise GitOpsError("the pod template must be a mapping")

    def mutate(obj: Obj) -> str | None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            raise GitOpsError(f"{ref_}: spec is not a mapping")
        spec["template"] = copy.deepcopy(template)
        if annotations:
            _set_annotations(ref_, obj, annotations)
        return message

    return mutate


def _set_annotations(ref_: str, obj: Obj, changes: Mapping[str, str | None]) -> None:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise GitOpsError(f"{ref_}: metadata is not a mapping")
    old = meta.get("annotations")
    new = dict(old) if isinstance(old, dict) else {}
    for k, v in changes.items():
        if v is None:
            new.pop(k, None)
        else:
            new[k] = v
    if new == (old if isinstance(old, dict) else {}):
        return
    if new:
        meta["annotations"] = new
    else:
        meta.pop("annotations", None)


def object_ref(kind: str, ns: str | None, name: str) -> str:
    return ref(kind, ns or "default", name)
