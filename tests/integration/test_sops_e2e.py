"""SOPS-encrypted manifests through a real `gitship up` (issue 13 item 2).

An encrypted file applies with the key given by --decryption-key-file; a commit with a file that
cannot be decrypted is rejected whole, naming the file; `create secret generic` commits only the
encrypted file, so the plaintext is nowhere in the repository's history.

(`kind: Secret` is added by another branch of issue 13; until it lands, the applied object here is
a Pod whose env value is encrypted.)
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from pyrage import x25519

from reconciler.log import LOG_FILE
from reconciler.manifests.sops import encrypt_documents
from tests.conftest import Gitship, commit_file, git, wait_for

SOPS = shutil.which("sops") or shutil.which("sops", path=os.path.dirname(sys.executable))
PASSWORD = "s3cr3t-Zq8-plaintext"


def _pod(name: str, value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [
                {"name": "app", "image": "kubia:v1", "env": [{"name": "PASSWORD", "value": value}]},
            ]
        },
    }


def _encrypted_pod(name: str, recipient: str) -> str:
    return encrypt_documents([_pod(name, PASSWORD)], [recipient], datetime.now(timezone.utc), encrypted_regex="^value$")


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    ident = x25519.Identity.generate()
    path = tmp_path / "age.txt"  # outside the repository
    path.write_text(f"{ident}\n")
    return path, str(ident.to_public())


def test_an_encrypted_file_applies_and_an_undecryptable_one_rejects_the_commit(
    empty_repo: Path, gitship_factory: Callable[..., Gitship], age_key: tuple[Path, str]
) -> None:
    key_file, recipient = age_key
    good = commit_file(empty_repo, "apps/db.yaml", _encrypted_pod("db", recipient), "encrypted pod")
    g = gitship_factory(empty_repo, extra=["--decryption-key-file", str(key_file)])
    g.wait_applied(good, timeout=60)
    assert g.status()["status"]["lastAppliedRevision"] == good
    pod = g.json("get", "pod", "db")
    assert pod["spec"]["containers"][0]["env"][0]["value"] == PASSWORD
    assert "sops" not in pod

    # one commit: a valid new pod and a file encrypted for someone else -> nothing of it applies
    other = str(x25519.Identity.generate().to_public())
    (empty_repo / "apps" / "web.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: kubia:v1}]\n"
    )
    (empty_repo / "apps" / "foreign.yaml").write_text(_encrypted_pod("foreign", other))
    git(empty_repo, "add", "-A")
    git(empty_repo, "commit", "-q", "-m", "web + a file we cannot decrypt")
    bad = git(empty_repo, "rev-parse", "HEAD").strip()
    g.wait_applied(bad, timeout=60)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == good
    cond = st["conditions"][0]
    assert cond["status"] == "False" and "apps/foreign.yaml" in cond["message"], cond
    assert PASSWORD not in cond["message"]
    assert g.cli("get", "pod", "web", check=False).returncode != 0

    # an altered value: rejected as well
    text = _encrypted_pod("db", recipient).replace("name: db", "name: db2")
    tampered = commit_file(empty_repo, "apps/foreign.yaml", text, "altered after encryption")
    g.wait_applied(tampered, timeout=60)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == good and "MAC" in st["conditions"][0]["message"]
    # the reconcile log names the file, never the decrypted value
    log = (Path(g.state_dir) / LOG_FILE).read_text(errors="replace")
    assert "apps/foreign.yaml" in log and PASSWORD not in log


def test_create_secret_generic_commits_only_ciphertext(
    empty_repo: Path, gitship_factory: Callable[..., Gitship], age_key: tuple[Path, str], tmp_path: Path
) -> None:
    key_file, recipient = age_key
    g = gitship_factory(empty_repo, extra=["--decryption-key-file", str(key_file)])
    cert = tmp_path / "tls.crt"
    cert.write_text("CERT-PLAINTEXT-77\n")
    create = ["create", "secret", "generic", "db", f"--from-literal=password={PASSWORD}", f"--from-file={cert}"]

    # no .sops.yaml: a clear error, nothing written
    head = git(empty_repo, "rev-parse", "HEAD").strip()
    p = g.cli(*create, check=False)
    assert p.returncode != 0 and ".sops.yaml" in p.stderr
    assert git(empty_repo, "rev-parse", "HEAD").strip() == head and not (empty_repo / "secrets").exists()

    # a rule without age recipients: refused too
    commit_file(empty_repo, ".sops.yaml", "creation_rules:\n  - path_regex: ^nothing/\n    age: x\n", "sops rules")
    p = g.cli(*create, check=False)
    assert p.returncode != 0 and "no creation rule" in p.stderr

    rules = f"creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: {recipient}\n"
    commit_file(empty_repo, ".sops.yaml", rules, "sops rules")
    out = g.cli(*create).stdout
    assert "secret/db created" in out
    assert git(empty_repo, "log", "-1", "--format=%s").strip() == "create secret db"

    history = git(empty_repo, "log", "-p", "--all")
    for secret in (PASSWORD, "CERT-PLAINTEXT-77"):
        assert secret not in history
        assert base64.b64encode(secret.encode()).decode()[:16] not in history
    committed = (empty_repo / "secrets" / "db.yaml").read_text()
    assert "sops:" in committed and "ENC[AES256_GCM" in committed and "kind: Secret" in committed

    if SOPS:  # the real sops reads what gitship wrote
        env = {**os.environ, "SOPS_AGE_KEY_FILE": str(key_file)}
        plain = subprocess.run(
            [SOPS, "decrypt", str(empty_repo / "secrets" / "db.yaml")], capture_output=True, text=True, env=env
        )
        assert plain.returncode == 0, plain.stderr
        assert base64.b64encode(PASSWORD.encode()).decode() in plain.stdout

    # the daemon decrypts the committed file: the Secret is live, with its values in base64 as kubectl shows
    # them, and nowhere in plaintext in the state dir's text files
    live = wait_for(lambda: g.json("get", "secret", "db"), 30, what="the Secret applied")
    assert live["type"] == "Opaque"
    assert base64.b64decode(live["data"]["password"]).decode() == PASSWORD
    assert base64.b64decode(live["data"]["tls.crt"]).decode() == "CERT-PLAINTEXT-77\n"
    for path in Path(g.state_dir).rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json"):
            assert PASSWORD not in path.read_text(errors="replace"), path
