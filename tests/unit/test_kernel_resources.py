"""The pod kernel's resource rules (runtime/kernel/resources.py): QoS class, requests defaulted to
limits, and the kubelet's cgroup conversions (pkg/kubelet/cm/helpers_linux.go)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.kernel import resources as r
from runtime.kernel.phase import pod_status


def ctr(
    limits: dict[str, Any] | None = None, requests: dict[str, Any] | None = None, name: str = "c"
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if limits is not None:
        res["limits"] = limits
    if requests is not None:
        res["requests"] = requests
    return {"name": name, "image": "x", "resources": res}


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    return {"metadata": {"name": "p", "uid": "u"}, "spec": spec}


@pytest.mark.parametrize(
    ("q", "milli", "whole"),
    [
        ("250m", 250, 1),
        ("0.5", 500, 1),
        ("1", 1000, 1),
        (2, 2000, 2),
        ("0.0001", 1, 1),  # MilliValue rounds up
        ("1.5", 1500, 2),
        ("32Mi", 32 * 2**20 * 1000, 32 * 2**20),
        ("1Gi", 2**30 * 1000, 2**30),
        ("128M", 128 * 10**9, 128 * 10**6),
        ("1e3", 10**6, 1000),
        ("1E", 10**21, 10**18),
        ("100k", 10**8, 10**5),
        (0.25, 250, 1),
    ],
)
def test_quantities_round_up(q: Any, milli: int, whole: int) -> None:
    assert r.milli_value(q) == milli
    assert r.value(q) == whole


@pytest.mark.parametrize("q", ["", "abc", "1x", "1.2.3", True, "Mi"])
def test_invalid_quantities(q: Any) -> None:
    with pytest.raises(ValueError):
        r.quantity(q)


@pytest.mark.parametrize(
    ("p", "qos"),
    [
        (pod(ctr()), "BestEffort"),
        (pod(ctr({"cpu": "0"}, {"memory": "0"})), "BestEffort"),  # zero counts as unset
        (pod(ctr({"cpu": "1", "memory": "1Gi"})), "Guaranteed"),  # requests default to limits
        (pod(ctr({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})), "Guaranteed"),
        (pod(ctr({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"})), "Guaranteed"),
        (pod(ctr({"cpu": "1", "memory": "1Gi"}, {"cpu": "500m"})), "Burstable"),
        (pod(ctr({"memory": "1Gi"})), "Burstable"),  # no cpu limit
        (pod(ctr(None, {"cpu": "100m"})), "Burstable"),
        (pod(ctr({"cpu": "1", "memory": "1Gi"}), ctr(name="d")), "Burstable"),  # one container sets nothing
        (pod(ctr({"cpu": "1", "memory": "1Gi"}), ctr({"cpu": "2", "memory": "1Gi"}, name="d")), "Guaranteed"),
        # init containers count too
        (pod(ctr({"cpu": "1", "memory": "1Gi"}), init=(ctr({"memory": "1Gi"}, name="i"),)), "Burstable"),
        (pod(ctr(), init=(ctr(None, {"memory": "10Mi"}, name="i"),)), "Burstable"),
        # other resources do not matter
        (pod(ctr({"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}, {"ephemeral-storage": "1"})), "Guaranteed"),
        (pod(ctr({"nvidia.com/gpu": "1"})), "BestEffort"),
    ],
)
def test_qos_class(p: dict[str, Any], qos: str) -> None:
    assert r.qos_class(p) == qos


def test_defaulted_requests_and_in_place() -> None:
    c = ctr({"cpu": "1", "memory": "1Gi"}, {"cpu": "250m"})
    assert r.defaulted_requests(c) == {"cpu": "250m", "memory": "1Gi"}
    assert c["resources"]["requests"] == {"cpu": "250m"}  # not changed
    r.default_requests_in_place(c)
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": "1Gi"}
    bare = ctr({"memory": "1Gi"})
    r.default_requests_in_place(bare)
    assert bare["resources"]["requests"] == {"memory": "1Gi"}
    nothing = ctr()
    r.default_requests_in_place(nothing)
    assert "requests" not in nothing["resources"]
    r.default_requests_in_place({"resources": {"limits": "wrong"}})  # left for validation


@pytest.mark.parametrize(
    ("milli", "shares"),
    [(0, 2), (1, 2), (2, 2), (3, 3), (100, 102), (250, 256), (1000, 1024), (1500, 1536), (10**6, 262144)],
)
def test_milli_cpu_to_shares(milli: int, shares: int) -> None:
    assert r.milli_cpu_to_shares(milli) == shares


@pytest.mark.parametrize(
    ("milli", "quota"),
    [(0, 0), (1, 1000), (5, 1000), (10, 1000), (11, 1100), (250, 25000), (1000, 100000), (2500, 250000)],
)
def test_milli_cpu_to_quota(milli: int, quota: int) -> None:
    assert r.milli_cpu_to_quota(milli) == quota
    assert r.milli_cpu_to_quota(milli, 50000) == (max(1000, milli * 50) if milli else 0)


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000), (102, 4), (256, 10)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert r.shares_to_weight(shares) == weight


def test_container_limits_and_files() -> None:
    lim = r.container_limits(ctr({"cpu": "500m", "memory": "32Mi"}))
    assert lim == r.CgroupLimits(memory_bytes=32 * 2**20, cpu_quota=50000, cpu_period=100000, cpu_shares=512)
    assert lim.needs() == {"memory", "cpu"}
    assert r.cgroup_v1_files(lim) == {
        ("memory", "memory.limit_in_bytes"): str(32 * 2**20),
        ("memory", "memory.memsw.limit_in_bytes"): str(32 * 2**20),
        ("cpu", "cpu.cfs_period_us"): "100000",
        ("cpu", "cpu.cfs_quota_us"): "50000",
        ("cpu", "cpu.shares"): "512",
    }
    assert r.cgroup_v2_files(lim) == {
        "memory.max": str(32 * 2**20),
        "memory.swap.max": "0",
        "cpu.max": "50000 100000",
        "cpu.weight": str(r.shares_to_weight(512)),
    }
    # a cpu request alone: shares, no quota
    only_req = r.container_limits(ctr(None, {"cpu": "100m"}))
    assert only_req == r.CgroupLimits(cpu_shares=102) and only_req.needs() == {"cpu"}
    # a memory request alone is not enforced (no memory.min without the MemoryQoS gate)
    assert r.container_limits(ctr(None, {"memory": "1Gi"})).empty
    assert r.container_limits(ctr()).empty and r.container_limits({"name": "x"}).needs() == set()
    with pytest.raises(ValueError):
        r.container_limits(ctr({"memory": "lots"}))


def test_not_enforced_condition_and_note() -> None:
    p = pod(ctr({"memory": "32Mi"}))
    assert r.wanted_controllers(p) == {"memory"}
    assert r.not_enforced_condition(p, {}, "t") is None
    assert r.not_enforced_condition(p, {"cpu": "no cpu controller"}, "t") is None  # the pod needs no cpu
    cond = r.not_enforced_condition(p, {"memory": "not running as root", "cpu": "not running as root"}, "t")
    assert cond is not None
    assert cond["type"] == r.NOT_ENFORCED_CONDITION and cond["status"] == "False"
    assert cond["reason"] == "ResourcesNotEnforced" and cond["lastTransitionTime"] == "t"
    assert "memory" in cond["message"] and "not running as root" in cond["message"] and "cpu" not in cond["message"]
    assert r.not_enforced_condition(pod(ctr()), {"memory": "x"}, "t") is None  # BestEffort: nothing to enforce
    st = pod_status(
        phase="Running",
        pod_ip=None,
        host_ip="127.0.0.1",
        start_time="t",
        conditions={},
        container_statuses=[],
        qos_class="Burstable",
        extra_conditions=[cond],
    )
    assert st["qosClass"] == "Burstable"
    assert r.not_enforced_note(st) == cond["message"]
    assert r.not_enforced_note({"conditions": [{"type": "Ready", "status": "False"}]}) is None


# -- properties --------------------------------------------------------------------------------

millis = st.integers(min_value=0, max_value=10**7)


@given(millis, millis)
def test_shares_are_monotonic_and_bounded(a: int, b: int) -> None:
    sa, sb = r.milli_cpu_to_shares(a), r.milli_cpu_to_shares(b)
    assert r.MIN_SHARES <= sa <= r.MAX_SHARES
    if a <= b:
        assert sa <= sb
    wa, wb = r.shares_to_weight(sa), r.shares_to_weight(sb)
    assert 1 <= wa <= 10000 and (a > b or wa <= wb)


@given(st.integers(min_value=1, max_value=10**7), st.integers(min_value=1000, max_value=10**6))
def test_quota_is_the_limit_share_of_the_period(milli: int, period: int) -> None:
    quota = r.milli_cpu_to_quota(milli, period)
    assert quota >= r.MIN_QUOTA_PERIOD
    if quota > r.MIN_QUOTA_PERIOD:  # not raised to the minimum: the limit, rounded down to a µs
        assert quota == milli * period // 1000
        assert Fraction(quota, period) <= Fraction(milli, 1000) < Fraction(quota + 1, period)


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi"]))
def test_integer_quantities_are_exact(n: int, suffix: str) -> None:
    mult = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[suffix]
    assert r.value(f"{n}{suffix}") == n * mult
    assert r.milli_value(f"{n}{suffix}") == n * mult * 1000


resources = st.fixed_dictionaries(
    {},
    optional={
        "cpu": st.sampled_from(["0", "100m", "250m", "1", "2"]),
        "memory": st.sampled_from(["0", "64Mi", "128Mi", "1Gi"]),
    },
)


@given(st.lists(st.tuples(resources, resources), min_size=1, max_size=3))
def test_qos_agrees_with_its_definition(specs: list[tuple[dict[str, str], dict[str, str]]]) -> None:
    p = pod(*(ctr(lim, req, name=f"c{i}") for i, (lim, req) in enumerate(specs)))
    qos = r.qos_class(p)

    def pos(m: dict[str, str], k: str) -> bool:
        return k in m and r.quantity(m[k]) > 0

    anything = any(pos(lim, k) or pos(req, k) for lim, req in specs for k in r.COMPUTE)
    assert (qos == "BestEffort") == (not anything)
    if qos == "Guaranteed":
        for lim, _req in specs:
            assert pos(lim, "cpu") and pos(lim, "memory")
    # limits on both, requests equal or unset, in every container: Guaranteed
    if all(
        pos(lim, "cpu") and pos(lim, "memory") and all(k not in req or req[k] == lim[k] for k in r.COMPUTE)
        for lim, req in specs
    ):
        assert qos == "Guaranteed"


def test_api_defaults_requests_from_limits_on_pods_only() -> None:
    """SetDefaults_Pod (reconciler/manifests/validate/defaults.py): on a Pod, not on a template."""
    from reconciler.manifests.validate import apply_defaults

    p = {"apiVersion": "v1", "kind": "Pod", **pod(ctr({"cpu": "1", "memory": "1Gi"}, {"cpu": "100m"}))}
    p["spec"]["initContainers"] = [ctr({"memory": "8Mi"}, name="i")]
    apply_defaults(p)
    assert p["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "1Gi"}
    assert p["spec"]["initContainers"][0]["resources"]["requests"] == {"memory": "8Mi"}
    d = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [ctr({"cpu": "1"})]}}},
    }
    apply_defaults(d)
    assert "requests" not in d["spec"]["template"]["spec"]["containers"][0]["resources"]


def test_not_enforced_is_one_warning_event_per_pod() -> None:
    """The reconciler (reconciler/sync/objects.py) makes one Warning ResourcesNotEnforced of the condition."""
    from tests.unit.test_reconcile_pass import World
    from tests.unit.test_reconcile_pass import pod as git_pod

    cond = {
        "type": r.NOT_ENFORCED_CONDITION,
        "status": "False",
        "reason": r.NOT_ENFORCED_REASON,
        "message": "memory limits are recorded but not enforced: not running as root",
    }
    w = World(git_pod("a"))
    w.step()
    uid = w.live[("Pod", "default", "a")]["metadata"]["uid"]
    w.running[uid] = {"phase": "Pending", "conditions": [cond], "containerStatuses": []}
    ch = w.step()
    assert [(e["type"], e["reason"], e["message"]) for e in ch.events] == [
        ("Warning", "ResourcesNotEnforced", cond["message"])
    ]
    w.running[uid] = {"phase": "Running", "conditions": [cond], "containerStatuses": []}
    assert w.step().events == []  # once per pod


def test_docker_engine_resource_gaps() -> None:
    from runtime.docker.pods import engine_resource_gaps

    full = {"MemoryLimit": True, "SwapLimit": True, "CpuCfsQuota": True, "CPUShares": True}
    assert engine_resource_gaps(full) == {}
    assert engine_resource_gaps({}) == {}  # an engine that does not say: assume it can
    gaps = engine_resource_gaps({**full, "MemoryLimit": False, "CpuCfsQuota": False})
    assert set(gaps) == {"memory", "cpu"} and "CpuCfsQuota" in gaps["cpu"]
    cond = r.not_enforced_condition(pod(ctr({"memory": "1Gi"})), gaps, "t")
    assert cond is not None and "MemoryLimit false" in cond["message"]
