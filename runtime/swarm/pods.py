"""A pod as the Swarm runtime keeps it (``SPod``), its service spec, and its status from its tasks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker.types  # type: ignore[import-untyped]
import structlog

from runtime.base import Pod, PodStatus
from runtime.kernel import container_argv, container_env, container_status, parse_quantity, pod_conditions, pod_phase
from runtime.kernel import pod_status
from runtime.kernel.env import implicit_env
from runtime.kernel.phase import terminated
from runtime.kernel.resources import qos_class
from runtime.probes import ProbeWorker

from .storage import NODE_NAME_MARK, PodStorage, env_for_swarm
from .mapping import (
    LABEL_INSTANCE,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_ROLE,
    LABEL_SPEC,
    LABEL_STORAGE_PV,
    LABEL_UID,
    constraints,
    current_task,
    node_ready,
    restart_condition,
    task_ip,
    task_state,
)

log = structlog.get_logger("runtime.swarm")

ONE_CONTAINER = "the swarm runtime runs one container per pod (a Swarm service has one)"


@dataclass
class SPod:
    pod: Pod
    uid: str
    name: str
    namespace: str
    start_time: str
    service_id: str | None = None
    service_name: str = ""
    error: str | None = None  # why the service is not made yet (retried every poll)
    config_error: str | None = None
    task_id: str | None = None
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    pod_ip: str | None = None
    host_ip: str = ""
    node_name: str = ""
    node_down: bool = False
    probe: ProbeWorker | None = None
    probe_ready: bool = False
    liveness: ProbeWorker | None = None
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_status: str | None = None
    deleting: bool = False
    delete_task: asyncio.Task[None] | None = None
    seen_tasks: set[str] = field(default_factory=set)  # older tasks accounted for (a restart, or a spec update)
    post_started: str | None = None  # the task whose postStart hook ran (nodeexec.py)
    hook_pending: bool = False
    kill_messages: dict[str, str] = field(default_factory=dict)  # task id -> why gitship killed it (postStart)
    claims: dict[str, str] = field(default_factory=dict)  # its PersistentVolumes -> their volumes (volumes.py)

    @property
    def container(self) -> dict[str, Any]:
        cs = self._cs()
        return cs[0] if cs else {}

    def _cs(self) -> list[dict[str, Any]]:
        return list((self.pod.get("spec") or {}).get("containers") or [])

    @property
    def grace(self) -> float:
        g = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return 30.0 if g is None else float(g)

    def stop_probe(self) -> None:
        for w in (self.probe, self.liveness):
            if w is not None:
                w.stop()
        self.probe = self.liveness = None
        self.probe_ready = False


def labels(instance: str, p: SPod) -> dict[str, str]:
    return {
        LABEL_INSTANCE: instance,
        LABEL_ROLE: "pod",
        LABEL_UID: p.uid,
        LABEL_NAME: p.name,
        LABEL_NAMESPACE: p.namespace,
        LABEL_SPEC: json.dumps(p.pod, sort_keys=True, separators=(",", ":")),
    }


def _dns(namespace: str, nameserver: str | None, search: Sequence[str]) -> Any:
    if not nameserver:
        return None
    return docker.types.DNSConfig(
        nameservers=[nameserver], search=[s.replace("{namespace}", namespace) for s in search], options=["ndots:5"]
    )


def _resources(c: Mapping[str, Any]) -> Any:
    limits = (c.get("resources") or {}).get("limits") or {}
    kw: dict[str, int] = {}
    if limits.get("cpu") is not None:
        kw["cpu_limit"] = int(parse_quantity(limits["cpu"]) * 1e9)
    if limits.get("memory") is not None:
        kw["mem_limit"] = int(parse_quantity(limits["memory"]))
    return docker.types.Resources(**kw) if kw else None


def pod_env(p: SPod, objects: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> dict[str, str]:
    """The container's environment (the kernel's rules); ``spec.nodeName`` is storage.NODE_NAME_MARK,
    Swarm's node hostname template once in the service (storage.env_for_swarm)."""
    c = p.container
    return container_env(
        p.pod, c, pod_ip="", host_ip="", node_name=NODE_NAME_MARK, implicit=implicit_env(p.pod, c, ""), objects=objects
    )


def _mounts(st: PodStorage, instance: str, uid: str) -> list[Any]:
    out = []
    for m in st.mounts:
        if m.tmpfs:
            out.append(docker.types.Mount(m.target, None, type="tmpfs", read_only=m.read_only, tmpfs_size=m.tmpfs_size))
        elif m.source:
            labels = {LABEL_INSTANCE: instance, LABEL_STORAGE_PV: m.pv_name}
            out.append(
                docker.types.Mount(m.target, m.source, read_only=m.read_only, labels=labels, subpath=m.subpath or None)
            )
        else:
            out.append(docker.types.Mount(m.target, None, read_only=m.read_only, labels={LABEL_UID: uid}))
    return out


def _file_refs(st: PodStorage, ids: Mapping[str, str]) -> tuple[list[Any], list[Any]]:
    configs, secrets = [], []
    for f in st.files:
        if f.secret:
            secrets.append(docker.types.SecretReference(ids[f.name], f.name, f.target, "0", "0", f.mode))
        else:
            configs.append(docker.types.ConfigReference(ids[f.name], f.name, f.target, "0", "0", f.mode))
    return configs, secrets


def service_spec(
    instance: str,
    p: SPod,
    network_id: str,
    env: Mapping[str, str],
    storage: tuple[PodStorage, Mapping[str, str], list[str]],
    nameserver: str | None,
    search: Sequence[str],
    restart_delay: float,
) -> dict[str, Any]:
    """The arguments of ``APIClient.create_service`` for the pod. ``storage``: its volumes
    (storage.pod_storage), the ids of their configs and secrets by name, the node pins of its claims."""
    c = p.container
    st, ids, pins = storage
    command, args = container_argv(c, env)
    spec = p.pod.get("spec") or {}
    sc = c.get("securityContext") or {}
    user = None
    if sc.get("runAsUser") is not None:
        user = str(sc["runAsUser"]) + (f":{sc['runAsGroup']}" if sc.get("runAsGroup") is not None else "")
    configs, secrets = _file_refs(st, ids)
    cspec = docker.types.ContainerSpec(
        str(c.get("image") or ""),
        command=command or None,
        args=args or None,
        hostname=str(spec.get("hostname") or p.name)[:63],
        env=env_for_swarm(env),
        workdir=c.get("workingDir") or None,
        user=user,
        labels={LABEL_INSTANCE: instance, LABEL_UID: p.uid},
        mounts=_mounts(st, instance, p.uid) or None,
        configs=configs or None,
        secrets=secrets or None,
        stop_grace_period=int(p.grace * 1e9),
        tty=bool(c.get("tty")),
        open_stdin=bool(c.get("stdin")) or None,
        dns_config=_dns(p.namespace, nameserver, search)
        if spec.get("dnsPolicy", "ClusterFirst") != "Default"
        else None,
    )
    placement, unsupported = constraints(p.pod)
    placement += pins
    if unsupported:  # said, never silently dropped
        log.warning("swarm_placement_unsupported", pod=p.name, namespace=p.namespace, ignored=unsupported)
    template = docker.types.TaskTemplate(
        cspec,
        resources=_resources(c),
        restart_policy=docker.types.RestartPolicy(
            condition=restart_condition(p.pod), delay=int(restart_delay * 1e9), max_attempts=0
        ),
        placement=docker.types.Placement(constraints=placement) if placement else None,
        networks=[network_id],
    )
    return dict(
        task_template=template,
        name=p.service_name,
        labels=labels(instance, p),
        mode=docker.types.ServiceMode("replicated", replicas=1),
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
    )


def refresh(
    p: SPod, tasks: Sequence[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]], network_id: str
) -> Mapping[str, Any] | None:
    """Update the pod from its service's tasks; returns the current task."""
    cur = current_task(tasks)
    if cur is None:
        if p.service_id is not None and not tasks:
            p.state = {"waiting": {"reason": "ContainerCreating"}}
        return None
    tid = str(cur.get("ID"))
    for t in tasks:  # a task older than the current one is a restart (Swarm replaced it)
        t_id = str(t.get("ID"))
        if t_id == tid or t_id in p.seen_tasks or str(t.get("CreatedAt")) >= str(cur.get("CreatedAt")):
            continue
        p.seen_tasks.add(t_id)
        p.restarts += 1
        st = task_state(t)
        if "terminated" in st and t_id in p.kill_messages:
            st["terminated"]["message"] = p.kill_messages.pop(t_id)
        if "terminated" not in st:  # its node went away: Swarm shut it down
            when = str((t.get("Status") or {}).get("Timestamp") or "")[:19] + "Z"
            st = {"terminated": terminated(137, None, when, reason="Error", message="task replaced by Swarm")}
        p.last_state = st
    if tid != p.task_id:
        p.stop_probe()
        p.task_id = tid
    p.state = task_state(cur)
    node = nodes.get(str(cur.get("NodeID") or ""))
    p.node_name = str(((node or {}).get("Description") or {}).get("Hostname") or "")
    p.host_ip = str(((node or {}).get("Status") or {}).get("Addr") or "")
    p.node_down = node is not None and not node_ready(node)
    p.pod_ip = task_ip(cur, network_id) if "running" in p.state else p.pod_ip if "waiting" not in p.state else None
    return cur


def ready(p: SPod) -> bool:
    if "running" not in p.state or p.node_down or p.deleting or p.hook_pending:
        return False
    return p.probe_ready if p.container.get("readinessProbe") else True


def status(p: SPod, now: str) -> PodStatus:
    c = p.container
    extra = [x for x in p._cs()[1:]]
    state = (
        p.state
        if not p.config_error and not p.hook_pending
        else {"waiting": {"reason": "CreateContainerConfigError", "message": p.config_error}}
        if p.config_error
        else {"waiting": {"reason": "ContainerCreating"}}
    )
    ok = ready(p)
    statuses = [
        container_status(
            str(c.get("name") or ""),
            str(c.get("image") or ""),
            ready=ok,
            started="running" in state,
            restart_count=p.restarts,
            state=state,
            last_state=p.last_state,
            container_id=f"swarm://{p.task_id}" if p.task_id else None,
        )
    ]
    for x in extra:
        waiting = {"waiting": {"reason": "CreateContainerError", "message": ONE_CONTAINER}}
        statuses.append(
            container_status(
                str(x.get("name")),
                str(x.get("image")),
                ready=False,
                started=False,
                restart_count=0,
                state=waiting,
                last_state={},
            )
        )
    restart_policy = str((p.pod.get("spec") or {}).get("restartPolicy", "Always"))
    phase = pod_phase(restart_policy, [(s["state"], s["lastState"]) for s in statuses])
    p.conditions, _ = pod_conditions(
        p.conditions,
        ready=[(s["name"], bool(s["ready"])) for s in statuses],
        phase=phase,
        now=now,
        start_time=p.start_time,
    )
    message = p.error
    if p.node_down and "running" in p.state:
        message = f"node {p.node_name} is not ready; Swarm replaces the task"
    st = pod_status(
        phase=phase,
        pod_ip=p.pod_ip,
        host_ip=p.host_ip or "",
        start_time=p.start_time,
        conditions=p.conditions,
        container_statuses=statuses,
        message=message,
        qos_class=qos_class(p.pod),
    )
    if p.node_name:
        st["nominatedNodeName"] = p.node_name  # where Swarm placed it (Kubernetes' spec.nodeName)
    return st
