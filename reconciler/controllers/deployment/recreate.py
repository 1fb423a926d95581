"""One step of the Recreate strategy (docs/kubernetes.md §1.6).

Kubernetes: ``rolloutRecreate`` and ``oldPodsRunning`` in kubernetes/kubernetes
pkg/controller/deployment/recreate.go: scale every old RS to 0, wait until no old pod runs,
then create (or scale up) the new RS.
"""

from __future__ import annotations

from reconciler.controllers.deployment.revision import cleanup, get_new_rs
from reconciler.controllers.deployment.scaling import scale_and_record
from reconciler.controllers.deployment.state import SyncState
from reconciler.controllers.deployment.util import active, meta, status_count
from reconciler.controllers.podutil import PHASE_FAILED, PHASE_SUCCEEDED, controller_ref
from reconciler.types import Obj


def rollout_recreate(s: SyncState, pods: list[Obj]) -> None:
    new_rs, old = get_new_rs(s, create=False)
    scaled = False
    for rs in active(old):
        scaled |= scale_and_record(s, rs, 0)
    if scaled or old_pods_running(old, pods):
        return
    if new_rs is None:
        new_rs, old = get_new_rs(s, create=True)
        assert new_rs is not None
    scale_and_record(s, new_rs, s.replicas)
    if s.complete_as_read():
        cleanup(s, old)


def old_pods_running(old: list[Obj], pods: list[Obj]) -> bool:
    """Recreate waits while any old RS reports pods or any old pod is not terminal."""
    if sum(status_count(rs, "replicas") for rs in old) > 0:
        return True
    old_uids = {meta(rs).get("uid") for rs in old}
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None or ref.get("uid") not in old_uids:
            continue
        if (pod.get("status") or {}).get("phase") not in (PHASE_FAILED, PHASE_SUCCEEDED):
            return True
    return False
