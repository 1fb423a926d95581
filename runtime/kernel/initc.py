"""Init containers (and sidecars) as the kubelet runs them: which one starts next, when the pod is
initialized, the Initialized condition and the pod phase while initializing. Pure functions.

Kubernetes: pkg/kubelet/kuberuntime/kuberuntime_manager.go (computePodActions,
computeInitContainerActions), pkg/kubelet/kubelet_pods.go (getPhase) and
pkg/kubelet/status/generate.go (GeneratePodInitializedCondition). See docs/kubernetes.md §7.

* ``spec.initContainers`` run in order, each to completion (exit 0) before the next starts and
  before any app container does. Their restart rule is the pod's, except that Always counts as
  OnFailure (an init container that exited 0 is never run again).
* A sidecar is an init container with ``restartPolicy: Always`` (Kubernetes 1.29+): it is
  "complete" for the sequence once it has started (running, its startup probe passed); it keeps
  running next to the app containers and is restarted whenever it exits.
* Initialization happens once per pod sandbox: a restart of an app container does not rerun the
  init containers, a new sandbox does. A runtime keeps a latch (``initialized``) for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .phase import pod_phase

INITIALIZING = "PodInitializing"
NOT_INITIALIZED = "ContainersNotInitialized"


def init_specs(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The pod's ``spec.initContainers`` (those that are objects), in order."""
    return [c for c in pod_spec.get("initContainers") or [] if isinstance(c, Mapping)]


def is_sidecar(container_spec: Mapping[str, Any]) -> bool:
    """A restartable init container (``restartPolicy: Always`` on the init container itself)."""
    return container_spec.get("restartPolicy") == "Always"


def container_restart_policy(pod_policy: str, container_spec: Mapping[str, Any], init: bool) -> str:
    """The restart rule of one container: the pod's for app containers; Always for a sidecar;
    for a classic init container the pod's with Always read as OnFailure."""
    if not init:
        return pod_policy
    if is_sidecar(container_spec):
        return "Always"
    return "OnFailure" if pod_policy == "Always" else pod_policy


@dataclass(frozen=True)
class InitView:
    """What the rules need of one init container's status."""

    name: str
    sidecar: bool
    state: Mapping[str, Any]
    last_state: Mapping[str, Any]
    started: bool = False  # sidecars: running and its startup probe passed (or it has none)


def complete(v: InitView) -> bool:
    """Done for the sequence: a classic init container exited 0; a sidecar has started."""
    if v.sidecar:
        return "running" in v.state and v.started
    term = v.state.get("terminated")
    return isinstance(term, Mapping) and term.get("exitCode") == 0


def next_init(views: Sequence[InitView]) -> int | None:
    """Index of the init container whose turn it is (the first one not complete); None: all are."""
    return next((i for i, v in enumerate(views) if not complete(v)), None)


def _failed(v: InitView) -> bool:
    if v.sidecar:
        return False
    term = v.state.get("terminated") or v.last_state.get("terminated")
    return isinstance(term, Mapping) and term.get("exitCode") not in (0, None)


def init_failed(pod_policy: str, views: Sequence[InitView]) -> bool:
    """With restartPolicy Never, an init container that failed fails the pod (it is not rerun)."""
    return pod_policy == "Never" and any(_failed(v) and "terminated" in v.state for v in views)


def incomplete(views: Iterable[InitView]) -> list[str]:
    """Names of the init containers not complete yet (the Initialized condition's message)."""
    return [v.name for v in views if not complete(v)]


def initialized_condition(views: Sequence[InitView], initialized: bool) -> tuple[str, str | None, str | None]:
    """(status, reason, message) of the pod's Initialized condition."""
    if initialized or not views:
        return "True", None, None
    names = incomplete(views)
    if not names:
        return "True", None, None
    return "False", NOT_INITIALIZED, f"containers with incomplete status: [{' '.join(names)}]"


def phase(
    pod_policy: str,
    views: Sequence[InitView],
    containers: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
    initialized: bool,
) -> str:
    """The pod phase with init containers (getPhase): Failed when an init container failed under
    restartPolicy Never; Pending while initializing; else the app containers' phase, where a
    running sidecar counts as a running container."""
    if init_failed(pod_policy, views):
        return "Failed"
    if views and not initialized:
        return "Pending"
    apps = list(containers)
    app_phase = pod_phase(pod_policy, apps)
    if app_phase in ("Succeeded", "Failed") and any(v.sidecar and "running" in v.state for v in views):
        return "Running"  # the sidecars are still being stopped
    return app_phase


def waiting_initializing() -> dict[str, Any]:
    """The state of a container waiting for the init containers before it (and of app containers)."""
    return {"waiting": {"reason": INITIALIZING}}
