"""The pod columns of ``get pods`` as kubectl computes them: STATUS (with init containers and
sidecars), READY and RESTARTS (Kubernetes: pkg/printers/internalversion/printers.go printPod)."""

from __future__ import annotations

from .types import Obj


def pod_status(pod: Obj) -> str:
    """The STATUS column as kubectl computes it (init containers: ``init_status``)."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = pod.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Pending"
    init_reason = init_status(pod)
    if init_reason is not None and not _initialized(st):
        return init_reason
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            t = state["terminated"]
            reason = t.get("reason") or ("Completed" if t.get("exitCode") == 0 else "Error")
    if reason == "Pending" and not st.get("containerStatuses"):
        return "ContainerCreating" if st.get("podIP") else "Pending"
    return reason


def _sidecars(pod: Obj) -> set[str]:
    """Names of the pod's restartable init containers (``restartPolicy: Always``)."""
    init = (pod.get("spec") or {}).get("initContainers") or []
    return {str(c.get("name")) for c in init if isinstance(c, dict) and c.get("restartPolicy") == "Always"}


def _initialized(st: Obj) -> bool:
    return any(c.get("type") == "Initialized" and c.get("status") == "True" for c in st.get("conditions") or [])


def init_status(pod: Obj) -> str | None:
    """The STATUS column while the pod initializes, as kubectl's printPod says it (None: the
    init containers are done): the first init container not complete gives ``Init:2/3``,
    ``Init:<waiting reason>`` (``Init:CrashLoopBackOff``), ``Init:<terminated reason>``
    (``Init:Error``) or ``Init:ExitCode:N`` / ``Init:Signal:N`` for a terminated one without a
    reason. A started sidecar counts as complete. Kubernetes: pkg/printers/internalversion/printers.go."""
    st = pod.get("status") or {}
    total = len((pod.get("spec") or {}).get("initContainers") or [])
    sidecars = _sidecars(pod)
    for i, cs in enumerate(st.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode") == 0:
            continue
        if cs.get("name") in sidecars and cs.get("started"):
            continue
        if term is not None:
            if term.get("reason"):
                return "Init:" + str(term["reason"])
            if term.get("signal"):
                return f"Init:Signal:{term['signal']}"
            return f"Init:ExitCode:{term.get('exitCode')}"
        if wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            return "Init:" + str(wait["reason"])
        return f"Init:{i}/{total}"
    return None


def pod_ready(pod: Obj) -> str:
    """READY: ready app containers (and started, ready sidecars) of all of them (sidecars count)."""
    containers = pod["spec"].get("containers", [])
    st = pod.get("status") or {}
    sidecars = _sidecars(pod)
    ready = sum(1 for c in st.get("containerStatuses") or [] if c.get("ready"))
    ready += sum(
        1
        for c in st.get("initContainerStatuses") or []
        if c.get("name") in sidecars and c.get("started") and c.get("ready")
    )
    return f"{ready}/{len(containers) + len(sidecars)}"


def pod_restarts(pod: Obj) -> int:
    """RESTARTS as kubectl counts: while initializing, the init containers' restarts; then the
    app containers' and the sidecars'."""
    st = pod.get("status") or {}
    init = st.get("initContainerStatuses") or []
    if init_status(pod) is not None and not _initialized(st):
        return sum(int(c.get("restartCount", 0)) for c in init)
    sidecars = _sidecars(pod)
    n = sum(int(c.get("restartCount", 0)) for c in init if c.get("name") in sidecars)
    return n + sum(int(c.get("restartCount", 0)) for c in st.get("containerStatuses") or [])
