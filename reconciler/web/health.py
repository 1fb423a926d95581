"""An object's health, named as Argo CD names it (Healthy, Progressing, Degraded, Suspended, Missing).

PURE: a live object (or None: declared in git, not live) in, a ``Health`` out. The rules follow Argo
CD's built-in checks (argoproj/gitops-engine pkg/health: health_deployment.go, health_replicaset.go,
health_statefulset.go, health_daemonset.go, health_pod.go, health_service.go, health_job.go,
health_pvc.go). Kinds without a check (ConfigMap, Secret, ...) have no health: ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.types import Obj

HEALTHY, PROGRESSING, DEGRADED, SUSPENDED, MISSING = "Healthy", "Progressing", "Degraded", "Suspended", "Missing"
ORDER = (DEGRADED, MISSING, PROGRESSING, SUSPENDED, HEALTHY)  # worst first: a parent shows its worst child
BAD_WAITING = frozenset(
    {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError", "InvalidImageName",
     "CreateContainerError", "RunContainerError"}
)  # fmt: skip


@dataclass(frozen=True)
class Health:
    status: str
    message: str = ""


def _int(v: object) -> int:
    return int(v) if isinstance(v, (int, float, str)) and str(v).lstrip("-").isdigit() else 0


def _cond(obj: Obj, ctype: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def _observed(obj: Obj) -> bool:
    gen = _int((obj.get("metadata") or {}).get("generation"))
    return gen <= _int((obj.get("status") or {}).get("observedGeneration"))


def _replicas(obj: Obj) -> int:
    v = (obj.get("spec") or {}).get("replicas")
    return 1 if v is None else _int(v)


def deployment(obj: Obj) -> Health:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("paused"):
        return Health(SUSPENDED, "Deployment is paused")
    if not _observed(obj):
        return Health(PROGRESSING, "Waiting for rollout to finish: observed deployment generation less than desired")
    prog = _cond(obj, "Progressing")
    if prog and prog.get("reason") == "ProgressDeadlineExceeded":
        return Health(DEGRADED, f'Deployment "{obj["metadata"]["name"]}" exceeded its progress deadline')
    want, updated = _replicas(obj), _int(st.get("updatedReplicas"))
    current, available = _int(st.get("replicas")), _int(st.get("availableReplicas"))
    if updated < want:
        return Health(PROGRESSING, f"Waiting for rollout to finish: {updated} out of {want} new replicas updated")
    if current > updated:
        return Health(
            PROGRESSING, f"Waiting for rollout to finish: {current - updated} old replicas pending termination"
        )
    if available < updated:
        return Health(
            PROGRESSING, f"Waiting for rollout to finish: {available} of {updated} updated replicas available"
        )
    return Health(HEALTHY)


def replicaset(obj: Obj) -> Health:
    if not _observed(obj):
        return Health(PROGRESSING, "Waiting for rollout to finish: observed generation less than desired")
    fail = _cond(obj, "ReplicaFailure")
    if fail and fail.get("status") == "True":
        return Health(DEGRADED, str(fail.get("message") or "ReplicaFailure"))
    want, available = _replicas(obj), _int((obj.get("status") or {}).get("availableReplicas"))
    if available < want:
        return Health(PROGRESSING, f"Waiting for rollout to finish: {available} out of {want} replicas available")
    return Health(HEALTHY)


def statefulset(obj: Obj) -> Health:
    if not _observed(obj):
        return Health(PROGRESSING, "Waiting for statefulset spec update to be observed")
    st = obj.get("status") or {}
    want, ready = _replicas(obj), _int(st.get("readyReplicas"))
    if ready < want:
        return Health(PROGRESSING, f"Waiting for {want - ready} pods to be ready")
    strategy = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if (
        strategy == "RollingUpdate"
        and st.get("updateRevision")
        and st.get("updateRevision") != st.get("currentRevision")
    ):
        return Health(
            PROGRESSING, f"waiting for statefulset rolling update to complete ({st.get('updatedReplicas', 0)} updated)"
        )
    return Health(HEALTHY)


def daemonset(obj: Obj) -> Health:
    if not _observed(obj):
        return Health(PROGRESSING, "Waiting for daemon set spec update to be observed")
    st = obj.get("status") or {}
    want = _int(st.get("desiredNumberScheduled"))
    if _int(st.get("updatedNumberScheduled")) < want:
        return Health(PROGRESSING, f"{st.get('updatedNumberScheduled', 0)} of {want} updated pods are available")
    if _int(st.get("numberAvailable")) < want:
        return Health(PROGRESSING, f"{st.get('numberAvailable', 0)} of {want} updated pods are available")
    return Health(HEALTHY)


def _waiting(pod: Obj) -> tuple[str, str] | None:
    st = pod.get("status") or {}
    for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        w = (c.get("state") or {}).get("waiting") or {}
        if w.get("reason") in BAD_WAITING:
            return str(w["reason"]), str(w.get("message") or w["reason"])
    return None


def pod(obj: Obj) -> Health:
    st = obj.get("status") or {}
    phase = st.get("phase") or "Pending"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Health(PROGRESSING, "Pod is terminating")
    if phase == "Succeeded":
        return Health(HEALTHY, str(st.get("message") or ""))
    if phase == "Failed":
        return Health(DEGRADED, str(st.get("message") or st.get("reason") or "Pod failed"))
    bad = _waiting(obj)
    if bad:
        return Health(DEGRADED, bad[1])
    if phase == "Running":
        policy = (obj.get("spec") or {}).get("restartPolicy", "Always")
        ready = _cond(obj, "Ready")
        if policy != "Always" or (ready and ready.get("status") == "True"):
            return Health(HEALTHY if policy == "Always" else PROGRESSING, str(st.get("message") or ""))
    return Health(PROGRESSING, str(st.get("message") or st.get("reason") or ""))


def service(obj: Obj) -> Health:
    if (obj.get("spec") or {}).get("type") == "LoadBalancer":
        if not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            return Health(PROGRESSING, "Waiting for the load balancer's address")
    return Health(HEALTHY)


def job(obj: Obj) -> Health:
    if (obj.get("spec") or {}).get("suspend"):
        return Health(SUSPENDED, "Job is suspended")
    for ctype, status in (("Failed", DEGRADED), ("Complete", HEALTHY)):
        c = _cond(obj, ctype)
        if c and c.get("status") == "True":
            return Health(status, str(c.get("message") or c.get("reason") or ""))
    return Health(PROGRESSING, "Job is running")


def cronjob(obj: Obj) -> Health:
    if (obj.get("spec") or {}).get("suspend"):
        return Health(SUSPENDED, "CronJob is suspended")
    return Health(HEALTHY)


def pvc(obj: Obj) -> Health:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return Health(HEALTHY)
    if phase == "Lost":
        return Health(DEGRADED, "the claim lost its volume")
    return Health(PROGRESSING, "Waiting for the claim to be bound")


CHECKS = {
    "Deployment": deployment,
    "ReplicaSet": replicaset,
    "StatefulSet": statefulset,
    "DaemonSet": daemonset,
    "Pod": pod,
    "Service": service,
    "Job": job,
    "CronJob": cronjob,
    "PersistentVolumeClaim": pvc,
}


def health(obj: Obj | None, kind: str = "") -> Health | None:
    """The object's health; Missing when it is declared but not live (``obj`` None); None: no check."""
    if obj is None:
        return Health(MISSING, "declared in git, not in the cluster")
    check = CHECKS.get(kind or str(obj.get("kind") or ""))
    return check(obj) if check else None


def worst(statuses: list[str]) -> str:
    """The worst of several health statuses (a parent's summary of its children)."""
    for s in ORDER:
        if s in statuses:
            return s
    return ""
