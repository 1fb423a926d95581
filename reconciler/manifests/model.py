"""The loaded form of a manifest, object keys, and the repository config (``gitship.yaml``).

Where it sits: a pure module at the bottom of the manifests package (it imports
nothing of the package). ``load.py`` produces ``Manifest`` objects (a defaulted
Kubernetes-shaped dict plus the ``Source`` it came from); the store, plan and
controllers key objects by ``obj_key`` = ``(kind, namespace, name)``.
``repo_config_from`` checks the parsed ``gitship.yaml`` (image rules for the
in-process runtime, values for Jinja templates, ignore globs); it is
configuration, not a manifest. ``load.parse_repo_config`` parses its bytes.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reconciler.errors import ManifestError
from reconciler.manifests.inert import INERT_CLUSTER_SCOPED, INERT_KINDS
from reconciler.prune import parse_threshold
from reconciler.sources.spec import parse_sources
from reconciler.types import Key, Obj

# Supported kinds and the one apiVersion each is accepted with.
KINDS: dict[str, str] = {
    "Pod": "v1",
    "Service": "v1",
    "Endpoints": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "PersistentVolumeClaim": "v1",
    "PersistentVolume": "v1",
    "StorageClass": "storage.k8s.io/v1",
    "ReplicationController": "v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Namespace": "v1",
    **{"Job": "batch/v1", "CronJob": "batch/v1"},  # controllers/job.py, cronjob.py
    "Ingress": "networking.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1",
}

# Kinds without a namespace: their key is (kind, "", name) and their metadata has no namespace
# (a namespace written in the file is dropped, as the API server ignores it on create).
CLUSTER_SCOPED: frozenset[str] = frozenset({"PersistentVolume", "StorageClass", "Namespace", "IngressClass"})

# Kinds stored without effect on one machine (manifests/inert.py): accepted, validated, shown by get.
KINDS.update(INERT_KINDS)


def without_effect(kind: str) -> bool:
    """A kind stored without effect: one of manifests/inert.py's, or a custom resource (a kind no
    built-in table holds: only a CRD of the revision lets one load)."""
    return kind in INERT_KINDS or kind not in KINDS


CLUSTER_SCOPED = CLUSTER_SCOPED | INERT_CLUSTER_SCOPED


@dataclass(frozen=True)
class Source:
    """Where a document came from: the file as the revision names it (relative to the repository
    root), the 1-based line and the 0-based document index."""

    file: str
    line: int
    document: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} (document {self.document + 1})"


@dataclass
class Manifest:
    """One loaded, defaulted and validated object plus its source position.

    ``obj`` may be shared with the load cache: treat it as read-only (copy before mutating).
    ``warnings`` are the strict-field problems (``unknown field "spec.replica"``, ``duplicate
    field "spec.replicas"``) of a document under a ``validation: warn`` rule of ``gitship.yaml``:
    accepted, but to be reported (``revision.warnings_of`` collects them for a revision).
    """

    obj: Obj
    source: Source
    warnings: tuple[ManifestError, ...] = ()

    @functools.cached_property
    def key(self) -> Key:
        """Computed once: a one-object change of 10,000 asks every cached manifest its key."""
        return obj_key(self.obj)


def namespace_of(obj: Obj) -> str:
    """An object's namespace as keys hold it: ``""`` for a cluster-scoped kind, else the
    namespace (``default`` when absent)."""
    if obj.get("kind") in CLUSTER_SCOPED:
        return ""
    meta = obj.get("metadata") or {}
    if "namespace" not in meta and obj.get("kind") not in KINDS and is_custom_api_version(obj.get("apiVersion")):
        return ""  # a cluster-scoped custom resource: its CRD's scope dropped the namespace (manifests/crd.py)
    return str(meta.get("namespace") or "default")


def obj_key(obj: Obj) -> Key:
    """``(kind, namespace, name)`` of an object dict; namespace defaults to ``default`` (``""``
    for a cluster-scoped kind)."""
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind", "")), namespace_of(obj), str(meta.get("name", "")))


def is_custom_api_version(api: Any) -> bool:
    """Whether ``api`` names a group a CustomResourceDefinition may define: ``group/version`` with a
    dot in the group (Kubernetes requires one of a CRD's spec.group), not one of Kubernetes' own
    ``*.k8s.io`` groups."""
    if not isinstance(api, str) or api.count("/") != 1:
        return False
    group = api.split("/", 1)[0]
    return "." in group and not (group == "k8s.io" or group.endswith(".k8s.io"))


def labels_of(obj: Obj) -> dict[str, str]:
    """The object's labels (``{}`` when absent)."""
    return (obj.get("metadata") or {}).get("labels") or {}


def format_key(key: Key) -> str:
    """``Kind namespace/name`` as printed in messages."""
    return f"{key[0]} {key[1]}/{key[2]}"


# --------------------------------------------------------------------------- gitship.yaml

REPO_CONFIG_FILES: tuple[str, ...] = ("gitship.yaml", "gitship.yml")
_CONFIG_KEYS = ("images", "values", "ignore", "validation", "pruneThreshold", "sources")
_IMAGE_KEYS = ("image", "command", "workingDir", "env")
_RULE_KEYS = ("path", "mode")

STRICT = "strict"
WARN = "warn"
VALIDATION_MODES: tuple[str, ...] = (STRICT, WARN)


class ValidationRule(NamedTuple):
    """One ``validation:`` rule of ``gitship.yaml``: files matching ``path`` (an fnmatch glob over
    the path relative to the manifests root, as ``ignore``) are checked in ``mode``."""

    path: str
    mode: str


@dataclass
class RepoConfig:
    """The repository's ``gitship.yaml``::

    images:                          # how the in-process runtime runs an image
    - image: "qinchaowhut/allen:*"   # fnmatch pattern over the image reference
      command: [python3, app/kubia.py]
      workingDir: app                # optional, relative to the checkout
      env: {PORT: "8080"}            # optional
    values:                          # variables for *.yaml.j2 templates
      replicas: 3
    ignore: ["drafts/*"]             # glob patterns of paths that are not manifests
    validation: strict               # or: warn; or a list of per-path rules, first match wins:
    # validation:
    # - {path: "legacy/**", mode: warn}
    # - {path: "*", mode: strict}
    pruneThreshold: 50               # or "off": safe pruning (reconciler/prune.py, docs/operations-sources.md)
    sources: []                      # more repositories to reconcile (reconciler/sources/spec.py)

    ``validation`` decides what an unknown field (``spec.replica``, a typo of ``replicas``) or a
    field written twice in one mapping does, as kubectl's ``--validate``: ``strict`` (the default
    for every file no rule matches) rejects the revision naming the file, line and field path
    (``unknown field "spec.replica"``); ``warn`` accepts the document and reports each field as a
    warning (``Manifest.warnings``). There is no mode that ignores them silently. A path glob is
    an fnmatch pattern, where ``*`` also matches ``/``: ``legacy/**`` and ``legacy/*`` both cover
    everything under ``legacy/``. ``validation: warn`` is short for ``[{path: "*", mode: warn}]``.

    ``images`` holds one plain dict per entry, as written, with every key present:
    ``{"image": pattern, "command": [argv...], "workingDir": str | None, "env": {str: str}}``
    (env values written as numbers become strings). The runtime's ``set_image_rules`` takes them.
    """

    images: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    ignore: list[str] = field(default_factory=list)
    validation: list[ValidationRule] = field(default_factory=list)
    prune_threshold: str = ""  # pruneThreshold: a percentage or "off", as written (reconciler/prune.py); "" unset
    sources: list[Any] = field(default_factory=list)  # sources: reconciler/sources/spec.py's SourceSpec

    def validation_mode(self, path: str) -> str:
        """``strict`` or ``warn`` for a manifest at ``path`` (relative to the manifests root)."""
        for rule in self.validation:
            if fnmatch.fnmatch(path, rule.path):
                return rule.mode
        return STRICT


def repo_config_from(docs: list[tuple[int, Any]], file: str = "gitship.yaml") -> RepoConfig:
    """Check the parsed documents ``[(first line, value)]`` of ``gitship.yaml``.

    Raises ManifestError naming the file, the line and the field path.
    """
    docs = [d for d in docs if d[1] is not None]
    if not docs:
        return RepoConfig()
    if len(docs) > 1:
        raise ManifestError(file, "must hold a single YAML document", line=docs[1][0], document=1)
    line, data = docs[0]

    def bad(field_path: str, message: str) -> ManifestError:
        return ManifestError(file, message, line=line, field=field_path)

    if not isinstance(data, dict):
        raise bad("", "must be a mapping with `images` and/or `values`")
    unknown = sorted(str(k) for k in data if k not in _CONFIG_KEYS)
    if unknown:
        raise bad(unknown[0], f"unknown field; supported fields: {', '.join(_CONFIG_KEYS)}")
    values = _config_values(data.get("values"), bad)
    images_raw = data.get("images")
    if images_raw is None:
        images_raw = []
    if not isinstance(images_raw, list):
        raise bad("images", "must be a list of {image, command, workingDir, env}")
    images = [_image_rule(entry, f"images[{i}]", bad) for i, entry in enumerate(images_raw)]
    ignore = data.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
        raise bad("ignore", "must be a list of glob patterns (strings)")
    validation = _validation_rules(data.get("validation"), bad)
    threshold, sources = _prune_threshold(data.get("pruneThreshold"), bad), parse_sources(data.get("sources"), bad)
    return RepoConfig(images, values, list(ignore), validation, prune_threshold=threshold, sources=sources)


def _prune_threshold(raw: Any, bad: _Bad) -> str:
    if raw is None:
        return ""
    try:
        parse_threshold(raw)
    except ValueError as e:
        raise bad("pruneThreshold", str(e)) from None
    return "off" if raw is False else str(raw)


_Bad = Callable[[str, str], ManifestError]


def _config_values(values: Any, bad: _Bad) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise bad("values", "must be a mapping of template variables")
    for k in values:
        if not isinstance(k, str) or not k.isidentifier():
            raise bad(f"values.{k}", "template variable names must be identifiers (letters, digits, '_')")
    return values


def _validation_rules(raw: Any, bad: _Bad) -> list[ValidationRule]:
    modes = " or ".join(VALIDATION_MODES)
    if raw is None:
        return []
    if isinstance(raw, str):
        if raw not in VALIDATION_MODES:
            raise bad("validation", f"Unsupported value: {raw!r}: must be {modes}, or a list of {{path, mode}} rules")
        return [ValidationRule("*", raw)]
    if not isinstance(raw, list):
        raise bad("validation", f"must be {modes}, or a list of {{path, mode}} rules")
    rules: list[ValidationRule] = []
    for i, entry in enumerate(raw):
        p = f"validation[{i}]"
        if not isinstance(entry, dict):
            raise bad(p, "must be a mapping with path and mode")
        for k in entry:
            if k not in _RULE_KEYS:
                raise bad(f"{p}.{k}", f"unknown field; supported fields: {', '.join(_RULE_KEYS)}")
        path, mode = entry.get("path"), entry.get("mode")
        if not isinstance(path, str) or not path:
            raise bad(f"{p}.path", "Required value: a glob such as 'legacy/**'")
        if mode not in VALIDATION_MODES:
            raise bad(f"{p}.mode", f"Unsupported value: {mode!r}: must be {modes}")
        rules.append(ValidationRule(path, mode))
    return rules


def _image_rule(entry: Any, p: str, bad: _Bad) -> dict[str, Any]:
    """One ``images:`` entry as a plain dict with every key present."""
    if not isinstance(entry, dict):
        raise bad(p, "must be a mapping with image and command")
    for k in entry:
        if k not in _IMAGE_KEYS:
            raise bad(f"{p}.{k}", f"unknown field; supported fields: {', '.join(_IMAGE_KEYS)}")
    pattern = entry.get("image")
    if not isinstance(pattern, str) or not pattern:
        raise bad(f"{p}.image", "Required value: an image pattern such as 'repo/name:*'")
    command = entry.get("command")
    if isinstance(command, str):
        raise bad(f"{p}.command", "must be a list of strings (argv), not a single string")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise bad(f"{p}.command", "Required value: a non-empty list of strings (argv)")
    wd = entry.get("workingDir")
    if wd is not None and (not isinstance(wd, str) or not wd):
        raise bad(f"{p}.workingDir", "must be a non-empty string")
    return {"image": pattern, "command": list(command), "workingDir": wd, "env": _image_env(entry.get("env"), p, bad)}


def _image_env(env_raw: Any, p: str, bad: _Bad) -> dict[str, str]:
    env: dict[str, str] = {}
    if env_raw is None:
        return env
    if not isinstance(env_raw, dict):
        raise bad(f"{p}.env", "must be a mapping of variable names to strings")
    for k, v in env_raw.items():
        if not isinstance(k, str) or not k:
            raise bad(f"{p}.env", f"invalid variable name {k!r}")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise bad(f"{p}.env.{k}", "must be a string")
        env[k] = str(v)
    return env
