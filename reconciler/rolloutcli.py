"""`gitship rollout status|history|pause|resume|undo deployment NAME`.

Where it sits: CLI commands over the store (status, history) and over the
repository (pause, resume, undo are commits). Undo finds the commit that
introduced the current pod template (recorded on each ReplicaSet as
``gitship.io/commit``); when that commit changed nothing but this
Deployment's template and the revision before it is the target, it is a plain
``git revert``; otherwise gitship commits the target revision's template.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any

import yaml

from . import annotation_keys as keys
from .controllers import deployment as deployctl


def _cli() -> Any:
    from . import cli

    return cli


def _deploy_and_rss(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    cli = _cli()
    store = cli.open_store(args)
    dep = store.get("Deployment", args.namespace, args.name)
    if dep is None:
        cli.die(f'deployments.apps "{args.name}" not found')
    return dep, store.cluster("ReplicaSet", args.namespace), store


def run(args: argparse.Namespace) -> int:
    cli = _cli()
    if cli.kind_of(args.kind) != "Deployment":
        cli.die(f"rollout {args.action} supports deployments only")
    return {"status": status, "history": history, "pause": pause, "resume": resume, "undo": undo}[args.action](args)


def status(args: argparse.Namespace) -> int:
    cli = _cli()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    last = None
    watch = str(args.watch).lower() not in ("false", "0", "no")
    head = _branch_head(args)
    while True:
        store = cli.open_store(args)
        dep = store.get("Deployment", args.namespace, args.name)
        attempted = store.get_meta("lastAttemptedRevision")
        store.close()
        if watch and head and attempted != head:
            # a commit made a moment ago (set image, undo...) is not applied yet: like kubectl's
            # "spec update to be observed", wait for it before judging the rollout
            msg = f"Waiting for gitship to apply revision {head[:7]}..."
            if msg != last:
                print(msg, flush=True)
                last = msg
            if deadline and time.monotonic() > deadline:
                cli.die("timed out waiting for the condition")
            time.sleep(0.1)
            continue
        if dep is None:
            cli.die(f'deployments.apps "{args.name}" not found')
        if args.revision:
            rev = (dep["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
            if rev and int(rev) != args.revision:
                cli.die(f"desired revision ({args.revision}) is different from the running revision ({rev})")
        msg, done, failed = deployctl.rollout_status(dep)
        if failed:
            cli.die(msg)
        if msg != last:
            print(msg, flush=True)
            last = msg
        if done or not watch:
            return 0
        if deadline and time.monotonic() > deadline:
            cli.die("timed out waiting for the condition")
        time.sleep(0.1)


def _branch_head(args: argparse.Namespace) -> str | None:
    """The tracked branch's head in gitship's repository, if it can be read."""
    from .errors import SourceError
    from .source.git import GitReader

    store = _cli().open_store(args)
    src = store.get_meta("source") or {}
    store.close()
    if not src.get("repoDir"):
        return None
    try:
        return GitReader(src["repoDir"]).resolve(f"refs/heads/{src.get('branch') or 'main'}")
    except SourceError:
        return None


def history(args: argparse.Namespace) -> int:
    cli = _cli()
    dep, rss, _ = _deploy_and_rss(args)
    revs = deployctl.revisions(dep, rss)
    if args.revision:
        for n, rs in revs:
            if n == args.revision:
                tmpl = copy.deepcopy(rs["spec"]["template"])
                print(f"deployment.apps/{args.name} with revision #{n}")
                print(yaml.safe_dump(tmpl, sort_keys=False).rstrip())
                return 0
        cli.die(f"unable to find the specified revision {args.revision}")
    if not revs:
        print("No rollout history found.")
        return 0
    print(f"deployment.apps/{args.name}")
    rows = [[str(n), change_cause(rs)] for n, rs in revs]
    print(cli.printers.table(["REVISION", "CHANGE-CAUSE"], rows))
    return 0


def change_cause(rs: dict[str, Any]) -> str:
    ann = rs["metadata"].get("annotations") or {}
    return ann.get(keys.KUBERNETES_CHANGE_CAUSE) or ann.get(keys.CHANGE_CAUSE) or "<none>"


def pause(args: argparse.Namespace) -> int:
    cli = _cli()
    dep, _, _ = _deploy_and_rss(args)
    if dep["spec"].get("paused"):
        print(f"deployment.apps/{args.name} is already paused")
        return 0
    sha = cli.writer(args).set_paused("Deployment", args.namespace, args.name, True)
    cli.nudge(args)
    print(f"deployment.apps/{args.name} paused (commit {sha[:7]})")
    return 0


def resume(args: argparse.Namespace) -> int:
    cli = _cli()
    dep, _, _ = _deploy_and_rss(args)
    if not dep["spec"].get("paused"):
        print(f"deployment.apps/{args.name} is not paused")
        return 0
    sha = cli.writer(args).set_paused("Deployment", args.namespace, args.name, False)
    cli.nudge(args)
    print(f"deployment.apps/{args.name} resumed (commit {sha[:7]})")
    return 0


def undo(args: argparse.Namespace) -> int:
    cli = _cli()
    dep, rss, store = _deploy_and_rss(args)
    revs = deployctl.revisions(dep, rss)
    if args.to_revision < 0:
        cli.die(f"unable to find specified revision {args.to_revision} in history")
    if args.to_revision == 0:
        if len(revs) < 2:
            cli.die("no rollout history found for deployment " + args.name)
        target_n, target = revs[-2]
    else:
        match = [r for r in revs if r[0] == args.to_revision]
        if not match:
            cli.die(
                f"unable to find specified revision {args.to_revision} in history"
                + (f" (kept: {', '.join(str(n) for n, _ in revs)})" if revs else "")
            )
        target_n, target = match[0]
    if dep["spec"].get("paused"):
        cli.die(
            f"you cannot rollback a paused deployment; resume it first with "
            f"'gitship rollout resume deployment/{args.name}' and try again"
        )
    if deployctl.equal_ignore_hash(target["spec"]["template"], dep["spec"]["template"]):
        print(f"deployment.apps/{args.name} skipped rollback (current template already matches revision {target_n})")
        return 0
    from .undo import undo_commit

    sha, how = undo_commit(cli.writer(args), dep, revs[-1], (target_n, target))
    cli.nudge(args)
    print(f"deployment.apps/{args.name} rolled back ({how} {sha[:7]})")
    return 0


if __name__ == "__main__":
    sys.exit(0)
