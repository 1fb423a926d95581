"""The health of a live object, as Argo CD's health checks name it: Healthy, Progressing, Degraded.

Pure: a live object (Kubernetes-shaped, with status) in, a word out. reconciler/ops/metrics.py
counts objects by kind and health with it.
"""

from __future__ import annotations

from typing import Any

from reconciler.types import Obj

HEALTHY, PROGRESSING, DEGRADED = "Healthy", "Progressing", "Degraded"
HEALTH_STATES = (HEALTHY, PROGRESSING, DEGRADED)
# container waiting reasons that mean the pod is failing, not starting (kubelet's)
_FAILING_WAITS = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
}


def _status(o: Obj) -> dict[str, Any]:
    return o.get("status") or {}


def _condition(o: Obj, kind: str) -> dict[str, Any]:
    return next((c for c in _status(o).get("conditions") or [] if c.get("type") == kind), {})


def pod_health(pod: Obj) -> str:
    st = _status(pod)
    phase = st.get("phase")
    if phase == "Succeeded":
        return HEALTHY
    if phase == "Failed":
        return DEGRADED
    for c in st.get("containerStatuses") or []:
        if ((c.get("state") or {}).get("waiting") or {}).get("reason") in _FAILING_WAITS:
            return DEGRADED
    if phase == "Running" and _condition(pod, "Ready").get("status") == "True":
        return HEALTHY
    return PROGRESSING


def _generation_seen(o: Obj) -> bool:
    gen = (o.get("metadata") or {}).get("generation")
    seen = _status(o).get("observedGeneration")
    return gen is None or (seen is not None and seen >= gen)


def deployment_health(d: Obj) -> str:
    if _condition(d, "Progressing").get("reason") == "ProgressDeadlineExceeded":
        return DEGRADED
    want = (d.get("spec") or {}).get("replicas", 1)
    st = _status(d)
    done = st.get("updatedReplicas", 0) >= want and st.get("availableReplicas", 0) >= want
    done = done and st.get("replicas", 0) <= st.get("updatedReplicas", 0)
    return HEALTHY if done and _generation_seen(d) else PROGRESSING


def _replicas_health(o: Obj, ready_key: str, want: int) -> str:
    return HEALTHY if _status(o).get(ready_key, 0) >= want and _generation_seen(o) else PROGRESSING


def job_health(job: Obj) -> str:
    if _condition(job, "Failed").get("status") == "True":
        return DEGRADED
    if _condition(job, "Complete").get("status") == "True":
        return HEALTHY
    return PROGRESSING


def health(o: Obj) -> str:
    """Healthy, Progressing or Degraded; kinds without a status of their own are Healthy."""
    kind = o.get("kind")
    spec = o.get("spec") or {}
    if kind == "Pod":
        return pod_health(o)
    if kind == "Deployment":
        return deployment_health(o)
    if kind in ("ReplicaSet", "StatefulSet", "ReplicationController"):
        return _replicas_health(o, "readyReplicas", spec.get("replicas", 1))
    if kind == "DaemonSet":
        return _replicas_health(o, "numberReady", _status(o).get("desiredNumberScheduled", 0))
    if kind == "Job":
        return job_health(o)
    if kind == "PersistentVolumeClaim":
        phase = _status(o).get("phase")
        return HEALTHY if phase == "Bound" else DEGRADED if phase == "Lost" else PROGRESSING
    if kind == "Service" and spec.get("type") == "LoadBalancer":
        return HEALTHY if (_status(o).get("loadBalancer") or {}).get("ingress") else PROGRESSING
    return HEALTHY
