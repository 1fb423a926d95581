"""`gitship label`, `create -f`, `apply -f`, `set image` and `scale`: each edit of desired state is one git commit.

The edits themselves are gitops.RepoWriter's; this module parses the arguments, checks them, and
tells the daemon to look at the repository now.
"""

from __future__ import annotations

import argparse
import os

from reconciler.cli.common import Subparsers, die, kind_of, nudge, writer


def parse_label_args(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """`key=value` sets a label, `key-` removes it (kubectl label's arguments)."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for item in items:
        if item.endswith("-") and "=" not in item:
            removes.append(item[:-1])
        elif "=" in item:
            k, _, v = item.partition("=")
            sets[k] = v
        else:
            die(f"invalid label spec: {item} (use key=value, or key- to remove)")
    return sets, removes


def cmd_label(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    sets, removes = parse_label_args(args.labels)
    from reconciler.selectors import validate_label_key, validate_label_value

    for k, v in sets.items():
        err = validate_label_key(k) or validate_label_value(v)
        if err:
            die(f"invalid label {k}={v}: {err}")
    sha = writer(args).set_labels(kind, args.namespace, args.name, sets, removes, args.overwrite)
    nudge(args)
    print(f"{kind.lower()}/{args.name} labeled (commit {sha[:7]})")
    return 0


def add_label(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("label", parents=[common])
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("labels", nargs="+")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_label)


def cmd_create_apply(args: argparse.Namespace) -> int:
    from reconciler.manifests.load import Limits, load_file

    if getattr(args, "resource", None):
        from reconciler.cli.secret import cmd_create_secret

        return cmd_create_secret(args)
    path = args.filename
    if not path:
        die("error: must specify one of -f, or `create secret generic NAME`")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die(f"cannot read {path}: {e.strerror}")
    manifests = load_file(os.path.basename(path), data, {}, Limits())
    w = writer(args)
    verb = "created" if args.cmd == "create" else "configured"
    sha = w.add_file(
        os.path.basename(path),
        data,
        overwrite=args.cmd == "apply",
        message=f"{args.cmd} -f {os.path.basename(path)}: "
        + ", ".join(f"{m.key[0].lower()}/{m.key[2]}" for m in manifests),
    )
    nudge(args)
    for m in manifests:
        print(f"{m.key[0].lower()}/{m.key[2]} {verb}")
    print(f"(commit {sha[:7]})")
    return 0


def add_create_apply(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    for verb in ("create", "apply"):
        s = sub.add_parser(verb, parents=[common])
        s.add_argument("-f", "--filename", required=verb == "apply")
        if verb == "create":  # create secret generic NAME ...: a SOPS-encrypted Secret (cli/secret.py)
            s.add_argument("resource", nargs="*", help="secret generic NAME")
            s.add_argument("--from-literal", action="append", metavar="KEY=VALUE")
            s.add_argument("--from-file", action="append", metavar="[KEY=]PATH")
            s.add_argument("--type", help="the Secret's type (default Opaque)")
        s.set_defaults(func=cmd_create_apply)


def cmd_set_image(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    images = {}
    for item in args.images:
        c, sep, img = item.partition("=")
        if not sep or not img:
            die(f"invalid image spec {item} (use CONTAINER=IMAGE)")
        images[c] = img
    sha = writer(args).set_image(kind, args.namespace, args.name, images)
    nudge(args)
    print(f"{kind.lower()}.apps/{args.name} image updated (commit {sha[:7]})")
    return 0


def add_set(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("set", parents=[common])
    s.add_argument("what", choices=["image"])
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("images", nargs="+")
    s.set_defaults(func=cmd_set_image)


def cmd_scale(args: argparse.Namespace) -> int:
    word, name = args.kind, args.name
    if name is None and "/" in word:  # scale rc/NAME
        word, _, name = word.partition("/")
    if not name:
        die("resource(s) were provided, but no name was specified")
    kind = kind_of(word)
    if kind not in ("Deployment", "ReplicaSet", "ReplicationController"):
        die(f"cannot scale {args.kind}")
    if args.replicas < 0:
        die("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    sha = writer(args).scale(kind, args.namespace, name, args.replicas)
    nudge(args)
    group = "" if kind == "ReplicationController" else ".apps"
    print(f"{kind.lower()}{group}/{name} scaled (commit {sha[:7]})")
    return 0


def add_scale(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("scale", parents=[common])
    s.add_argument("kind")
    s.add_argument("name", nargs="?")
    s.add_argument("--replicas", type=int, required=True)
    s.set_defaults(func=cmd_scale)
