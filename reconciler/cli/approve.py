"""`gitship approve [REV]`: let a held revision prune what it prunes (reconciler/ops/prune.py).

The approval is recorded in the store (meta ``pruneApprovals``), whether or not the daemon runs; a
running daemon is nudged and applies the revision at once when it is the held one (or the next time
it meets it). Without REV: the revision held now.
"""

from __future__ import annotations

import argparse
import os

from reconciler.cli.common import Subparsers, die, nudge, state_dir


def held_revisions(meta: dict[str, object]) -> dict[str, str]:
    """Held revisions by the meta key that holds them (one per source): key -> sha."""
    out = {}
    for key, value in meta.items():
        if key.endswith("pruneHeld") and isinstance(value, dict) and value.get("sha"):
            out[key] = str(value["sha"])
    return out


def cmd_approve(args: argparse.Namespace) -> int:
    from reconciler.ops.prune import approve
    from reconciler.source.git import git
    from reconciler.store import Store, db_path

    sd = state_dir(args)
    if not os.path.exists(db_path(sd)):
        die(f"no gitship state in {sd} (has `gitship up` run with this --state-dir?)")
    store = Store(sd)
    try:
        rows = store.db.execute("SELECT key FROM meta WHERE key LIKE '%pruneHeld'").fetchall()
        held = held_revisions({k: store.get_meta(k) for (k,) in rows})
        if args.rev:
            repo = (store.get_meta("source") or {}).get("repoDir") or "."
            sha = next((s for s in held.values() if s.startswith(args.rev)), "")
            if not sha:
                try:
                    sha = git(repo, "rev-parse", "--verify", "--quiet", f"{args.rev}^{{commit}}").decode().strip()
                except Exception:
                    die(f"unknown revision {args.rev!r} (not held, and not in {repo})")
        elif len(set(held.values())) == 1:
            sha = next(iter(held.values()))
        elif not held:
            die("no revision is held; name one: gitship approve REV")
        else:
            die(f"several revisions are held ({', '.join(s[:7] for s in sorted(set(held.values())))}): name one")
        approve(store, sha)
        is_held = sha in held.values()
    finally:
        store.close()
    nudge(args)
    print(
        f"approved {sha if sha.startswith('source:') else sha[:7]}: it may prune"
        + (" (it was held; the daemon applies it now)" if is_held else "")
    )
    return 0


def add_approve(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("approve", parents=[common], help="let a revision held by safe pruning delete what it deletes")
    s.add_argument("rev", nargs="?", help="the revision (default: the one held now)")
    s.set_defaults(func=cmd_approve)
