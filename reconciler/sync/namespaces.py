"""The namespace step of a pass: built-in namespaces, git's Namespaces, and a removed Namespace's deletion.

Pure; runs before git's objects go live (sync/decide.py), so a Namespace exists before its objects.

- The built-in namespaces (``default``, ``kube-system``, ``kube-public``, ``kube-node-lease``) are live
  objects gitship makes, as a cluster has them, whether or not git declares them; git may add labels
  and annotations to one, and removing it from git leaves it (the API server forbids deleting them).
- A Namespace git declares is created here (status.phase Active), before the objects in it.
- A Namespace removed from git goes Terminating (deletionTimestamp, status.phase Terminating, the
  ``kubernetes`` finalizer kept) and no longer counts as git's; everything in it is deleted: pods
  terminate with their grace, claims wait for their protection finalizer, other objects go at once.
  While objects remain, the condition NamespaceContentRemaining says which; once nothing is left in
  it, the finalizer is done and the Namespace goes (kubernetes/kubernetes
  pkg/controller/namespace/deletion/namespaced_resources_deleter.go).
- Git's objects in a terminating namespace do not go live (the API server refuses new content in a
  namespace being terminated); a Namespace declared again while it terminates is created again once
  its deletion has finished.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter

from ..cluster import key_of
from ..controllers.podutil import to_rfc3339
from ..manifests.namespaces import BUILTIN_NAMESPACES
from ..manifests.validate.namespace import FINALIZER_KUBERNETES, NAME_LABEL
from ..types import Key, Obj
from .objects import GIT_MANAGER, PROTECTED_KINDS, has_git_mark, new_object
from .model import ZoneInput
from .work import Work

ACTIVE = "Active"
TERMINATING = "Terminating"
CONTENT_REMAINING = "NamespaceContentRemaining"
_APPS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ControllerRevision")
_GROUPS: dict[str, str] = {
    **dict.fromkeys(_APPS, "apps"),
    **dict.fromkeys(("Job", "CronJob"), "batch"),
    **dict.fromkeys(("Role", "RoleBinding"), "rbac.authorization.k8s.io"),
    "PodDisruptionBudget": "policy",
    "NetworkPolicy": "networking.k8s.io",
    "HorizontalPodAutoscaler": "autoscaling",
}


def builtin_namespace(name: str, uid: str, now: float) -> Obj:
    """A built-in namespace as gitship makes it."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid,
            "creationTimestamp": to_rfc3339(now),
            "labels": {NAME_LABEL: name},
            "annotations": {},
        },
        "spec": {"finalizers": [FINALIZER_KUBERNETES]},
        "status": {"phase": ACTIVE},
    }


def is_terminating(ns: Obj) -> bool:
    return bool(ns["metadata"].get("deletionTimestamp"))


def sync_namespaces(w: Work) -> None:
    c = w.cluster
    for name in BUILTIN_NAMESPACES:
        if c.get(("Namespace", "", name)) is None:
            c.put(builtin_namespace(name, w.inp.ids.new_uid(), w.now))
    desired = w.inp.desired
    for ns in c.of_kind("Namespace"):
        key = key_of(ns)
        if key not in desired and has_git_mark(ns) and not is_terminating(ns):
            removed_from_git(w, ns)
    terminating = {ns["metadata"]["name"] for ns in c.of_kind("Namespace") if is_terminating(ns)}
    for name in sorted(terminating):
        delete_content(w, name)
    for key, d in desired.items():
        if key[0] == "Namespace" and c.get(key) is None and key[2] not in terminating:  # gone just now: next pass
            created = new_object(w, d)
            created["status"] = {"phase": ACTIVE}
            created["metadata"].pop("generation", None)  # Namespaces have none
            c.put(created)
            w.event("Normal", "Created", "Namespace", "", key[2], f"created from git (Namespace {key[2]})")
    if terminating:  # git's objects of a terminating namespace (and the Namespace itself) wait
        held = {k: o for k, o in desired.items() if not _in_terminating(k, terminating)}
        w.inp = dataclasses.replace(w.inp, desired=held)


def _in_terminating(key: Key, terminating: set[str]) -> bool:
    return key[1] in terminating or (key[0] == "Namespace" and key[2] in terminating)


def removed_from_git(w: Work, ns: Obj) -> None:
    """A Namespace git no longer declares: built in, it stays (no longer git's); else it terminates."""
    new = copy.deepcopy(ns)
    m = new["metadata"]
    m["managedFields"] = [f for f in m.get("managedFields") or [] if f.get("manager") != GIT_MANAGER]
    name = m["name"]
    if name in BUILTIN_NAMESPACES:
        w.cluster.put(new)
        return
    m["deletionTimestamp"] = to_rfc3339(w.now)
    m["deletionGracePeriodSeconds"] = 0
    new["status"] = {**(new.get("status") or {}), "phase": TERMINATING}
    w.cluster.put(new)
    w.event("Normal", "Terminating", "Namespace", "", name, "removed from git: deleting everything in it")


def delete_content(w: Work, name: str) -> None:
    """Delete everything in a terminating namespace; the Namespace goes once nothing is left."""
    c = w.cluster
    remaining: Counter[str] = Counter()
    for obj in [o for o in c if key_of(o)[1] == name]:
        kind, m = obj["kind"], obj["metadata"]
        remaining[kind] += 1
        if m.get("deletionTimestamp"):
            continue  # on its way: a pod stopping, a claim waiting for its finalizer
        if kind == "Pod":
            w.terminate(obj)
        elif kind in PROTECTED_KINDS:
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = to_rfc3339(w.now)
            c.put(new)
        else:
            c.delete(key_of(obj))
            remaining[kind] -= 1
    key = ("Namespace", "", name)
    ns = c.get(key)
    if ns is None:
        return
    left = {k: n for k, n in remaining.items() if n > 0}
    if not left:
        c.delete(key)
        w.event("Normal", "Deleted", "Namespace", "", name, "everything in it deleted: namespace removed")
        return
    status = {**(ns.get("status") or {}), "phase": TERMINATING, "conditions": [content_remaining(left, w.now, ns)]}
    if status != ns.get("status"):
        c.put({**ns, "status": status})


def resource_name(kind: str) -> str:
    """A kind's resource as the namespace controller names it in messages (``pods.``, ``deployments.apps``)."""
    lower = kind.lower()
    plural = lower if lower.endswith("s") else lower[:-1] + "ies" if lower.endswith("y") else lower + "s"
    return f"{plural}.{_GROUPS.get(kind, '')}"


def content_remaining(left: dict[str, int], now: float, ns: Obj) -> Obj:
    """The NamespaceContentRemaining condition (status_condition_utils.go ProcessContentTotals)."""
    parts = sorted(f"{resource_name(k)} has {n} resource instances" for k, n in left.items())
    message = "Some resources are remaining: " + ", ".join(parts)
    old: Obj = next(
        (x for x in (ns.get("status") or {}).get("conditions") or [] if x.get("type") == CONTENT_REMAINING), {}
    )
    return {
        "type": CONTENT_REMAINING,
        "status": "True",
        "lastTransitionTime": old.get("lastTransitionTime") or to_rfc3339(now),
        "reason": "SomeResourcesRemain",
        "message": message,
    }


def with_namespaces(zone: ZoneInput, w: Work) -> ZoneInput:
    """The DNS zone's input with the live namespaces: ``<ns>.svc.<z>`` exists for each."""
    names = tuple(sorted(ns["metadata"]["name"] for ns in w.cluster.of_kind("Namespace")))
    return dataclasses.replace(zone, namespaces=names)
