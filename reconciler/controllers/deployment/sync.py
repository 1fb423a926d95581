"""One Deployment sync: ``sync_deployment`` (docs/kubernetes.md §1.4).

Kubernetes: ``syncDeployment`` in kubernetes/kubernetes pkg/controller/deployment/
deployment_controller.go, which claims the ReplicaSets (``ClaimReplicaSets``,
pkg/controller/controller_ref_manager.go; docs/kubernetes.md §3.1), then: paused -> scale only;
a changed ``spec.replicas`` -> proportional scaling; otherwise one step of the RollingUpdate or
Recreate strategy, then the status.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from reconciler.controllers.deployment.progress import (
    calculate_status,
    check_paused_conditions,
    min_ready_requeue,
    sync_rollout_status,
)
from reconciler.controllers.deployment.recreate import rollout_recreate
from reconciler.controllers.deployment.revision import cleanup, find_new, get_new_rs
from reconciler.controllers.deployment.rolling import rollout_rolling
from reconciler.controllers.deployment.scaling import is_scaling_event, proportional_scale
from reconciler.controllers.deployment.state import DeploymentResult, SyncState
from reconciler.controllers.deployment.util import KIND_DEPLOYMENT, REASON_SELECTING_ALL, is_rolling, meta, selector_of
from reconciler.controllers.podutil import EVENT_WARNING, controller_ref, is_terminating, owner_ref
from reconciler.types import Obj


def claim(s: SyncState, rss: list[Obj]) -> None:
    """Adopt matching orphans, release owned RSs that no longer match, keep the rest (copies)."""
    uid = meta(s.d).get("uid")
    selector = selector_of(s.d)
    deleting = is_terminating(s.d)
    for original in rss:
        rmeta = meta(original)
        if rmeta.get("namespace", "default") != s.namespace:
            continue
        s.all_names.add(rmeta["name"])
        matches = selector is not None and selector.matches(rmeta.get("labels") or {})
        ref = controller_ref(original)
        if ref is not None and ref.get("uid") != uid:
            continue
        rs = copy.deepcopy(original)
        if ref is not None:
            if matches:
                s.owned.append(rs)
            elif not deleting:
                refs = [r for r in rs["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                rs["metadata"]["ownerReferences"] = refs
                s.touch(rs)
        elif matches and not deleting and not is_terminating(rs):
            rs["metadata"]["ownerReferences"] = list(rs["metadata"].get("ownerReferences") or []) + [
                owner_ref({"apiVersion": "apps/v1", "kind": KIND_DEPLOYMENT, **s.d})
            ]
            s.touch(rs)
            s.owned.append(rs)


def sync_deployment(
    deploy: Obj,
    rss: list[Obj],
    pods: list[Obj],
    now: float,
    new_uid: Callable[[], str],
) -> DeploymentResult:
    """One Deployment sync. ``rss``/``pods`` = all of the namespace."""
    s = SyncState(deploy, now, new_uid)
    selector = deploy["spec"].get("selector")
    if selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions"):
        s.event(
            EVENT_WARNING,
            REASON_SELECTING_ALL,
            "This deployment is selecting all pods. A non-empty selector is required.",
        )
        status = copy.deepcopy(deploy.get("status") or {})
        status["observedGeneration"] = meta(deploy).get("generation", 0)
        return s.result(status)

    claim(s, rss)
    if is_terminating(deploy):
        new_rs, _ = get_new_rs(s, create=False)
        return s.result(calculate_status(s, new_rs))

    check_paused_conditions(s)
    if deploy["spec"].get("paused"):
        new_rs, old = get_new_rs(s, create=False)
        proportional_scale(s, new_rs, old)
        cleanup(s, old)
        return s.result(calculate_status(s, new_rs))

    new_rs, old = get_new_rs(s, create=False)
    if is_scaling_event(s, new_rs, old):
        proportional_scale(s, new_rs, old)
        return s.result(calculate_status(s, new_rs))

    if is_rolling(deploy):
        rollout_rolling(s)
    else:
        rollout_recreate(s, pods)
    new_rs = find_new(s)
    status = sync_rollout_status(s, new_rs)
    min_ready_requeue(s, pods)
    return s.result(status)
