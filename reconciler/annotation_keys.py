"""The annotations gitship itself reads and writes (Kubernetes' own keys live with their controllers).

gitship.io/commit         on a ReplicaSet: the commit whose pod template it runs (undo reverts it)
gitship.io/change-cause   on a ReplicaSet: "<short sha> <author>: <subject>" of that commit,
                          the CHANGE-CAUSE of `rollout history` unless kubernetes.io/change-cause is set
gitship.io/auto-rollback  on a Deployment: "true" lets gitship revert a rollout that misses its deadline
gitship.io/prune          on any object from git: "disabled" keeps it when its manifest goes (reconciler/prune.py)
"""

COMMIT = "gitship.io/commit"
CHANGE_CAUSE = "gitship.io/change-cause"
AUTO_ROLLBACK = "gitship.io/auto-rollback"
PRUNE = "gitship.io/prune"
KUBERNETES_CHANGE_CAUSE = "kubernetes.io/change-cause"

# Kubernetes' own keys that more than one module reads (kubernetes/kubernetes
# pkg/controller/deployment/util/deployment_util.go).
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
POD_TEMPLATE_HASH = "pod-template-hash"
