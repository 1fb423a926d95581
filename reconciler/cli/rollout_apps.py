"""`gitship rollout status|history|undo statefulset|daemonset NAME` (kubectl's polymorphichelpers for
these kinds; the pure part is reconciler/controllers/apps_rollout.py). Undo is a commit, made by
reconciler/undo.py as for Deployments: a git revert of the commit that brought the current
revision's template when that is all it changed, else a commit of the target's template.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from reconciler import printers
from reconciler.cli.common import PLURAL, die, nudge, open_store, writer
from reconciler.controllers import apps_rollout
from reconciler.types import Obj


def _load(args: argparse.Namespace, kind: str) -> tuple[Obj, list[tuple[int, Obj]]]:
    store = open_store(args)
    obj = store.get(kind, args.namespace, args.name)
    if obj is None:
        die(f'{PLURAL[kind]} "{args.name}" not found')
    revs = apps_rollout.revisions(obj, store.cluster("ControllerRevision", args.namespace))
    return obj, revs


def _ref(kind: str, name: str) -> str:
    return f"{kind.lower()}.apps/{name}"


class Helpers(NamedTuple):
    """What cli/rollout.py lends (it imports this module, not the other way round)."""

    branch_head: Callable[[argparse.Namespace], str | None]
    printer: Callable[[], Any]  # an object with show(msg): prints a message once
    change_cause: Callable[[Obj], str]


def status(args: argparse.Namespace, kind: str, h: Helpers) -> int:
    deadline = time.monotonic() + args.timeout if args.timeout else None
    out = h.printer()
    watch = str(args.watch).lower() not in ("false", "0", "no")
    head = h.branch_head(args)
    while True:
        store = open_store(args)
        obj = store.get(kind, args.namespace, args.name)
        attempted = store.get_meta("lastAttemptedRevision")
        store.close()
        if watch and head and attempted != head:
            out.show(f"Waiting for gitship to apply revision {head[:7]}...")
        else:
            if obj is None:
                die(f'{PLURAL[kind]} "{args.name}" not found')
            try:
                msg, done = apps_rollout.rollout_status(obj)
            except apps_rollout.RolloutError as e:
                die(str(e))
            out.show(msg)
            if done or not watch:
                return 0
        if deadline and time.monotonic() > deadline:
            die("timed out waiting for the condition")
        time.sleep(0.1)


def history(args: argparse.Namespace, kind: str, h: Helpers) -> int:
    import yaml

    _, revs = _load(args, kind)
    if args.revision:
        for n, view in revs:
            if n == args.revision:
                print(f"{_ref(kind, args.name)} with revision #{n}")
                print(yaml.safe_dump(view["spec"]["template"], sort_keys=False).rstrip())
                return 0
        die(f"unable to find the specified revision {args.revision}")
    if not revs:
        print("No rollout history found.")
        return 0
    print(_ref(kind, args.name))
    print(printers.table(["REVISION", "CHANGE-CAUSE"], [[str(n), h.change_cause(v)] for n, v in revs]))
    return 0


def undo(args: argparse.Namespace, kind: str, h: Helpers) -> int:
    from reconciler.controllers.deployment import equal_ignore_hash
    from reconciler.undo import undo_commit

    obj, revs = _load(args, kind)
    if args.to_revision < 0:
        die(f"unable to find specified revision {args.to_revision} in history")
    if args.to_revision == 0:
        if len(revs) < 2:
            die(f"no rollout history found for {kind.lower()} {args.name}")
        target = revs[-2]
    else:
        match = [r for r in revs if r[0] == args.to_revision]
        if not match:
            die(f"unable to find specified revision {args.to_revision} in history")
        target = match[0]
    if equal_ignore_hash(target[1]["spec"]["template"], obj["spec"]["template"]):
        print(f"{_ref(kind, args.name)} skipped rollback (current template already matches revision {target[0]})")
        return 0
    sha, how = undo_commit(writer(args), obj, revs[-1], target)
    nudge(args)
    print(f"{_ref(kind, args.name)} rolled back ({how} {sha[:7]})")
    return 0


def run(args: argparse.Namespace, kind: str, h: Helpers) -> int:
    actions = {"status": status, "history": history, "undo": undo}
    action = actions.get(args.action)
    if action is None:
        die(f"rollout {args.action} supports deployments only")
    return action(args, kind, h)
