"""The storage step of a pass: claims, volumes and classes (controllers/volume.py), and the
scheduler's rule that a pod whose claims are not all Bound is not handed to the runtime.

Pure: the runtime's part (making and deleting the volumes' data) is asked for in ``Changes``
(``provision``, ``reclaim``) and carried out by the executor (reconciler/storage_exec.py).
"""

from __future__ import annotations

from ..controllers import volume as volctl
from ..types import Obj
from .work import Work


def sync_storage(w: Work) -> tuple[list[volctl.Provision], list[Obj]]:
    """Bind, protect and release claims and volumes; what the runtime must make or delete."""
    c = w.cluster
    provisioner = w.inp.settings.provisioner
    if not c.of_kind(volctl.PVC) and not c.of_kind(volctl.PV):
        if not provisioner or c.get((volctl.SC, "", volctl.BUILTIN_CLASS)) is not None:
            return [], []  # nothing to bind: the common case costs two scans
    res = volctl.sync_volumes(c, provisioner, w.now, w.inp.ids.new_uid)
    for ev in res.events:
        w.controller_event(ev)
    return res.provision, res.reclaim


def schedulable(w: Work, pod: Obj) -> bool:
    """Whether the pod may go to the runtime: every claim it names exists and is Bound. If not,
    it stays Pending with PodScheduled=False, reason Unschedulable (a FailedScheduling event
    when the reason changes), and starts in the pass after its claims bound."""
    if not volctl.claim_names(pod):
        return True
    c = w.cluster
    message = volctl.unschedulable(
        pod,
        lambda ns, name: c.get((volctl.PVC, ns, name)),
        lambda name: c.get((volctl.SC, "", name)),
    )
    if message is None:
        return True
    status = volctl.unschedulable_status(pod.get("status"), message, w.now)
    if status != pod.get("status"):
        if _message(pod.get("status")) != message:
            m = pod["metadata"]
            w.event("Warning", "FailedScheduling", "Pod", m["namespace"], m["name"], message)
        w.cluster.put({**pod, "status": status})
    return False


def _message(status: Obj | None) -> str | None:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("message"))
    return None
