"""Init containers of the Docker runtime: which container of a pod may start now.

Where it sits: the pod's containers (``DPod.containers``) are its init containers first, in
order, then its app containers (pods.py ``_new_pod``); ``_sync_pod`` (containers.py) starts a
container only when ``turn`` says so and marks the others ``waiting: PodInitializing``. The
rules are the pod kernel's (runtime/kernel/initc.py). ``DPod.initialized`` latches once the
init containers are complete; adoption (adoption.py) recomputes it from the engine's containers
(an init container's exited instance is kept until the pod goes), and a new sandbox
(supervision.py ``_sandbox_lost``) clears it so they run again, as with the kubelet.
"""

from __future__ import annotations

from runtime.kernel.initc import InitView, container_restart_policy, init_specs, next_init, waiting_initializing

from .common import DContainer, DPod


def init_names(p: DPod) -> set[str]:
    return {str(c.get("name")) for c in init_specs(p.pod.get("spec") or {})}


def is_init(p: DPod, c: DContainer) -> bool:
    return c.name in init_names(p)


def is_sidecar(p: DPod, c: DContainer) -> bool:
    return is_init(p, c) and c.spec.get("restartPolicy") == "Always"


def restart_policy(p: DPod, c: DContainer) -> str:
    return container_restart_policy(p.restart_policy, c.spec, is_init(p, c))


def inits(p: DPod) -> list[DContainer]:
    names = init_names(p)
    return [c for c in p.containers.values() if c.name in names]


def views(p: DPod) -> list[InitView]:
    return [
        InitView(c.name, c.spec.get("restartPolicy") == "Always", c.state, c.last_state, c.started) for c in inits(p)
    ]


def mark_waiting(p: DPod) -> None:
    """A new pod: every container but the first init container waits for its turn (``turn``)."""
    first = next(iter(inits(p)), None)
    for c in p.containers.values():
        if not p.initialized and c is not first:
            c.state = waiting_initializing()


def advance(p: DPod) -> None:
    """Latch ``initialized`` once every init container is complete."""
    if not p.initialized and next_init(views(p)) is None:
        p.initialized = True


def turn(p: DPod, c: DContainer) -> bool:
    """Whether the container may start now."""
    if not is_init(p, c):
        return p.initialized
    if p.initialized:
        return is_sidecar(p, c)
    i = next_init(views(p))
    return i is not None and inits(p)[i] is c


def rerun(p: DPod) -> None:
    """A new sandbox: every init container runs again before the app containers."""
    ics = inits(p)
    if not ics:
        return
    p.initialized = False
    for c in ics:
        if not c.running:
            c.cancel()
            c.done = False
            c.want_start = True
            c.state = waiting_initializing()


def adopted_initialized(p: DPod) -> bool:
    """After adoption: initialized when every init container is complete or an app container
    has run in this sandbox (the kubelet's HasAnyRegularContainerStarted)."""
    names = init_names(p)
    if next_init(views(p)) is None:
        return True
    return any(c.cid is not None for c in p.containers.values() if c.name not in names)
