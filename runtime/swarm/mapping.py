"""Pure mapping between a Kubernetes pod and a Swarm service (one service per pod, replicas 1).

No I/O here: the runtime (runtime.py) feeds it pods, Swarm tasks and nodes as the Engine API
returns them (dicts) and sends what it answers to the Engine.

* ``service_name`` / labels: names and the labels that mark a service as one instance's pod.
* ``restart_condition``: the pod's restartPolicy as Swarm's restart condition (Always: any,
  OnFailure: on-failure, Never: none).
* ``constraints``: ``spec.nodeName``, ``nodeSelector`` and the required node affinity's
  ``In`` / ``NotIn`` / ``Exists`` / ``DoesNotExist`` terms on labels as Swarm placement
  constraints (``kubernetes.io/hostname`` is ``node.hostname``; other keys are Swarm node labels,
  ``node.labels.KEY``). Swarm ANDs constraints and has no OR: only the first
  nodeSelectorTerm is used (``unsupported`` says so).
* ``task_state``: a Swarm task as a container state (waiting / running / terminated).
* ``current_task``: the task that stands for the pod now (the newest one Swarm wants running).
* ``node_object``: a Swarm node as a Kubernetes Node (labels, Ready condition, address).
* ``parse_node_apis``: ``--swarm-node-api NODE=URL`` flags (nodeexec.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.kernel.phase import terminated

LABEL_INSTANCE = "gitship.instance"
LABEL_UID = "gitship.pod.uid"
LABEL_NAME = "gitship.pod.name"
LABEL_NAMESPACE = "gitship.pod.namespace"
LABEL_SPEC = "gitship.pod.spec"
LABEL_ROLE = "gitship.role"  # "pod" or "gateway"
LABEL_STORAGE_PV = "gitship.storage.pv"  # a PersistentVolume's node-local volume
HOSTNAME_LABEL = "kubernetes.io/hostname"

_WAITING = {"new", "pending", "assigned", "accepted", "ready", "preparing", "starting"}
_RESTART = {"Always": "any", "OnFailure": "on-failure", "Never": "none"}


def service_name(instance: str, namespace: str, name: str, uid: str) -> str:
    """``gs-<instance 8>-<namespace>-<pod name>-<uid 8>`` cut to Swarm's 63 characters (uid kept)."""
    head = re.sub(r"[^a-zA-Z0-9-]", "-", f"gs-{instance[:8]}-{namespace}-{name}")
    return f"{head[: 63 - 9]}-{re.sub(r'[^a-zA-Z0-9]', '', uid)[:8]}"


def parse_node_apis(items: Sequence[str]) -> dict[str, str]:
    """``NODE=URL`` flags as {node: url}; ValueError for another shape."""
    out: dict[str, str] = {}
    for item in items:
        node, sep, url = item.partition("=")
        if not sep or not node or not url:
            raise ValueError(f"--swarm-node-api {item!r}: expected NODE=URL (a hostname or node id, an Engine URL)")
        out[node] = url
    return out


def restart_condition(pod: Mapping[str, Any]) -> str:
    return _RESTART.get(str((pod.get("spec") or {}).get("restartPolicy", "Always")), "any")


def _label_constraint(key: str, op: str, values: list[str]) -> list[str]:
    target = "node.hostname" if key == HOSTNAME_LABEL else f"node.labels.{key}"
    if op == "In" and len(values) == 1:
        return [f"{target}=={values[0]}"]
    if op == "NotIn":
        return [f"{target}!={v}" for v in values]
    raise ValueError(f"{key} {op} {values}")


def constraints(pod: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(Swarm placement constraints, what could not be expressed) for the pod's node rules."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    unsupported: list[str] = []
    if spec.get("nodeName"):
        out.append(f"node.hostname=={spec['nodeName']}")
    for key, value in sorted((spec.get("nodeSelector") or {}).items()):
        out += _label_constraint(str(key), "In", [str(value)])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) > 1:
        unsupported.append("nodeSelectorTerms beyond the first (Swarm constraints cannot be ORed)")
    for term in terms[:1]:
        for expr in term.get("matchExpressions") or []:
            key, op, values = (
                str(expr.get("key")),
                str(expr.get("operator")),
                [str(v) for v in expr.get("values") or []],
            )
            try:
                out += _label_constraint(key, op, values)
            except ValueError:
                unsupported.append(f"matchExpressions {key} {op} {values}")
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                out.append(f"node.hostname=={f['values'][0]}")
            else:
                unsupported.append(f"matchFields {f.get('key')} {f.get('operator')}")
    return out, unsupported


def _time(s: str | None) -> str | None:
    if not s or s.startswith("0001-"):
        return None
    return s[:19] + "Z"


def _order(task: Mapping[str, Any]) -> tuple[str, int]:
    return (str(task.get("CreatedAt") or ""), int((task.get("Version") or {}).get("Index") or 0))


def current_task(tasks: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest task Swarm wants running, else the newest task (a finished pod's last one)."""
    ordered = sorted(tasks, key=_order, reverse=True)
    wanted = [t for t in ordered if t.get("DesiredState") in ("running", "ready")]
    return wanted[0] if wanted else (ordered[0] if ordered else None)


def task_state(task: Mapping[str, Any] | None) -> dict[str, Any]:
    """The container state a task stands for (Kubernetes' shape)."""
    if task is None:
        return {"waiting": {"reason": "ContainerCreating"}}
    st = task.get("Status") or {}
    state = str(st.get("State") or "new")
    when = _time(st.get("Timestamp"))
    if state in _WAITING:
        w: dict[str, Any] = {"reason": "ContainerCreating"}
        if st.get("Err"):
            w["message"] = str(st["Err"])
        elif state == "pending" and st.get("Message"):
            w["message"] = str(st["Message"])
        return {"waiting": w}
    if state == "running":
        return {"running": {"startedAt": when}}
    code = int((st.get("ContainerStatus") or {}).get("ExitCode") or 0)
    if state in ("failed", "rejected") and code == 0:
        code = 128
    if "starting container failed" in str(st.get("Err") or ""):  # kubelet: RunContainerError, StartError 128
        return {"terminated": terminated(128, None, when or "", reason="StartError", message=str(st["Err"]))}
    message = str(st.get("Err") or "") or (f"task {state} ({st.get('Message')})" if state != "complete" else None)
    return {"terminated": terminated(code, None, when or "", reason="Error" if code else "Completed", message=message)}


def task_ip(task: Mapping[str, Any] | None, network_id: str) -> str | None:
    """The task's address on the pods' overlay network."""
    for att in (task or {}).get("NetworksAttachments") or []:
        if (att.get("Network") or {}).get("ID") == network_id:
            for a in att.get("Addresses") or []:
                return str(a).split("/")[0]
    return None


def node_ready(node: Mapping[str, Any] | None) -> bool:
    st = (node or {}).get("Status") or {}
    return st.get("State") == "ready" and ((node or {}).get("Spec") or {}).get("Availability") == "active"


def node_object(node: Mapping[str, Any]) -> dict[str, Any]:
    """A Swarm node as a Kubernetes Node: name = hostname, the well-known labels plus the node's
    Swarm labels, a Ready condition from its state, its address, its capacity."""
    desc = node.get("Description") or {}
    name = str(desc.get("Hostname") or node.get("ID"))
    plat = desc.get("Platform") or {}
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(str(plat.get("Architecture")), str(plat.get("Architecture")))
    labels = {HOSTNAME_LABEL: name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch}
    labels.update({str(k): str(v) for k, v in ((node.get("Spec") or {}).get("Labels") or {}).items()})
    st = node.get("Status") or {}
    ready = node_ready(node)
    res = desc.get("Resources") or {}
    cap = {
        "cpu": str(int(res.get("NanoCPUs") or 0) // 10**9),
        "memory": f"{int(res.get('MemoryBytes') or 0) // 1024}Ki",
    }
    role = "control-plane" if (node.get("Spec") or {}).get("Role") == "manager" else "<none>"
    engine = str((desc.get("Engine") or {}).get("EngineVersion", ""))
    meta = {
        "name": name,
        "uid": str(node.get("ID")),
        "resourceVersion": str((node.get("Version") or {}).get("Index") or 1),
        "creationTimestamp": _time(str(node.get("CreatedAt") or "")) or "1970-01-01T00:00:00Z",
        "labels": labels,
        "annotations": {"gitship.io/roles": role},  # kubectl's ROLES column (reconciler/kapi/views.py)
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta,
        "spec": {"unschedulable": (node.get("Spec") or {}).get("Availability") != "active"},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "Unknown" if st.get("State") == "down" else "False",
                    "reason": "SwarmNodeReady" if ready else f"SwarmNode{str(st.get('State')).capitalize()}",
                    "message": str(st.get("Message") or st.get("State") or ""),
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": str(st.get("Addr") or "")},
                {"type": "Hostname", "address": name},
            ],
            "capacity": cap,
            "allocatable": cap,
            "nodeInfo": {
                "containerRuntimeVersion": f"docker://{engine}",
                "kubeletVersion": f"swarm/{engine}",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
                **{k: "" for k in ("osImage", "kernelVersion", "machineID", "systemUUID", "bootID")},
            },
        },
    }
