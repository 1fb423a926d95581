"""What every command shares: kind names, the state dir, the store, the API socket, the repository writer.

Where it sits: the bottom of the CLI package; it imports no command module. Reads come from the
store (read-only SQLite); actions on what runs go to the daemon's API socket; changes of desired
state are git commits made through gitops.RepoWriter.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from reconciler.kindnames import NAMES, PLURALS, custom_kinds, learn_cluster_scoped
from reconciler.errors import SelectorError
from reconciler.types import Obj

if TYPE_CHECKING:
    from reconciler.store import Store

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

KINDS = {
    "po": "Pod",
    "pod": "Pod",
    "pods": "Pod",
    "rs": "ReplicaSet",
    "replicaset": "ReplicaSet",
    "replicasets": "ReplicaSet",
    "deploy": "Deployment",
    "deployment": "Deployment",
    "deployments": "Deployment",
    "svc": "Service",
    "service": "Service",
    "services": "Service",
    "ep": "Endpoints",
    "endpoints": "Endpoints",
    "cm": "ConfigMap",
    "configmap": "ConfigMap",
    "configmaps": "ConfigMap",
    "secret": "Secret",
    "secrets": "Secret",
    "pv": "PersistentVolume",
    "persistentvolume": "PersistentVolume",
    "persistentvolumes": "PersistentVolume",
    "pvc": "PersistentVolumeClaim",
    "persistentvolumeclaim": "PersistentVolumeClaim",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "sc": "StorageClass",
    "storageclass": "StorageClass",
    "storageclasses": "StorageClass",
}
PLURAL = {
    "Pod": "pods",
    "ReplicaSet": "replicasets",
    "Deployment": "deployments",
    "Service": "services",
    "Endpoints": "endpoints",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "PersistentVolume": "persistentvolumes",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "StorageClass": "storageclasses.storage.k8s.io",
}
SOCKET = "gitship.sock"


def die(msg: str, code: int = 1) -> NoReturn:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def state_dir(args: argparse.Namespace) -> str:
    from reconciler.paths import default_state_dir

    return os.path.abspath(args.state_dir or default_state_dir())


def socket_path(args: argparse.Namespace) -> str:
    return os.path.join(state_dir(args), SOCKET)


def open_store(args: argparse.Namespace) -> Store:
    from reconciler.store import Store

    return Store(state_dir(args), readonly=True)


def source_meta(args: argparse.Namespace) -> dict[str, Any]:
    """The repository the daemon tracks (repoDir, url, branch, path, remote), as it recorded it."""
    store = open_store(args)
    src: dict[str, Any] = store.get_meta("source") or {}
    store.close()
    return src


def api(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    from reconciler.api import request

    try:
        code, payload = request(socket_path(args), method, path, body)
    except OSError:
        die(f"gitship is not running on the state dir {state_dir(args)} (start it with `gitship up REPO`)")
    if code >= 400:
        die(payload.get("message", f"HTTP {code}") if isinstance(payload, dict) else f"HTTP {code}")
    return payload


def nudge(args: argparse.Namespace) -> None:
    """Tell the daemon to look at the repository now (it would notice anyway)."""
    from reconciler.api import request

    try:
        request(socket_path(args), "POST", "/v1/sync", {}, timeout=5)
    except OSError:
        pass


def kind_of(word: str) -> str:
    k = KINDS.get(word.lower().split(".")[0])
    if not k and _COMMAND_ARGS:  # a custom resource: the CRDs in the store name it
        learn_custom_kinds(_COMMAND_ARGS[0])
        k = KINDS.get(word.lower().split(".")[0])
    if not k:
        die(f'the server doesn\'t have a resource type "{word}"')
    return k


# the running command's arguments, so that kind_of can look custom kinds up in its store
_COMMAND_ARGS: list[argparse.Namespace] = []


def remember_args(args: argparse.Namespace) -> None:
    _COMMAND_ARGS[:] = [args]


def learn_custom_kinds(args: argparse.Namespace) -> None:
    """Add the names of the kinds the store's CRDs define to KINDS and PLURAL (once)."""
    from reconciler.errors import StoreError

    _COMMAND_ARGS.clear()
    try:
        crds = open_store(args).cluster("CustomResourceDefinition")
    except StoreError:
        return
    found = custom_kinds(crds)
    for word, kind in found.names.items():
        KINDS.setdefault(word, kind)
    for kind, plural in found.plurals.items():
        PLURAL.setdefault(kind, plural)
    learn_cluster_scoped(found.cluster)


def writer(args: argparse.Namespace) -> Any:
    """A gitops.RepoWriter on the tracked repository: each edit is one commit."""
    from reconciler.gitops import RepoWriter
    from reconciler.ops.verify import sign_commits

    src = source_meta(args)
    if not src.get("repoDir"):
        die("no repository known for this state dir; run `gitship up REPO` first")
    w = RepoWriter(src["repoDir"], src.get("path", ""), src.get("branch"), "origin" if src.get("remote") else None)
    return sign_commits(w, state_dir(args))  # --signing-key of `gitship up` (reconciler/ops/verify.py)


def select(objs: list[Obj], selector: str | None) -> list[Obj]:
    """The objects whose labels match a label selector (all of them without one)."""
    if not selector:
        return objs
    from reconciler.selectors import parse

    try:
        sel = parse(selector)
    except SelectorError as e:
        die(str(e))
    return [o for o in objs if sel.matches(o["metadata"].get("labels") or {})]


def get_pod(args: argparse.Namespace, name: str) -> Obj:
    """The pod NAME in the namespace of -n, or exit with kubectl's not-found message."""
    pod = open_store(args).get("Pod", args.namespace, name)
    if pod is None:  # kubectl's message (cli/namespaces.py not_found)
        print(f'Error from server (NotFound): pods "{name}" not found', file=sys.stderr)
        sys.exit(1)
    return pod


# ReplicationController and the kinds stored without effect (cli/kinds.py)
KINDS.update(NAMES)
PLURAL.update(PLURALS)
