"""Pure rollout arithmetic (docs/kubernetes.md §1.2, 1.5, 1.7)."""

from __future__ import annotations

import pytest

from reconciler import rollout


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected", "max_total", "min_available"),
    [
        (1, "25%", "25%", (1, 0), 2, 1),
        (3, "25%", "25%", (1, 0), 4, 3),
        (4, "25%", "25%", (1, 1), 5, 3),
        (10, "25%", "25%", (3, 2), 13, 8),
        (2, "0%", "1%", (0, 1), 2, 1),
    ],
)
def test_fencepost_table(replicas, surge, unavailable, expected, max_total, min_available):
    resolved = rollout.resolve_fenceposts(surge, unavailable, replicas)
    assert resolved == expected
    assert replicas + resolved[0] == max_total
    assert replicas - resolved[1] == min_available


def test_fenceposts_ints_caps_and_zero_replicas():
    assert rollout.resolve_fenceposts(1, 1, 3) == (1, 1)
    assert rollout.resolve_fenceposts(2, 5, 3) == (2, 3)  # unavailable capped at replicas
    assert rollout.resolve_fenceposts("25%", "25%", 0) == (0, 0)
    assert rollout.resolve_fenceposts("30%", 0, 10) == (3, 0)
    assert rollout.resolve_fenceposts("100%", "100%", 7) == (7, 7)


def test_scaled_value_rounding():
    assert rollout.scaled_value("25%", 10, True) == 3
    assert rollout.scaled_value("25%", 10, False) == 2
    assert rollout.scaled_value("1%", 2, False) == 0
    assert rollout.scaled_value("1%", 2, True) == 1
    assert rollout.scaled_value(4, 10, True) == 4


@pytest.mark.parametrize(
    ("replicas", "total", "new_spec", "expected"),
    [
        (3, 3, 0, 1),  # born at maxSurge
        (3, 4, 1, 1),  # no room
        (3, 3, 1, 2),
        (3, 4, 3, 3),  # already full
        (3, 6, 5, 3),  # bigger than replicas: shrink
        (10, 7, 1, 5),  # maxTotal 11: 1 + min(11 - 7, 10 - 1)
    ],
)
def test_new_rs_new_replicas(replicas, total, new_spec, expected):
    assert rollout.new_rs_new_replicas(replicas, 1, 0, total, new_spec) == expected


def test_new_rs_new_replicas_example_d():
    # replicas 10, maxSurge 30% -> maxTotal 13
    assert rollout.new_rs_new_replicas(10, "30%", 0, 10, 0) == 3
    assert rollout.new_rs_new_replicas(10, "30%", 0, 10, 3) == 6
    assert rollout.new_rs_new_replicas(10, "30%", 0, 10, 9) == 10  # capped by replicas - new


def test_scale_down_budget_and_steps():
    assert rollout.scale_down_budget(4, 3, 1, 0) == 0
    assert rollout.scale_down_budget(4, 2, 1, 0) == 1
    assert rollout.scale_down_budget(5, 3, 2, 0) == 0
    assert rollout.cleanup_unhealthy([(3, 3)], 1) == [3]
    assert rollout.cleanup_unhealthy([(3, 1), (2, 0)], 3) == [1, 1]
    assert rollout.cleanup_unhealthy([(3, 1), (2, 0)], 1) == [2, 2]
    assert rollout.cleanup_unhealthy([(0, 0), (2, 3)], 5) == [0, 2]
    assert rollout.scale_down_healthy([3], 4, 3) == [2]
    assert rollout.scale_down_healthy([3], 5, 3) == [1]
    assert rollout.scale_down_healthy([2, 4], 7, 4) == [0, 3]
    assert rollout.scale_down_healthy([2], 3, 3) == [2]


def test_round_half_away_from_zero():
    assert rollout.round_half_away(2.5) == 3
    assert rollout.round_half_away(3.5) == 4
    assert rollout.round_half_away(-2.5) == -3
    assert rollout.round_half_away(11.077) == 11


def test_proportional_docs_example():
    # replicas 10 -> 15, maxSurge 3, stalled at old 8 / new 5, both annotated max 13
    assert rollout.proportional_sizes([(8, 13), (5, 13)], 15, 3, 13) == [11, 7]


def test_proportional_scale_down_and_to_zero():
    # 15 -> 10 (surge 3): allowed 13, toAdd -5
    assert rollout.proportional_sizes([(11, 18), (7, 18)], 10, 3, 18) == [8, 5]
    assert rollout.proportional_sizes([(4, 13), (3, 13)], 0, 0, 13) == [0, 0]


def test_proportional_leftover_goes_to_largest():
    # three RSs of 1 annotated 3, scale to replicas 4 + surge 1 = 5: toAdd 2
    sizes = rollout.proportional_sizes([(1, 3), (1, 3), (1, 3)], 4, 1, 3)
    assert sum(sizes) == 5
    assert sizes[0] >= sizes[1] >= sizes[2] - 1
