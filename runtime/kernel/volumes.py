"""A pod's volumes as the kubelet makes them: the files of a projected volume, and a container's mounts.

Kubernetes: pkg/volume/configmap, pkg/volume/secret, pkg/volume/downwardapi, pkg/volume/projected
(each ``SetUpAt`` builds a payload {path: bytes, mode} and hands it to pkg/volume/util AtomicWriter),
pkg/volume/emptydir, and pkg/kubelet/kubelet_pods.go makeMounts (subPath, subPathExpr, readOnly).

``volume_plan`` says what a volume is on disk:

* ``files``: configMap, secret, downwardAPI and projected volumes: {relative path: (bytes, mode)},
  written by the runtime (runtime/volumes.py) with the kubelet's ``..data`` symlink swap and
  rewritten when a source changes;
* ``emptyDir``: an empty directory (``medium: Memory``: a tmpfs of ``sizeLimit`` bytes);
* ``hostPath``: a path of the host (``host_path``, ``host_type``), bound as it is. The operator
  allows it (``--allow-host-path PREFIX``), never the repository: ``host_path_allowed`` decides
  on the path with its symlinks resolved (the caller resolves it), and ``host_path_action`` says
  what the ``type`` asks for, as pkg/volume/hostpath/host_path.go checkTypeInternal does;
* ``persistentVolumeClaim``: the claim (pod's namespace, ``claimName``) -> its ``spec.volumeName``
  -> that PersistentVolume -> its source, as the kubelet's desired_state_of_world_populator.go
  (getPVCExtractPV, getPVSpec) follows it: a ``hostPath`` or ``local`` source is a "hostPath"
  plan (``claim`` and ``pv_name`` set: the runtime trusts a path under its own storage dir,
  any other obeys ``--allow-host-path``), the built-in provisioner's Docker volume
  (``csi`` of driver CSI_DRIVER) a "csi" plan (``volume_handle``). ``read_only``: the volume's
  ``readOnly``, the csi source's, or a claim that asks only ReadOnlyMany.

Another volume type is not supported yet: ``VolumeError`` says so. A missing source that is not
``optional`` leaves the pod's containers waiting (``ContainerCreating``) with the kubelet's
FailedMount message, ``MountVolume.SetUp failed for volume "v" : configmap "x" not found``, until
the object exists. serviceAccountToken sources of a projected volume are skipped: gitship has no
API server whose tokens a pod could use.

Nothing here does I/O: the objects are a parameter (``objects``: every live ConfigMap, Secret,
PersistentVolumeClaim and PersistentVolume, keyed (kind, namespace, name); a PersistentVolume,
cluster-scoped, has namespace "").
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .env import ConfigError, ConfigObjects, decode_secret_value, expand, field_ref, lookup, not_found
from .env import parse_quantity, resource_field_ref

CONTAINER_CREATING = "ContainerCreating"
DEFAULT_MODE = 0o644
PROJECTED_KINDS = ("configMap", "secret", "downwardAPI", "projected")
SUPPORTED_KINDS = (*PROJECTED_KINDS, "emptyDir", "hostPath", "persistentVolumeClaim")
# the csi driver name of the PersistentVolumes the built-in local-path provisioner makes on Docker
# (a Docker named volume each; runtime/base.py re-exports it beside PROVISIONER)
CSI_DRIVER = "local-path.gitship.io"
# hostPath ``type``: what must be at the path (k8s.io/api/core/v1 HostPathType)
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")
# a file's type as host_path_action takes it (``found``), and what the type check says when it is not
_TYPE_NEEDS = {
    "Directory": ("directory", "a directory"),
    "File": ("file", "a file"),
    "Socket": ("socket", "a socket file"),
    "CharDevice": ("char", "a character device"),
    "BlockDevice": ("block", "a block device"),
}
# what a downward API volume offers (pkg/apis/core/validation validDownwardAPIFieldPathExpressions)
_VOLUME_FIELDS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations")

Files = dict[str, tuple[bytes, int]]


class VolumeError(ConfigError):
    """A volume cannot be set up: the pod's containers wait as ``ContainerCreating`` with the message."""

    def __init__(self, volume: str, message: str):
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}', CONTAINER_CREATING)
        self.volume = volume


class HostPathTypeError(VolumeError):
    """A hostPath ``type`` check failed: the runtime retries (what is at the path may change)."""


@dataclass(frozen=True)
class VolumePlan:
    """One volume: ``kind`` "files" (``files`` is its content), "emptyDir" (``memory``, ``size_limit``),
    "hostPath" (``host_path`` normalized, not resolved; ``host_type`` one of HOST_PATH_TYPES) or "csi"
    (``volume_handle``: a Docker volume of the built-in provisioner). A persistentVolumeClaim volume
    is "hostPath" or "csi" with ``claim`` (the claim's name) and ``pv_name`` set; ``read_only``
    mounts it read-only wherever it is mounted."""

    name: str
    kind: str
    files: Files = field(default_factory=dict)
    memory: bool = False
    size_limit: int | None = None
    sources: frozenset[tuple[str, str, str]] = frozenset()
    host_path: str = ""
    host_type: str = ""
    claim: str = ""
    pv_name: str = ""
    volume_handle: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Mount:
    """One volumeMount of a container: ``sub_path`` is relative to the volume's directory ("" whole)."""

    volume: str
    sub_path: str
    mount_path: str
    read_only: bool


def volume_kind(volume: Mapping[str, Any]) -> str:
    """The volume's type: the one key of it besides ``name`` ("emptyDir", "configMap" ...)."""
    return next((k for k in volume if k != "name"), "emptyDir")


def _mode(value: Any, default: int) -> int:
    return int(value) & 0o7777 if isinstance(value, int) and not isinstance(value, bool) else default


def _check_path(volume: str, path: str) -> str:
    """An item's ``path``: relative, no ``..`` element (the API server refuses others)."""
    norm = posixpath.normpath(path) if path else ""
    if not path or path.startswith("/") or norm == "." or ".." in norm.split("/"):
        raise VolumeError(volume, f"invalid item path {path!r}: must be relative and must not contain '..'")
    return norm


def _object_payload(
    volume: str, kind: str, src: Mapping[str, Any], ns: str, objects: ConfigObjects | None, default_mode: int
) -> Files:
    """A configMap or secret source: every key (``data`` and, for a ConfigMap, ``binaryData``), or ``items``."""
    name = str(src.get("name", ""))
    optional = bool(src.get("optional"))
    obj = lookup(objects, kind, ns, name)
    if obj is None:
        if optional:
            return {}
        raise VolumeError(volume, not_found(kind, name))
    data: dict[str, bytes] = {}
    if kind == "ConfigMap":
        data.update({str(k): str(v).encode() for k, v in (obj.get("data") or {}).items()})
        data.update({str(k): decode_secret_value(v) for k, v in (obj.get("binaryData") or {}).items()})
    else:
        data.update({str(k): decode_secret_value(v) for k, v in (obj.get("data") or {}).items()})
    items = src.get("items")
    if not items:
        return {_check_path(volume, k): (v, default_mode) for k, v in data.items()}
    out: Files = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            what = "config" if kind == "ConfigMap" else "secret"
            raise VolumeError(volume, f"{kind.lower()} references non-existent {what} key: {key}")
        out[_check_path(volume, str(item.get("path") or key))] = (data[key], _mode(item.get("mode"), default_mode))
    return out


def _downward_payload(
    volume: str, pod: Mapping[str, Any], items: Any, default_mode: int, facts: Mapping[str, str]
) -> Files:
    containers = {str(c.get("name")): c for c in (pod.get("spec") or {}).get("containers") or []}
    out: Files = {}
    for item in items or []:
        path = _check_path(volume, str(item.get("path", "")))
        mode = _mode(item.get("mode"), default_mode)
        try:
            if item.get("fieldRef"):
                fp = str(item["fieldRef"].get("fieldPath", ""))
                if fp not in _VOLUME_FIELDS and not fp.startswith(("metadata.labels[", "metadata.annotations[")):
                    raise ConfigError(f"unsupported fieldRef.fieldPath {fp!r} in a downwardAPI volume")
                value = field_ref(pod, fp, pod_ip="", host_ip="", node_name=facts.get("node_name", ""))
            elif item.get("resourceFieldRef"):
                ref = item["resourceFieldRef"]
                container = containers.get(str(ref.get("containerName", "")))
                if container is None:
                    raise ConfigError(f"resourceFieldRef: no container {ref.get('containerName')!r} in the pod")
                value = resource_field_ref(container, ref)
            else:
                raise ConfigError(f"item {path!r} has neither fieldRef nor resourceFieldRef")
        except ConfigError as e:
            raise VolumeError(volume, e.message) from None
        out[path] = (value.encode(), mode)
    return out


def _projected_payload(
    volume: str,
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    objects: ConfigObjects | None,
    facts: Mapping[str, str],
) -> tuple[Files, set[tuple[str, str, str]]]:
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    default_mode = _mode(spec.get("defaultMode"), DEFAULT_MODE)
    out: Files = {}
    sources: set[tuple[str, str, str]] = set()
    for source in spec.get("sources") or []:
        if source.get("configMap") is not None:
            out.update(_object_payload(volume, "ConfigMap", source["configMap"], ns, objects, default_mode))
            sources.add(("ConfigMap", ns, str(source["configMap"].get("name", ""))))
        elif source.get("secret") is not None:
            out.update(_object_payload(volume, "Secret", source["secret"], ns, objects, default_mode))
            sources.add(("Secret", ns, str(source["secret"].get("name", ""))))
        elif source.get("downwardAPI") is not None:
            out.update(_downward_payload(volume, pod, source["downwardAPI"].get("items"), default_mode, facts))
        # serviceAccountToken, clusterTrustBundle: skipped (no API server to present a token to)
    return out, sources


def volume_plan(
    pod: Mapping[str, Any],
    volume: Mapping[str, Any],
    objects: ConfigObjects | None,
    *,
    node_name: str = "",
) -> VolumePlan:
    """What one of the pod's ``spec.volumes`` is on disk. Raises VolumeError (the pod waits)."""
    name = str(volume.get("name", ""))
    kind = volume_kind(volume)
    spec = volume.get(kind) or {}
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    facts = {"node_name": node_name}
    if kind == "hostPath":
        return _host_path_plan(name, spec)
    if kind == "persistentVolumeClaim":
        return claim_plan(name, spec, ns, objects)
    if kind == "emptyDir":
        limit = spec.get("sizeLimit")
        size = None
        if limit is not None:
            try:
                size = int(parse_quantity(limit))
            except ValueError as e:
                raise VolumeError(name, str(e)) from None
        return VolumePlan(name, "emptyDir", memory=spec.get("medium") == "Memory", size_limit=size)
    default_mode = _mode(spec.get("defaultMode"), DEFAULT_MODE)
    if kind == "configMap":
        files = _object_payload(name, "ConfigMap", spec, ns, objects, default_mode)
        return VolumePlan(name, "files", files, sources=frozenset({("ConfigMap", ns, str(spec.get("name", "")))}))
    if kind == "secret":
        src = {**spec, "name": spec.get("secretName", "")}
        files = _object_payload(name, "Secret", src, ns, objects, default_mode)
        return VolumePlan(name, "files", files, sources=frozenset({("Secret", ns, str(src["name"]))}))
    if kind == "downwardAPI":
        return VolumePlan(name, "files", _downward_payload(name, pod, spec.get("items"), default_mode, facts))
    if kind == "projected":
        files, sources = _projected_payload(name, pod, spec, objects, facts)
        return VolumePlan(name, "files", files, sources=frozenset(sources))
    raise VolumeError(name, f"volume type {kind} is not supported by gitship yet")


def _host_path_plan(name: str, spec: Mapping[str, Any]) -> VolumePlan:
    path = str(spec.get("path") or "")
    if not path.startswith("/"):
        raise ConfigError(f'hostPath volume "{name}": path {path!r} must be an absolute path')
    host_type = str(spec.get("type") or "")
    if host_type not in HOST_PATH_TYPES:
        raise VolumeError(name, f"{host_type} is an invalid volume type")
    return VolumePlan(name, "hostPath", host_path=posixpath.normpath(path), host_type=host_type)


def claim_not_found(claim: str) -> str:
    return f'persistentvolumeclaim "{claim}" not found'


def bound_volume(claim_name: str, ns: str, objects: ConfigObjects | None) -> Mapping[str, Any]:
    """The PersistentVolume the claim (ns, claim_name) is bound to. Raises VolumeError-ready
    messages as ConfigError (missing, being deleted, unbound claim; missing PV, a PV bound to
    another claim)."""
    pvc = lookup(objects, "PersistentVolumeClaim", ns, claim_name)
    if pvc is None:
        raise ConfigError(claim_not_found(claim_name), CONTAINER_CREATING)
    if (pvc.get("metadata") or {}).get("deletionTimestamp"):
        raise ConfigError(f'persistentvolumeclaim "{claim_name}" is being deleted', CONTAINER_CREATING)
    pv_name = str((pvc.get("spec") or {}).get("volumeName") or "")
    phase = (pvc.get("status") or {}).get("phase")
    if not pv_name or phase not in (None, "Bound"):
        raise ConfigError(f'persistentvolumeclaim "{claim_name}" is not bound', CONTAINER_CREATING)
    pv = lookup(objects, "PersistentVolume", "", pv_name)
    if pv is None:
        raise ConfigError(f'persistentvolume "{pv_name}" not found', CONTAINER_CREATING)
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    uid, ref_uid = (pvc.get("metadata") or {}).get("uid"), ref.get("uid")
    if ref and (
        (str(ref.get("namespace") or "default"), str(ref.get("name") or "")) != (ns, claim_name)
        or (uid and ref_uid and uid != ref_uid)
    ):
        other = f"{ref.get('namespace') or 'default'}/{ref.get('name')}"
        raise ConfigError(f'persistentvolume "{pv_name}" is bound to another claim ({other})', CONTAINER_CREATING)
    return pv


def _pv_source_kind(pv_spec: Mapping[str, Any]) -> str:
    """The PV's volume source: the first key of its spec that is no PersistentVolumeSpec field."""
    fields = {
        "accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity", "persistentVolumeReclaimPolicy",
        "storageClassName", "volumeMode", "volumeAttributesClassName",
    }  # fmt: skip
    return next((k for k in pv_spec if k not in fields), "")


def pv_path(pv: Mapping[str, Any]) -> str | None:
    """The host path of a PersistentVolume's ``hostPath`` or ``local`` source, or None."""
    spec = pv.get("spec") or {}
    for kind in ("hostPath", "local"):
        if isinstance(spec.get(kind), Mapping) and spec[kind].get("path"):
            return str(spec[kind]["path"])
    return None


def pv_volume_handle(pv: Mapping[str, Any]) -> str | None:
    """The Docker volume of a PersistentVolume the built-in provisioner made on Docker (csi of
    driver CSI_DRIVER), or None."""
    csi = (pv.get("spec") or {}).get("csi")
    if isinstance(csi, Mapping) and csi.get("driver") == CSI_DRIVER and csi.get("volumeHandle"):
        return str(csi["volumeHandle"])
    return None


def claim_plan(name: str, spec: Mapping[str, Any], ns: str, objects: ConfigObjects | None) -> VolumePlan:
    """A persistentVolumeClaim volume: what its bound PersistentVolume is. Raises VolumeError (the pod
    waits as ContainerCreating until the objects change)."""
    claim_name = str(spec.get("claimName") or "")
    try:
        pv = bound_volume(claim_name, ns, objects)
    except ConfigError as e:
        raise VolumeError(name, e.message) from None
    pv_name = str((pv.get("metadata") or {}).get("name") or "")
    pv_spec = pv.get("spec") or {}
    pvc = lookup(objects, "PersistentVolumeClaim", ns, claim_name) or {}
    modes = list((pvc.get("spec") or {}).get("accessModes") or [])
    read_only = bool(spec.get("readOnly")) or (bool(modes) and all(m == "ReadOnlyMany" for m in modes))
    source = _pv_source_kind(pv_spec)
    src = pv_spec.get(source) or {}
    if source in ("hostPath", "local"):
        path = str(src.get("path") or "")
        if not path.startswith("/"):
            raise VolumeError(name, f'persistentvolume "{pv_name}": {source} path {path!r} must be an absolute path')
        host_type = str(src.get("type") or "") if source == "hostPath" else "Directory"
        if host_type not in HOST_PATH_TYPES:
            raise VolumeError(name, f"{host_type} is an invalid volume type")
        norm = posixpath.normpath(path)
        return VolumePlan(
            name,
            "hostPath",
            host_path=norm,
            host_type=host_type,
            read_only=read_only,
            claim=claim_name,
            pv_name=pv_name,
        )
    if source == "csi":
        driver = str(src.get("driver") or "")
        if driver != CSI_DRIVER or not src.get("volumeHandle"):
            raise VolumeError(name, f'persistentvolume "{pv_name}": csi driver "{driver}" is not supported by gitship')
        read_only = read_only or bool(src.get("readOnly"))
        return VolumePlan(
            name, "csi", volume_handle=str(src["volumeHandle"]), read_only=read_only, claim=claim_name, pv_name=pv_name
        )
    what = f"volume source {source}" if source else "no volume source"
    raise VolumeError(name, f'persistentvolume "{pv_name}" has {what}: gitship supports hostPath, local and its own')


def under_prefix(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or inside it, element by element (/srv/ab is not under /srv/a)."""
    path, prefix = posixpath.normpath(path), posixpath.normpath(prefix)
    if prefix == "/":
        return path.startswith("/")
    return path == prefix or path.startswith(prefix + "/")


def host_path_allowed(name: str, path: str, resolved: str, prefixes: Sequence[str]) -> None:
    """Raise ConfigError (CreateContainerConfigError) unless the hostPath volume ``name`` may be used.

    ``resolved`` is ``path`` with its symlinks resolved and ``..`` applied (the caller's realpath),
    ``prefixes`` the operator's ``--allow-host-path`` values, resolved the same way. Only the
    resolved path counts: a symlink or a ``..`` that leads out of every prefix is refused."""
    if resolved.startswith("/") and any(under_prefix(resolved, p) for p in prefixes if p.startswith("/")):
        return
    where = "" if posixpath.normpath(resolved) == path else f" (it resolves to {resolved})"
    raise ConfigError(f'hostPath volume "{name}": {path}{where} is not under an --allow-host-path prefix')


def host_path_action(name: str, path: str, host_type: str, found: str | None) -> str | None:
    """What the hostPath ``type`` asks for, given what is at the (resolved) path now: ``found`` is
    "directory", "file" (regular), "socket", "char", "block", "other", or None (nothing).

    Returns "mkdir" (DirectoryOrCreate, nothing there: make it 0755), "create" (FileOrCreate,
    nothing there: an empty file 0644, its parent must exist) or None (nothing to do). Raises
    VolumeError (FailedMount) when the check fails."""
    if host_type == "DirectoryOrCreate":
        if found is None:
            return "mkdir"
        host_type = "Directory"
    elif host_type == "FileOrCreate":
        if found is None:
            return "create"
        host_type = "File"
    if host_type == "":
        return None
    if host_type not in _TYPE_NEEDS:
        raise VolumeError(name, f"{host_type} is an invalid volume type")
    want, what = _TYPE_NEEDS[host_type]
    if found != want:
        raise HostPathTypeError(name, f"hostPath type check failed: {path} is not {what}")
    return None


def volume_sources(pod: Mapping[str, Any], objects: ConfigObjects | None = None) -> frozenset[tuple[str, str, str]]:
    """Every object the pod's volumes read: {(kind, namespace, name)}: ConfigMaps, Secrets and
    PersistentVolumeClaims, and (given ``objects``) the PersistentVolume each claim is bound to."""
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    out: set[tuple[str, str, str]] = set()
    for v in (pod.get("spec") or {}).get("volumes") or []:
        kind = volume_kind(v)
        spec = v.get(kind) or {}
        if kind == "persistentVolumeClaim":
            claim = str(spec.get("claimName") or "")
            out.add(("PersistentVolumeClaim", ns, claim))
            pv = ((lookup(objects, "PersistentVolumeClaim", ns, claim) or {}).get("spec") or {}).get("volumeName")
            if pv:
                out.add(("PersistentVolume", "", str(pv)))
        elif kind == "configMap":
            out.add(("ConfigMap", ns, str(spec.get("name", ""))))
        elif kind == "secret":
            out.add(("Secret", ns, str(spec.get("secretName", ""))))
        elif kind == "projected":
            for s in spec.get("sources") or []:
                if s.get("configMap") is not None:
                    out.add(("ConfigMap", ns, str(s["configMap"].get("name", ""))))
                if s.get("secret") is not None:
                    out.add(("Secret", ns, str(s["secret"].get("name", ""))))
    return frozenset(out)


# Volumes gitship writes (the ``..data`` swap) are mounted read-only whatever the volumeMount says, as
# the kubelet does since CVE-2017-1002102: a container that could write one could plant a ``..data``
# symlink the next update follows (pkg/volume/configmap, secret, downwardapi, projected: ReadOnly).
READ_ONLY_KINDS = frozenset({"configMap", "secret", "downwardAPI", "projected"})


def _sub_path(container: str, raw: str) -> str:
    """A subPath: relative, no ``..`` (the kubelet refuses others when it makes the mount)."""
    if not raw:
        return ""
    norm = posixpath.normpath(raw)
    if raw.startswith("/") or ".." in norm.split("/"):
        raise ConfigError(f"container {container}: subPath {raw!r} must be a relative path without '..'")
    return "" if norm == "." else norm


def container_mounts(
    pod: Mapping[str, Any], container: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> list[Mount]:
    """The container's ``volumeMounts``, parents first (a mount inside another comes after it).

    ``subPathExpr`` is expanded with the container's environment (``$(VAR)``). Raises ConfigError
    (CreateContainerConfigError) for a mount of an unknown volume or a bad path."""
    cname = str(container.get("name", ""))
    kinds = {str(v.get("name")): volume_kind(v) for v in (pod.get("spec") or {}).get("volumes") or []}
    volumes = set(kinds)
    out: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        vol = str(vm.get("name", ""))
        if vol not in volumes:
            raise ConfigError(f"container {cname}: volumeMount {vol!r}: no volume of that name in the pod")
        target = str(vm.get("mountPath", ""))
        if not target.startswith("/"):
            raise ConfigError(f"container {cname}: mountPath {target!r} must be an absolute path")
        raw = str(vm.get("subPath") or "")
        if vm.get("subPathExpr"):
            raw = expand(str(vm["subPathExpr"]), env or {})
        read_only = bool(vm.get("readOnly")) or kinds[vol] in READ_ONLY_KINDS
        out.append(Mount(vol, _sub_path(cname, raw), posixpath.normpath(target), read_only))
    return sorted(out, key=lambda m: m.mount_path.count("/") if m.mount_path != "/" else 0)


def pod_has_mounts(pod: Mapping[str, Any]) -> bool:
    return any(c.get("volumeMounts") for c in (pod.get("spec") or {}).get("containers") or [])
