"""Commit verification and signing with real git, ssh-keygen and gpg (keys made by the test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.errors import GitOpsError
from reconciler.gitops import RepoWriter
from reconciler.ops.verify import (
    REFUSAL,
    CommitVerifier,
    gpg_verdict,
    prepare_signing,
    sign_commits,
    signing_options,
    split_signature,
    ssh_key_allowed,
)

pytestmark = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen is not installed")

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx
"""


def git(repo: Path, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def ssh_key(d: Path, name: str) -> Path:
    key = d / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def allowed(d: Path, *entries: tuple[str, Path]) -> Path:
    f = d / "allowed_signers"
    f.write_text("".join(f'{who} namespaces="git" {Path(str(k) + ".pub").read_text()}' for who, k in entries))
    return f


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.name", "T")
    git(r, "config", "user.email", "t@example.com")
    (r / "web.yaml").write_text(DEPLOY)
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "unsigned start")
    return r


def signed_commit(repo: Path, key: Path, name: str) -> str:
    (repo / name).write_text("x\n")
    git(repo, "add", name)
    git(repo, "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q", "-S", "-m", name)
    return git(repo, "rev-parse", "HEAD")


def test_split_signature_gives_what_git_signed() -> None:
    raw = (
        b"tree 1\nparent 2\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\n"
        b"gpgsig -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\n\nmsg\n\nbody\n"
    )
    sig, payload = split_signature(raw)
    assert sig == b"-----BEGIN SSH SIGNATURE-----\nabc\n-----END SSH SIGNATURE-----\n"
    assert payload == b"tree 1\nparent 2\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\n\nmsg\n\nbody\n"
    assert split_signature(b"tree 1\n\nmsg\n") == (None, b"tree 1\n\nmsg\n")


def test_gpg_status_lines() -> None:
    good = "[GNUPG:] GOODSIG D608 Signer <s@e>\n[GNUPG:] VALIDSIG 3EEF64C2 2026-11-30\n"
    v = gpg_verdict(good)
    assert v.ok and v.signer == "Signer <s@e>" and "3EEF64C2" in v.detail
    v = gpg_verdict("[GNUPG:] ERRSIG D608EDFF 22 10 00 1796 9\n[GNUPG:] NO_PUBKEY D608EDFF\n")
    assert not v.ok and v.signer == "unknown key D608EDFF"
    assert not gpg_verdict("[GNUPG:] EXPKEYSIG D608 Old <o@e>\n[GNUPG:] VALIDSIG 3E\n").ok
    assert not gpg_verdict("[GNUPG:] BADSIG D608 Signer <s@e>\n").ok


def test_ssh_verdicts(repo: Path, tmp_path: Path) -> None:
    good, stranger = ssh_key(tmp_path, "good"), ssh_key(tmp_path, "stranger")
    signers = allowed(tmp_path, ("ops@example.com", good))
    v = CommitVerifier(str(repo), str(tmp_path / "state"), str(signers), None)
    assert v.check(git(repo, "rev-parse", "HEAD")).signer == "unsigned"
    verdict = v.check(signed_commit(repo, good, "a"))
    assert verdict.ok and verdict.signer == "ops@example.com" and "SHA256:" in verdict.detail
    verdict = v.check(signed_commit(repo, stranger, "b"))
    assert not verdict.ok and verdict.signer.startswith("unknown key SHA256:")
    # trust comes from the file: adding the key makes the same commit good (no stale cache)
    allowed(tmp_path, ("ops@example.com", good), ("dev@example.com", stranger))
    os.utime(signers, (1, 1))
    assert v.check(git(repo, "rev-parse", "HEAD")).signer == "dev@example.com"
    assert ssh_key_allowed(str(good), str(signers))


def test_ssh_signature_refused_when_only_openpgp_is_trusted(repo: Path, tmp_path: Path) -> None:
    key = ssh_key(tmp_path, "k")
    ring = tmp_path / "empty.asc"
    ring.write_text("")
    v = CommitVerifier(str(repo), str(tmp_path / "state"), None, str(ring))
    assert not v.check(signed_commit(repo, key, "a")).ok


def test_gitship_commits_are_signed_and_verify(repo: Path, tmp_path: Path) -> None:
    key = ssh_key(tmp_path, "gitship")
    signers = allowed(tmp_path, ("gitship@example.com", key))
    state = tmp_path / "state"
    state.mkdir()
    prepare_signing(str(state), str(key), required=True)
    w = sign_commits(RepoWriter(str(repo)), str(state))
    sha = w.scale("Deployment", "default", "web", 3)
    assert sha
    verdict = CommitVerifier(str(repo), str(state), str(signers), None).check(sha)
    assert verdict.ok and verdict.signer == "gitship@example.com"


def test_no_signing_key_refuses_commits_when_verification_is_on(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    prepare_signing(str(state), None, required=True)
    w = sign_commits(RepoWriter(str(repo)), str(state))
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(GitOpsError, match="no --signing-key"):
        w.scale("Deployment", "default", "web", 3)
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""
    # verification off: the file goes, commits are as before
    prepare_signing(str(state), None, required=False)
    assert not (state / "signing.json").exists()
    assert sign_commits(RepoWriter(str(repo)), str(state)).scale("Deployment", "default", "web", 3)
    assert signing_options({"required": True}) == ((), REFUSAL)


def _gpg_key(tmp_path: Path, email: str) -> tuple[Path, Path]:
    """(public keyring file, armored secret key file) of a new unprotected ed25519 key."""
    home = tmp_path / f"gnupg-{email.split('@')[0]}"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    params = (
        "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\n"
        f"Name-Real: Test\nName-Email: {email}\nExpire-Date: 0\n%commit\n"
    )
    subprocess.run(["gpg", "--batch", "--quiet", "--generate-key"], input=params.encode(), env=env, check=True)
    pub, sec = tmp_path / f"{email}.pub.asc", tmp_path / f"{email}.sec.asc"
    pub.write_bytes(subprocess.run(["gpg", "--export", "--armor", email], env=env, capture_output=True).stdout)
    sec.write_bytes(
        subprocess.run(["gpg", "--export-secret-keys", "--armor", email], env=env, capture_output=True).stdout
    )
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
    return pub, sec


@pytest.mark.skipif(not shutil.which("gpg"), reason="gpg is not installed")
def test_openpgp_signing_and_verification(repo: Path, tmp_path: Path) -> None:
    pub, sec = _gpg_key(tmp_path, "ops@example.com")
    other_pub, other_sec = _gpg_key(tmp_path, "other@example.com")
    state = tmp_path / "state"
    state.mkdir()
    info = prepare_signing(str(state), str(sec), required=True, verify_gpg=True)
    assert info["format"] == "openpgp"
    sha = sign_commits(RepoWriter(str(repo)), str(state)).scale("Deployment", "default", "web", 2)
    assert sha
    v = CommitVerifier(str(repo), str(state), None, str(pub))
    verdict = v.check(sha)
    assert verdict.ok and "ops@example.com" in verdict.signer
    unknown = CommitVerifier(str(repo), str(tmp_path / "state2"), None, str(other_pub)).check(sha)
    assert not unknown.ok and unknown.signer.startswith("unknown key")
    assert v.check(git(repo, "rev-parse", "HEAD~1")).signer == "unsigned"
    subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(state / "signing-gnupg")})


def test_signing_key_is_checked_before_the_daemon_starts(tmp_path: Path) -> None:
    from reconciler.ops.verify import check_signing_key

    assert check_signing_key(str(ssh_key(tmp_path, "ok")), False, True) is None
    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(locked)], check=True)
    assert "passphrase" in (check_signing_key(str(locked), False, True) or "")
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    assert check_signing_key(str(junk), False, True)
    assert check_signing_key(str(tmp_path / "missing"), False, True)
    if shutil.which("gpg"):
        _pub, sec = _gpg_key(tmp_path, "k@example.com")
        assert check_signing_key(str(sec), True, False) is None
        assert check_signing_key(str(junk), True, False)
