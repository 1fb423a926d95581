"""PersistentVolumeClaims, PersistentVolumes (v1) and StorageClasses (storage.k8s.io/v1).

Kubernetes' defaults and rules, from kubernetes/kubernetes pkg/apis/core/v1/defaults.go
(``SetDefaults_PersistentVolume``, ``SetDefaults_PersistentVolumeClaim``),
pkg/apis/storage/v1/defaults.go (``SetDefaults_StorageClass``), pkg/apis/core/validation
(``ValidatePersistentVolume``, ``ValidatePersistentVolumeClaim``) and pkg/apis/storage/validation
(``ValidateStorageClass``):

- a claim needs at least one access mode (ReadWriteOnce, ReadOnlyMany, ReadWriteMany,
  ReadWriteOncePod; ReadWriteOncePod alone) and ``resources.requests.storage``, a quantity
  greater than zero; ``volumeMode`` defaults to Filesystem;
- a volume needs ``capacity.storage``, at least one access mode and exactly one volume source;
  ``persistentVolumeReclaimPolicy`` defaults to Retain, ``volumeMode`` to Filesystem; a ``local``
  volume needs ``nodeAffinity``;
- a class needs a ``provisioner`` (a qualified name); ``reclaimPolicy`` defaults to Delete and
  ``volumeBindingMode`` to Immediate.

Pure. ``parse_quantity`` is the one quantity parser of the storage code (exact, as a Fraction).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from reconciler import selectors
from reconciler.manifests.validate.common import Ctx, is_dict, is_list, supported, type_name
from reconciler.manifests.validate.names import dns1123_subdomain_error
from reconciler.types import Obj

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
PV_RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
SC_RECLAIM_POLICIES = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
# the volume sources a PersistentVolume may name (PersistentVolumeSource); exactly one is set
PV_SOURCES = (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc", "flexVolume", "flocker",
    "gcePersistentDisk", "glusterfs", "hostPath", "iscsi", "local", "nfs", "photonPersistentDisk",
    "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume",
)  # fmt: skip
MAX_PARAMETERS = 512
MAX_PARAMETERS_BYTES = 256 * 1024

_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))((?:[eE][+-]?\d+)|[numkKMGTPE]i?|)")
_SUFFIX: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(1000),
    **{s: Fraction(1000**i) for i, s in enumerate(("k", "M", "G", "T", "P", "E"), 1)},
    **{s: Fraction(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def parse_quantity(value: Any) -> Fraction | None:
    """A Kubernetes quantity (``1Gi``, ``500M``, ``2``, ``1e3``) as an exact amount; None when it
    is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Fraction(value)
    if not isinstance(value, str):
        return None
    m = _QUANTITY.fullmatch(value.strip())
    if m is None or (m.group(2) not in _SUFFIX and m.group(2)[:1] not in ("e", "E")):
        return None
    suffix = m.group(2)
    if suffix[:1] in ("e", "E"):
        return Fraction(m.group(1)) * Fraction(10) ** int(suffix[1:])
    return Fraction(m.group(1)) * _SUFFIX[suffix]


# -------------------------------------------------------------------------------- defaults


def default_storage(obj: Obj) -> None:
    """The API server's defaults of the three kinds (in place; wrong types are left to validation)."""
    kind = obj.get("kind")
    if kind == "StorageClass":
        if not obj.get("reclaimPolicy"):
            obj["reclaimPolicy"] = "Delete"
        if not obj.get("volumeBindingMode"):
            obj["volumeBindingMode"] = "Immediate"
        return
    spec = obj.get("spec")
    if not is_dict(spec):
        return
    if not spec.get("volumeMode"):
        spec["volumeMode"] = "Filesystem"
    if kind == "PersistentVolume" and not spec.get("persistentVolumeReclaimPolicy"):
        spec["persistentVolumeReclaimPolicy"] = "Retain"


# -------------------------------------------------------------------------------- validation


def _access_modes(ctx: Ctx, spec: Obj, path: str) -> None:
    modes = ctx.list_field(spec, "accessModes", path)
    if not modes:
        ctx.err(f"{path}.accessModes", "Required value: at least 1 access mode is required")
        return
    for i, mode in enumerate(modes):
        if mode not in ACCESS_MODES:
            ctx.err(f"{path}.accessModes[{i}]", supported(mode, ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        ctx.err(f"{path}.accessModes", "Forbidden: may not use ReadWriteOncePod with other access modes")


def _volume_mode(ctx: Ctx, spec: Obj, path: str) -> None:
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        ctx.err(f"{path}.volumeMode", supported(mode, VOLUME_MODES))


def _class_name(ctx: Ctx, spec: Obj, path: str) -> None:
    name = ctx.str_field(spec, "storageClassName", path)
    if name:
        e = dns1123_subdomain_error(name)
        if e:
            ctx.err(f"{path}.storageClassName", f"Invalid value: {name!r}: {e}")


def _storage_quantity(ctx: Ctx, holder: Obj | None, path: str, positive: bool) -> None:
    value = (holder or {}).get("storage")
    if value is None:
        ctx.err(path, "Required value")
        return
    q = parse_quantity(value)
    if q is None:
        ctx.err(path, f"Invalid value: {value!r}: quantities must match the regular expression "
                      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")  # fmt: skip
    elif q < 0 or (positive and q == 0):
        ctx.err(path, f"Invalid value: {value!r}: must be greater than {'zero' if positive else 'or equal to 0'}")


def validate_pvc(ctx: Ctx, obj: Obj) -> None:
    spec = obj.get("spec")
    if not is_dict(spec):
        ctx.err("spec", f"Required value: must be an object, not {type_name(spec)}")
        return
    _access_modes(ctx, spec, "spec")
    _volume_mode(ctx, spec, "spec")
    _class_name(ctx, spec, "spec")
    ctx.str_field(spec, "volumeName", "spec")
    sel = spec.get("selector")
    if sel is not None:
        if not is_dict(sel):
            ctx.err("spec.selector", f"must be an object (matchLabels, matchExpressions), not {type_name(sel)}")
        else:
            for path, message in selectors.validate_label_selector(sel, "spec.selector"):
                ctx.err(path, message)
    resources = ctx.dict_field(spec, "resources", "spec")
    requests = ctx.dict_field(resources, "requests", "spec.resources") if resources is not None else None
    _storage_quantity(ctx, requests, "spec.resources.requests[storage]", positive=True)
    limits = ctx.dict_field(resources, "limits", "spec.resources") if resources is not None else None
    if limits and "storage" in limits:
        _storage_quantity(ctx, limits, "spec.resources.limits[storage]", positive=False)


def _claim_ref(ctx: Ctx, spec: Obj) -> None:
    ref = ctx.dict_field(spec, "claimRef", "spec")
    if ref is None:
        return
    if not ref.get("name"):
        ctx.err("spec.claimRef.name", "Required value")
    ctx.str_field(ref, "name", "spec.claimRef")
    ctx.str_field(ref, "namespace", "spec.claimRef")


def _source(ctx: Ctx, spec: Obj) -> None:
    present = [s for s in PV_SOURCES if spec.get(s) is not None]
    if not present:
        ctx.err("spec", "Required value: must specify a volume type")
        return
    if len(present) > 1:
        ctx.err(f"spec.{present[1]}", "Forbidden: may not specify more than 1 volume type")
        return
    src = present[0]
    body = spec[src]
    if not is_dict(body):
        ctx.err(f"spec.{src}", f"must be an object, not {type_name(body)}")
        return
    if src in ("hostPath", "local"):
        path = ctx.str_field(body, "path", f"spec.{src}")
        if not path:
            ctx.err(f"spec.{src}.path", "Required value")
        if src == "local" and spec.get("nodeAffinity") is None:
            ctx.err("spec.nodeAffinity", "Required value: Local volume requires node affinity")
    elif src == "csi":
        for key in ("driver", "volumeHandle"):
            if not ctx.str_field(body, key, "spec.csi"):
                ctx.err(f"spec.csi.{key}", "Required value")
    elif src == "nfs":
        for key in ("server", "path"):
            if not ctx.str_field(body, key, "spec.nfs"):
                ctx.err(f"spec.nfs.{key}", "Required value")


def validate_pv(ctx: Ctx, obj: Obj) -> None:
    spec = obj.get("spec")
    if not is_dict(spec):
        ctx.err("spec", f"Required value: must be an object, not {type_name(spec)}")
        return
    _access_modes(ctx, spec, "spec")
    _volume_mode(ctx, spec, "spec")
    _class_name(ctx, spec, "spec")
    capacity = ctx.dict_field(spec, "capacity", "spec")
    if not capacity:
        ctx.err("spec.capacity", "Required value")
    else:
        for key in capacity:
            if key != "storage":
                ctx.err(f"spec.capacity[{key}]", 'Unsupported value: only "storage" is a supported resource')
        _storage_quantity(ctx, capacity, "spec.capacity[storage]", positive=False)
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy is not None and policy not in PV_RECLAIM_POLICIES:
        ctx.err("spec.persistentVolumeReclaimPolicy", supported(policy, PV_RECLAIM_POLICIES))
    _claim_ref(ctx, spec)
    ctx.str_list_field(spec, "mountOptions", "spec")
    _source(ctx, spec)


def validate_storageclass(ctx: Ctx, obj: Obj) -> None:
    provisioner = obj.get("provisioner")
    if not provisioner:
        ctx.err("provisioner", "Required value")
    elif not isinstance(provisioner, str):
        ctx.err("provisioner", f"must be a string, not {type_name(provisioner)} {provisioner!r}")
    else:
        _qualified(ctx, provisioner)
    policy = obj.get("reclaimPolicy")
    if policy is not None and policy not in SC_RECLAIM_POLICIES:
        ctx.err("reclaimPolicy", supported(policy, SC_RECLAIM_POLICIES))
    mode = obj.get("volumeBindingMode")
    if mode is not None and mode not in BINDING_MODES:
        ctx.err("volumeBindingMode", supported(mode, BINDING_MODES))
    params = obj.get("parameters")
    if params is not None and not is_dict(params):
        ctx.err("parameters", f"must be an object, not {type_name(params)}")
    elif params:
        if len(params) > MAX_PARAMETERS:
            ctx.err("parameters", f"Too many: {len(params)}: must have at most {MAX_PARAMETERS} items")
        size = 0
        for k, v in params.items():
            if not isinstance(v, str):
                ctx.err(f"parameters[{k}]", f"must be a string, not {type_name(v)} {v!r}")
                continue
            size += len(k) + len(v)
        if size > MAX_PARAMETERS_BYTES:
            ctx.err("parameters", f"Too long: must have at most {MAX_PARAMETERS_BYTES} bytes")
    expansion = obj.get("allowVolumeExpansion")
    if expansion is not None and type(expansion) is not bool:
        ctx.err("allowVolumeExpansion", f"must be a boolean, not {type_name(expansion)} {expansion!r}")
    opts = obj.get("mountOptions")
    if opts is not None and (not is_list(opts) or not all(isinstance(o, str) for o in opts)):
        ctx.err("mountOptions", "must be a list of strings")


def _qualified(ctx: Ctx, name: str) -> None:
    """A provisioner is a qualified name: an optional DNS-subdomain prefix and '/', then a name of
    at most 63 characters (IsQualifiedName)."""
    prefix, _, local = name.rpartition("/")
    if prefix:
        e = dns1123_subdomain_error(prefix)
        if e:
            ctx.err("provisioner", f"Invalid value: {name!r}: prefix part {e}")
    if len(local) > 63 or not _QUALIFIED.fullmatch(local):
        ctx.err(
            "provisioner",
            f"Invalid value: {name!r}: name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character, at most 63 characters",
        )
