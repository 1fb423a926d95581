"""What the in-process runtime runs for a container: argv, environment and working directory.

The rules Kubernetes defines (env order, ``fieldRef``, ``$(VAR)``, ``command``/``args``) are
runtime/kernel/env.py; this module adds the in-process mechanics around them:

* an image is not run, so a container without ``command`` needs an entry of gitship.yaml
  ``images:`` whose fnmatch ``image`` pattern matches (``ImageRule``); its ``command``
  stands for the image's entrypoint, its ``env`` and ``workingDir`` for the image's;
* environment (later wins): inherited from gitship (``INHERITED_ENV``, ``LC_*``); the
  image rule's env; ``POD_NAME POD_NAMESPACE POD_IP POD_UID CONTAINER_IMAGE
  CONTAINER_NAME`` and ``HOSTNAME`` (the pod's hostname: the pod name, or in a sandbox
  what ``hostname`` prints there); the container's ``env`` list;
  finally ``GITSHIP_POD_UID`` (process identity, cannot be overridden);
* ``python3``/``python`` is gitship's own interpreter; relative paths are resolved
  against the repository checkout.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..kernel import ConfigError, container_argv, container_env
from ..kernel.env import ConfigObjects, implicit_env
from . import procid

INHERITED_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "PYTHONPATH", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
)  # fmt: skip
INHERITED_ENV_PREFIXES = ("LC_",)


class Waiting(Exception):
    """The container cannot be created yet: it stays waiting with this reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class ImageRule:
    """The in-process runtime's form of one entry of the image map (``gitship.yaml`` ``images:``).

    Callers pass plain dicts to ``Runtime.set_image_rules``; this is this runtime's own type.

    ``pattern`` is an fnmatch-style image reference (``qinchaowhut/allen:*``);
    ``command`` is the argv the in-process runtime runs for a container of that
    image that has no ``command`` of its own (``args`` still apply, as in
    Kubernetes they replace the image's CMD); ``workingDir`` is relative to the
    repository checkout when not absolute.
    """

    pattern: str
    command: tuple[str, ...]
    working_dir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


class StartError(Exception):
    """The container's process could not be started (like a runtime's StartError, exit 128)."""


def to_rule(rule: Mapping[str, Any]) -> ImageRule:
    """A gitship.yaml ``images:`` entry ({"image", "command", "workingDir", "env"}) as an ImageRule."""
    env = rule.get("env") or {}
    return ImageRule(
        pattern=str(rule.get("image") or ""),
        command=tuple(str(a) for a in rule.get("command") or ()),
        working_dir=rule.get("workingDir") or None,
        env={str(k): str(v) for k, v in env.items()},
    )


def to_rules(rules: Iterable[Mapping[str, Any]]) -> list[ImageRule]:
    return [to_rule(r) for r in rules]


def rule_for(rules: Iterable[ImageRule], image: str) -> ImageRule | None:
    return next((r for r in rules if fnmatch.fnmatchcase(image, r.pattern)), None)


def _exe(argv0: str, env: Mapping[str, str], rel_base: str) -> str | None:
    if argv0 in ("python3", "python"):
        return sys.executable
    if "/" in argv0:
        path = argv0 if os.path.isabs(argv0) else os.path.join(rel_base, argv0)
        return path if os.path.isfile(path) else None
    return shutil.which(argv0, path=env.get("PATH"))


def _cwd(spec: Mapping[str, Any], rule: ImageRule | None, base: str) -> str:
    wd = spec.get("workingDir")
    if wd:
        return str(wd) if os.path.isabs(wd) else os.path.join(base, wd)
    if rule is not None and rule.working_dir:
        return rule.working_dir if os.path.isabs(rule.working_dir) else os.path.join(base, rule.working_dir)
    return base


def resolve(
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    *,
    pod_ip: str,
    host_ip: str,
    node_name: str,
    rules: Iterable[ImageRule],
    repo_dir: str | None,
    hostname: str | None = None,
    objects: ConfigObjects | None = None,
    warnings: list[str] | None = None,
) -> tuple[list[str], dict[str, str], str]:
    """(argv, env, cwd) of a container; raises Waiting (stays waiting) or StartError (crash).

    ``hostname``: the pod's hostname in its sandbox (HOSTNAME); None: the pod name. ``objects``:
    the live ConfigMaps and Secrets (envFrom, configMapKeyRef, secretKeyRef); ``warnings`` gets
    the envFrom keys skipped as invalid names."""
    name, image = str(spec.get("name", "")), str(spec.get("image", ""))
    rule = rule_for(rules, image)
    if not spec.get("command") and (rule is None or not rule.command):
        raise Waiting(
            "ImageNotResolved",
            f'image "{image}" of container {name} cannot run in-process: no entry of gitship.yaml '
            f"`images:` matches it (add one with a pattern and a command) and the container has no `command`",
        )
    env: dict[str, str] = {
        k: v for k, v in os.environ.items() if k in INHERITED_ENV or k.startswith(INHERITED_ENV_PREFIXES)
    }
    env.setdefault("PATH", os.defpath)
    implicit: dict[str, str] = dict(rule.env) if rule is not None else {}
    implicit.update(implicit_env(pod, spec, pod_ip))
    implicit["HOSTNAME"] = hostname or implicit["POD_NAME"]
    try:
        explicit = container_env(
            pod,
            spec,
            pod_ip=pod_ip,
            host_ip=host_ip,
            node_name=node_name,
            implicit=implicit,
            objects=objects,
            warnings=warnings,
        )
    except ConfigError as e:
        raise Waiting(e.reason, e.message) from None
    env.update(explicit)
    env[procid.UID_ENV] = str((pod.get("metadata") or {}).get("uid", ""))
    base = repo_dir or os.getcwd()
    cwd = _cwd(spec, rule, base)
    # argv: command replaces the entrypoint, args replace CMD ($(VAR) expanded in both)
    command, args = container_argv(spec, explicit)
    if command:
        argv = command
        exe = _exe(argv[0], env, cwd)
    else:
        assert rule is not None
        argv = list(rule.command)
        exe = _exe(argv[0], env, repo_dir or cwd)
        if repo_dir:
            argv[1:] = [_in_repo(a, repo_dir) for a in argv[1:]]
    if exe is None:
        raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
    return [exe, *argv[1:], *args], env, cwd


def _in_repo(arg: str, repo_dir: str) -> str:
    """An image rule's argument naming a file of the repository, as an absolute path."""
    if arg and not arg.startswith("-") and not os.path.isabs(arg) and os.path.exists(os.path.join(repo_dir, arg)):
        return os.path.join(repo_dir, arg)
    return arg
