"""Signed commits only: the head of the branch is applied only when a key trusted from outside the
repository signed it, and the commits gitship makes are signed with the operator's key.

Where it sits: between the source loop and the applier (``RevisionApplier.verify``, set by
``start_verification`` from daemon.py's ``start_apis``), and in every commit gitship makes
(``sign_commits`` on the ``RepoWriter`` the daemon and the CLI build).

How a commit is verified. The commit object is read raw (``git cat-file commit``); its ``gpgsig``
(or ``gpgsig-sha256``) header is the signature and the object without that header is what was
signed, as git defines it. The signature is then checked by the tool itself, not through
``git verify-commit``:

* SSH (``--verify-signatures ALLOWED_SIGNERS``): ``ssh-keygen -Y find-principals`` names the
  principals of the allowed-signers file whose key made the signature, ``ssh-keygen -Y verify``
  (namespace ``git``) checks it cryptographically for one of them.
* OpenPGP (``--verify-gpg KEYRING``): the keyring file (``gpg --export`` output, armored or not)
  is imported into a GNUPGHOME of gitship's own under the state dir, and ``gpg --verify`` runs
  there with ``--status-fd``: GOODSIG plus VALIDSIG is a good signature; the user's own keyring
  and trust database never count.

Why not ``git verify-commit``: git takes the program it runs (``gpg.program``,
``gpg.ssh.program``) and parts of the policy from the repository's configuration
(``.git/config``), which whoever can write a local repository can change. Calling
``ssh-keygen`` and ``gpg`` directly takes nothing from the repository but the commit.

Only the head of the branch is checked (as Flux does): its signer vouches for the whole tree
it names. A refused head changes nothing that runs; the condition says why
(Ready False, reason VerificationFailed) until a commit that verifies comes.

gitship's own commits: ``--signing-key PATH`` (an SSH private key, or an armored OpenPGP
secret key) signs every commit gitship makes (CLI edits, kubectl writes, rollbacks, reverts);
``prepare_signing`` writes ``<state-dir>/signing.json`` so that the CLI, which commits without
the daemon, signs the same way. With verification on and no signing key, gitship refuses to
commit: a commit it made would be refused by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.errors import GitshipError
from reconciler.gitops.transaction import Repo
from reconciler.log import Logger
from reconciler.source.git import Revision
from reconciler.source.git import git as rungit
from reconciler.store import Store

SIGNING_FILE = "signing.json"
SSH_SIG = b"-----BEGIN SSH SIGNATURE-----"
PGP_SIG = b"-----BEGIN PGP SIGNATURE-----"
_SIG_HEADERS = (b"gpgsig", b"gpgsig-sha256")
_FINGERPRINT = re.compile(r"(SHA256:[A-Za-z0-9+/=]+)")
_TOOL_TIMEOUT = 60.0
# verifying needs public keys only: no gpg-agent or dirmngr left running for gitship's keyring
_NO_AGENT = ("--batch", "--no-tty", "--no-autostart")

W = TypeVar("W", bound=Repo)


@dataclass(frozen=True)
class Verdict:
    """What verification found: ``ok``; ``signer`` (a principal, a key's user id, or "unsigned");
    ``detail``: the key, or why it is refused."""

    ok: bool
    signer: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.signer} ({self.detail})" if self.detail else self.signer


# --------------------------------------------------------------------------- the commit object


def split_signature(raw: bytes) -> tuple[bytes | None, bytes]:
    """A commit object's signature (its ``gpgsig`` / ``gpgsig-sha256`` header, continuation lines
    joined) and the payload it signs: the object without that header. (None, raw) when unsigned."""
    head, sep, body = raw.partition(b"\n\n")
    lines = head.split(b"\n")
    kept: list[bytes] = []
    sig: list[bytes] | None = None
    in_sig = False
    for line in lines:
        if in_sig and line.startswith(b" "):
            sig.append(line[1:])  # type: ignore[union-attr]
            continue
        in_sig = False
        name, _, value = line.partition(b" ")
        if name in _SIG_HEADERS and sig is None:
            sig, in_sig = [value], True
            continue
        kept.append(line)
    if sig is None:
        return None, raw
    return b"\n".join(sig) + b"\n", b"\n".join(kept) + sep + body


def gpg_verdict(status: str) -> Verdict:
    """``gpg --status-fd`` lines of one ``--verify`` as a Verdict (GOODSIG and VALIDSIG: good)."""
    words = {}
    for line in status.splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 2 and parts[0] == "[GNUPG:]":
            words[parts[1]] = parts[2:]
    for bad, why in (("EXPKEYSIG", "expired key"), ("REVKEYSIG", "revoked key"), ("BADSIG", "bad signature")):
        if bad in words:
            return Verdict(False, " ".join(words[bad][1:]) or words[bad][0], f"{why} {words[bad][0]}")
    if "GOODSIG" in words and "VALIDSIG" in words:
        return Verdict(True, " ".join(words["GOODSIG"][1:]), f"OpenPGP key {words['VALIDSIG'][0]}")
    if "ERRSIG" in words or "NO_PUBKEY" in words:
        keyid = (words.get("NO_PUBKEY") or words.get("ERRSIG") or ["?"])[0]
        return Verdict(False, f"unknown key {keyid}", "not in the --verify-gpg keyring")
    return Verdict(False, "unverifiable signature", status.strip().splitlines()[-1] if status.strip() else "")


# --------------------------------------------------------------------------- the tools


def _run(args: list[str], input: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, input=input, capture_output=True, timeout=_TOOL_TIMEOUT, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GitshipError(f"{args[0]} failed: {e}") from e


def verify_ssh(allowed_signers: str, sig: bytes, payload: bytes, workdir: str) -> Verdict:
    """An SSH signature over ``payload`` against an allowed-signers file (ssh-keygen -Y)."""
    sigfile = os.path.join(workdir, "commit.sig")
    with open(sigfile, "wb") as f:
        f.write(sig)
    found = _run(["ssh-keygen", "-Y", "find-principals", "-s", sigfile, "-f", allowed_signers])
    principals = found.stdout.decode(errors="replace").split() if found.returncode == 0 else []
    for principal in principals:
        p = _run(
            ["ssh-keygen", "-Y", "verify", "-f", allowed_signers, "-I", principal, "-n", "git", "-s", sigfile], payload
        )
        if p.returncode == 0:
            fp = _FINGERPRINT.search(p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))
            return Verdict(True, principal, f"SSH key {fp.group(1)}" if fp else "SSH key")
    p = _run(["ssh-keygen", "-Y", "check-novalidate", "-n", "git", "-s", sigfile], payload)
    fp = _FINGERPRINT.search(p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))
    key = fp.group(1) if fp else "?"
    if principals:
        return Verdict(False, principals[0], f"bad signature by SSH key {key}")
    return Verdict(False, f"unknown key {key}", f"not in {allowed_signers}")


class GpgKeyring:
    """A keyring file imported into a GNUPGHOME of gitship's own; imported again when the file changes."""

    def __init__(self, keyring: str, home_parent: str):
        self.keyring = keyring
        self.home_parent = home_parent
        self.home = ""
        self.stamp: tuple[float, int] | None = None

    def _env(self) -> dict[str, str]:
        return {**os.environ, "GNUPGHOME": self.home, "LC_ALL": "C"}

    def refresh(self) -> None:
        st = os.stat(self.keyring)
        if self.stamp == (st.st_mtime, st.st_size) and self.home:
            return
        os.makedirs(self.home_parent, mode=0o700, exist_ok=True)
        home = tempfile.mkdtemp(prefix="gnupg-", dir=self.home_parent)
        old, self.home = self.home, home
        p = _run(["gpg", *_NO_AGENT, "--quiet", "--import", self.keyring], env=self._env())
        if p.returncode not in (0, 2):  # 2: some keys were skipped (e.g. secret parts): the rest count
            raise GitshipError(f"cannot import {self.keyring}: {p.stderr.decode(errors='replace').strip()}")
        self.stamp = (st.st_mtime, st.st_size)
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def verify(self, sig: bytes, payload: bytes, workdir: str) -> Verdict:
        self.refresh()
        sigfile, datafile = os.path.join(workdir, "commit.asc"), os.path.join(workdir, "commit.payload")
        for path, data in ((sigfile, sig), (datafile, payload)):
            with open(path, "wb") as f:
                f.write(data)
        args = ["gpg", *_NO_AGENT, "--status-fd", "1", "--no-auto-key-retrieve", "--verify", sigfile]
        p = _run([*args, datafile], env=self._env())
        return gpg_verdict(p.stdout.decode(errors="replace"))

    def close(self) -> None:
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)


class CommitVerifier:
    """Verifies commits of ``repo_dir`` against the trust given on the command line (either kind
    counts when both are given). Results are cached per commit and state of the trust files."""

    def __init__(self, repo_dir: str, state_dir: str, allowed_signers: str | None, gpg_keyring: str | None):
        self.repo_dir = repo_dir
        self.state_dir = state_dir
        self.allowed_signers = allowed_signers
        self.gpg = GpgKeyring(gpg_keyring, os.path.join(state_dir, "verify-gnupg")) if gpg_keyring else None
        self._cache: dict[tuple[str, tuple[float, ...]], Verdict] = {}

    def _stamp(self) -> tuple[float, ...]:
        out: list[float] = []
        for path in (self.allowed_signers, self.gpg.keyring if self.gpg else None):
            if path:
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    out += [st.st_mtime, float(st.st_size)]
        return tuple(out)

    def check(self, sha: str) -> Verdict:
        key = (sha, self._stamp())
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = self._check(sha)
        return self._cache[key]

    def _check(self, sha: str) -> Verdict:
        sig, payload = split_signature(rungit(self.repo_dir, "cat-file", "commit", sha))
        if sig is None:
            return Verdict(False, "unsigned")
        with tempfile.TemporaryDirectory(prefix="gitship-verify-") as work:
            if sig.startswith(SSH_SIG):
                if not self.allowed_signers:
                    return Verdict(False, "SSH signature", "only OpenPGP signatures are trusted (--verify-gpg)")
                return verify_ssh(self.allowed_signers, sig, payload, work)
            if sig.startswith(PGP_SIG):
                if self.gpg is None:
                    return Verdict(False, "OpenPGP signature", "only SSH signatures are trusted (--verify-signatures)")
                return self.gpg.verify(sig, payload, work)
        return Verdict(False, "unknown signature format")


class VerificationGate:
    """``RevisionApplier.verify``: True lets a revision through; False leaves what runs as it is and
    reports Ready False, reason VerificationFailed, naming the commit and the signer."""

    def __init__(self, verifier: CommitVerifier, store: Store, set_ready: Callable[[str, str, str], None], log: Logger):
        self.verifier = verifier
        self.store = store
        self.set_ready = set_ready
        self.log = log
        self._recorded: set[tuple[str, str]] = set()

    async def __call__(self, rev: Revision) -> bool:
        try:
            verdict = await asyncio.to_thread(self.verifier.check, rev.sha)
        except (GitshipError, OSError) as e:  # a trust file gone or unreadable: nothing is trusted
            verdict = Verdict(False, "unverifiable", str(e))
        if verdict.ok:
            self.log.info("commit_verified", sha=rev.sha, signer=verdict.signer, key=verdict.detail)
            return True
        self.refuse(rev, verdict)
        return False

    def refuse(self, rev: Revision, verdict: Verdict) -> None:
        message = f"commit {rev.short} is not applied: {verdict.describe()}; what runs is unchanged"
        ready = self.store.get_meta("ready") or {}
        if ready.get("reason") != "VerificationFailed" or ready.get("message") != message:
            self.set_ready("False", "VerificationFailed", message)
        if (rev.sha, message) in self._recorded:
            return
        self._recorded.add((rev.sha, message))
        self.log.error("commit_verification_failed", sha=rev.sha, signer=verdict.signer, detail=verdict.detail)
        error = {"file": "", "line": 0, "document": 0, "field": "", "message": message}
        self.store.add_revision(rev.to_dict(), "rejected", error=[error])
        self.store.add_events(
            [
                {
                    "type": "Warning",
                    "reason": "VerificationFailed",
                    "kind": "Revision",
                    "namespace": "",
                    "name": rev.short,
                    "message": message,
                    "reconcile_id": uuid.uuid4().hex[:12],
                    "revision": rev.sha,
                }
            ]
        )


# --------------------------------------------------------------------------- gitship's own commits


def key_format(path: str, verify_gpg: bool, verify_ssh: bool) -> str:
    """ "ssh" or "openpgp": what kind of key file ``path`` is (by its first bytes)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith((b"-----BEGIN OPENSSH", b"ssh-", b"-----BEGIN RSA", b"-----BEGIN EC", b"sk-")):
        return "ssh"
    if head.startswith(b"-----BEGIN PGP") or (head[:1] and head[0] & 0x80):
        return "openpgp"
    return "openpgp" if verify_gpg and not verify_ssh else "ssh"


def _openpgp_signing(key: str, state_dir: str) -> dict[str, Any]:
    """Import an OpenPGP secret key into gitship's own signing GNUPGHOME; git runs gpg through a
    small wrapper pointing at it (``gpg.program``), so the user's keyring is never used."""
    home = os.path.join(state_dir, "signing-gnupg")
    if os.path.isdir(home):  # the agent of the home made at the last start (signing starts one)
        _run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": home})
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home, mode=0o700)
    env = {**os.environ, "GNUPGHOME": home, "LC_ALL": "C"}
    p = _run(["gpg", "--batch", "--no-tty", "--quiet", "--import", key], env=env)
    if p.returncode != 0:
        raise GitshipError(f"--signing-key {key}: cannot import it: {p.stderr.decode(errors='replace').strip()}")
    listing = _run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env).stdout.decode()
    fprs = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    if not fprs:
        raise GitshipError(f"--signing-key {key} holds no OpenPGP secret key")
    program = os.path.join(state_dir, "signing-gpg")
    with open(program, "w", encoding="utf-8") as f:
        f.write(f"#!/bin/sh\nGNUPGHOME='{home}' exec gpg --batch --no-tty \"$@\"\n")
    os.chmod(program, 0o700)
    return {"format": "openpgp", "key": fprs[0], "program": program}


def check_signing_key(path: str, verify_gpg: bool, verify_ssh: bool) -> str | None:
    """Why ``--signing-key PATH`` cannot sign (None: it can), checked before the daemon starts."""
    try:
        fmt = key_format(path, verify_gpg, verify_ssh)
    except OSError as e:
        return f"--signing-key {path}: {e.strerror}"
    if fmt == "ssh":
        p = _run(["ssh-keygen", "-y", "-P", "", "-f", path])
        why = p.stderr.decode(errors="replace").strip()
        return None if p.returncode == 0 else f"--signing-key {path}: not an SSH key without a passphrase ({why})"
    with tempfile.TemporaryDirectory(prefix="gitship-key-") as d:
        try:
            _openpgp_signing(path, d)
        except GitshipError as e:
            return str(e)
        finally:
            _run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": os.path.join(d, "signing-gnupg")})
    return None


def prepare_signing(
    state_dir: str, signing_key: str | None, required: bool, verify_gpg: bool = False
) -> dict[str, Any]:
    """Write ``<state-dir>/signing.json``: how gitship signs its commits, or that it must refuse them."""
    info: dict[str, Any] = {"required": required}
    if signing_key:
        key = os.path.abspath(signing_key)
        fmt = key_format(key, verify_gpg, required and not verify_gpg)
        info.update(_openpgp_signing(key, state_dir) if fmt == "openpgp" else {"format": "ssh", "key": key})
    path = os.path.join(state_dir, SIGNING_FILE)
    if not signing_key and not required:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return info
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.replace(tmp, path)
    return info


REFUSAL = (
    "gitship only applies signed commits here (gitship up --verify-signatures / --verify-gpg) but no "
    "--signing-key was given: it will not make a commit it would then refuse to apply"
)


def signing_options(info: dict[str, Any] | None) -> tuple[tuple[str, ...], str | None]:
    """The ``-c`` options that sign a commit, and why commits are refused (None: they are not)."""
    if not info:
        return (), None
    fmt, key = info.get("format"), info.get("key")
    if not key:
        return (), REFUSAL if info.get("required") else None
    if fmt == "ssh":
        return ("gpg.format=ssh", f"user.signingkey={key}", "commit.gpgsign=true"), None
    return (
        "gpg.format=openpgp",
        f"gpg.program={info['program']}",
        f"user.signingkey={key}",
        "commit.gpgsign=true",
    ), None


def sign_commits(writer: W, state_dir: str) -> W:
    """The writer, set to sign every commit as ``<state-dir>/signing.json`` says (the daemon wrote it)."""
    try:
        with open(os.path.join(state_dir, SIGNING_FILE), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return writer
    writer.commit_config, writer.refuse_commits = signing_options(info)
    return writer


def signed_writer(repo_dir: str, path: str, branch: str, remote: bool, state_dir: str) -> Any:
    """The daemon's RepoWriter (``origin`` when the source is a URL), signing as ``sign_commits`` says."""
    from reconciler.gitops import RepoWriter

    return sign_commits(RepoWriter(repo_dir, path, branch, "origin" if remote else None), state_dir)


def ssh_key_allowed(signing_key: str, allowed_signers: str) -> bool:
    """Whether the signing key's public key appears in the allowed-signers file."""
    p = _run(["ssh-keygen", "-y", "-f", signing_key])
    parts = p.stdout.decode(errors="replace").split()
    if p.returncode != 0 or len(parts) < 2:
        return False
    with open(allowed_signers, encoding="utf-8", errors="replace") as f:
        return parts[1] in f.read()


def start_verification(d: Any) -> None:
    """Daemon start: the gate in front of the applier and the signing of gitship's own commits
    (``d`` is the Daemon: its opts, state_dir, repo_dir, store, applier and log)."""
    o = d.opts
    allowed, keyring = getattr(o, "verify_signatures", None), getattr(o, "verify_gpg", None)
    key = getattr(o, "signing_key", None)
    required = bool(allowed or keyring)
    info = prepare_signing(d.state_dir, key, required, bool(keyring))
    if not required:
        return
    verifier = CommitVerifier(d.repo_dir, d.state_dir, allowed, keyring)
    d.applier.verify = VerificationGate(verifier, d.store, d.applier.set_ready, d.log)
    d.log.info("commit_verification", allowed_signers=allowed, gpg_keyring=keyring, signing=info.get("format"))
    if not key:
        d.log.warning("commit_signing_off", hint="no --signing-key: gitship refuses to make commits")
    elif info.get("format") == "ssh" and allowed and not ssh_key_allowed(key, allowed):
        d.log.warning(
            "signing_key_not_allowed", key=key, allowed_signers=allowed, hint="gitship's commits would be refused"
        )
