"""`gitship up`'s flags for signed commits and notifications (reconciler/ops/verify.py, notify.py)."""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_up_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--verify-signatures",
        metavar="ALLOWED_SIGNERS",
        help="apply only a branch head signed with an SSH key of this allowed-signers file (ssh-keygen(1) "
        "ALLOWED SIGNERS); an unsigned or unknown-key head is refused (Ready False, VerificationFailed)",
    )
    s.add_argument(
        "--verify-gpg",
        metavar="KEYRING",
        help="apply only a branch head signed with an OpenPGP key of this keyring file (gpg --export); "
        "the user's own keyring never counts",
    )
    s.add_argument(
        "--signing-key",
        metavar="PATH",
        help="sign the commits gitship makes (edits, kubectl writes, rollbacks) with this key: an SSH private "
        "key, or an armored OpenPGP secret key; with verification on and no key, gitship refuses to commit",
    )
    s.add_argument(
        "--notify",
        metavar="URL",
        action="append",
        default=[],
        help="POST events (revision applied or rejected, rollout complete or failed, automatic rollback, "
        "source unreachable or recovered) to URL as JSON; slack+https://... sends Slack's incoming-webhook "
        "body (repeatable)",
    )


def up_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Options fields of these flags; files must exist (trust comes from outside the repository)."""
    from reconciler.cli.common import die
    from reconciler.ops.notify import parse_target

    out: dict[str, Any] = {}
    for flag in ("verify_signatures", "verify_gpg", "signing_key"):
        path = getattr(args, flag, None)
        if path and not os.path.isfile(path):
            die(f"--{flag.replace('_', '-')} {path}: no such file")
        out[flag] = os.path.abspath(path) if path else None
    for url in args.notify or ():
        try:
            parse_target(url)
        except ValueError as e:
            die(f"--notify: {e}")
    if out["signing_key"]:
        from reconciler.ops.verify import check_signing_key

        why = check_signing_key(out["signing_key"], bool(out["verify_gpg"]), bool(out["verify_signatures"]))
        if why:
            die(why)
    out["notify"] = tuple(args.notify or ())
    return out
