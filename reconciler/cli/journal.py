"""`gitship events`, `gitship history` and `gitship diff`: what gitship did, and what it would do.

events reads the structured reconcile log; history the revisions the store recorded; diff compares
what is applied with a revision of the repository (exit 1 when they differ, like kubectl diff).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from reconciler import printers
from reconciler.cli.common import Subparsers, die, kind_of, open_store, state_dir
from reconciler.cli.namespaces import add_all_namespaces


def event_line(ev: dict[str, Any]) -> str:
    skip = {"timestamp", "level", "event"}
    rest = " ".join(f"{k}={v}" for k, v in ev.items() if k not in skip)
    return f"{ev.get('timestamp', '')} {ev.get('level', ''):7} {ev.get('event', ''):24} {rest}"


def event_filter(args: argparse.Namespace) -> Callable[[dict[str, Any]], bool]:
    """The log records --commit, --object and --level keep."""
    from reconciler.log import LEVELS

    want_kind = want_name = None
    if args.object:
        k, _, want_name = args.object.partition("/")
        want_kind = kind_of(k)
    min_level = LEVELS.get(args.level or "debug", 0)
    want_ns = args.namespace if args.namespace_given and not args.all_namespaces else None

    def keep(ev: dict[str, Any]) -> bool:
        if args.commit:
            c = str(ev.get("commit") or ev.get("sha") or ev.get("revision") or "")
            if not c or not (c.startswith(args.commit) or args.commit.startswith(c)):
                return False
        if want_kind and (ev.get("kind") != want_kind or ev.get("name") != want_name):
            return False
        if want_ns is not None and ev.get("namespace") not in (None, "", want_ns):
            return False  # -n NS: that namespace's records (and those of no namespace); -A or no -n: all
        return LEVELS.get(ev.get("level", "info"), 20) >= min_level

    return keep


def cmd_events(args: argparse.Namespace) -> int:
    from reconciler.log import LOG_FILE

    path = os.path.join(state_dir(args), LOG_FILE)
    if not os.path.exists(path):
        die(f"no reconcile log in {state_dir(args)}")
    keep = event_filter(args)
    with open(path, encoding="utf-8") as f:
        while True:
            line = f.readline()
            if not line:
                if not args.follow:
                    return 0
                time.sleep(0.2)
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if keep(ev):
                print(json.dumps(ev) if args.output == "json" else event_line(ev), flush=True)


def add_events(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("events", parents=[common], help="read the structured reconcile log")
    s.add_argument("--commit")
    s.add_argument("--object", help="KIND/NAME")
    s.add_argument("--level", choices=["debug", "info", "warning", "error"])
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-o", "--output", choices=["json"])
    add_all_namespaces(s)
    s.set_defaults(func=cmd_events)


def cmd_diff(args: argparse.Namespace) -> int:
    from reconciler.manifests.load import Limits
    from reconciler.plan import plan, render_diff
    from reconciler.source.git import GitReader
    from reconciler.source.revision import RevisionLoader

    from reconciler.cli.plan import source_state

    state = source_state(open_store(args), args.source)  # --source NAME: one of several (reconciler/sources)
    src = state.source
    reader = GitReader(src["repoDir"])
    sha = reader.resolve(args.rev or f"refs/heads/{src.get('branch')}")
    if not sha:
        die(f"unknown revision {args.rev}")
    loader = RevisionLoader(reader, src.get("path", ""), Limits())
    loader.namespaces = state.namespaces
    manifests, _ = loader.load(sha)
    out = render_diff(plan(state.applied or {}, {m.key: m.obj for m in manifests}))
    reader.close()
    sys.stdout.write(out)
    return 1 if out else 0


def add_diff(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    from reconciler.cli.plan import add_source_option

    s = sub.add_parser("diff", parents=[common])
    s.add_argument("rev", nargs="?")
    add_source_option(s)
    s.set_defaults(func=cmd_diff)


def history_row(r: dict[str, Any]) -> list[str]:
    """One applied revision as a `gitship history` row."""
    result = r["result"] + (f" (reverted by {r['revertedBy'][:7]})" if r.get("revertedBy") else "")
    changed = ", ".join(f"{c['op']} {c['kind'].lower()}/{c['name']}" for c in (r.get("changes") or [])) or "-"
    return [
        r["sha"][:7],
        r["author"],
        time.strftime("%Y-%m-%d %H:%M", time.localtime(r["time"] or 0)),
        (r["subject"] or "")[:50],
        result,
        changed if len(changed) < 60 else changed[:57] + "...",
    ]


def cmd_history(args: argparse.Namespace) -> int:
    store = open_store(args)
    revs = store.revisions(args.limit)
    if args.output == "json":
        print(json.dumps(printers.as_list(revs), indent=4))
        return 0
    rows = [history_row(r) for r in revs]
    print(printers.table(["REVISION", "AUTHOR", "TIME", "SUBJECT", "RESULT", "CHANGES"], rows))
    return 0


def add_history(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("history", parents=[common])
    s.add_argument("-o", "--output", choices=["json"])
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=cmd_history)
