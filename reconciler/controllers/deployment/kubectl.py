"""``kubectl rollout status`` over a Deployment's status (docs/kubernetes.md §1.11).

Kubernetes: ``DeploymentStatusViewer.Status`` in kubernetes/kubectl
pkg/polymorphichelpers/rollout_status.go.
"""

from __future__ import annotations

from reconciler.controllers.deployment.util import COND_PROGRESSING, REASON_TIMED_OUT, get_condition, meta, replicas_of
from reconciler.types import Obj


def rollout_status(deploy: Obj) -> tuple[str, bool, bool]:
    """``kubectl rollout status``: (message, done, failed).

    Messages carry no trailing newline; on failure kubectl prints them after ``error: ``.
    """
    name = meta(deploy)["name"]
    status = deploy.get("status") or {}
    if int(meta(deploy).get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False, False
    cond = get_condition(status, COND_PROGRESSING)
    if cond is not None and cond.get("reason") == REASON_TIMED_OUT:
        return f'deployment "{name}" exceeded its progress deadline', False, True
    replicas = replicas_of(deploy)
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{updated} out of {replicas} new replicas have been updated...",
            False,
            False,
        )
    if current > updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{current - updated} old replicas are pending termination...",
            False,
            False,
        )
    if available < updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{available} of {updated} updated replicas are available...",
            False,
            False,
        )
    return f'deployment "{name}" successfully rolled out', True, False
