"""Init containers of the in-process runtime: in order, each to completion, before the app containers.

Where it sits: ``InProcessRuntime`` is built on this class (after hooks.py). The rules are the pod
kernel's (runtime/kernel/initc.py); here is the gate in front of ``_launch``:

* a pod's containers are its init containers first, then its app containers (state.py);
* a container starts only when it is its turn: the init container the kernel names next
  (``next_init``), the app containers once the pod is initialized; the others wait as
  ``waiting: PodInitializing`` (``awaiting_init``) and start when their turn comes
  (``_advance_init``, run on every status change);
* an init container's restart rule is the pod's with Always read as OnFailure (sidecars:
  Always), so a failing one restarts with the crash back-off, and under Never the pod fails;
* ``PodState.initialized`` latches once all are complete, and is kept in the pod's state file:
  a restart of gitship (adoption) or of an app container does not rerun them. A new sandbox
  (the holder died, or adoption found it gone) does, as with the kubelet.
"""

from __future__ import annotations

import structlog

from ..kernel.initc import InitView, next_init, waiting_initializing
from .hooks import HookSupervisor
from .state import Container, PodState

log = structlog.get_logger("runtime.inprocess")


def init_views(p: PodState) -> list[InitView]:
    """The pod's init containers as the kernel's rules see them."""
    return [
        InitView(c.name, c.sidecar, c.shown_state(), c.last_state, c.started and not c.post_start_pending)
        for c in p.containers
        if c.init
    ]


def stop_order(p: PodState) -> list[list[Container]]:
    """The groups a pod's deletion stops one after the other: the app containers (and a running
    init container) first, then the sidecars (the kubelet's order)."""
    return [[c for c in p.containers if not c.sidecar], [c for c in p.containers if c.sidecar]]


class InitSupervisor(HookSupervisor):
    """Starts each container of a pod in its turn."""

    def _turn(self, p: PodState, c: Container) -> bool:
        if not c.init:
            return p.initialized
        if p.initialized:
            return c.sidecar  # a sidecar is restarted next to the app containers
        i = next_init(init_views(p))
        return i is not None and [x for x in p.containers if x.init][i] is c

    def _launch(self, p: PodState, c: Container) -> None:
        if not self._alive(p):
            return
        if not self._turn(p, c):
            c.cancel_timer()
            c.awaiting_init = True
            if not c.running:
                c.state = waiting_initializing()
                self._save(p)
            return
        c.awaiting_init = False
        super()._launch(p, c)

    def _advance_init(self, p: PodState) -> None:
        """Start the container whose turn has come (called on every status change of the pod)."""
        self._finish_sidecars(p)
        if p.initialized or not self._alive(p):
            return
        i = next_init(init_views(p))
        if i is None:
            p.initialized = True
            log.info("pod_initialized", uid=p.uid, pod=p.name)
            self._save(p)
            for c in p.containers:
                if not c.init and c.awaiting_init:
                    self._launch(p, c)
            return
        c = [x for x in p.containers if x.init][i]
        if c.awaiting_init:
            self._launch(p, c)

    def _finish_sidecars(self, p: PodState) -> None:
        """Once every app container has terminated for good, the sidecars are stopped (in reverse
        order) and not restarted, so the pod can complete (the kubelet does the same)."""
        sidecars = [c for c in p.containers if c.sidecar and c.restart_policy == "Always"]
        apps = [c for c in p.containers if not c.init]
        if not sidecars or not p.initialized or not self._alive(p):
            return
        if not all("terminated" in c.state for c in apps):
            return
        for c in sidecars:
            c.restart_policy = "Never"
            c.cancel_timer()

        async def stop() -> None:
            for c in reversed(sidecars):
                await self._stop_container(c, p.grace())

        self._spawn(stop())

    def _kill_sandboxed(self, p: PodState) -> None:
        super()._kill_sandboxed(p)
        if any(c.init for c in p.containers):
            self._rerun_init(p)
            self._advance_init(p)

    @staticmethod
    def _rerun_init(p: PodState) -> None:
        """A new sandbox: the init containers run again (the killed running ones restart by themselves)."""
        p.initialized = False
        for c in p.containers:
            if c.init and not c.running:
                c.cancel_timer()
                if "terminated" in c.state:
                    c.last_state, c.restart_count = {"terminated": c.state["terminated"]}, c.restart_count + 1
                c.state = waiting_initializing()
                c.awaiting_init = True
