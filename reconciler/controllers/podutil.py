"""Pure helpers over Pod dicts shared by the ReplicaSet and Deployment controllers.

Where it sits: ``controllers/replicaset.py`` and ``controllers/deployment/`` use these
to read readiness and availability (docs/kubernetes.md §3.2), to rank pods for deletion (§3.3), to
build and read ownerReferences (§3.1) and to describe events. Nothing here does
I/O or reads a clock: the current time is always a parameter ``now`` (epoch seconds),
and timestamps inside objects are RFC 3339 UTC strings (``2026-11-25T20:00:00Z``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol, cast

from reconciler.types import Obj
from runtime.kernel.timefmt import parse_rfc3339, rfc3339

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""Kubernetes' "safe" alphabet (no vowels): pod-name suffixes and pod-template-hash."""

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

PHASE_PENDING = "Pending"
PHASE_RUNNING = "Running"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
PHASE_UNKNOWN = "Unknown"

EVENT_NORMAL = "Normal"
EVENT_WARNING = "Warning"

_PHASE_ORDINAL: dict[str | None, int] = {PHASE_PENDING: 0, PHASE_UNKNOWN: 1, PHASE_RUNNING: 2}


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event about one object (``involvedObject`` = kind/namespace/name)."""

    type: str
    reason: str
    message: str
    kind: str
    namespace: str
    name: str


# --- time -------------------------------------------------------------------------------
# One home for RFC 3339 in objects: the pod kernel (runtime/kernel/timefmt.py); these names stay
# for the controllers and printers that read and write timestamps.

to_rfc3339 = rfc3339
from_rfc3339 = parse_rfc3339


def _timestamp(value: str | None) -> float | None:
    return from_rfc3339(value) if value else None


# --- readiness / availability -----------------------------------------------------------


def _ready_condition(pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cast(Obj, cond)
    return None


def is_pod_ready(pod: Obj) -> bool:
    """The pod's ``Ready`` condition has status ``"True"``."""
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def pod_ready_since(pod: Obj) -> float | None:
    """When a Ready pod became Ready (its condition's lastTransitionTime); None if not Ready."""
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return _timestamp(cond.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready, and Ready for strictly more than ``min_ready_seconds`` (docs/kubernetes.md §3.2)."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = pod_ready_since(pod)
    return since is not None and since + min_ready_seconds < now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """For a Ready but not yet available pod: seconds until it counts as available."""
    if not min_ready_seconds or not is_pod_ready(pod) or is_pod_available(pod, min_ready_seconds, now):
        return None
    since = pod_ready_since(pod)
    if since is None:
        return None
    # Availability needs ``since + minReadySeconds < now`` (strict): ask to be woken just after.
    return max(since + min_ready_seconds - now, 0.0) + 0.001


def is_terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_pod_active(pod: Obj) -> bool:
    """Counted by a ReplicaSet: phase not Succeeded/Failed and no deletionTimestamp."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in (PHASE_SUCCEEDED, PHASE_FAILED) and not is_terminating(pod)


# --- ownership --------------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return cast(Obj, ref)
    return None


def owner_ref(owner: Obj) -> Obj:
    """A controller ownerReference pointing at ``owner``."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", "apps/v1"),
        "kind": owner.get("kind", ""),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: Obj, owner_uid: str) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner_uid


# --- names ------------------------------------------------------------------------------


class _Chooser(Protocol):
    def choice(self, seq: str) -> str: ...


def random_suffix(rng: _Chooser, n: int = 5) -> str:
    """``n`` characters from ALPHABET drawn with ``rng.choice`` (e.g. a ``random.Random``)."""
    return "".join(rng.choice(ALPHABET) for _ in range(n))


MAX_GENERATED_PREFIX = 58  # 63 - 5 random characters


def generated_name(generate_name: str, suffix: str) -> str:
    """The apiserver's generateName: prefix truncated to 58 characters, then the suffix."""
    return generate_name[:MAX_GENERATED_PREFIX] + suffix


# --- deletion ranking (docs/kubernetes.md §3.3) -----------------------------------------------


def _deletion_cost(pod: Obj) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        return int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return 0


def _max_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def _log_bucket(t: float, now: float) -> int:
    """floor(log2(now - t)) in nanoseconds; -1 when t is not in the past."""
    delta_ns = (now - t) * 1e9
    return int(math.log2(delta_ns)) if delta_ns > 0 else -1


def _compare_times(t1: float | None, t2: float | None, uid1: str, uid2: str, now: float) -> int:
    """Newer first, in log2 buckets of age, UID breaking ties inside a bucket; empty first.

    Returns <0 when the first pod goes first, >0 when the second does, 0 when undecided.
    """
    if t1 == t2:
        return 0
    if t1 is None or t2 is None:
        return -1 if t1 is None else 1
    rank_diff = _log_bucket(t1, now) - _log_bucket(t2, now)
    if rank_diff == 0:
        return -1 if uid1 < uid2 else (1 if uid1 > uid2 else 0)
    return -1 if rank_diff < 0 else 1


def _compare_for_deletion(a: Obj, b: Obj, now: float) -> int:
    # 1. not assigned to a node before assigned
    na, nb = bool((a.get("spec") or {}).get("nodeName")), bool((b.get("spec") or {}).get("nodeName"))
    if na != nb:
        return -1 if not na else 1
    # 2. Pending < Unknown < Running
    pa = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase"), 0)
    pb = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase"), 0)
    if pa != pb:
        return -1 if pa < pb else 1
    # 3. not ready before ready
    ra, rb = is_pod_ready(a), is_pod_ready(b)
    if ra != rb:
        return -1 if not ra else 1
    # 4. lower deletion cost first
    ca, cb = _deletion_cost(a), _deletion_cost(b)
    if ca != cb:
        return -1 if ca < cb else 1
    # 5. (pods per node) irrelevant on one machine
    uid_a, uid_b = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
    # 6. both ready: ready for less time first
    if ra and rb:
        c = _compare_times(pod_ready_since(a), pod_ready_since(b), uid_a, uid_b, now)
        if c:
            return c
    # 7. more restarts first
    xa, xb = _max_restarts(a), _max_restarts(b)
    if xa != xb:
        return -1 if xa > xb else 1
    # 8. newer creationTimestamp first
    c = _compare_times(
        _timestamp(a["metadata"].get("creationTimestamp")),
        _timestamp(b["metadata"].get("creationTimestamp")),
        uid_a,
        uid_b,
        now,
    )
    # 9. Kubernetes leaves the rest to its (unstable) sort; the UID keeps gitship's choice the same
    # whatever order the pods came in, so a pass is a function of its input.
    return c or (-1 if uid_a < uid_b else (1 if uid_a > uid_b else 0))


def deletion_order(pods: list[Obj], now: float) -> list[Obj]:
    """Pods ranked for scale-down, first = deleted first (``ActivePodsWithRanks``, docs/kubernetes.md §3.3)."""

    def cmp(a: Obj, b: Obj) -> int:
        return _compare_for_deletion(a, b, now)

    return sorted(pods, key=functools.cmp_to_key(cmp))
