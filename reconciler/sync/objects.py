"""The object steps of a pass: observed pod statuses, git into live objects, the workload
controllers and garbage collection. Pure: every function works on a ``Work``.

Order (each step reads what the previous ones wrote):

  observe_pods       statuses from the runtime; a Warning event when a container starts
                     waiting for a bad reason
  request_deletions  `gitship delete pod`: the pod is marked terminating
  sync_desired       desired objects into live ones: create, update (generation bumped on a
                     spec or annotation change), a changed bare pod replaced, objects removed
                     from git pruned (the planner's diff, reconciler/plan.py); only what git
                     declared is pruned, never what a controller made and then released
  sync_deployments   ReplicaSet statuses, then Deployments -> ReplicaSets (controllers/deployment.py)
  sync_replicasets   ReplicaSets -> Pods (controllers/replicaset.py)
  collect_garbage    objects whose controller is gone (not those it released: they are orphans)

What git declared carries a ``metadata.managedFields`` entry of manager ``gitship`` (operation
``Apply``), as a server-side apply by a field manager marks what it applied. Pruning looks for
that mark, so a ReplicaSet or pod a controller made and then released (its ownerReference
removed, as kubernetes/kubernetes pkg/controller/controller_ref_manager.go releases it) is left
running as an orphan, as in Kubernetes, instead of being deleted as "removed from git".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .. import annotation_keys as keys
from ..cluster import controller_uid, key_of
from ..controllers import deployment as deployctl
from ..controllers import replicaset as rsctl
from ..controllers import service as svcctl
from ..controllers import volume as volctl
from ..controllers.podutil import owner_ref, to_rfc3339
from ..manifests.semantic import semantic
from ..plan import plan
from ..types import Key, Obj
from .inert import declared_fields, has_spec, no_effect_event, without_effect
from .work import Work

# the pod kernel (pure): the condition a runtime sets when it cannot enforce a pod's limits
from runtime.kernel.resources import NOT_ENFORCED_REASON, not_enforced_note

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "Pod", "Service")
GIT_MANAGER = "gitship"  # the managedFields manager of what git declared
# annotations the controllers own, not git
MANAGED_PREFIX: tuple[str, ...] = (
    "deployment.kubernetes.io/",
    "cronjob.gitship.io/",
    *volctl.MANAGED_ANNOTATION_PREFIXES,
)
# kinds without a spec: the top-level fields that hold what git declares
DATA_FIELDS: Mapping[str, tuple[str, ...]] = {
    "ConfigMap": ("data", "binaryData", "immutable"),
    "Secret": ("data", "type", "immutable"),
    "StorageClass": (
        "provisioner",
        "parameters",
        "reclaimPolicy",
        "mountOptions",
        "allowVolumeExpansion",
        "volumeBindingMode",
        "allowedTopologies",
    ),
}
# kinds whose removal from git waits for a finalizer (kubernetes.io/pvc-protection, pv-protection)
PROTECTED_KINDS = ("PersistentVolumeClaim", "PersistentVolume")
WARNING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "ImageNotResolved",
    }
)


# -- pods as the runtime sees them ------------------------------------------------------------


def observe_pods(w: Work) -> None:
    statuses = w.inp.observed.statuses
    for pod in w.cluster.of_kind("Pod"):
        st = statuses.get(pod["metadata"]["uid"])
        if st is not None and st != pod.get("status"):
            container_events(w, pod, st)
            w.cluster.put({**pod, "status": st})


def container_events(w: Work, pod: Obj, status: Obj) -> None:
    """A Warning event each time a container starts waiting for a bad reason (once per change)."""
    before = {
        c["name"]: ((c.get("state") or {}).get("waiting") or {}).get("reason")
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    }
    m = pod["metadata"]
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in WARNING_REASONS and before.get(c["name"]) != reason:
            message = f"container {c['name']}: {waiting.get('message') or reason}"
            w.event("Warning", reason, "Pod", m["namespace"], m["name"], message)
    note = not_enforced_note(status)  # once per pod: when the runtime first says so
    if note and not not_enforced_note(pod.get("status") or {}):
        w.event("Warning", NOT_ENFORCED_REASON, "Pod", m["namespace"], m["name"], note)


def request_deletions(w: Work) -> None:
    """`gitship delete pod`: the pod terminates; its owner (or git) decides what comes next."""
    if not w.inp.delete_requests:
        return
    for pod in w.cluster.of_kind("Pod"):
        m = pod["metadata"]
        if m["uid"] in w.inp.delete_requests and not m.get("deletionTimestamp"):
            w.terminate(pod)
            w.event("Normal", "Killing", "Pod", m["namespace"], m["name"], "deleted by user")


def lost_pods(live: Mapping[Key, Obj], adopted: Mapping[str, Any]) -> list[Key]:
    """At start-up: live pods the runtime no longer runs (stopped while gitship was down, or
    never started). They are dropped; their owners replace them."""
    return [k for k, o in live.items() if k[0] == "Pod" and o["metadata"].get("uid") not in adopted]


# -- git into live objects ----------------------------------------------------------------


def user_annotations(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(MANAGED_PREFIX)}


def git_view(obj: Obj) -> Obj:
    """The part of an object git decides: labels, annotations (not the controllers' own), spec
    (a ConfigMap's or Secret's data fields in its place); compared as Kubernetes compares
    objects, where an empty value equals an absent one."""
    m = obj["metadata"]
    view: Obj = semantic(
        {"labels": m.get("labels"), "annotations": user_annotations(m), "spec": obj.get("spec"), **data_fields(obj)}
    )
    return view


def data_fields(obj: Obj) -> Obj:
    """A ConfigMap's or Secret's top-level fields that git decides (they have no spec); those of an
    object stored without effect (sync/inert.py)."""
    return {k: obj[k] for k in (*DATA_FIELDS.get(obj.get("kind", ""), ()), *declared_fields(obj)) if k in obj}


def new_object(w: Work, d: Obj) -> Obj:
    obj = marked(d, w.now)
    meta = obj["metadata"]
    meta["uid"] = w.inp.ids.new_uid()
    meta["creationTimestamp"] = to_rfc3339(w.now)
    if obj["kind"] in DATA_FIELDS or (without_effect(obj["kind"]) and not has_spec(obj)):
        return obj  # no generation and no status, as in Kubernetes
    if obj["kind"] != "Pod":
        meta["generation"] = 1
    obj["status"] = {"phase": "Pending"} if obj["kind"] == "Pod" else {}
    return obj


def updated_object(live: Obj, d: Obj) -> Obj:
    """The live object with git's labels, annotations and spec; generation bumped when the spec
    or the user's annotations changed (not for pods: they have no generation here)."""
    lm, dm = live["metadata"], d["metadata"]
    managed = {k: v for k, v in (lm.get("annotations") or {}).items() if k.startswith(MANAGED_PREFIX)}
    new = copy.deepcopy(live)
    new["metadata"]["labels"] = copy.deepcopy(dm.get("labels", {}))
    new["metadata"]["annotations"] = {**copy.deepcopy(dm.get("annotations", {})), **managed}
    if "spec" in d:
        new["spec"] = copy.deepcopy(d["spec"])
    for k in (*DATA_FIELDS.get(live["kind"], ()), *declared_fields(live), *declared_fields(d)):
        if k in d:
            new[k] = copy.deepcopy(d[k])
        else:
            new.pop(k, None)
    if live["kind"] in DATA_FIELDS or (without_effect(live["kind"]) and not has_spec(d)):
        return new
    spec_changed = semantic(live.get("spec")) != semantic(d.get("spec"))
    if (spec_changed or user_annotations(lm) != user_annotations(dm)) and live["kind"] != "Pod":
        new["metadata"]["generation"] = int(lm.get("generation", 1)) + 1
    return new


def declared_by_git(obj: Obj) -> bool:
    """Whether git declared ``obj`` (it carries gitship's managedFields mark).

    A live object written before the mark existed counts as git's when nothing else made it:
    no controller, no ``generateName`` (the ReplicaSet controller's pods have one) and no
    ``pod-template-hash`` label (the Deployment controller's ReplicaSets have one)."""
    m = obj["metadata"]
    if m.get("managedFields"):
        return has_git_mark(obj)
    return (
        obj["kind"] in WORKLOAD_KINDS
        and controller_uid(obj) is None
        and not m.get("generateName")
        and keys.POD_TEMPLATE_HASH not in (m.get("labels") or {})
    )


def git_mark(obj: Obj, now: float) -> dict[str, Any]:
    return {
        "manager": GIT_MANAGER,
        "operation": "Apply",
        "apiVersion": obj.get("apiVersion", ""),
        "time": to_rfc3339(now),
    }


def marked(obj: Obj, now: float) -> Obj:
    """``obj`` (a copy) with gitship's managedFields mark, the other managers' entries kept."""
    new = copy.deepcopy(obj)
    others = [
        f
        for f in new["metadata"].get("managedFields") or []
        if not (isinstance(f, dict) and f.get("manager") == GIT_MANAGER)
    ]
    new["metadata"]["managedFields"] = [*others, git_mark(obj, now)]
    return new


def has_git_mark(obj: Obj) -> bool:
    fields = obj["metadata"].get("managedFields") or []
    return any(isinstance(f, dict) and f.get("manager") == GIT_MANAGER for f in fields)


def managed_by_git(w: Work) -> dict[Key, Obj]:
    """The live objects git answers for: those it declares now, and those it declared before
    (pruned). Not what a controller made, even once released."""
    desired = w.inp.desired
    return {key_of(o): o for o in w.cluster if key_of(o) in desired or declared_by_git(o)}


def as_live(w: Work, d: Obj) -> Obj:
    """Git's object as the pass keeps it live, so that an unchanged object compares equal: a
    Service shows its defaults and allocation (clusterIP, nodePorts), which git never writes; a
    claim its class and volume, a volume its claim, when git leaves them to the controller."""
    if d.get("kind") in PROTECTED_KINDS:
        return with_bindings(d, w.cluster.get(key_of(d)))
    if d.get("kind") != "Service":
        return d
    alloc = w.inp.memory.allocations.get((d["metadata"]["namespace"], d["metadata"]["name"]))
    return svcctl.service_view(d, alloc, None) if alloc is not None else d


def with_bindings(d: Obj, live: Obj | None) -> Obj:
    """Git's claim or volume with what the volume controller filled in and git leaves unset: a
    claim's storageClassName (the default class) and volumeName, a volume's claimRef."""
    if live is None:
        return d
    fields = ("storageClassName", "volumeName") if d["kind"] == "PersistentVolumeClaim" else ("claimRef",)
    spec, live_spec = d.get("spec") or {}, live.get("spec") or {}
    fill = {f: live_spec[f] for f in fields if spec.get(f) is None and live_spec.get(f) is not None}
    ref, live_ref = spec.get("claimRef"), live_spec.get("claimRef")
    if isinstance(ref, dict) and not ref.get("uid") and isinstance(live_ref, dict):
        # a pre-binding by name: the uid is the controller's once bound
        if all(live_ref.get(k) == v for k, v in ref.items()):
            fill["claimRef"] = live_ref
    return {**d, "spec": {**spec, **fill}} if fill else d


def prune(w: Work, live: Obj) -> None:
    """An object removed from git goes; a claim or a volume first waits for its finalizer."""
    kind, ns, name = key_of(live)
    if kind in PROTECTED_KINDS:
        if live["metadata"].get("deletionTimestamp"):
            return
        new = copy.deepcopy(live)
        new["metadata"]["deletionTimestamp"] = to_rfc3339(w.now)
        w.cluster.put(new)
    else:
        w.cluster.delete(key_of(live))
    w.event("Normal", "Pruned", kind, ns, name, "removed from git")


def sync_desired(w: Work) -> None:
    desired = w.inp.desired
    live = managed_by_git(w)
    actions = plan({k: git_view(o) for k, o in live.items()}, {k: git_view(as_live(w, d)) for k, d in desired.items()})
    for a in actions:
        kind, ns, name = a.key
        if a.op == "create":
            w.cluster.put(new_object(w, desired[a.key]))
            w.event("Normal", "Created", kind, ns, name, f"created from git ({kind} {name})")
            no_effect_event(w, desired[a.key], ns)
        elif a.op == "update" and kind == "Pod" and semantic(live[a.key]["spec"]) != semantic(desired[a.key]["spec"]):
            # pod specs are immutable in Kubernetes: a changed bare pod is replaced
            w.terminate(live[a.key], keep=False)
            w.cluster.put(new_object(w, desired[a.key]))
            w.event("Normal", "Replaced", "Pod", ns, name, "pod spec changed in git: replaced")
        elif a.op == "update":
            d = desired[a.key]
            w.cluster.put(updated_object(live[a.key], with_bindings(d, live[a.key]) if kind in PROTECTED_KINDS else d))
        elif kind != "Pod":
            prune(w, live[a.key])
        elif not live[a.key]["metadata"].get("deletionTimestamp"):
            w.terminate(live[a.key])
            w.event("Normal", "Pruned", "Pod", ns, name, "removed from git")
    mark_declared(w)


def mark_declared(w: Work) -> None:
    """Mark what git declares and the live object lacks the mark (written before the mark
    existed, or made by a controller and now declared in git): pruned once git drops it."""
    c = w.cluster
    for k in w.inp.desired:
        obj = c.get(k)
        if obj is not None and not has_git_mark(obj):
            c.put(marked(obj, w.now))


# -- the workload controllers ---------------------------------------------------------------


def sync_deployments(w: Work) -> None:
    # The deployment controller reads availability from the ReplicaSets' statuses: bring them
    # up to the pods just observed first. A status one pass old held every rollout step back
    # until the next pass, and after a pod turned unready it could let a step remove one old
    # pod too many.
    c = w.cluster
    for rs in c.of_kind("ReplicaSet"):
        owned, _, _ = rsctl.claim_pods(rs, c.of_kind("Pod", rs["metadata"]["namespace"]))
        st = rsctl.calculate_status(rs, owned, w.now)
        if st != rs.get("status"):
            c.put({**rs, "status": st})
    for dep in c.of_kind("Deployment"):
        ns = dep["metadata"]["namespace"]
        try:
            res = deployctl.sync_deployment(
                dep, c.of_kind("ReplicaSet", ns), c.of_kind("Pod", ns), w.now, w.inp.ids.new_uid
            )
        except Exception as e:  # one broken Deployment never stops the others
            w.problem("error", "deployment_sync_failed", e, name=dep["metadata"]["name"], error=str(e))
            continue
        for rs in res.create_rs + res.update_rs:
            c.put(with_change_cause(rs, c.get(key_of(rs)), w.inp.memory.template_commits, w.inp.memory.revision_info))
        for name in res.delete_rs:
            c.delete(("ReplicaSet", ns, name))
        new_dep = dep
        if res.deployment_annotations is not None:
            new_dep = copy.deepcopy(dep)
            new_dep["metadata"]["annotations"] = res.deployment_annotations
        if res.status != dep.get("status"):
            new_dep = {**new_dep, "status": res.status}
        if new_dep is not dep:
            c.put(new_dep)
        for ev in res.events:
            w.controller_event(ev)
        w.requeue(res.requeue_after)


def with_change_cause(
    rs: Obj,
    old: Obj | None,
    template_commits: Mapping[str, Mapping[str, Any]],
    revision_info: Mapping[str, Any] | None,
) -> Obj:
    """Record on a ReplicaSet the commit that made it the Deployment's new revision.

    A ReplicaSet that keeps its revision keeps the commit it has; one that becomes the new
    revision gets the commit that last changed its Deployment's pod template (else the applied
    commit)."""
    ann = rs["metadata"].get("annotations") or {}
    old_ann = ((old or {}).get("metadata", {}).get("annotations")) or {}
    if old is not None and ann.get(keys.REVISION) == old_ann.get(keys.REVISION):
        for k in (keys.COMMIT, keys.CHANGE_CAUSE):
            if k in old_ann:
                ann[k] = old_ann[k]
        rs["metadata"]["annotations"] = ann
        return rs
    owner = next(
        (r["name"] for r in rs["metadata"].get("ownerReferences") or [] if r.get("kind") == "Deployment"), None
    )
    info = template_commits.get(f"{rs['metadata']['namespace']}/{owner}") or revision_info or {}
    if info.get("sha"):
        ann[keys.COMMIT] = info["sha"]
        ann[keys.CHANGE_CAUSE] = f"{info['sha'][:7]} {info.get('author', '')}: {info.get('subject', '')}"
    rs["metadata"]["annotations"] = ann
    return rs


def template_commits(
    before: Mapping[Key, Obj], after: Mapping[Key, Obj], commit: Mapping[str, Any]
) -> dict[str, Mapping[str, Any]]:
    """The Deployments whose pod template ``commit`` changes ("ns/name" -> commit): that commit is
    the CHANGE-CAUSE of their next revision, even when the rollout starts later (a paused
    Deployment resumed by another commit)."""
    out: dict[str, Mapping[str, Any]] = {}
    for key, obj in after.items():
        if key[0] != "Deployment":
            continue
        old = before.get(key)
        if old is None or old["spec"].get("template") != obj["spec"].get("template"):
            out["/".join(key[1:])] = commit
    return out


def sync_replicasets(w: Work) -> None:
    """ReplicaSets and ReplicationControllers -> Pods (one controller: controllers/replicaset.py)."""
    c = w.cluster
    for rs in [o for kind in rsctl.KINDS for o in c.of_kind(kind)]:
        ns = rs["metadata"]["namespace"]
        pods = c.of_kind("Pod", ns)
        try:
            res = rsctl.sync_replicaset(rs, pods, w.now, w.inp.ids.new_pod_name)
        except Exception as e:  # one broken ReplicaSet never stops the others
            w.problem("error", "replicaset_sync_failed", e, name=rs["metadata"]["name"], error=str(e))
            continue
        by_uid = {p["metadata"]["uid"]: p for p in pods}
        for pod in res.create:
            pod.setdefault("status", {"phase": "Pending"})
            c.put(pod)
        for uid in res.adopt:
            p = copy.deepcopy(by_uid[uid])
            p["metadata"]["ownerReferences"] = [*(p["metadata"].get("ownerReferences") or []), owner_ref(rs)]
            c.put(p)
        rs_uid = rs["metadata"]["uid"]
        for uid in res.release:
            p = copy.deepcopy(by_uid[uid])
            p["metadata"]["ownerReferences"] = [
                r for r in p["metadata"].get("ownerReferences", []) if r.get("uid") != rs_uid
            ]
            c.put(p)
        for uid in res.delete:
            if uid in by_uid:
                w.terminate(by_uid[uid])
        if res.status != rs.get("status"):
            c.put({**rs, "status": res.status})
        for ev in res.events:
            w.controller_event(ev)
        w.requeue(rsctl.requeue_after(rs, c.of_kind("Pod", ns), w.now))


def collect_garbage(w: Work) -> None:
    """Delete objects whose controller is gone, until nothing more goes (a ReplicaSet's pods
    follow it). A pod only terminates: it stays until the runtime has stopped it."""
    c = w.cluster
    while True:
        uids = set(c.by_uid())
        gone = [o for o in c if (cu := controller_uid(o)) is not None and cu not in uids]
        progressed = False
        for o in gone:
            if o["kind"] == "Pod":
                if not o["metadata"].get("deletionTimestamp"):
                    w.terminate(o)
                continue
            if o["kind"] in PROTECTED_KINDS:  # a StatefulSet's claim (retention Delete) waits for its finalizer
                if not o["metadata"].get("deletionTimestamp"):
                    c.put({**o, "metadata": {**o["metadata"], "deletionTimestamp": to_rfc3339(w.now)}})
                continue
            c.delete(key_of(o))
            progressed = True
        if not progressed:
            return
