"""The Deployment controller as a pure function (docs/kubernetes.md §1.3-1.11).

Where it sits: the daemon calls ``sync_deployment`` with one Deployment, every
ReplicaSet and pod of its namespace and the clock, then carries out the returned
``DeploymentResult`` (create / update / delete ReplicaSets, write the status and the
Deployment's revision annotation, record the events, re-run after ``requeue_after``).
The ReplicaSet controller (``replicaset.py``) then creates and deletes the pods. The
rollout arithmetic lives in ``reconciler/rollout.py``.

The modules follow kubernetes/kubernetes pkg/controller/deployment:

  sync        ``sync_deployment`` (deployment_controller.go ``syncDeployment``) and claiming
  state       the working state of one sync and its ``DeploymentResult``
  revision    the new ReplicaSet, revision annotations, history cleanup (sync.go)
  scaling     one RS's size and proportional scaling (sync.go ``scale``)
  rolling     the RollingUpdate strategy (rolling.go)
  recreate    the Recreate strategy (recreate.go)
  progress    status and conditions (sync.go ``calculateStatus``, progress.go)
  kubectl     ``rollout_status``, as ``kubectl rollout status`` reports it
  template    template equality and the pod-template-hash
  util        keys, reasons, accessors, orderings, conditions (util/deployment_util.go)

Everything callers use is importable from here.
"""

from reconciler.controllers.deployment.kubectl import rollout_status
from reconciler.controllers.deployment.revision import find_new_rs, revisions
from reconciler.controllers.deployment.state import DeploymentResult
from reconciler.controllers.deployment.sync import sync_deployment
from reconciler.controllers.deployment.template import (
    equal_ignore_hash,
    normalize_template,
    pod_template_hash,
    safe_encode,
)
from reconciler.controllers.deployment.util import (
    CHANGE_CAUSE_ANNOTATION,
    COND_AVAILABLE,
    COND_PROGRESSING,
    COND_REPLICA_FAILURE,
    DESIRED_REPLICAS_ANNOTATION,
    HASH_LABEL,
    KIND_DEPLOYMENT,
    KIND_REPLICASET,
    LAST_APPLIED_ANNOTATION,
    MAX_INT32,
    MAX_REPLICAS_ANNOTATION,
    MAX_REV_HISTORY_CHARS,
    REASON_FOUND_NEW_RS,
    REASON_MIN_AVAILABLE,
    REASON_MIN_UNAVAILABLE,
    REASON_NEW_RS_AVAILABLE,
    REASON_NEW_RS_CREATED,
    REASON_PAUSED,
    REASON_RESUMED,
    REASON_RS_UPDATED,
    REASON_SCALING,
    REASON_SELECTING_ALL,
    REASON_TIMED_OUT,
    RECREATE,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    ROLLBACK_TO_ANNOTATION,
    ROLLING_UPDATE,
    SKIPPED_ANNOTATIONS,
    deployment_complete,
    fenceposts,
    get_condition,
    revision_of,
)

__all__ = [
    "CHANGE_CAUSE_ANNOTATION",
    "COND_AVAILABLE",
    "COND_PROGRESSING",
    "COND_REPLICA_FAILURE",
    "DESIRED_REPLICAS_ANNOTATION",
    "DeploymentResult",
    "HASH_LABEL",
    "KIND_DEPLOYMENT",
    "KIND_REPLICASET",
    "LAST_APPLIED_ANNOTATION",
    "MAX_INT32",
    "MAX_REPLICAS_ANNOTATION",
    "MAX_REV_HISTORY_CHARS",
    "REASON_FOUND_NEW_RS",
    "REASON_MIN_AVAILABLE",
    "REASON_MIN_UNAVAILABLE",
    "REASON_NEW_RS_AVAILABLE",
    "REASON_NEW_RS_CREATED",
    "REASON_PAUSED",
    "REASON_RESUMED",
    "REASON_RS_UPDATED",
    "REASON_SCALING",
    "REASON_SELECTING_ALL",
    "REASON_TIMED_OUT",
    "RECREATE",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "ROLLBACK_TO_ANNOTATION",
    "ROLLING_UPDATE",
    "SKIPPED_ANNOTATIONS",
    "deployment_complete",
    "equal_ignore_hash",
    "fenceposts",
    "find_new_rs",
    "get_condition",
    "normalize_template",
    "pod_template_hash",
    "revision_of",
    "revisions",
    "rollout_status",
    "safe_encode",
    "sync_deployment",
]
