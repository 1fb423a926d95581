"""A pod's compute resources as Kubernetes defines them: QoS class, defaulted requests, and the
kubelet's conversions of CPU and memory into cgroup values.

Kubernetes:

* pkg/apis/core/v1/helper/qos (ComputePodQOS): the pod's QoS class, from the sums of its
  containers' (and init containers') cpu and memory requests and limits;
* pkg/apis/core/v1/defaults.go (SetDefaults_Pod): a limit without a request makes the request
  equal to the limit (on Pods, not on pod templates);
* pkg/kubelet/cm/helpers_linux.go (MilliCPUToShares, MilliCPUToQuota) and
  pkg/kubelet/cm/cgroup_manager_linux.go (CpuSharesToCpuWeight): cpu.shares 1024 per CPU
  (at least 2, at most 262144), a CFS quota of ``milliCPU * period / 1000`` µs per period of
  100000 µs (at least 1000 µs), and on cgroup v2 the cpu.weight derived from the shares,
  ``cpu.max`` "quota period" and ``memory.max``;
* quantities are rounded up, as resource.Quantity's Value() and MilliValue() do.

What a runtime does with the numbers (Docker's HostConfig, the in-process runtime's cgroup
files) is the runtime's: runtime/docker/pods.py, runtime/inprocess/cgroups.py. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

QOS_GUARANTEED = "Guaranteed"
QOS_BURSTABLE = "Burstable"
QOS_BEST_EFFORT = "BestEffort"

# the resources the QoS class and the cgroups look at
COMPUTE = ("cpu", "memory")

MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
MILLI_PER_CPU = 1000
QUOTA_PERIOD = 100000  # µs: the CFS period the kubelet sets
MIN_QUOTA_PERIOD = 1000  # µs: the smallest quota the kernel accepts
MAX_WEIGHT = 10000  # cgroup v2 cpu.weight range 1..10000

# the pod condition a runtime adds when it cannot enforce what the pod asks for
NOT_ENFORCED_CONDITION = "gitship.io/ResourcesEnforced"
NOT_ENFORCED_REASON = "ResourcesNotEnforced"

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity(q: Any) -> Fraction:
    """A Kubernetes quantity ("128Mi", "0.5", "250m", 2) exactly; raises ValueError if it is none."""
    if isinstance(q, bool):
        raise ValueError(f"invalid quantity {q!r}")
    if isinstance(q, int):
        return Fraction(q)
    if isinstance(q, float):
        return Fraction(Decimal(repr(q)))
    m = _QUANTITY.match(str(q).strip())
    if not m:
        raise ValueError(f"invalid quantity {q!r}")
    number, suffix = m.groups()
    try:
        num = Fraction(Decimal(number))
    except (InvalidOperation, ValueError):
        raise ValueError(f"invalid quantity {q!r}") from None
    if suffix in _BINARY:
        return Fraction(num * 2 ** _BINARY[suffix])
    if suffix in _DECIMAL:
        exp = _DECIMAL[suffix]
        return Fraction(num * 10**exp) if exp >= 0 else Fraction(num / 10**-exp)
    raise ValueError(f"invalid quantity {q!r}")


def milli_value(q: Any) -> int:
    """The quantity in thousandths, rounded up (Quantity.MilliValue): "250m" -> 250, "0.0001" -> 1."""
    return math.ceil(quantity(q) * 1000)


def value(q: Any) -> int:
    """The quantity as a whole number, rounded up (Quantity.Value): "32Mi" -> 33554432."""
    return math.ceil(quantity(q))


# -- requests, limits and the QoS class --------------------------------------------------------


def _resource_map(c: Mapping[str, Any], which: str) -> Mapping[str, Any]:
    res = c.get("resources")
    got = res.get(which) if isinstance(res, Mapping) else None
    return got if isinstance(got, Mapping) else {}


def defaulted_requests(container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's requests with every limit that has no request of its own copied in
    (SetDefaults_Pod). The container is not changed."""
    out = dict(_resource_map(container, "requests"))
    for name, limit in _resource_map(container, "limits").items():
        out.setdefault(name, limit)
    return out


def default_requests_in_place(container: Any) -> None:
    """SetDefaults_Pod for one container dict: ``resources.requests`` gets each limit it lacks.
    Values of the wrong type are left for validation."""
    if not isinstance(container, dict):
        return
    res = container.get("resources")
    if not isinstance(res, dict) or not isinstance(res.get("limits"), dict) or not res["limits"]:
        return
    requests = res.get("requests")
    if requests is None:
        requests = res["requests"] = {}
    if isinstance(requests, dict):
        for name, limit in res["limits"].items():
            requests.setdefault(name, limit)


def _pod_containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, Mapping):
                yield c


def _positive(m: Mapping[str, Any], name: str) -> Fraction | None:
    if m.get(name) is None:
        return None
    try:
        q = quantity(m[name])
    except ValueError:
        return None
    return q if q > 0 else None


def qos_class(pod: Mapping[str, Any]) -> str:
    """The pod's QoS class (ComputePodQOS), from its spec with requests defaulted to limits.

    BestEffort: no container requests or limits cpu or memory. Guaranteed: every container
    limits both cpu and memory, and per resource the pod's requests equal its limits.
    Burstable: everything else.
    """
    spec = pod.get("spec") or {}
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for c in _pod_containers(spec):
        reqs, lims = defaulted_requests(c), _resource_map(c, "limits")
        for name in COMPUTE:
            r = _positive(reqs, name)
            if r is not None:
                requests[name] = requests.get(name, Fraction(0)) + r
        found = set()
        for name in COMPUTE:
            lim = _positive(lims, name)
            if lim is not None:
                found.add(name)
                limits[name] = limits.get(name, Fraction(0)) + lim
        if found != set(COMPUTE):
            guaranteed = False
    if not requests and not limits:
        return QOS_BEST_EFFORT
    if guaranteed and all(limits.get(name) == r for name, r in requests.items()) and len(requests) == len(limits):
        return QOS_GUARANTEED
    return QOS_BURSTABLE


# -- the kubelet's conversions -----------------------------------------------------------------


def milli_cpu_to_shares(milli_cpu: int) -> int:
    """cpu.shares for a cpu request in milliCPU (MilliCPUToShares): 1024 per CPU, within [2, 262144]."""
    if milli_cpu <= 0:
        return MIN_SHARES
    shares = milli_cpu * SHARES_PER_CPU // MILLI_PER_CPU
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def milli_cpu_to_quota(milli_cpu: int, period: int = QUOTA_PERIOD) -> int:
    """The CFS quota in µs per ``period`` for a cpu limit in milliCPU (MilliCPUToQuota); 0: no limit."""
    if milli_cpu <= 0:
        return 0
    return max(MIN_QUOTA_PERIOD, milli_cpu * period // MILLI_PER_CPU)


def shares_to_weight(shares: int) -> int:
    """cgroup v2 cpu.weight for cpu.shares (CpuSharesToCpuWeight): [2, 262144] onto [1, 10000]."""
    shares = max(MIN_SHARES, min(MAX_SHARES, shares))
    return 1 + (shares - MIN_SHARES) * (MAX_WEIGHT - 1) // (MAX_SHARES - MIN_SHARES)


@dataclass(frozen=True)
class CgroupLimits:
    """What one container's cgroup is given. None: not set (the kernel's default, unlimited)."""

    memory_bytes: int | None = None
    cpu_quota: int | None = None  # µs per cpu_period
    cpu_period: int = QUOTA_PERIOD
    cpu_shares: int | None = None

    @property
    def empty(self) -> bool:
        return self.memory_bytes is None and self.cpu_quota is None and self.cpu_shares is None

    def needs(self) -> set[str]:
        """The cgroup controllers these limits need ("memory", "cpu")."""
        out = set()
        if self.memory_bytes is not None:
            out.add("memory")
        if self.cpu_quota is not None or self.cpu_shares is not None:
            out.add("cpu")
        return out


def container_limits(container: Mapping[str, Any]) -> CgroupLimits:
    """The cgroup values of a container, as the kubelet computes them for its runtime
    (pkg/kubelet/kuberuntime/kuberuntime_container_linux.go): the memory limit in bytes, the CFS
    quota from the cpu limit, cpu.shares from the cpu request (the limit when no request is set).
    A container that sets neither gets nothing (``empty``): the kubelet would give it 2 shares
    under its BestEffort cgroup; here it keeps the default weight of its parent's children.
    Raises ValueError for a quantity that is none."""
    limits, requests = _resource_map(container, "limits"), defaulted_requests(container)
    memory = value(limits["memory"]) if limits.get("memory") is not None else None
    quota = milli_cpu_to_quota(milli_value(limits["cpu"])) if limits.get("cpu") is not None else None
    shares = milli_cpu_to_shares(milli_value(requests["cpu"])) if requests.get("cpu") is not None else None
    return CgroupLimits(memory_bytes=memory or None, cpu_quota=quota or None, cpu_shares=shares)


def cgroup_v1_files(limits: CgroupLimits) -> dict[tuple[str, str], str]:
    """{(controller, file): value} for cgroup v1. Memory gets no swap (memsw equal to the limit,
    where the kernel accounts swap; the caller skips files that do not exist)."""
    out: dict[tuple[str, str], str] = {}
    if limits.memory_bytes is not None:
        out[("memory", "memory.limit_in_bytes")] = str(limits.memory_bytes)
        out[("memory", "memory.memsw.limit_in_bytes")] = str(limits.memory_bytes)
    if limits.cpu_quota is not None:
        out[("cpu", "cpu.cfs_period_us")] = str(limits.cpu_period)
        out[("cpu", "cpu.cfs_quota_us")] = str(limits.cpu_quota)
    if limits.cpu_shares is not None:
        out[("cpu", "cpu.shares")] = str(limits.cpu_shares)
    return out


def cgroup_v2_files(limits: CgroupLimits) -> dict[str, str]:
    """{file: value} for cgroup v2: memory.max (and memory.swap.max 0), cpu.max "quota period",
    cpu.weight."""
    out: dict[str, str] = {}
    if limits.memory_bytes is not None:
        out["memory.max"] = str(limits.memory_bytes)
        out["memory.swap.max"] = "0"
    if limits.cpu_quota is not None:
        out["cpu.max"] = f"{limits.cpu_quota} {limits.cpu_period}"
    if limits.cpu_shares is not None:
        out["cpu.weight"] = str(shares_to_weight(limits.cpu_shares))
    return out


# -- what cannot be enforced -----------------------------------------------------------------


def wanted_controllers(pod: Mapping[str, Any]) -> set[str]:
    """The controllers the pod's containers need ("memory", "cpu"); an invalid quantity needs none."""
    out: set[str] = set()
    for c in _pod_containers(pod.get("spec") or {}):
        try:
            out |= container_limits(c).needs()
        except ValueError:
            continue
    return out


def not_enforced_message(missing: Mapping[str, str]) -> str:
    """The message for limits that cannot be enforced: {controller: why} -> one sentence."""
    whys = sorted(set(missing.values()))
    what = " and ".join(sorted(missing))
    return f"{what} limits are recorded but not enforced: {'; '.join(whys)}"


def not_enforced_condition(pod: Mapping[str, Any], unavailable: Mapping[str, str], since: str) -> dict[str, Any] | None:
    """The pod condition saying which of its limits are not enforced and why, or None when all
    are (or it sets none). ``unavailable``: {controller: why} of what the runtime cannot do."""
    missing = {k: why for k, why in unavailable.items() if k in wanted_controllers(pod)}
    if not missing:
        return None
    return {
        "type": NOT_ENFORCED_CONDITION,
        "status": "False",
        "lastTransitionTime": since,
        "reason": NOT_ENFORCED_REASON,
        "message": not_enforced_message(missing),
    }


def not_enforced_note(status: Mapping[str, Any]) -> str | None:
    """The message of a pod status' not-enforced condition, if it has one (describe shows it)."""
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == NOT_ENFORCED_CONDITION and cond.get("status") == "False":
            msg = cond.get("message")
            return str(msg) if msg else NOT_ENFORCED_REASON
    return None
