"""`gitship rollout status|history|pause|resume|undo deployment NAME`.

Where it sits: CLI commands over the store (status, history) and over the repository (pause,
resume, undo are commits). Undo finds the commit that introduced the current pod template
(recorded on each ReplicaSet as ``gitship.io/commit``); when that commit changed nothing but this
Deployment's template and the revision before it is the target, it is a plain ``git revert``;
otherwise gitship commits the target revision's template (reconciler/undo.py decides which).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

from reconciler import annotation_keys as keys
from reconciler import printers
from reconciler.cli.common import Subparsers, die, kind_of, nudge, open_store, source_meta, writer
from reconciler.cli.namespaces import not_found
from reconciler.types import Obj

# reconciler.controllers.deployment (rollout_status, revisions, equal_ignore_hash) is imported where
# it is used: every `gitship` command imports this module, and `get` is called in tight loops.


def _deploy_and_rss(args: argparse.Namespace) -> tuple[Obj, list[Obj]]:
    store = open_store(args)
    dep = store.get("Deployment", args.namespace, args.name)
    if dep is None:
        not_found("deployments.apps", args.name)
    return dep, store.cluster("ReplicaSet", args.namespace)


def cmd_rollout(args: argparse.Namespace) -> int:
    if args.name is None and "/" in args.kind:  # rollout status statefulset/web
        args.kind, _, args.name = args.kind.partition("/")
    if not args.name:
        die("resource(s) were provided, but no name was specified")
    if kind_of(args.kind) in ("StatefulSet", "DaemonSet"):
        from reconciler.cli.rollout_apps import Helpers, run

        return run(args, kind_of(args.kind), Helpers(_branch_head, _Printer, change_cause))
    if kind_of(args.kind) != "Deployment":
        die(f"rollout {args.action} supports deployments only")
    return ACTIONS[args.action](args)


def add_rollout(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("rollout", parents=[common])
    s.add_argument("action", choices=list(ACTIONS))
    s.add_argument("kind")
    s.add_argument("name", nargs="?")
    s.add_argument("--timeout", type=float, default=0)
    s.add_argument("--revision", type=int)
    s.add_argument("--to-revision", type=int, default=0)
    s.add_argument("-w", "--watch", default="true")
    s.set_defaults(func=cmd_rollout)


def _branch_head(args: argparse.Namespace) -> str | None:
    """The tracked branch's head in gitship's repository, if it can be read."""
    from reconciler.errors import SourceError
    from reconciler.source.git import GitReader

    src = source_meta(args)
    if not src.get("repoDir"):
        return None
    try:
        return GitReader(src["repoDir"]).resolve(f"refs/heads/{src.get('branch') or 'main'}")
    except SourceError:
        return None


class _Printer:
    """Prints a status message once, however often it is seen in a row."""

    def __init__(self) -> None:
        self.last: str | None = None

    def show(self, msg: str) -> None:
        if msg != self.last:
            print(msg, flush=True)
            self.last = msg


def _check_revision(args: argparse.Namespace, dep: Obj) -> None:
    """--revision: the rollout watched must be that revision's."""
    rev = (dep["metadata"].get("annotations") or {}).get(keys.REVISION)
    if rev and int(rev) != args.revision:
        die(f"desired revision ({args.revision}) is different from the running revision ({rev})")


def status(args: argparse.Namespace) -> int:
    from reconciler.controllers.deployment import rollout_status

    deadline = time.monotonic() + args.timeout if args.timeout else None
    out = _Printer()
    watch = str(args.watch).lower() not in ("false", "0", "no")
    head = _branch_head(args)
    while True:
        store = open_store(args)
        dep = store.get("Deployment", args.namespace, args.name)
        attempted = store.get_meta("lastAttemptedRevision")
        store.close()
        if watch and head and attempted != head:
            # a commit made a moment ago (set image, undo...) is not applied yet: like kubectl's
            # "spec update to be observed", wait for it before judging the rollout
            out.show(f"Waiting for gitship to apply revision {head[:7]}...")
        else:
            if dep is None:
                not_found("deployments.apps", args.name)
            if args.revision:
                _check_revision(args, dep)
            msg, done, failed = rollout_status(dep)
            if failed:
                die(msg)
            out.show(msg)
            if done or not watch:
                return 0
        if deadline and time.monotonic() > deadline:
            die("timed out waiting for the condition")
        time.sleep(0.1)


def history(args: argparse.Namespace) -> int:
    import yaml

    from reconciler.controllers.deployment import revisions

    dep, rss = _deploy_and_rss(args)
    revs = revisions(dep, rss)
    if args.revision:
        for n, rs in revs:
            if n == args.revision:
                tmpl = copy.deepcopy(rs["spec"]["template"])
                print(f"deployment.apps/{args.name} with revision #{n}")
                print(yaml.safe_dump(tmpl, sort_keys=False).rstrip())
                return 0
        die(f"unable to find the specified revision {args.revision}")
    if not revs:
        print("No rollout history found.")
        return 0
    print(f"deployment.apps/{args.name}")
    rows = [[str(n), change_cause(rs)] for n, rs in revs]
    print(printers.table(["REVISION", "CHANGE-CAUSE"], rows))
    return 0


def change_cause(rs: Obj) -> str:
    """rollout history's CHANGE-CAUSE: kubernetes.io/change-cause if set, else the commit gitship recorded."""
    ann = rs["metadata"].get("annotations") or {}
    cause: str = ann.get(keys.KUBERNETES_CHANGE_CAUSE) or ann.get(keys.CHANGE_CAUSE) or "<none>"
    return cause


def _set_paused(args: argparse.Namespace, paused: bool) -> int:
    dep, _ = _deploy_and_rss(args)
    if bool(dep["spec"].get("paused")) == paused:
        print(f"deployment.apps/{args.name} {'is already paused' if paused else 'is not paused'}")
        return 0
    sha = writer(args).set_paused("Deployment", args.namespace, args.name, paused)
    nudge(args)
    print(f"deployment.apps/{args.name} {'paused' if paused else 'resumed'} (commit {sha[:7]})")
    return 0


def pause(args: argparse.Namespace) -> int:
    return _set_paused(args, True)


def resume(args: argparse.Namespace) -> int:
    return _set_paused(args, False)


def _undo_target(args: argparse.Namespace, revs: list[tuple[int, Obj]]) -> tuple[int, Obj]:
    """--to-revision's (revision, ReplicaSet); 0 means the one before the current."""
    if args.to_revision < 0:
        die(f"unable to find specified revision {args.to_revision} in history")
    if args.to_revision == 0:
        if len(revs) < 2:
            die("no rollout history found for deployment " + args.name)
        return revs[-2]
    match = [r for r in revs if r[0] == args.to_revision]
    if not match:
        die(
            f"unable to find specified revision {args.to_revision} in history"
            + (f" (kept: {', '.join(str(n) for n, _ in revs)})" if revs else "")
        )
    return match[0]


def undo(args: argparse.Namespace) -> int:
    from reconciler.controllers.deployment import equal_ignore_hash, revisions

    dep, rss = _deploy_and_rss(args)
    revs = revisions(dep, rss)
    target_n, target = _undo_target(args, revs)
    if dep["spec"].get("paused"):
        die(
            f"you cannot rollback a paused deployment; resume it first with "
            f"'gitship rollout resume deployment/{args.name}' and try again"
        )
    if equal_ignore_hash(target["spec"]["template"], dep["spec"]["template"]):
        print(f"deployment.apps/{args.name} skipped rollback (current template already matches revision {target_n})")
        return 0
    from reconciler.undo import undo_commit

    sha, how = undo_commit(writer(args), dep, revs[-1], (target_n, target))
    nudge(args)
    print(f"deployment.apps/{args.name} rolled back ({how} {sha[:7]})")
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": status,
    "history": history,
    "pause": pause,
    "resume": resume,
    "undo": undo,
}
