"""`gitship get` and `gitship describe`: objects as the store holds them, printed as kubectl does.

`get` takes kubectl's arguments: ``TYPE[,TYPE...] [NAME...]`` (``all`` is kubectl's category) or
``TYPE/NAME...``; ``-o wide|json|yaml|name|jsonpath=...|jsonpath-file=...|jsonpath-as-json=...|
custom-columns=...|custom-columns-file=...``, ``--show-labels``, ``-L KEY``, ``--sort-by``, ``-w`` and
``--watch-only``. The printing itself is reconciler/printers.py, getprint.py and jsonpath.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from reconciler import getprint, printers
from reconciler.cli.common import PLURAL, Subparsers, die, kind_of, open_store, select
from reconciler.cli.namespaces import add_all_namespaces, not_found
from reconciler.kindnames import cluster_scoped
from reconciler.cli.watch import watch
from reconciler.jsonpath import JSONPathError, Template
from reconciler.manifests.model import CLUSTER_SCOPED
from reconciler.printers import MIN_CELL, TableOptions
from reconciler.printers_ingress import ingress_rules
from reconciler.printers_storage import pods_using
from reconciler.types import Obj

# -o values that are a table of kubectl's own columns; the others print objects whole or by a template
HUMAN = (None, "wide")
PLAIN = ("json", "yaml", "name")
TEMPLATED = ("jsonpath", "jsonpath-file", "jsonpath-as-json", "custom-columns", "custom-columns-file")


@dataclass(frozen=True)
class Target:
    """One kind to list, and the names asked for (none: every object of the kind)."""

    kind: str
    names: tuple[str, ...] = ()


def _kinds(word: str) -> list[str]:
    kinds: list[str] = []
    for w in word.split(","):
        for k in [k for k in getprint.ALL if k in PLURAL] if w.lower() == "all" else [kind_of(w)]:
            if k not in kinds:
                kinds.append(k)
    return kinds


def targets(words: list[str]) -> list[Target]:
    """kubectl's resource arguments: ``TYPE[,TYPE...] [NAME...]`` or ``TYPE/NAME...``."""
    if "/" not in words[0]:
        if any("/" in w for w in words[1:]):
            die(
                "there is no need to specify a resource type as a separate argument when passing arguments in "
                "resource/name form (e.g. 'gitship get resource/<resource_name>' instead of "
                "'gitship get resource resource/<resource_name>')"
            )
        return [Target(k, tuple(words[1:])) for k in _kinds(words[0])]
    out: list[Target] = []
    for w in words:
        kind, _, name = w.partition("/")
        if not name or "," in kind or "/" in name:
            die("arguments in resource/name form must have a single resource and name")
        out.append(Target(kind_of(kind), (name,)))
    return out


def output_format(output: str | None) -> tuple[str | None, str]:
    """-o as (format, template): ``jsonpath={.x}`` is ("jsonpath", "{.x}")."""
    if output in HUMAN or output in PLAIN:
        return output, ""
    fmt, sep, template = (output or "").partition("=")
    if fmt not in TEMPLATED or not sep:
        allowed = ", ".join(f for f in (*PLAIN, *TEMPLATED, "wide") if f)
        die(f'unable to match a printer suitable for the output format "{output}", allowed formats are: {allowed}')
    if not template:
        die("template format specified but no template given")
    if fmt.endswith("-file"):
        try:
            with open(template, encoding="utf-8") as f:
                template = f.read()
        except OSError as e:
            die(f"error reading --template {template}, {e}")
    return fmt, template


def collect(args: argparse.Namespace, wanted: list[Target]) -> tuple[list[tuple[str, Obj]], list[str]]:
    """The objects asked for, kind by kind in the order asked, and a not-found message per missing name."""
    store = open_store(args)
    ns = None if args.all_namespaces else args.namespace
    items: list[tuple[str, Obj]] = []
    missing: list[str] = []
    for t in wanted:
        objs = store.cluster(t.kind, None if cluster_scoped(t.kind) else ns)
        if t.names:
            found = [[o for o in objs if o["metadata"]["name"] == n] for n in t.names]
            missing += [f'{PLURAL[t.kind]} "{n}" not found' for n, f in zip(t.names, found) if not f]
            objs = [o for f in found for o in f]
        items += [(t.kind, o) for o in select(objs, args.selector)]
    return items, missing


def sort_items(items: list[tuple[str, Obj]], field: str) -> list[tuple[str, Obj]]:
    kind_of_obj = {id(o): k for k, o in items}
    try:
        return [(kind_of_obj[id(o)], o) for o in getprint.sort_objects([o for _, o in items], field)]
    except JSONPathError as e:
        die(str(e))


def table_options(args: argparse.Namespace) -> TableOptions:
    labels = tuple(k.strip() for arg in args.label_columns or [] for k in arg.split(",") if k.strip())
    return TableOptions(args.output == "wide", args.show_labels, args.all_namespaces, labels)


def template_printer(fmt: str, template: str, allow_missing: bool) -> Any:
    """The parsed template of a templated -o: a Template, or custom-columns' (header, Template) pairs."""
    try:
        if fmt == "custom-columns":
            return getprint.custom_columns(template)
        if fmt == "custom-columns-file":
            lines = template.splitlines()
            if len(lines) < 2 or len(lines[0].split()) != len(lines[1].split()):
                die("invalid template, expected one line of space separated headers, one of column specs")
            return getprint.custom_columns(",".join(f"{h}:{p}" for h, p in zip(lines[0].split(), lines[1].split())))
        return Template(template, allow_missing)
    except JSONPathError as e:
        die(f"error parsing jsonpath {template}, {e}" if fmt.startswith("jsonpath") else str(e))


def render_objects(fmt: str, parsed: Any, payload: Obj, objs: list[Obj], template: str) -> str:
    """The output of a non-table -o: the payload (an object or a List) printed whole, by name or by template."""
    if fmt in ("json", "yaml"):
        return printers.dump(payload, fmt) + "\n"
    if fmt == "name":
        return "".join(getprint.resource_name(o) + "\n" for o in objs)
    if fmt.startswith("custom-columns"):
        rows = [[h for h, _ in parsed], *getprint.custom_rows(parsed, objs)]
        return "\n".join(printers.table_lines(rows, printers.column_widths(rows, min_cell=MIN_CELL))) + "\n"
    try:
        text: str = parsed.render(payload, as_json=fmt == "jsonpath-as-json")
    except JSONPathError as e:
        die(f'error executing jsonpath "{template}": {e}')
    return text


def check_flags(args: argparse.Namespace, fmt: str | None) -> None:
    if fmt not in HUMAN:
        if args.show_labels:
            die(f"--show-labels option cannot be used with {fmt} printer")
        if args.label_columns:
            die(f"--label-columns option cannot be used with {fmt} printer")


def cmd_get(args: argparse.Namespace) -> int:
    wanted = targets(args.args)
    fmt, template = output_format(args.output)
    check_flags(args, fmt)
    parsed = template_printer(fmt, template, args.allow_missing_template_keys) if fmt in TEMPLATED else None
    if args.watch or args.watch_only:
        if len(wanted) != 1:
            die("you may only specify a single resource type")
        return watch(args, wanted[0].kind, wanted[0].names, (fmt, parsed, table_options(args)), render_objects)
    items, missing = collect(args, wanted)
    if not args.show_managed_fields:
        items = [(k, getprint.without_managed_fields(o)) for k, o in items]
    if args.sort_by:
        items = sort_items(items, args.sort_by)
    objs = [o for _, o in items]
    if fmt in HUMAN:
        if items:
            print(getprint.get_tables(items, time.time(), table_options(args)))
        elif not missing:
            if all(t.kind in CLUSTER_SCOPED for t in wanted):
                print("No resources found", file=sys.stderr)
            else:
                where = "any namespace" if args.all_namespaces else f"{args.namespace} namespace"
                print(f"No resources found in {where}.", file=sys.stderr)
    elif objs or not missing:
        single = len(wanted) == 1 and len(wanted[0].names) == 1
        payload = objs[0] if single and objs else printers.as_list(objs)
        sys.stdout.write(render_objects(str(fmt), parsed, payload, objs, template))
    for m in missing:
        print(f"Error from server (NotFound): {m}", file=sys.stderr)
    return 1 if missing else 0


def add_get(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("get", parents=[common])
    s.add_argument("args", nargs="+", metavar="TYPE[,TYPE...] [NAME...] | TYPE/NAME")
    s.add_argument("-l", "--selector")
    add_all_namespaces(s)
    s.add_argument("-o", "--output", help="wide, json, yaml, name, jsonpath=..., jsonpath-file=..., custom-columns=...")
    s.add_argument("--show-labels", action="store_true", help="a LABELS column, last")
    s.add_argument("--show-managed-fields", action="store_true", help="keep metadata.managedFields in -o json|yaml")
    s.add_argument("-L", "--label-columns", action="append", metavar="KEY[,KEY...]", help="a column per label key")
    s.add_argument("--sort-by", metavar="JSONPATH", help="sort by this field, e.g. '{.metadata.name}'")
    s.add_argument("-w", "--watch", action="store_true", help="after listing, print each change")
    s.add_argument("--watch-only", action="store_true", help="print each change, without listing first")
    s.add_argument(
        "--allow-missing-template-keys",
        type=lambda v: v.lower() in ("true", "1", "yes"),
        default=True,
        metavar="BOOL",
        help="a missing key prints nothing rather than failing (default true)",
    )
    s.set_defaults(func=cmd_get)


def describe_page(store: Any, kind: str, obj: Obj) -> str:
    """One object's describe page, with the related objects of its namespace."""
    ns, name = obj["metadata"].get("namespace") or "", obj["metadata"]["name"]
    events = store.events(kind, ns, name, limit=50)
    extra: list[tuple[str, Any]] = []
    if kind == "Deployment":
        extra = printers.deployment_replicasets(obj, store.cluster("ReplicaSet", ns))
    if kind == "Service":
        ep = store.get("Endpoints", ns, name)
        extra.append(("Endpoints", printers.endpoints_text(ep) if ep else "<none>"))
    if kind == "PersistentVolumeClaim":
        extra.append(("Used By", pods_using(obj, store.cluster("Pod", ns))))
    if kind == "Ingress":
        extra.append(("Rules", ingress_rules(obj, *(store.cluster(k, ns) for k in ("Service", "Endpoints")))))
    return printers.describe(obj, events, time.time(), extra)


def cmd_describe(args: argparse.Namespace) -> int:
    """describe KIND NAME, or every KIND of the namespace (-A: of every namespace; -l: those selected)."""
    kind = kind_of(args.kind)
    store = open_store(args)
    if args.name:
        obj = store.get(kind, "" if cluster_scoped(kind) else args.namespace, args.name)
        if obj is None:
            not_found(PLURAL[kind], args.name)
        objs = [obj]
    else:
        ns = None if args.all_namespaces or cluster_scoped(kind) else args.namespace
        objs = select(store.cluster(kind, ns), args.selector)
        if not objs:
            where = "" if cluster_scoped(kind) else " in any namespace" if ns is None else f" in {ns} namespace"
            print(f"No resources found{where}.", file=sys.stderr)
            return 0
    print("\n\n\n".join(describe_page(store, kind, o) for o in objs))
    return 0


def add_describe(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("describe", parents=[common])
    s.add_argument("kind")
    s.add_argument("name", nargs="?")
    s.add_argument("-l", "--selector")
    add_all_namespaces(s)
    s.set_defaults(func=cmd_describe)
