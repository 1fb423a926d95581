"""Pod phase, pod conditions and the status dicts, as the kubelet computes them.

Kubernetes: pkg/kubelet/kubelet_pods.go (getPhase, convertToAPIContainerStatuses) and
pkg/kubelet/status/generate.go (the Ready and ContainersReady conditions). See
docs/kubernetes.md §7.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

CONDITION_TYPES = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


def pod_phase(restart_policy: str, containers: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    """The pod phase from (state, lastState) of each container, as the kubelet's getPhase.

    A waiting container that has terminated before counts as stopped, never as
    succeeded: only a container whose *current* state is terminated with exit code 0
    counts as succeeded. So restartPolicy Never with a container waiting after a clean
    exit is Failed, exactly as getPhase says (no runtime leaves a Never container
    waiting after an exit; this is the rule, not a path we expect to take).
    """
    waiting = running = stopped = succeeded = total = 0
    for state, last in containers:
        total += 1
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif last and "terminated" in last:
            stopped += 1  # waiting to be restarted: it has run before
        else:
            waiting += 1
    if total == 0 or waiting:
        return "Pending"
    if running:
        return "Running"
    if restart_policy == "Always":
        return "Running"  # every container is being restarted
    if succeeded == stopped:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"  # OnFailure: the failed ones will be restarted


def should_restart(restart_policy: str, exit_code: int | None) -> bool:
    """Whether a container that exited with ``exit_code`` is started again (kubelet's ShouldContainerBeRestarted)."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True  # Always (the default)


def pod_conditions(
    previous: Mapping[str, Mapping[str, Any]],
    *,
    ready: Sequence[tuple[str, bool]],
    phase: str,
    now: str,
    start_time: str,
    initialized: tuple[str, str | None, str | None] = ("True", None, None),
) -> tuple[dict[str, dict[str, Any]], bool]:
    """The pod's conditions {type: {status, lastTransitionTime, reason?, message?}} and whether one flipped.

    ``ready`` is (name, ready) per container. ``lastTransitionTime`` moves only when a
    condition's status changes; the first PodScheduled and Initialized carry the pod's
    start time. A pod that is not ready says which containers are not
    (``containers with unready status: [a b]``), with reason PodCompleted once the
    phase is terminal. ``initialized`` is the Initialized condition (runtime/kernel/initc.py).
    """
    all_ready = bool(ready) and all(ok for _, ok in ready)
    want: dict[str, tuple[str, str | None, str | None]] = {
        "PodScheduled": ("True", None, None),
        "Initialized": initialized,
    }
    if all_ready:
        want["ContainersReady"] = ("True", None, None)
        want["Ready"] = ("True", None, None)
    else:
        unready = " ".join(name for name, ok in ready if not ok)
        reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        message = f"containers with unready status: [{unready}]"
        want["ContainersReady"] = ("False", reason, message)
        want["Ready"] = ("False", reason, message)
    out: dict[str, dict[str, Any]] = {}
    flipped = False
    for typ, (status, why, msg) in want.items():
        cur = previous.get(typ)
        if cur is None or cur.get("status") != status:
            flipped = True
            first = cur is None and typ in ("PodScheduled", "Initialized")
            new: dict[str, Any] = {"status": status, "lastTransitionTime": start_time if first else now}
        else:
            new = {"status": status, "lastTransitionTime": cur.get("lastTransitionTime", now)}
        if why:
            new["reason"] = why
            new["message"] = msg
        out[typ] = new
    return out, flipped


def terminated(
    exit_code: int,
    started_at: str | None,
    finished_at: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    oom: bool = False,
) -> dict[str, Any]:
    """A ``terminated`` container state: reason Completed (0), Error (other) or OOMKilled unless given."""
    if reason is None:
        reason = "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error")
    term: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if message:
        term["message"] = message
    return term


def container_status(
    name: str,
    image: str,
    *,
    ready: bool,
    started: bool,
    restart_count: int,
    state: Mapping[str, Any],
    last_state: Mapping[str, Any],
    container_id: str | None = None,
    image_id: str | None = None,
) -> dict[str, Any]:
    """One entry of ``status.containerStatuses``."""
    cs: dict[str, Any] = {
        "name": name,
        "image": image,
        "ready": ready,
        "started": started,
        "restartCount": restart_count,
        "state": dict(state),
        "lastState": dict(last_state),
    }
    if container_id:
        cs["containerID"] = container_id
    if image_id:
        cs["imageID"] = image_id
    return cs


def pod_status(
    *,
    phase: str,
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
    conditions: Mapping[str, Mapping[str, Any]],
    container_statuses: list[dict[str, Any]],
    message: str | None = None,
    qos_class: str | None = None,
    extra_conditions: Sequence[Mapping[str, Any]] = (),
    init_container_statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Kubernetes PodStatus dict (the shape runtime/base.py documents).

    ``qos_class``: status.qosClass (runtime/kernel/resources.py qos_class); ``extra_conditions``
    come after Kubernetes' own (a runtime's own types, e.g. resources.NOT_ENFORCED_CONDITION)."""
    out: dict[str, Any] = {"phase": phase}
    if pod_ip:
        out["podIP"] = pod_ip
        out["podIPs"] = [{"ip": pod_ip}]
    out["hostIP"] = host_ip
    out["hostIPs"] = [{"ip": host_ip}]
    out["startTime"] = start_time
    out["conditions"] = [dict(conditions[t], type=t) for t in CONDITION_TYPES if t in conditions]
    out["conditions"] += [dict(c) for c in extra_conditions]
    if init_container_statuses:
        out["initContainerStatuses"] = init_container_statuses
    out["containerStatuses"] = container_statuses
    if qos_class:
        out["qosClass"] = qos_class
    if message:
        out["message"] = message
    return out
