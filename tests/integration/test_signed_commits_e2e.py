"""Signed commits only, end to end: a real daemon, `git commit -S` with SSH keys made here, an
allowed-signers file outside the repository, and gitship's own commits signed with --signing-key."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, wait_for

pytestmark = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen is not installed")

CONFIG = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  colour: {colour}
"""


def ssh_key(d: Path, name: str) -> Path:
    key = d / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def commit(repo: Path, colour: str, key: Path | None) -> str:
    (repo / "cfg.yaml").write_text(CONFIG.format(colour=colour))
    git(repo, "add", "cfg.yaml")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
    git(repo, *sign, "commit", "-q", *(["-S"] if key else []), "-m", f"colour {colour}")
    return git(repo, "rev-parse", "HEAD")


def ready(g) -> dict:
    return g.status()["status"]["conditions"][0]


def colour(g) -> str:
    return g.json("get", "configmap", "cfg")["data"]["colour"]


def git_verifies(repo: Path, signers: Path, sha: str) -> bool:
    """git's own check, independent of gitship's: the commit is signed by an allowed key."""
    p = subprocess.run(
        ["git", "-C", str(repo), "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={signers}"]
        + ["verify-commit", sha],
        capture_output=True,
        text=True,
    )
    return p.returncode == 0


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    trust = tmp_path / "trust"  # outside the repository
    trust.mkdir()
    out = {name: ssh_key(trust, name) for name in ("dev", "gitship", "stranger")}
    signers = trust / "allowed_signers"
    signers.write_text(
        "".join(
            f'{who}@example.com namespaces="git" {Path(str(out[who]) + ".pub").read_text()}'
            for who in ("dev", "gitship")
        )
    )
    out["allowed"] = signers
    return out


@pytest.fixture
def cm_repo(tmp_path: Path, keys: dict[str, Path]) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.name", "Test Author")
    git(r, "config", "user.email", "author@example.com")
    commit(r, "red", keys["dev"])
    return r


def test_only_signed_heads_apply_and_gitship_signs_its_own(
    cm_repo: Path, keys: dict[str, Path], gitship_factory
) -> None:
    verify = ["--verify-signatures", str(keys["allowed"]), "--api-addr", "none"]
    g = gitship_factory(cm_repo, verify + ["--signing-key", str(keys["gitship"])])
    first = git(cm_repo, "rev-parse", "HEAD")
    wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == first, 60, what="the signed first revision")
    assert colour(g) == "red" and ready(g)["status"] == "True"

    # an unsigned head is not applied: Ready False, VerificationFailed, naming the commit and "unsigned"
    unsigned = commit(cm_repo, "blue", None)
    cond = wait_for(lambda: ready(g) if ready(g)["reason"] == "VerificationFailed" else None, 30, what="refusal")
    assert cond["status"] == "False" and unsigned[:7] in cond["message"] and "unsigned" in cond["message"]
    assert g.status()["status"]["lastAppliedRevision"] == first and colour(g) == "red"

    # signed by a key the allowed-signers file does not hold: refused, the key named
    stranger = commit(cm_repo, "green", keys["stranger"])
    cond = wait_for(lambda: ready(g) if stranger[:7] in ready(g)["message"] else None, 30, what="second refusal")
    assert cond["reason"] == "VerificationFailed" and "unknown key SHA256:" in cond["message"]
    assert colour(g) == "red"
    rejected = {r["sha"] for r in g.json("history")["items"] if r.get("result") == "rejected"}
    assert {unsigned, stranger} <= rejected  # `gitship history` lists both as rejected

    # a later good commit applies
    good = commit(cm_repo, "yellow", keys["dev"])
    wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == good, 30, what="the signed revision")
    assert colour(g) == "yellow" and ready(g)["status"] == "True"

    # gitship's own commit (the CLI) is signed with --signing-key, verifies, and is applied
    g.cli("label", "configmap", "cfg", "team=blue")
    mine = git(cm_repo, "rev-parse", "HEAD")
    assert mine != good and git_verifies(cm_repo, keys["allowed"], mine)
    wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == mine, 30, what="gitship's own commit applied")
    assert g.json("get", "configmap", "cfg")["metadata"]["labels"] == {"team": "blue"}
    assert not git_verifies(cm_repo, keys["allowed"], unsigned)


def test_verification_without_a_signing_key_refuses_gitship_commits(
    cm_repo: Path, keys: dict[str, Path], gitship_factory
) -> None:
    g = gitship_factory(cm_repo, ["--verify-signatures", str(keys["allowed"]), "--api-addr", "none"])
    head = git(cm_repo, "rev-parse", "HEAD")
    wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == head, 60, what="the first revision")
    p = g.cli("label", "configmap", "cfg", "team=blue", check=False)
    assert p.returncode != 0 and "--signing-key" in p.stderr
    assert git(cm_repo, "rev-parse", "HEAD") == head and git(cm_repo, "status", "--porcelain") == ""


def _gpg_key(d: Path, name: str) -> tuple[Path, Path, dict[str, str]]:
    """(public key file, armored secret key file, env with its GNUPGHOME) of a new unprotected key."""
    home = d / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    params = (
        "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\n"
        f"Name-Real: {name}\nName-Email: {name}@example.com\nExpire-Date: 0\n%commit\n"
    )
    subprocess.run(["gpg", "--batch", "--quiet", "--generate-key"], input=params.encode(), env=env, check=True)
    pub, sec = d / f"{name}.pub.asc", d / f"{name}.sec.asc"
    pub.write_bytes(subprocess.run(["gpg", "--export", "--armor"], env=env, capture_output=True).stdout)
    sec.write_bytes(subprocess.run(["gpg", "--export-secret-keys", "--armor"], env=env, capture_output=True).stdout)
    return pub, sec, env


@pytest.mark.skipif(not shutil.which("gpg"), reason="gpg is not installed")
def test_openpgp_signed_heads_and_gitship_commits(tmp_path: Path, gitship_factory) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    dev_pub, _dev_sec, dev_env = _gpg_key(trust, "dev")
    ops_pub, ops_sec, ops_env = _gpg_key(trust, "gitship")
    keyring = trust / "trusted.asc"
    keyring.write_bytes(dev_pub.read_bytes() + ops_pub.read_bytes())
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test Author")
    git(repo, "config", "user.email", "author@example.com")

    def gpg_commit(colour: str) -> str:
        (repo / "cfg.yaml").write_text(CONFIG.format(colour=colour))
        subprocess.run(["git", "-C", str(repo), "add", "cfg.yaml"], check=True)
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.signingkey=dev@example.com", "commit", "-q", "-S", "-m", colour],
            env=dev_env,
            check=True,
        )
        return git(repo, "rev-parse", "HEAD")

    try:
        first = gpg_commit("red")
        g = gitship_factory(repo, ["--verify-gpg", str(keyring), "--signing-key", str(ops_sec), "--api-addr", "none"])
        wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == first, 60, what="the signed first revision")
        unsigned = commit(repo, "blue", None)
        cond = wait_for(lambda: ready(g) if unsigned[:7] in ready(g)["message"] else None, 30, what="refusal")
        assert cond["reason"] == "VerificationFailed" and "unsigned" in cond["message"] and colour(g) == "red"
        good = gpg_commit("green")
        wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == good, 30, what="the signed revision")
        g.cli("label", "configmap", "cfg", "team=blue")  # signed with the OpenPGP --signing-key
        mine = git(repo, "rev-parse", "HEAD")
        assert mine != good
        wait_for(lambda: g.status()["status"]["lastAppliedRevision"] == mine, 30, what="gitship's own commit applied")
        shown = subprocess.run(["git", "-C", str(repo), "verify-commit", mine], env=ops_env, capture_output=True)
        assert shown.returncode == 0  # gpg itself agrees: a good signature by gitship's key
    finally:
        for home in (dev_env["GNUPGHOME"], ops_env["GNUPGHOME"], str(tmp_path / "state" / "signing-gnupg")):
            subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": home}, capture_output=True)
