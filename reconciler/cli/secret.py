"""`gitship create secret generic NAME --from-literal=K=V --from-file=[K=]PATH [--type T]`.

Writes the Secret as a SOPS file (``secrets/NAME.yaml`` under the manifests path) encrypted for the
age recipients of the ``.sops.yaml`` that sops itself would use for that file, and commits it:

* the nearest ``.sops.yaml``, looking in the new file's folder and then each parent folder up to
  the repository root (sops' config lookup, which starts from the working directory; here it starts
  from the file, so a folder can carry its own rules). A ``.sops.yml`` is ignored, as sops ignores it;
* its ``creation_rules`` in order, the first whose ``path_regex`` matches (a search, as Go's
  regexp.MatchString) the file's path relative to that ``.sops.yaml``'s folder, or the first rule
  without ``path_regex``, wins (getsops/sops config/config.go parseCreationRuleForFile);
* the rule's ``age`` recipients (a comma-separated string or a list, plus ``key_groups[].age``);
  which values are encrypted follows the rule's ``encrypted_regex`` / ``unencrypted_regex`` /
  ``encrypted_suffix`` / ``unencrypted_suffix``; with none, only ``data``/``stringData`` values
  (``encrypted_regex: ^(data|stringData)$``, the convention Flux reads).

The plaintext exists only in this process's memory: what is written and committed is the encrypted file.
"""

from __future__ import annotations

import argparse
import base64
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import yaml

from reconciler.cli.common import die, nudge, writer
from reconciler.manifests.sops import DEFAULT_ENCRYPTED_REGEX, SopsError, encrypt_documents
from reconciler.types import Obj

SOPS_CONFIG = ".sops.yaml"
_ENCRYPTION_RULES = ("encrypted_regex", "unencrypted_regex", "encrypted_suffix", "unencrypted_suffix")


@dataclass(frozen=True)
class CreationRule:
    """What a ``.sops.yaml`` creation rule says about encrypting one file."""

    recipients: list[str]
    rule: tuple[str, str]  # (which of _ENCRYPTION_RULES, its pattern)
    mac_only_encrypted: bool
    config: str  # the .sops.yaml it came from, relative to the repository root


def _split_keys(field: Any) -> list[str]:
    """A rule's ``age`` field: a comma-separated string or a list (sops' parseKeyField)."""
    if isinstance(field, str):
        return [k.strip() for k in field.split(",") if k.strip()]
    if isinstance(field, list):
        return [str(k).strip() for k in field if str(k).strip()]
    return []


def _rule_matches(rule: dict[str, Any], path: str, where: str) -> bool:
    regex = rule.get("path_regex")
    if not regex:
        return True
    try:
        return re.search(str(regex), path) is not None
    except re.error:
        raise SopsError(f"{where}: path_regex {regex!r} is not a valid regular expression") from None


def _encryption_rule(rule: dict[str, Any], where: str) -> tuple[str, str]:
    chosen = [(name, str(rule[name])) for name in _ENCRYPTION_RULES if rule.get(name)]
    if len(chosen) > 1:
        raise SopsError(f"{where}: a rule sets more than one of {', '.join(n for n, _ in chosen)}")
    return chosen[0] if chosen else ("encrypted_regex", DEFAULT_ENCRYPTED_REGEX)


def creation_rule(config_text: str, path: str, where: str = SOPS_CONFIG) -> CreationRule:
    """The rule of a ``.sops.yaml`` (text ``config_text``, at ``where``) for ``path`` (relative to
    the ``.sops.yaml``'s folder). Raises SopsError when no rule or no age recipient applies."""
    try:
        conf = yaml.safe_load(config_text) or {}
    except yaml.YAMLError as e:
        raise SopsError(f"{where} is not valid YAML: {type(e).__name__}") from None
    rules = conf.get("creation_rules") if isinstance(conf, dict) else None
    if not isinstance(rules, list) or not rules:
        raise SopsError(f"{where} has no creation_rules")
    for rule in rules:
        if not isinstance(rule, dict) or not _rule_matches(rule, path, where):
            continue
        recipients = _split_keys(rule.get("age"))
        for group in rule.get("key_groups") or []:
            if isinstance(group, dict):
                recipients += _split_keys(group.get("age"))
        if not recipients:
            raise SopsError(f"the rule of {where} for {path} names no age recipient (only age is supported)")
        return CreationRule(recipients, _encryption_rule(rule, where), bool(rule.get("mac_only_encrypted")), where)
    raise SopsError(f"no creation rule of {where} matches {path}")


def find_creation_rule(read: Callable[[str], bytes | None], path: str) -> CreationRule:
    """The creation rule for the file ``path`` (relative to the repository root): the nearest
    ``.sops.yaml`` from the file's folder up to the root (``read`` gives a repository file's bytes,
    or None), its rules matched against the path relative to that file's folder."""
    folder = posixpath.dirname(path)
    while True:
        config = posixpath.join(folder, SOPS_CONFIG) if folder else SOPS_CONFIG
        text = read(config)
        if text is not None:
            rel = path[len(folder) + 1 :] if folder else path
            return creation_rule(text.decode("utf-8", errors="replace"), rel, config)
        if not folder:
            break
        folder = posixpath.dirname(folder)
    raise SopsError(
        f"no {SOPS_CONFIG} in the folder of {path} or above it in the repository: "
        "it names the age recipients to encrypt for"
    )


def _values(literals: list[str], files: list[str]) -> dict[str, str]:
    """The Secret's ``data``: base64 of each value, keyed as kubectl keys them."""
    data: dict[str, bytes] = {}
    for item in literals:
        k, sep, v = item.partition("=")
        if not sep or not k:
            die(f"invalid --from-literal {k or item!r}: use KEY=VALUE")
        if k in data:
            die(f"cannot add key {k}, another key by that name already exists")
        data[k] = v.encode("utf-8")
    for item in files:
        k, sep, path = item.partition("=")
        if not sep:
            k, path = os.path.basename(item), item
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as e:
            die(f"cannot read {path}: {e.strerror}")
        if k in data:
            die(f"cannot add key {k}, another key by that name already exists")
        data[k] = content
    return {k: base64.b64encode(v).decode("ascii") for k, v in data.items()}


def secret_manifest(name: str, namespace: str, secret_type: str, data: dict[str, str]) -> Obj:
    meta: dict[str, Any] = {"name": name}
    if namespace != "default":
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": secret_type, "data": data}


def cmd_create_secret(args: argparse.Namespace) -> int:
    words = list(args.resource)
    if len(words) != 3 or words[0] != "secret" or words[1] != "generic":
        die("usage: gitship create secret generic NAME [--from-literal=K=V] [--from-file=[K=]PATH] [--type T]")
    name = words[2]
    data = _values(args.from_literal or [], args.from_file or [])
    w = writer(args)
    filename = f"secrets/{name}.yaml"
    from reconciler.gitops.files import target_path

    path = target_path(w.manifests_rel, filename)
    try:
        rule = find_creation_rule(w.read, path)
        text = encrypt_documents(
            [secret_manifest(name, args.namespace, args.type or "Opaque", data)],
            rule.recipients,
            datetime.now(timezone.utc),
            mac_only_encrypted=rule.mac_only_encrypted,
            rule=rule.rule,
        )
    except SopsError as e:
        die(str(e))
    sha = w.add_file(filename, text.encode("utf-8"), overwrite=False, message=f"create secret {name}")
    nudge(args)
    print(f"secret/{name} created (commit {sha[:7]})")
    return 0
