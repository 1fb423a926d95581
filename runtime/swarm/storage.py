"""Pure mapping of a pod's volumes onto a Swarm service (no I/O; the runtime makes what it names).

What each volume kind becomes (the pod kernel, runtime/kernel/volumes.py, says what a volume holds):

* configMap / secret / downwardAPI / projected: every file of the volume is one Swarm **config**
  (or **secret**, when the volume reads a Secret) mounted at ``mountPath/<path>`` with the item's
  mode. Swarm carries configs and secrets to whichever node runs the task. They are immutable and
  named by their content (``gs-<instance 8>-c|s-<sha256 40>``), so a changed ConfigMap is a new
  config, and the pod's service is updated to it (``file_refs`` differ): Swarm replaces the task.
  A ``subPath`` mount is the file(s) under that path.
* emptyDir: an anonymous volume (``medium: Memory``: a tmpfs of ``sizeLimit``), the task's own.
* persistentVolumeClaim of the built-in provisioner (csi ``local-path.gitship.io``): the named
  local volume ``volume_handle`` on the node, created by that node's engine at the first mount;
  the runtime pins the pod to the node once the volume lives there (``claims``).
* hostPath, and a claim of any other PersistentVolume: refused (a path on whichever node Swarm
  picks is not the operator's ``--allow-host-path`` promise).

``env_for_swarm`` escapes the Go template markers Swarm expands in a service's env and puts the
node's name (downward API ``spec.nodeName``) as Swarm's ``{{.Node.Hostname}}`` template.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.kernel.env import ConfigError, ConfigObjects
from runtime.kernel.volumes import VolumeError, VolumePlan, container_mounts, volume_plan

NODE_NAME_MARK = "\x00node\x00"  # a value no env var can hold: stands for Swarm's node hostname template
NODE_TEMPLATE = "{{.Node.Hostname}}"
_OPEN = '{{"{{"}}'  # a literal "{{" in a Go template
MAX_FILE = 500 * 1024  # Swarm's size limit of one config or secret


@dataclass(frozen=True)
class FileRef:
    """One file of a projected volume: a Swarm config (``secret`` False) or secret named ``name``."""

    secret: bool
    name: str
    target: str
    mode: int
    data: bytes = field(repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class VolumeMount:
    """A mount of the service's container: ``source`` "" is an anonymous volume; ``tmpfs_size``
    is set (or 0) for a tmpfs; ``claim`` is the PersistentVolume's name for a claim's volume."""

    target: str
    source: str = ""
    read_only: bool = False
    tmpfs: bool = False
    tmpfs_size: int | None = None
    subpath: str = ""
    pv_name: str = ""


@dataclass
class PodStorage:
    files: list[FileRef] = field(default_factory=list)
    mounts: list[VolumeMount] = field(default_factory=list)
    claims: dict[str, str] = field(default_factory=dict)  # PersistentVolume name -> its volume's name


def content_name(instance: str, data: bytes, secret: bool) -> str:
    return f"gs-{instance[:8]}-{'s' if secret else 'c'}-{hashlib.sha256(data).hexdigest()[:40]}"


def _files(instance: str, plan: VolumePlan, target: str, sub: str) -> list[FileRef]:
    secret = any(kind == "Secret" for kind, _, _ in plan.sources)
    out = []
    for path, (data, mode) in sorted(plan.files.items()):
        if sub and path != sub and not path.startswith(sub + "/"):
            continue
        rest = path[len(sub) :].lstrip("/") if sub else path
        if len(data) > MAX_FILE:
            raise VolumeError(plan.name, f"{path}: {len(data)} bytes, over Swarm's {MAX_FILE} for one file")
        dest = posixpath.join(target, rest) if rest else target
        out.append(FileRef(secret, content_name(instance, data, secret), dest, mode, data))
    return out


def pod_storage(
    instance: str, pod: Mapping[str, Any], container: Mapping[str, Any], env: Mapping[str, str], objects: ConfigObjects
) -> PodStorage:
    """The container's volumeMounts as Swarm configs, secrets and mounts. Raises ConfigError /
    VolumeError (the pod waits with the kernel's message)."""
    volumes = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
    out = PodStorage()
    for m in container_mounts(pod, container, env):
        plan = volume_plan(pod, volumes[m.volume], objects)
        if plan.kind == "files":
            out.files += _files(instance, plan, m.mount_path, m.sub_path)
        elif plan.kind == "emptyDir":
            if m.sub_path:
                raise ConfigError(f"subPath {m.sub_path!r} of an emptyDir is not supported on the swarm runtime")
            size = plan.size_limit if plan.memory else None
            out.mounts.append(VolumeMount(m.mount_path, read_only=m.read_only, tmpfs=plan.memory, tmpfs_size=size))
        elif plan.kind == "csi" and plan.volume_handle:
            ro = m.read_only or plan.read_only
            out.mounts.append(
                VolumeMount(m.mount_path, plan.volume_handle, ro, subpath=m.sub_path, pv_name=plan.pv_name)
            )
            out.claims[plan.pv_name] = plan.volume_handle
        else:
            raise VolumeError(m.volume, f"a {plan.kind} volume is not supported on the swarm runtime (docs/swarm.md)")
    return out


def storage_volume_name(instance: str, pv_name: str) -> str:
    """The node-local volume of PersistentVolume ``pv_name`` (the built-in provisioner, swarm runtime)."""
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in f"gitship-{instance}-{pv_name}")


def env_for_swarm(env: Mapping[str, str]) -> list[str]:
    """``KEY=value`` lines for a service: ``{{`` escaped (Swarm expands Go templates in env), the
    node-name mark as Swarm's node hostname template."""
    return [f"{k}={v.replace('{{', _OPEN).replace(NODE_NAME_MARK, NODE_TEMPLATE)}" for k, v in env.items()]


def pinned_constraints(claims: Mapping[str, str], pins: Mapping[str, str]) -> list[str]:
    """``node.id==`` constraints for the claims whose volume lives on a node already; raises
    ConfigError when two claims live on different nodes (no node can run the pod)."""
    nodes = {pins[pv] for pv in claims if pv in pins}
    if len(nodes) > 1:
        raise ConfigError(f"the pod's PersistentVolumes live on different nodes: {sorted(nodes)}")
    return [f"node.id=={n}" for n in sorted(nodes)]
