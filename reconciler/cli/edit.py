"""`gitship label`, `create -f`, `apply -f`, `set image` and `scale`: each edit of desired state is one git commit.

The edits themselves are gitops.RepoWriter's; this module parses the arguments, checks them, and
tells the daemon to look at the repository now.
"""

from __future__ import annotations

import argparse
import os
import posixpath
from typing import TYPE_CHECKING, Any

from reconciler.cli.common import Subparsers, die, kind_of, nudge, writer
from reconciler.cli.namespaces import namespaced_file
from reconciler.errors import GitshipError
from reconciler.types import Key

if TYPE_CHECKING:
    from reconciler.manifests.sops import AgeKeys


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


def _encrypted_declarations(w: Any, age_keys: AgeKeys) -> dict[Key, str]:
    """Where the repository's SOPS files declare their objects (their kind and name may be encrypted,
    hidden from the plain-text index): decrypted in memory with the same key; unreadable ones skipped."""
    from reconciler.gitops.locate import manifest_files
    from reconciler.manifests.load import Limits, load_file
    from reconciler.manifests.sops import is_encrypted

    out: dict[Key, str] = {}
    for rel in manifest_files(w):
        data = w.read(rel) or b""
        if rel.endswith((".yaml", ".yml")) and is_encrypted(data.decode("utf-8", errors="replace")):
            try:
                manifests = load_file(rel, data, {}, Limits(), age_keys=age_keys)
            except GitshipError:
                continue
            out.update({m.key: rel for m in manifests})
    return out


def _declared_by(w: Any, target: str, encrypted: dict[Key, str]) -> set[Key]:
    """The objects (lower-cased keys) the repository file ``target`` declares now (an encrypted one's
    as decrypted: its plain text may show only ENC[...] kinds and names)."""
    from reconciler.gitops.locate import build_index, lower_key
    from reconciler.manifests.sops import is_encrypted

    if is_encrypted((w.read(target) or b"").decode("utf-8", errors="replace")):
        return {lower_key(k) for k, f in encrypted.items() if f == target}
    return {k for k, locs in build_index(w).objects.items() if any(loc.file == target for loc in locs)}


def _declared_in(w: Any, key: Key, encrypted: dict[Key, str]) -> str | None:
    from reconciler.errors import NotFound

    try:
        where: str = w.find(*key)[0]
        return where
    except NotFound:
        return encrypted.get(key)


def _sops_file_changes(
    w: Any, target: str, data: bytes, keys: list[Key], overwrite: bool, age_keys: AgeKeys
) -> str | None:
    """Commit a SOPS-encrypted file whole (its MAC covers every document: no document of it can be
    spliced into another file). create: none of its objects may be declared yet; apply: each object
    is declared nowhere or in the file it replaces. The file is committed as given, encrypted."""
    verb = "apply" if overwrite else "create"
    with w.transaction() as branch:
        encrypted = _encrypted_declarations(w, age_keys)
        for kind, ns, name in keys:
            where = _declared_in(w, (kind, ns, name), encrypted)
            if where is None:
                continue
            if not overwrite:
                die(f'AlreadyExists: {kind.lower()} "{name}" already exists (declared in {where})')
            if where != target:
                die(
                    f"{kind.lower()}/{name} is declared in {where}: a SOPS-encrypted file is applied whole, "
                    f"so apply it under that file's name, or remove the object there first"
                )
        if w.exists(target) and not overwrite:
            die(f"AlreadyExists: {target} already exists in the repository")
        dropped = _declared_by(w, target, encrypted) - {(k[0].lower(), k[1], k[2]) for k in keys}
        if dropped:
            names = ", ".join(sorted(f"{k[0].lower()}/{k[2]}" for k in dropped))
            die(f"{target} also declares {names}: a SOPS-encrypted file replaces it whole; remove those first")
        if w.read(target) == data:
            return None
        sha: str = w.commit({target: data}, f"{verb} -f {posixpath.basename(target)}: " + _names(keys), branch)
    return sha


def _names(keys: list[Key]) -> str:
    return ", ".join(f"{k[0].lower()}/{k[2]}" for k in keys)


def cmd_create_apply(args: argparse.Namespace) -> int:
    from reconciler.manifests.load import Limits, load_file
    from reconciler.manifests.sops import is_encrypted
    from reconciler.source.revision import read_age_keys

    if (getattr(args, "resource", None) or [])[:1] == ["job"]:  # create job NAME --from=cronjob/X (cli/jobs.py)
        from reconciler.cli.jobs import cmd_create_job

        return cmd_create_job(args)
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
    name = os.path.basename(path)
    encrypted = is_encrypted(data.decode("utf-8", errors="replace"))
    data = namespaced_file(data, args, encrypted)  # -n: kubectl's rule (cli/namespaces.py)
    # a SOPS file is decrypted (in memory) to check it, with the key the daemon would use
    age_keys = read_age_keys(args.decryption_key_file) if encrypted else None
    manifests = load_file(name, data, {}, Limits(), age_keys=age_keys)
    keys = [m.key for m in manifests]
    w = writer(args)
    verb = "created" if args.cmd == "create" else "configured"
    if encrypted:
        from reconciler.gitops.files import target_path

        assert age_keys is not None
        sha = _sops_file_changes(w, target_path(w.manifests_rel, name), data, keys, args.cmd == "apply", age_keys)
    else:
        sha = w.add_file(name, data, overwrite=args.cmd == "apply", message=f"{args.cmd} -f {name}: " + _names(keys))
    nudge(args)
    for k in keys:
        print(f"{k[0].lower()}/{k[2]} {verb if sha else 'unchanged'}")
    print(f"(commit {sha[:7]})" if sha else "(no change, nothing committed)")
    return 0


def add_create_apply(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    for verb in ("create", "apply"):
        s = sub.add_parser(verb, parents=[common])
        s.add_argument("-f", "--filename", required=verb == "apply")
        s.add_argument(
            "--decryption-key-file",
            metavar="PATH",
            help="age identities to check a SOPS-encrypted file with (it is committed encrypted); "
            "default: env SOPS_AGE_KEY_FILE, else SOPS_AGE_KEY",
        )
        if verb == "create":  # create secret generic NAME ...: a SOPS-encrypted Secret (cli/secret.py)
            s.add_argument("resource", nargs="*", help="secret generic NAME")
            s.add_argument("--from-literal", action="append", metavar="KEY=VALUE")
            s.add_argument("--from-file", action="append", metavar="[KEY=]PATH")
            s.add_argument("--type", help="the Secret's type (default Opaque)")
            s.add_argument("--from", dest="from_", metavar="cronjob/NAME", help="create job NAME --from=cronjob/X")
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
    if kind not in ("Deployment", "ReplicaSet", "ReplicationController", "StatefulSet"):
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
