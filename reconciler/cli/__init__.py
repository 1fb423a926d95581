"""The `gitship` command: argument parsing and printing only, one module per command group.

    common    kinds, the state dir, the store, the API socket, the repository writer
    up        init, up, status                      (a repository, the daemon, its state)
    get       get, describe                         (objects, from the store)
    pods      logs, exec, delete pod                (running pods, through the API socket)
    edit      label, create, apply, set image, scale (desired state: one git commit each)
    journal   events, history, diff                 (the reconcile log, applied revisions, what would change)
    rollout   rollout status|history|pause|resume|undo
    namespaces  -n / -A, kubectl's NotFound messages, create/apply -f's namespace, delete namespace

Where it sits: a thin client. Reads come from the store (read-only SQLite); actions on what runs
(delete, exec, logs) go to the daemon's API socket; changes of desired state are git commits made
through gitops.RepoWriter. Decisions (rollout status, revisions, undo, plans) stay in the pure
modules; kubectl's tables are reconciler/printers.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from reconciler.cli import approve, dashboard, edit, get, journal, plan, pods, rollout, service, up
from reconciler.cli.common import (
    KINDS,
    PLURAL,
    Subparsers,
    api,
    die,
    kind_of,
    nudge,
    open_store,
    remember_args,
    state_dir,
    writer,
)
from reconciler.cli.namespaces import options_before_command, settle_namespace
from reconciler.cli.up import template_dir
from reconciler.errors import GitshipError

__all__ = [
    "KINDS",
    "PLURAL",
    "api",
    "build_parser",
    "die",
    "kind_of",
    "main",
    "nudge",
    "open_store",
    "state_dir",
    "template_dir",
    "writer",
]

# The subcommands in the order `gitship --help` lists them; each adds its parser and its handler.
COMMANDS: list[Callable[[Subparsers, argparse.ArgumentParser], None]] = [
    up.add_init,
    up.add_up,
    up.add_status,
    get.add_get,
    get.add_describe,
    pods.add_logs,
    pods.add_delete,
    pods.add_exec,
    edit.add_label,
    edit.add_create_apply,
    journal.add_events,
    journal.add_diff,
    journal.add_history,
    rollout.add_rollout,
    edit.add_set,
    edit.add_scale,
    service.add_service,
    dashboard.add_dashboard,
    plan.add_plan,
    plan.add_validate,
    approve.add_approve,
]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="gitship's state dir (env GITSHIP_STATE_DIR; default ~/.gitship)")
    common.add_argument("-n", "--namespace", help="the namespace (default: default)")
    p = argparse.ArgumentParser(prog="gitship", description="Declarative GitOps for one machine.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for add in COMMANDS:
        add(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options_before_command(args)  # exec POD -n NS -c C -- CMD: the options argparse's remainder took
    settle_namespace(args)  # -n given or not (create/apply -f), "default" when not
    remember_args(args)  # kind_of looks custom kinds up in this command's store
    try:
        return int(args.func(args) or 0)
    except GitshipError as e:  # NotFound is one
        die(str(e))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
