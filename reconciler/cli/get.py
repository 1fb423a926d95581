"""`gitship get` and `gitship describe`: objects as the store holds them, printed as kubectl does."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from reconciler import printers
from reconciler.cli.common import PLURAL, Subparsers, die, kind_of, open_store, select


def cmd_get(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    store = open_store(args)
    ns = None if args.all_namespaces else args.namespace
    objs = store.cluster(kind, ns)
    if args.name:
        objs = [o for o in objs if o["metadata"]["name"] == args.name]
        if not objs:
            die(f'{PLURAL[kind]} "{args.name}" not found')
    objs = select(objs, args.selector)
    if args.output in ("json", "yaml"):
        payload = objs[0] if args.name else printers.as_list(objs)
        print(printers.dump(payload, args.output))
        return 0
    if not objs:
        where = "any namespace" if args.all_namespaces else f"{args.namespace} namespace"
        print(f"No resources found in {where}.", file=sys.stderr)
        return 0
    print(printers.rows_for(kind, objs, time.time(), args.output == "wide", args.show_labels, args.all_namespaces))
    return 0


def add_get(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("get", parents=[common])
    s.add_argument("kind")
    s.add_argument("name", nargs="?")
    s.add_argument("-l", "--selector")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("-o", "--output", choices=["wide", "json", "yaml"])
    s.add_argument("--show-labels", action="store_true")
    s.set_defaults(func=cmd_get)


def cmd_describe(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    store = open_store(args)
    obj = store.get(kind, args.namespace, args.name)
    if obj is None:
        die(f'{PLURAL[kind]} "{args.name}" not found')
    events = store.events(kind, args.namespace, args.name, limit=50)
    extra: list[tuple[str, Any]] = []
    if kind == "Deployment":
        extra = printers.deployment_replicasets(obj, store.cluster("ReplicaSet", args.namespace))
    if kind == "Service":
        ep = store.get("Endpoints", args.namespace, args.name)
        extra.append(("Endpoints", printers.endpoints_text(ep) if ep else "<none>"))
    print(printers.describe(obj, events, time.time(), extra))
    return 0


def add_describe(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("describe", parents=[common])
    s.add_argument("kind")
    s.add_argument("name")
    s.set_defaults(func=cmd_describe)
