"""`gitship up`'s flags for metrics and webhooks (reconciler/ops/start.py), signed commits and notifications
(reconciler/ops/verify.py, notify.py). Light on purpose: every CLI command imports it through cli/up.py, so
the servers' libraries (aiohttp, prometheus-client) are imported only by the daemon."""

from __future__ import annotations

import argparse
import os
from typing import Any


DEFAULT_METRICS_ADDR = "127.0.0.1:9465"


def add_ops_options(s: argparse.ArgumentParser) -> None:
    """`gitship up`'s --metrics-addr, --webhook-addr and --webhook-secret-file."""
    s.add_argument(
        "--metrics-addr",
        default=DEFAULT_METRICS_ADDR,
        metavar="HOST:PORT",
        help=f"where Prometheus metrics are served (/metrics); `none` turns it off (default {DEFAULT_METRICS_ADDR})",
    )
    s.add_argument(
        "--webhook-addr",
        default="none",
        metavar="HOST:PORT",
        help="where push webhooks (GitHub, GitLab, Gitea/Forgejo, generic HMAC) are received; default none (off)",
    )
    s.add_argument("--webhook-secret-file", metavar="PATH", help="the webhooks' shared secret (required with them)")


def ops_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Options fields of those flags."""
    secret = args.webhook_secret_file
    return {
        "metrics_addr": args.metrics_addr,
        "webhook_addr": args.webhook_addr,
        "webhook_secret_file": os.path.abspath(secret) if secret else None,
    }


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
