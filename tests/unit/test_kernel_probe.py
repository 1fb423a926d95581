"""The probe state machine and schedule (runtime/kernel/probe.py), on a fake clock.

Kubernetes: pkg/kubelet/prober/worker.go: a result takes effect after successThreshold /
failureThreshold consecutive equal outcomes; the first probe comes initialDelaySeconds after
the container started, then every periodSeconds. gitship's one addition: a readiness probe
that never succeeded retries after 50 ms, doubling up to its period.
"""

import pytest

from runtime.kernel import ProbeMachine, resolve_port, with_defaults


def run(machine: ProbeMachine, outcomes: list[bool]) -> list[tuple[bool, bool]]:
    """(changed, done) after each attempt."""
    out = []
    for ok in outcomes:
        out.append((machine.record(ok), machine.done))
    return out


def test_defaults():
    p = with_defaults({"periodSeconds": 0, "failureThreshold": 0})
    assert p["periodSeconds"] == 10 and p["timeoutSeconds"] == 1
    assert p["successThreshold"] == 1 and p["failureThreshold"] == 1 and p["initialDelaySeconds"] == 0


@pytest.mark.parametrize(
    ("kind", "probe", "initial", "outcomes", "want"),
    [
        # readiness: starts unready; one success flips it; failureThreshold failures flip it back
        (
            "readiness",
            {"failureThreshold": 2},
            False,
            [False, True, False, True, False, False],
            [(False, False), (True, False), (False, False), (False, False), (False, False), (True, False)],
        ),
        # successThreshold 2: two successes in a row
        ("readiness", {"successThreshold": 2}, False, [True, False, True, True],
         [(False, False)] * 3 + [(True, False)]),
        # liveness: starts healthy; failureThreshold failures in a row -> changed and done (killed)
        ("liveness", {"failureThreshold": 3}, True, [False, False, True, False, False, False],
         [(False, False)] * 5 + [(True, True)]),
        # startup: done at the first success...
        ("startup", {}, None, [False, True], [(False, False), (True, True)]),
        # ... or after failureThreshold failures (the container is killed)
        ("startup", {"failureThreshold": 2}, None, [False, False], [(False, False), (True, True)]),
    ],
)  # fmt: skip
def test_thresholds(kind, probe, initial, outcomes, want):
    m = ProbeMachine(kind, probe, initial)
    assert run(m, outcomes) == want


def test_schedule():
    m = ProbeMachine("liveness", {"initialDelaySeconds": 5, "periodSeconds": 2}, True)
    assert m.first_delay(started_at=100.0, now=101.0) == 4.0
    assert m.first_delay(started_at=100.0, now=110.0) == 0
    m.record(True)
    assert m.next_delay() == 2.0
    r = ProbeMachine("readiness", {"periodSeconds": 1}, False)
    delays = []
    for _ in range(6):
        r.record(False)
        delays.append(round(r.next_delay(), 2))
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    r.record(True)
    r.record(False)
    assert r.next_delay() == 1.0  # once it has been ready: the period


@pytest.mark.parametrize(("port", "want"), [(8080, 8080), ("9090", 9090), ("http", 8080)])
def test_resolve_port(port, want):
    assert resolve_port(port, {"ports": [{"name": "http", "containerPort": 8080}]}) == want


@pytest.mark.parametrize("port", ["web", True, None])
def test_resolve_port_errors(port):
    with pytest.raises(ValueError):
        resolve_port(port, {"ports": [{"name": "http", "containerPort": 8080}]})
