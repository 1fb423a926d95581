"""`gitship create secret generic NAME --from-literal=K=V --from-file=[K=]PATH [--type T]`.

Writes the Secret as a SOPS file (``secrets/NAME.yaml`` under the manifests path) encrypted for the
age recipients of the repository's ``.sops.yaml`` (the first ``creation_rules`` entry whose
``path_regex`` matches the new file's path, as sops chooses), with only ``data``/``stringData``
values encrypted (``encrypted_regex: ^(data|stringData)$``, the convention Flux reads, unless the
rule names its own ``encrypted_regex``), and commits it. The plaintext exists only in this
process's memory: what is written and committed is the encrypted file.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
from datetime import datetime, timezone
from typing import Any

import yaml

from reconciler.cli.common import die, nudge, writer
from reconciler.manifests.sops import DEFAULT_ENCRYPTED_REGEX, SopsError, encrypt_documents
from reconciler.types import Obj

SOPS_CONFIG = ".sops.yaml"


def _split_keys(field: Any) -> list[str]:
    """A rule's ``age`` field: a comma-separated string or a list (sops' parseKeyField)."""
    if isinstance(field, str):
        return [k.strip() for k in field.split(",") if k.strip()]
    if isinstance(field, list):
        return [str(k).strip() for k in field if str(k).strip()]
    return []


def creation_rule(config_text: str, path: str) -> tuple[list[str], str, bool]:
    """(age recipients, encrypted_regex, mac_only_encrypted) of the rule of ``.sops.yaml`` for ``path``
    (relative to the repository root). Raises SopsError when no rule or no age recipient applies."""
    try:
        conf = yaml.safe_load(config_text) or {}
    except yaml.YAMLError as e:
        raise SopsError(f"{SOPS_CONFIG} is not valid YAML: {type(e).__name__}") from None
    rules = conf.get("creation_rules") if isinstance(conf, dict) else None
    if not isinstance(rules, list) or not rules:
        raise SopsError(f"{SOPS_CONFIG} has no creation_rules")
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        regex = rule.get("path_regex")
        if regex and not re.search(str(regex), path):
            continue
        recipients = _split_keys(rule.get("age"))
        for group in rule.get("key_groups") or []:
            if isinstance(group, dict):
                recipients += _split_keys(group.get("age"))
        if not recipients:
            raise SopsError(f"the rule of {SOPS_CONFIG} for {path} names no age recipient (only age is supported)")
        return (
            recipients,
            str(rule.get("encrypted_regex") or DEFAULT_ENCRYPTED_REGEX),
            bool(rule.get("mac_only_encrypted")),
        )
    raise SopsError(f"no creation rule of {SOPS_CONFIG} matches {path}")


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
    config = w.read(SOPS_CONFIG)
    if config is None:
        die(f"no {SOPS_CONFIG} at the root of the repository: it names the age recipients to encrypt for")
    try:
        recipients, regex, mac_only = creation_rule(config.decode("utf-8", errors="replace"), path)
        text = encrypt_documents(
            [secret_manifest(name, args.namespace, args.type or "Opaque", data)],
            recipients,
            datetime.now(timezone.utc),
            encrypted_regex=regex,
            mac_only_encrypted=mac_only,
        )
    except SopsError as e:
        die(str(e))
    sha = w.add_file(filename, text.encode("utf-8"), overwrite=False, message=f"create secret {name}")
    nudge(args)
    print(f"secret/{name} created (commit {sha[:7]})")
    return 0
