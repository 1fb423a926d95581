"""`gitship logs`, `gitship exec` and `gitship delete pod`: actions on running pods, through the daemon's API socket."""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from typing import Any

from reconciler.cli.namespaces import delete_namespaces
from reconciler.cli.common import Subparsers, api, die, get_pod, kind_of, nudge, writer
from reconciler.cli.jobs import delete_jobs, pod_of
from reconciler.getprint import kind_group


def _follow_content(args: argparse.Namespace, path: str, info: dict[str, Any]) -> int:
    """The runtime keeps the logs itself (Docker): follow by asking again for what is new."""
    shown = b""
    while True:
        data = base64.b64decode(info["content"])
        new = data[len(shown) :] if data.startswith(shown) else data
        sys.stdout.buffer.write(new)
        sys.stdout.flush()
        shown = data
        if not args.follow:
            return 0
        time.sleep(0.5)
        info = api(args, "GET", path)


def _follow_file(args: argparse.Namespace, path: str) -> int:
    """The runtime writes the log to a file on this machine (in-process): read it, then wait for more."""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                continue
            if not args.follow:
                return 0
            time.sleep(0.2)


def cmd_logs(args: argparse.Namespace) -> int:
    args.pod = pod_of(args, args.pod)  # pod/NAME, job/NAME (cli/jobs.py)
    get_pod(args, args.pod)
    q = f"?container={args.container}" if args.container else ""
    url = f"/v1/namespaces/{args.namespace}/pods/{args.pod}/log{q}"
    info = api(args, "GET", url)
    if info.get("content") is not None:
        return _follow_content(args, url, info)
    path = info.get("path")
    if not path or not os.path.exists(path):
        return 0
    return _follow_file(args, path)


def add_logs(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("logs", parents=[common])
    s.add_argument("pod")
    s.add_argument("-c", "--container")
    s.add_argument("-f", "--follow", action="store_true")
    s.set_defaults(func=cmd_logs)


def cmd_delete(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    if kind == "Job":  # a CronJob's Job is not in git (cli/jobs.py)
        return delete_jobs(args)
    if kind != "Pod":
        return delete_from_git(args, kind)
    for name in args.names:
        get_pod(args, name)
        body = {} if args.grace_period is None else {"gracePeriodSeconds": args.grace_period}
        api(args, "POST", f"/v1/namespaces/{args.namespace}/pods/{name}/delete", body)
        print(f'pod "{name}" deleted')
    return 0


def delete_from_git(args: argparse.Namespace, kind: str) -> int:
    """Any other kind: desired state lives in git, so each object's document is removed in a commit."""
    if kind == "Namespace":  # with everything in it (cli/namespaces.py)
        return delete_namespaces(args)
    for name in args.names:
        sha = writer(args).delete(kind, args.namespace, name)
        print(f'{kind_group(kind)} "{name}" deleted (commit {sha[:7]})')
    nudge(args)
    return 0


def add_delete(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("delete", parents=[common])
    s.add_argument("kind")
    s.add_argument("names", nargs="+")
    s.add_argument("--grace-period", type=float)
    s.set_defaults(func=cmd_delete)


def cmd_exec(args: argparse.Namespace) -> int:
    if not args.command:
        die("you must specify at least one command for the container (gitship exec POD -- CMD ...)")
    get_pod(args, args.pod)
    res = api(
        args,
        "POST",
        f"/v1/namespaces/{args.namespace}/pods/{args.pod}/exec",
        {"container": args.container, "command": args.command},
    )
    sys.stdout.buffer.write(base64.b64decode(res["stdout"]))
    sys.stderr.buffer.write(base64.b64decode(res["stderr"]))
    return int(res["exitCode"])


def add_exec(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("exec", parents=[common])
    s.add_argument("pod")
    s.add_argument("-c", "--container")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_exec)
