"""kubectl's columns and describe pages of PersistentVolumes, PersistentVolumeClaims and StorageClasses.

Where it sits: beside printers.py (which adds the AGE column and the page's head); pure. Columns as
kubectl prints them (kubernetes/kubernetes pkg/printers/internalversion/printers.go
printPersistentVolume, printPersistentVolumeClaim, printStorageClass; describe.go
PersistentVolumeDescriber, PersistentVolumeClaimDescriber, StorageClassDescriber). Capacity is
recorded, not enforced: the describe pages say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .types import Obj

_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
NOT_ENFORCED = "recorded, not enforced (gitship does not limit a volume's size)"


def access_modes(modes: Any) -> str:
    """kubectl's GetAccessModesAsString: RWO,ROX,RWX,RWOP in that order, each once."""
    have = set(modes or [])
    return ",".join(short for mode, short in _MODES.items() if mode in have)


def _storage(holder: Any) -> str:
    return str((holder or {}).get("storage") or "") if isinstance(holder, dict) else ""


def _or_none(v: Any) -> str:
    return str(v) if v else "<unset>"


def claim_text(pv: Obj) -> str:
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    return f"{ref.get('namespace') or 'default'}/{ref['name']}" if ref.get("name") else ""


def pv_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    phase = st.get("phase") or "Pending"
    if o["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [
        o["metadata"]["name"],
        _storage(spec.get("capacity")),
        access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "Retain",
        phase,
        claim_text(o),
        spec.get("storageClassName") or "",
        _or_none(spec.get("volumeAttributesClassName")),
        st.get("reason") or "",
    ]


def pvc_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    phase = st.get("phase") or "Pending"
    if o["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    bound = bool(spec.get("volumeName")) and phase in ("Bound", "Terminating")
    return [
        o["metadata"]["name"],
        phase,
        spec.get("volumeName") or "",
        _storage(st.get("capacity")) if bound else "",
        access_modes(st.get("accessModes")) if bound else "",
        spec.get("storageClassName") or "",
        _or_none(spec.get("volumeAttributesClassName")),
    ]


def is_default(sc: Obj) -> bool:
    ann = sc["metadata"].get("annotations") or {}
    return any(ann.get(k) == "true" for k in DEFAULT_CLASS_ANNOTATIONS)


def sc_row(o: Obj) -> list[Any]:
    name = o["metadata"]["name"] + (" (default)" if is_default(o) else "")
    return [
        name,
        o.get("provisioner") or "",
        o.get("reclaimPolicy") or "Delete",
        o.get("volumeBindingMode") or "Immediate",
        str(bool(o.get("allowVolumeExpansion"))).lower(),
    ]


def volume_mode(o: Obj) -> list[Any]:
    return [(o.get("spec") or {}).get("volumeMode") or "Filesystem"]


# kind -> (headers without AGE, row without AGE, -o wide headers, -o wide cells)
STORAGE_COLUMNS: dict[str, tuple[list[str], Callable[[Obj], list[Any]], list[str], Callable[[Obj], list[Any]]]] = {
    "PersistentVolume": (
        [
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
        ],
        pv_row,
        ["VOLUMEMODE"],
        volume_mode,
    ),  # fmt: skip
    "PersistentVolumeClaim": (
        ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS"],
        pvc_row,
        ["VOLUMEMODE"],
        volume_mode,
    ),
    "StorageClass": (
        ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION"],
        sc_row,
        [],
        lambda o: [],
    ),
}


# -- describe ------------------------------------------------------------------------------


def _source_lines(spec: Obj) -> list[str]:
    if "hostPath" in spec:
        hp = spec["hostPath"] or {}
        return [
            "    Type:          HostPath (bare host directory volume)",
            f"    Path:          {hp.get('path', '')}",
            f"    HostPathType:  {hp.get('type', '')}",
        ]
    if "local" in spec:
        return ["    Type:  LocalVolume (a persistent volume backed by local storage on a node)",
                f"    Path:  {(spec['local'] or {}).get('path', '')}"]  # fmt: skip
    if "csi" in spec:
        csi = spec["csi"] or {}
        return [
            "    Type:              CSI (a Container Storage Interface (CSI) volume source)",
            f"    Driver:            {csi.get('driver', '')}",
            f"    VolumeHandle:      {csi.get('volumeHandle', '')}",
            f"    ReadOnly:          {str(bool(csi.get('readOnly'))).lower()}",
        ]
    if "nfs" in spec:
        nfs = spec["nfs"] or {}
        return ["    Type:      NFS (an NFS mount that lasts the lifetime of a pod)",
                f"    Server:    {nfs.get('server', '')}", f"    Path:      {nfs.get('path', '')}"]  # fmt: skip
    return ["    <unknown>"]


def _finalizers(o: Obj) -> str:
    return "[" + " ".join(o["metadata"].get("finalizers") or []) + "]"


def describe_pv(o: Obj) -> list[str]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    status = "Terminating" if o["metadata"].get("deletionTimestamp") else st.get("phase") or "Pending"
    return [
        f"Finalizers:     {_finalizers(o)}",
        f"StorageClass:   {spec.get('storageClassName') or ''}",
        f"Status:         {status}",
        f"Claim:          {claim_text(o)}",
        f"Reclaim Policy: {spec.get('persistentVolumeReclaimPolicy') or 'Retain'}",
        f"Access Modes:   {access_modes(spec.get('accessModes'))}",
        f"VolumeMode:     {spec.get('volumeMode') or 'Filesystem'}",
        f"Capacity:       {_storage(spec.get('capacity'))} ({NOT_ENFORCED})",
        "Node Affinity:  <none>" if not spec.get("nodeAffinity") else "Node Affinity:  (set)",
        f"Message:        {st.get('message') or ''}",
        "Source:",
        *_source_lines(spec),
    ]


def describe_pvc(o: Obj) -> list[str]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    status = "Terminating" if o["metadata"].get("deletionTimestamp") else st.get("phase") or "Pending"
    bound = status in ("Bound", "Terminating") and spec.get("volumeName")
    return [
        f"StorageClass:   {spec.get('storageClassName') or ''}",
        f"Status:         {status}",
        f"Volume:         {spec.get('volumeName') or ''}",
        f"Finalizers:     {_finalizers(o)}",
        f"Capacity:       {_storage(st.get('capacity')) if bound else ''}" + (f" ({NOT_ENFORCED})" if bound else ""),
        f"Access Modes:   {access_modes(st.get('accessModes')) if bound else ''}",
        f"VolumeMode:     {spec.get('volumeMode') or 'Filesystem'}",
    ]


def describe_sc(o: Obj) -> list[str]:
    params = o.get("parameters") or {}
    return [
        f"IsDefaultClass:        {'Yes' if is_default(o) else 'No'}",
        f"Provisioner:           {o.get('provisioner') or ''}",
        f"Parameters:            {','.join(f'{k}={v}' for k, v in params.items()) or '<none>'}",
        f"AllowVolumeExpansion:  {'True' if o.get('allowVolumeExpansion') else '<unset>'}",
        f"MountOptions:          {', '.join(o.get('mountOptions') or []) or '<none>'}",
        f"ReclaimPolicy:         {o.get('reclaimPolicy') or 'Delete'}",
        f"VolumeBindingMode:     {o.get('volumeBindingMode') or 'Immediate'}",
    ]


STORAGE_DESCRIBE: dict[str, Callable[[Obj], list[str]]] = {
    "PersistentVolume": describe_pv,
    "PersistentVolumeClaim": describe_pvc,
    "StorageClass": describe_sc,
}


def pods_using(claim: Obj, pods: list[Obj]) -> str:
    """describe pvc's Used By: the pods of its namespace whose volumes name it."""
    name = claim["metadata"]["name"]
    out = []
    for p in pods:
        for v in (p.get("spec") or {}).get("volumes") or []:
            if ((v or {}).get("persistentVolumeClaim") or {}).get("claimName") == name:
                out.append(p["metadata"]["name"])
                break
    return ("\n" + " " * 16).join(sorted(out)) or "<none>"
