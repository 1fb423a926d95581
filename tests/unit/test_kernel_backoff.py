"""Crash and pull back-off (runtime/kernel/backoff.py) on a fake clock.

Kubernetes: pkg/kubelet/kuberuntime/kuberuntime_manager.go doBackOff and client-go
util/flowcontrol/backoff.go: restart at once when not in back-off since the exit, then the
entry is 10 s, doubling to 300 s; it starts over once the container ran for 2 x 300 s.
"""

import pytest

from runtime.kernel import Backoff, crash_backoff


def crash_loop(b: Backoff, exits: list[float]) -> list[float]:
    """Waits before each restart when the container exits after running the given times (fake clock)."""
    now = b.updated or 0.0  # the last restart
    waits = []
    for ran in exits:
        now += ran  # it exits
        finished = now
        wait = b.remaining(now, finished)
        waits.append(wait)
        now += wait  # the restart
        b.next(now, finished)
    return waits


def test_delays_double_to_the_cap():
    b = Backoff(10, 300)
    assert crash_loop(b, [1] * 9) == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert [crash_backoff(n, 10, 300) for n in range(1, 10)] == [0, 10, 20, 40, 80, 160, 300, 300, 300]


@pytest.mark.parametrize(
    ("ran", "wait"),
    [
        (599, 80),  # ran less than 2 x cap since the last restart: the entry goes on doubling
        (601, 0),  # ran more than 10 minutes: a fresh start, restarted at once
    ],
)
def test_reset_after_running_twice_the_cap(ran, wait):
    b = Backoff(10, 300)
    crash_loop(b, [1, 1, 1, 1])  # waits 0, 10, 20, 40
    assert crash_loop(b, [ran]) == [wait]


def test_time_already_waited_counts():
    b = Backoff(10, 300)
    b.next(100.0, 100.0)  # restarted at 100: entry 10 s
    assert b.remaining(now=104.0, since=101.0) == pytest.approx(7.0)
    assert b.remaining(now=112.0, since=101.0) == 0


def test_pull_backoff_from_the_last_failure():
    b = Backoff(1, 4)
    assert b.remaining(0.0) == 0
    assert [b.next(t) for t in (0.0, 1.0, 3.0, 7.0)] == [1, 2, 4, 4]
    assert b.remaining(8.0) == pytest.approx(3.0)
    b.reset()
    assert b.remaining(8.0) == 0


def test_round_trip_through_a_state_file():
    b = Backoff(10, 300)
    b.next(5.0, 5.0)
    c = Backoff(10, 300)
    c.load(b.to_json())
    assert (c.delay, c.updated) == (10, 5.0)
    c.load({"delay": "x"})
    assert c.delay is None
