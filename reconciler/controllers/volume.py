"""PersistentVolumeClaims and PersistentVolumes: binding, provisioning, protection and reclaim.

Kubernetes' rules, from kubernetes/kubernetes pkg/controller/volume/persistentvolume/pv_controller.go
(``syncClaim``, ``syncUnboundClaim``, ``syncBoundClaim``, ``syncVolume``, ``bind``,
``findBestMatchForClaim``, ``provisionClaim``, ``reclaimVolume``), pkg/controller/volume/pvcprotection
and pvprotection, plugin/pkg/admission/storage/storageobjectinuseprotection and
plugin/pkg/admission/storageclass/setdefault:

- a claim gets the ``kubernetes.io/pvc-protection`` finalizer, a volume ``kubernetes.io/pv-protection``;
- a claim without ``storageClassName`` gets the default class's name (the class annotated
  ``storageclass.kubernetes.io/is-default-class: "true"``, the newest when there are several);
  ``storageClassName: ""`` binds only to volumes without a class, nothing is provisioned for it;
- an unbound claim binds to the volume pre-bound to it (its ``claimRef``, or the claim's
  ``volumeName``), else to the smallest Available volume of its class and volume mode whose
  access modes include the claim's, whose capacity covers the request and whose labels match
  the claim's selector; binding sets the volume's ``claimRef`` and the claim's ``volumeName``
  (with ``pv.kubernetes.io/bound-by-controller`` on what the controller filled in) and
  ``pv.kubernetes.io/bind-completed`` on the claim;
- without such a volume, a claim of a class whose provisioner is gitship's own gets a volume
  made for it (``pvc-<claim uid>``): at once under ``volumeBindingMode: Immediate``, once a pod
  uses it under ``WaitForFirstConsumer``;
- a claim being deleted stays (Terminating) while a pod that is not Succeeded or Failed uses it;
- a volume whose claim is gone is Released; then its reclaim policy: Retain keeps it (and its
  data), Delete deletes the data (what gitship provisioned) and the volume;
- a volume being deleted stays while it is Bound.

Capacity is recorded, not enforced. Pure: the pass hands the runtime's answers back in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..cluster import Cluster, key_of
from ..manifests.validate.storage import parse_quantity
from ..selectors import labels_match_selector
from ..types import Obj
from .podutil import Event, to_rfc3339

PVC = "PersistentVolumeClaim"
PV = "PersistentVolume"
SC = "StorageClass"
BUILTIN_CLASS = "local-path"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
# annotations this controller writes on live objects (git does not own them)
MANAGED_ANNOTATION_PREFIXES = ("pv.kubernetes.io/", "volume.kubernetes.io/", "volume.beta.kubernetes.io/")
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
MSG_WAIT_FIRST_CONSUMER = "waiting for first consumer to be created before binding"
MSG_UNBOUND_IMMEDIATE = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
MSG_UNBOUND_DELAYED = "0/1 nodes are available: waiting for its PersistentVolumeClaims to be bound."
DONE_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Provision:
    """Ask the runtime for the backing store of ``pv_name`` for ``claim`` (runtime.provision_volume),
    then put ``provisioned_pv(...)`` live."""

    pv_name: str
    claim: Obj
    storage_class: Obj


@dataclass
class VolumeSync:
    """What one pass of the controller decided besides the objects it changed."""

    events: list[Event] = field(default_factory=list)
    provision: list[Provision] = field(default_factory=list)
    reclaim: list[Obj] = field(default_factory=list)  # PVs whose data to delete (runtime.delete_volume)


# -- small readers ------------------------------------------------------------------------------


def annots(obj: Obj) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def is_default_class(sc: Obj) -> bool:
    ann = annots(sc)
    return ann.get(ANN_DEFAULT_CLASS) == "true" or ann.get(ANN_BETA_DEFAULT_CLASS) == "true"


def default_class_name(classes: Iterable[Obj]) -> str | None:
    """The default StorageClass (GetDefaultClass: the newest of those marked default)."""
    marked = [sc for sc in classes if is_default_class(sc)]
    if not marked:
        return None
    marked.sort(key=lambda sc: (sc["metadata"].get("creationTimestamp") or "", sc["metadata"]["name"]))
    return str(marked[-1]["metadata"]["name"])


def builtin_class(provisioner: str, uid: str, now: float) -> Obj:
    """The ``local-path`` StorageClass gitship ships (as k3s does): its own provisioner, the
    default class, binding when the first pod uses a claim."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": SC,
        "metadata": {
            "name": BUILTIN_CLASS,
            "uid": uid,
            "creationTimestamp": to_rfc3339(now),
            "labels": {},
            "annotations": {ANN_DEFAULT_CLASS: "true"},
        },
        "provisioner": provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
    }


def claim_names(pod: Obj) -> list[str]:
    """The claims a pod's volumes name, in order."""
    out: list[str] = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        ref = v.get("persistentVolumeClaim") if isinstance(v, dict) else None
        if isinstance(ref, dict) and ref.get("claimName") and ref["claimName"] not in out:
            out.append(str(ref["claimName"]))
    return out


def storage_of(holder: Any) -> Fraction:
    q = parse_quantity((holder or {}).get("storage")) if isinstance(holder, dict) else None
    return q if q is not None else Fraction(0)


def requested(claim: Obj) -> Fraction:
    return storage_of(((claim.get("spec") or {}).get("resources") or {}).get("requests"))


def class_of(obj: Obj) -> str:
    return str((obj.get("spec") or {}).get("storageClassName") or "")


def claim_uid_ref(claim: Obj) -> Obj:
    m = claim["metadata"]
    return {"kind": PVC, "namespace": m["namespace"], "name": m["name"], "uid": m["uid"], "apiVersion": "v1"}


def ref_is_claim(ref: Any, claim: Obj) -> bool:
    """The volume's claimRef names this claim (a ref without uid is a pre-binding by name)."""
    if not isinstance(ref, dict):
        return False
    m = claim["metadata"]
    return (
        ref.get("name") == m["name"]
        and (ref.get("namespace") or "default") == m["namespace"]
        and (not ref.get("uid") or ref.get("uid") == m["uid"])
    )


def pod_uses_claim(pod: Obj, namespace: str, name: str) -> bool:
    """A pod that is not Succeeded or Failed and names the claim in its volumes
    (pvcprotection's podUsesPVC)."""
    if (pod.get("status") or {}).get("phase") in DONE_PHASES:
        return False
    return pod["metadata"]["namespace"] == namespace and name in claim_names(pod)


def satisfies(pv: Obj, claim: Obj) -> bool:
    """checkVolumeSatisfyClaim plus findMatchingVolume's filters (class, mode, modes, size, selector)."""
    ps, cs = pv.get("spec") or {}, claim.get("spec") or {}
    if class_of(pv) != class_of(claim):
        return False
    if (ps.get("volumeMode") or "Filesystem") != (cs.get("volumeMode") or "Filesystem"):
        return False
    if not set(cs.get("accessModes") or []) <= set(ps.get("accessModes") or []):
        return False
    if storage_of(ps.get("capacity")) < requested(claim):
        return False
    return labels_match_selector(cs.get("selector"), pv["metadata"].get("labels") or {}) if cs.get("selector") else True


def best_match(claim: Obj, volumes: Iterable[Obj]) -> Obj | None:
    """The volume pre-bound to the claim when it satisfies it, else the smallest free one that does."""
    best: Obj | None = None
    for pv in volumes:
        if pv["metadata"].get("deletionTimestamp"):
            continue
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref:
            if ref_is_claim(ref, claim) and satisfies(pv, claim):
                return pv
            continue
        if (pv.get("status") or {}).get("phase") not in (None, "Available", "Pending"):
            continue
        if satisfies(pv, claim) and (
            best is None or storage_of(pv["spec"].get("capacity")) < storage_of(best["spec"].get("capacity"))
        ):
            best = pv
    return best


# -- the objects it writes ----------------------------------------------------------------------


def bound_pair(claim: Obj, pv: Obj) -> tuple[Obj, Obj]:
    """The claim and the volume bound to each other (bind(): bindVolumeToClaim, bindClaimToVolume)."""
    new_pv = copy.deepcopy(pv)
    spec = new_pv.setdefault("spec", {})
    if not (spec.get("claimRef") or {}).get("uid"):
        if not spec.get("claimRef"):
            new_pv["metadata"].setdefault("annotations", {})[ANN_BOUND_BY_CONTROLLER] = "yes"
        spec["claimRef"] = claim_uid_ref(claim)
    new_pv["status"] = {"phase": "Bound"}
    new_claim = copy.deepcopy(claim)
    ann = new_claim["metadata"].setdefault("annotations", {})
    if not new_claim["spec"].get("volumeName"):
        new_claim["spec"]["volumeName"] = pv["metadata"]["name"]
        ann[ANN_BOUND_BY_CONTROLLER] = "yes"
    ann[ANN_BIND_COMPLETED] = "yes"
    new_claim["status"] = {
        "phase": "Bound",
        "accessModes": list(spec.get("accessModes") or []),
        "capacity": dict(spec.get("capacity") or {}),
    }
    return new_claim, new_pv


def provisioned_pv(claim: Obj, storage_class: Obj, source: Obj, uid: str, now: float) -> Obj:
    """The volume gitship's provisioner made for ``claim``: named ``pvc-<claim uid>``, pre-bound
    to the claim, the size it asked for, the class's reclaim policy, the runtime's source."""
    cs = claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": PV,
        "metadata": {
            "name": pv_name_for(claim),
            "uid": uid,
            "creationTimestamp": to_rfc3339(now),
            "labels": {},
            "annotations": {ANN_PROVISIONED_BY: str(storage_class.get("provisioner") or "")},
            "finalizers": [PV_PROTECTION],
        },
        "spec": {
            **copy.deepcopy(source),
            "capacity": {"storage": cs["resources"]["requests"]["storage"]},
            "accessModes": list(cs.get("accessModes") or []),
            "claimRef": claim_uid_ref(claim),
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": cs.get("volumeMode") or "Filesystem",
            **({"mountOptions": list(storage_class["mountOptions"])} if storage_class.get("mountOptions") else {}),
        },
        "status": {"phase": "Bound"},
    }


def pv_name_for(claim: Obj) -> str:
    return f"pvc-{claim['metadata']['uid']}"


# -- the controller ---------------------------------------------------------------------------


class VolumeController:
    """One pass over the claims, volumes and classes of a (scratch) Cluster."""

    def __init__(self, cluster: Cluster, provisioner: str, now: float, new_uid: Callable[[], str]):
        self.c = cluster
        self.provisioner = provisioner
        self.now = now
        self.new_uid = new_uid
        self.out = VolumeSync()

    def event(self, type_: str, reason: str, obj: Obj, message: str) -> None:
        m = obj["metadata"]
        self.out.events.append(Event(type_, reason, message, obj["kind"], m.get("namespace") or "", m["name"]))

    def set_status(self, obj: Obj, status: Obj) -> None:
        if obj.get("status") != status:
            self.c.put({**obj, "status": status})

    def run(self) -> VolumeSync:
        self.ensure_builtin_class()
        self.admit()
        self.finish_deletions()
        for claim in self.c.of_kind(PVC):
            self.sync_claim(claim)
        for pv in self.c.of_kind(PV):
            self.sync_volume(pv)
        return self.out

    # what the admission plugins add on create
    def ensure_builtin_class(self) -> None:
        if self.c.get((SC, "", BUILTIN_CLASS)) is None:
            self.c.put(builtin_class(self.provisioner, self.new_uid(), self.now))

    def admit(self) -> None:
        default = default_class_name(self.c.of_kind(SC))
        for kind, finalizer in ((PVC, PVC_PROTECTION), (PV, PV_PROTECTION)):
            for obj in self.c.of_kind(kind):
                m = obj["metadata"]
                missing_class = kind == PVC and (obj.get("spec") or {}).get("storageClassName") is None
                has_fin = finalizer in (m.get("finalizers") or [])
                if (has_fin or m.get("deletionTimestamp")) and not (missing_class and default):
                    continue
                new = copy.deepcopy(obj)
                if not has_fin and not m.get("deletionTimestamp"):
                    new["metadata"]["finalizers"] = [*(m.get("finalizers") or []), finalizer]
                if missing_class and default:
                    new["spec"]["storageClassName"] = default
                self.c.put(new)

    # protection
    def finish_deletions(self) -> None:
        pods = self.c.of_kind("Pod")
        for claim in self.c.of_kind(PVC):
            m = claim["metadata"]
            if m.get("deletionTimestamp") and not any(pod_uses_claim(p, m["namespace"], m["name"]) for p in pods):
                self.c.delete(key_of(claim))
        for pv in self.c.of_kind(PV):
            if pv["metadata"].get("deletionTimestamp") and not self._bound_claim(pv):
                self.c.delete(key_of(pv))

    def _bound_claim(self, pv: Obj) -> Obj | None:
        ref = (pv.get("spec") or {}).get("claimRef")
        if not isinstance(ref, dict) or not ref.get("uid"):
            return None
        claim = self.c.get((PVC, ref.get("namespace") or "default", str(ref.get("name"))))
        return claim if claim is not None and claim["metadata"].get("uid") == ref["uid"] else None

    # claims
    def sync_claim(self, claim: Obj) -> None:
        if claim["metadata"].get("deletionTimestamp") and (claim.get("status") or {}).get("phase") != "Bound":
            return
        if ANN_BIND_COMPLETED in annots(claim) and claim["spec"].get("volumeName"):
            self.sync_bound_claim(claim)
        elif claim["spec"].get("volumeName"):
            self.sync_named_claim(claim)
        else:
            self.sync_unbound_claim(claim)

    def pending(self, claim: Obj, reason: str | None, type_: str = "Normal", message: str = "") -> None:
        """The claim stays Pending; the event once, when it becomes Pending (a new claim)."""
        if (claim.get("status") or {}).get("phase") != "Pending" and reason:
            self.event(type_, reason, claim, message)
        self.set_status(claim, {"phase": "Pending"})

    def bind(self, claim: Obj, pv: Obj) -> None:
        new_claim, new_pv = bound_pair(claim, pv)
        self.c.put(new_pv)
        self.c.put(new_claim)

    def sync_bound_claim(self, claim: Obj) -> None:
        pv = self.c.get((PV, "", claim["spec"]["volumeName"]))
        if pv is None or not ref_is_claim((pv.get("spec") or {}).get("claimRef"), claim):
            if (claim.get("status") or {}).get("phase") != "Lost":
                what = "lost reference to" if pv is None else "lost its"
                self.event(
                    "Warning",
                    "ClaimLost",
                    claim,
                    f"Bound claim has {what} PersistentVolume. Data on the volume is lost!",
                )
            self.set_status(claim, {"phase": "Lost"})
            return
        self.bind(claim, pv)

    def sync_named_claim(self, claim: Obj) -> None:
        name = claim["spec"]["volumeName"]
        pv = self.c.get((PV, "", name))
        if pv is None:
            self.pending(claim, "FailedBinding", "Warning", f'volume "{name}" not found')
            return
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref and not ref_is_claim(ref, claim):
            self.pending(claim, "FailedBinding", "Warning", "volume already bound to a different claim.")
            return
        if not satisfies(pv, claim):
            self.pending(
                claim,
                "VolumeMismatch",
                "Warning",
                'Cannot bind to requested volume "%s": it does not satisfy the claim' % name,
            )
            return
        self.bind(claim, pv)

    def consumers(self, claim: Obj) -> bool:
        m = claim["metadata"]
        return any(pod_uses_claim(p, m["namespace"], m["name"]) for p in self.c.of_kind("Pod", m["namespace"]))

    def sync_unbound_claim(self, claim: Obj) -> None:
        class_name = class_of(claim)
        sc = self.c.get((SC, "", class_name)) if class_name else None
        delayed = sc is not None and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
        waiting = delayed and not self.consumers(claim)
        pv = best_match(claim, self.c.of_kind(PV))
        if pv is not None and (not waiting or ref_is_claim((pv.get("spec") or {}).get("claimRef"), claim)):
            self.bind(claim, pv)
            return
        if not class_name:
            self.pending(
                claim,
                "FailedBinding",
                "Normal",
                "no persistent volumes available for this claim and no storage class is set",
            )
        elif sc is None:
            self.pending(
                claim, "ProvisioningFailed", "Warning", f'storageclass.storage.k8s.io "{class_name}" not found'
            )
        elif waiting:
            self.pending(claim, WAIT_FOR_FIRST_CONSUMER, "Normal", MSG_WAIT_FIRST_CONSUMER)
        elif sc.get("provisioner") != self.provisioner:
            self.pending(
                claim,
                "ExternalProvisioning",
                "Normal",
                f"Waiting for a volume to be created either by the external provisioner '{sc.get('provisioner')}' "
                "or manually by the system administrator. If volume creation is delayed, please verify that "
                "the provisioner is running and correctly registered.",
            )
        else:
            self.provision(claim, sc)

    def provision(self, claim: Obj, sc: Obj) -> None:
        ann = annots(claim)
        if ann.get(ANN_STORAGE_PROVISIONER) != self.provisioner:
            claim = copy.deepcopy(claim)
            claim["metadata"]["annotations"] = {
                **ann,
                ANN_STORAGE_PROVISIONER: self.provisioner,
                ANN_BETA_STORAGE_PROVISIONER: self.provisioner,
            }
            self.c.put(claim)
        self.pending(claim, None)
        self.out.provision.append(Provision(pv_name_for(claim), self.c.get(key_of(claim)) or claim, sc))

    # volumes
    def sync_volume(self, pv: Obj) -> None:
        ref = (pv.get("spec") or {}).get("claimRef")
        phase = (pv.get("status") or {}).get("phase")
        if not isinstance(ref, dict) or not ref.get("uid"):
            if phase not in ("Available", "Failed") or phase is None:
                self.set_status(pv, {"phase": "Available"})
            return
        claim = self.c.get((PVC, ref.get("namespace") or "default", str(ref.get("name"))))
        if claim is not None and claim["metadata"].get("uid") == ref["uid"]:
            if claim["spec"].get("volumeName") in (None, "", pv["metadata"]["name"]):
                self.set_status(pv, {"phase": "Bound"})
            elif ANN_BOUND_BY_CONTROLLER in annots(pv):  # the claim went to another volume: unbind
                new = copy.deepcopy(pv)
                new["spec"].pop("claimRef", None)
                new["metadata"]["annotations"].pop(ANN_BOUND_BY_CONTROLLER, None)
                self.set_status(new, {"phase": "Available"})
            return
        self.release(pv, phase)

    def release(self, pv: Obj, phase: str | None) -> None:
        """The claim is gone: Released, then the reclaim policy (reclaimVolume)."""
        if phase == "Failed":
            return
        policy = pv["spec"].get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            self.set_status(pv, {"phase": "Released"})
        elif policy == "Delete" and annots(pv).get(ANN_PROVISIONED_BY) == self.provisioner:
            self.set_status(pv, {"phase": "Released"})
            self.out.reclaim.append(self.c.get(key_of(pv)) or pv)
        else:
            reason = "VolumeFailedDelete" if policy == "Delete" else "VolumeFailedRecycle"
            message = (
                "error getting deleter volume plugin for volume: no deletable volume plugin matched"
                if policy == "Delete"
                else "Recycle is not supported: use Retain or Delete"
            )
            self.event("Warning", reason, pv, message)
            self.set_status(pv, {"phase": "Failed", "message": message})


def sync_volumes(cluster: Cluster, provisioner: str, now: float, new_uid: Callable[[], str]) -> VolumeSync:
    """One pass of the volume controller over ``cluster`` (changed in place)."""
    return VolumeController(cluster, provisioner, now, new_uid).run()


# -- the scheduler's part --------------------------------------------------------------------


def unschedulable(
    pod: Obj, claims: Callable[[str, str], Obj | None], classes: Callable[[str], Obj | None]
) -> str | None:
    """Why the scheduler would not place ``pod`` (its claims missing, being deleted or unbound),
    as the VolumeBinding plugin says it; None when every claim it names is Bound.

    ``claims(namespace, name)`` and ``classes(name)`` look the live objects up."""
    ns = pod["metadata"]["namespace"]
    delayed_only = True
    unbound = False
    for name in claim_names(pod):
        claim = claims(ns, name)
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found'
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        if (claim.get("status") or {}).get("phase") == "Bound" and claim["spec"].get("volumeName"):
            continue
        unbound = True
        sc = classes(class_of(claim)) if class_of(claim) else None
        if sc is None or sc.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
            delayed_only = False
    if not unbound:
        return None
    return MSG_UNBOUND_DELAYED if delayed_only else MSG_UNBOUND_IMMEDIATE


def unschedulable_status(status: Obj | None, message: str, now: float) -> Obj:
    """A Pending pod's status with PodScheduled=False reason Unschedulable and the message (the
    transition time kept while the message stays the same)."""
    old = next(
        (c for c in (status or {}).get("conditions") or [] if c.get("type") == "PodScheduled"),
        None,
    )
    since = old.get("lastTransitionTime") if old and old.get("message") == message else None
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": since or to_rfc3339(now),
            }
        ],
    }
