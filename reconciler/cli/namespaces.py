"""kubectl's namespace rules for the CLI: -n and -A, NotFound messages, the namespace of create/apply -f.

Where it sits: below the command modules, beside common.py. ``-n NS`` / ``--namespace`` is on every
command (default ``default``; ``args.namespace_given`` says whether it was written); ``-A`` /
``--all-namespaces`` where kubectl has it (get, describe, events, get -w).

create/apply -f as kubectl: an object with a namespace keeps it (the file's namespace wins); an
object without one goes into the namespace of -n, written into the document committed (a
cluster-scoped object keeps none); an object whose namespace differs from an -n given is refused
with kubectl's message.

``exec POD -n NS -c C -- CMD``: the options written after POD, before ``--``, are exec's (argparse's
remainder would take them as the command). ``delete namespace NAME``: everything in it goes with it
(``delete_namespaces``); default, kube-system and kube-public may not be deleted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from reconciler.gitops import documents
from reconciler.gitops.yamlpatch import patch_document
from reconciler.kindnames import cluster_scoped


def not_found(plural: str, name: str) -> NoReturn:
    """kubectl's message for a missing object, then exit 1."""
    print(not_found_message(plural, name), file=sys.stderr)
    sys.exit(1)


def not_found_message(plural: str, name: str) -> str:
    return f'Error from server (NotFound): {plural} "{name}" not found'


def add_all_namespaces(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace (a NAMESPACE column in tables)"
    )


def settle_namespace(args: argparse.Namespace) -> None:
    """After parsing: whether -n was given, and the namespace (``default`` when not)."""
    ns = getattr(args, "namespace", None)
    args.namespace_given = ns is not None
    args.namespace = ns or "default"


_VALUE_OPTIONS = {"-n": "namespace", "--namespace": "namespace", "-c": "container", "--container": "container"}


def options_before_command(args: argparse.Namespace) -> None:
    """``exec POD -n NS -c C -- CMD...``: argparse's remainder holds everything after POD; the
    options before ``--`` are exec's own (kubectl takes them there), the rest is the command."""
    command = getattr(args, "command", None)
    if not command:
        return
    if "--" not in command:
        return
    cut = command.index("--")
    before, args.command = command[:cut], command[cut + 1 :]
    i = 0
    while i < len(before):
        word = before[i]
        name, eq, value = word.partition("=")
        if name in _VALUE_OPTIONS and (eq or i + 1 < len(before)):
            if not eq:
                i += 1
                value = before[i]
            setattr(args, _VALUE_OPTIONS[name], value)
        else:
            print(
                f"error: unknown option {word!r} before -- (exec POD [-n NS] [-c CONTAINER] -- COMMAND)",
                file=sys.stderr,
            )
            sys.exit(1)
        i += 1


def mismatch_message(found: str, given: str) -> str:
    return (
        f'the namespace from the provided object "{found}" does not match the namespace "{given}". '
        f"You must pass '--namespace={found}' to perform this operation."
    )


def _doc_namespace(obj: Any) -> tuple[str | None, bool]:
    """(the namespace a document writes, whether its kind has one)."""
    if not isinstance(obj, dict):
        return None, False
    meta = obj.get("metadata")
    kind = str(obj.get("kind") or "")
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return (str(ns) if ns else None), bool(kind) and not cluster_scoped(kind)


def with_namespace(text: str, namespace: str, given: bool) -> str:
    """The file's text with the namespace of -n written into each namespaced document without one.

    Raises ValueError with kubectl's message when a document's namespace differs from an -n given."""
    chunks = documents.split_documents(text)
    out: list[str] = []
    for chunk in chunks:
        try:
            obj = documents.load(chunk)
        except Exception:  # the loader reports it, with its position
            out.append(chunk)
            continue
        ns, namespaced = _doc_namespace(obj)
        if ns is not None and given and ns != namespace:
            raise ValueError(mismatch_message(ns, namespace))
        if ns is None and namespaced and namespace != "default":
            new = {**obj, "metadata": {**(obj.get("metadata") or {}), "namespace": namespace}}
            chunk = patch_document(chunk, new)
        out.append(chunk)
    return "".join(out)


def namespaced_file(data: bytes, args: argparse.Namespace, encrypted: bool) -> bytes:
    """create/apply -f: the file with the namespace of -n written where an object has none, or exit
    with kubectl's message on a mismatch. A SOPS-encrypted file is committed as written (its MAC covers
    every byte, and its values are ciphertext): -n does not change it."""
    if encrypted:
        return data
    try:
        text = data.decode("utf-8")
        new = with_namespace(text, args.namespace, args.namespace_given)
    except UnicodeDecodeError:
        return data  # the loader reports it
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    return data if new == text else new.encode("utf-8")


# default, kube-system and kube-public may not be deleted (the NamespaceLifecycle admission plugin)
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


def delete_namespaces(args: argparse.Namespace) -> int:
    """``delete namespace NAME...``: as kubectl, everything in it goes with it. In git: each object the
    applied revision declares in it is removed (a commit each), then the Namespace (its removal
    alone would be refused: objects in a namespace not found). The daemon then terminates it."""
    from reconciler.cli.common import nudge, open_store, writer
    from reconciler.errors import NotFound

    for name in args.names:
        if name in IMMORTAL_NAMESPACES:
            print(
                f'Error from server (Forbidden): namespaces "{name}" is forbidden: this namespace may not be deleted',
                file=sys.stderr,
            )
            return 1
    desired = open_store(args).desired()
    w = writer(args)
    for name in args.names:
        for kind, ns, obj_name in sorted(k for k in desired if k[1] == name):
            try:
                w.delete(kind, ns, obj_name)
            except NotFound:
                continue  # no longer in git
        w.delete("Namespace", "default", name)  # gitops keys a manifest without a namespace so
        print(f'namespace "{name}" deleted')
    nudge(args)
    return 0
