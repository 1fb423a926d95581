"""Pure rollout arithmetic of the Deployment controller (docs/kubernetes.md §1.2, 1.5, 1.7).

Where it sits: ``controllers/deployment/`` calls these with plain numbers taken from
the Deployment and its ReplicaSets; nothing here knows about dicts, clocks or I/O.
Names follow kubernetes/kubernetes ``pkg/controller/deployment/util/deployment_util.go`` and
``pkg/controller/deployment/rolling.go`` so the two can be read side by side.

Vocabulary: "spec" = ``.spec.replicas`` of a ReplicaSet (desired), "available" =
``.status.availableReplicas``; ``maxTotal = replicas + maxSurge``;
``minAvailable = replicas - maxUnavailable``.
"""

from __future__ import annotations

import math

IntOrPercent = int | str


def scaled_value(value: IntOrPercent, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: ints as is, ``"N%"`` of ``total``.

    Float math then ceil (``round_up``) or floor, as Go does::

        value  total  round_up -> result
        "25%"  10     True        3      (2.5 -> 3)
        "25%"  10     False       2
        "30%"  10     True        3
        2      10     either      2
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid int-or-percent: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        return int(text)
    pct = int(text[:-1])
    exact = float(pct) * float(total) / 100.0
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: IntOrPercent, max_unavailable: IntOrPercent, replicas: int) -> tuple[int, int]:
    """Resolve (maxSurge, maxUnavailable) for ``replicas`` (docs/kubernetes.md §1.2).

    Surge rounds up, unavailable rounds down; both 0 -> unavailable forced to 1;
    unavailable is capped at ``replicas`` (so 0 when replicas is 0)::

        replicas  surge/unavail  ->  surge  unavail   pods allowed  min available
        1         25% / 25%          1      0         <=2           >=1
        3         25% / 25%          1      0         <=4           >=3
        4         25% / 25%          1      1         <=5           >=3
        10        25% / 25%          3      2         <=13          >=8
        2         0%  / 1%           0      1         <=2           >=1
    """
    surge = scaled_value(max_surge, replicas, True)
    unavailable = scaled_value(max_unavailable, replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    unavailable = min(unavailable, replicas) if replicas > 0 else 0
    return surge, unavailable


def new_rs_new_replicas(
    deploy_replicas: int,
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    all_rs_specs_total: int,
    new_spec: int,
) -> int:
    """The new ReplicaSet's next size during a RollingUpdate (docs/kubernetes.md §1.5 step 2).

    ``all_rs_specs_total`` includes ``new_spec``. The new RS grows into the room
    left under ``maxTotal`` but never past ``replicas``; a new RS bigger than
    ``replicas`` shrinks to it. Example A (replicas 3, surge 1 -> maxTotal 4)::

        total  new_spec  ->  result
        3      0             1        (born at maxSurge; old RS at full size)
        4      1             1        (no room)
        3      1             2
        4      3             3        (already at replicas)
    """
    if new_spec >= deploy_replicas:
        return deploy_replicas
    surge, _ = resolve_fenceposts(max_surge, max_unavailable, deploy_replicas)
    max_total = deploy_replicas + surge
    if all_rs_specs_total >= max_total:
        return new_spec
    return new_spec + min(max_total - all_rs_specs_total, deploy_replicas - new_spec)


def scale_down_budget(all_rs_specs_total: int, min_available: int, new_spec: int, new_available: int) -> int:
    """How many old pods may go this sync (``maxScaledDown``, docs/kubernetes.md §1.5 step 3).

    Unavailable pods of the new RS eat the budget, so a broken new image cannot
    make the controller remove more old pods::

        total  minAvail  new_spec  new_avail  ->  budget
        4      3         1         0              0       (example A, sync 1)
        4      2         1         0              1       (example B, sync 1)
        5      3         2         0              0       (example C, broken image)
    """
    return all_rs_specs_total - min_available - (new_spec - new_available)


def cleanup_unhealthy(old: list[tuple[int, int]], budget: int) -> list[int]:
    """Step 3a: shrink old RSs (oldest first) by their unavailable pods, within ``budget``.

    ``old`` = [(spec, available)] oldest first; returns the new specs::

        old                 budget  ->  new specs
        [(3, 3)]            1           [3]          (nothing unhealthy)
        [(3, 1), (2, 0)]    3           [1, 1]       (2 from the first, 1 from the second)
    """
    result: list[int] = []
    removed = 0
    for spec, available in old:
        unhealthy = spec - available
        if removed >= budget or spec == 0 or unhealthy <= 0:
            result.append(spec)
            continue
        step = min(budget - removed, unhealthy)
        result.append(spec - step)
        removed += step
    return result


def scale_down_healthy(old_specs: list[int], total_available: int, min_available: int) -> list[int]:
    """Step 3b: remove ``total_available - min_available`` pods from old RSs, oldest first.

    ``total_available`` counts every RS (new and old)::

        old_specs  total_avail  min_avail  ->  new specs
        [3]        4            3              [2]         (example A, sync 2)
        [3]        5            3              [1]         (example C, sync 3)
        [2, 4]     7            4              [0, 3]
    """
    allowed = total_available - min_available
    result: list[int] = []
    removed = 0
    for spec in old_specs:
        if allowed <= 0 or removed >= allowed or spec == 0:
            result.append(spec)
            continue
        step = min(spec, allowed - removed)
        result.append(spec - step)
        removed += step
    return result


def round_half_away(x: float) -> int:
    """Go's ``math.Round``: halves round away from zero (Python's ``round`` does not)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def rs_fraction(
    rs_spec: int, deploy_replicas: int, max_surge: int, annotated_max: int | None, fallback_max: int
) -> int:
    """``getReplicaSetFraction``: round(spec x newMax / oldMax) - spec.

    ``annotated_max`` is the RS's ``max-replicas`` annotation (None/0 -> ``fallback_max``,
    the Deployment's ``status.replicas``); scaling to 0 gives the whole RS, negated.
    """
    if deploy_replicas == 0:
        return -rs_spec
    new_max = deploy_replicas + max_surge
    before = annotated_max if annotated_max else fallback_max
    if not before:
        return 0
    return round_half_away(rs_spec * new_max / before) - rs_spec


def proportional_sizes(
    entries: list[tuple[int, int | None]],
    deploy_replicas: int,
    max_surge: int,
    fallback_max: int,
) -> list[int]:
    """Proportional scaling of active RSs (docs/kubernetes.md §1.7 step 3); returns the new specs.

    ``entries`` = [(spec, max-replicas annotation)] of the active RSs, already sorted
    largest first (ties: newer first when adding, older first when removing; see
    ``replicas_to_add`` for the sign). ``max_surge`` is resolved. Leftover goes to the
    first entry; nothing goes below 0; RSs at 0 are never scaled up.
    Docs example, replicas 10 -> 15, surge 3, stalled at old 8 / new 5 (annotation 13)::

        allowed 18, toAdd 5
        old: round(8 x 18 / 13) - 8 = 3   -> 11
        new: round(5 x 18 / 13) - 5 = 2   -> 7
    """
    allowed = deploy_replicas + max_surge if deploy_replicas > 0 else 0
    to_add = replicas_to_add(allowed, [spec for spec, _ in entries])
    if to_add == 0:
        return [spec for spec, _ in entries]
    sizes: list[int] = []
    added = 0
    for spec, annotated in entries:
        proportion = 0
        if spec != 0 and added != to_add:
            fraction = rs_fraction(spec, deploy_replicas, max_surge, annotated, fallback_max)
            proportion = min(fraction, to_add - added) if to_add > 0 else max(fraction, to_add - added)
        sizes.append(spec + proportion)
        added += proportion
    if sizes:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return sizes


def replicas_to_add(allowed: int, active_specs: list[int]) -> int:
    """``allowed - sum(active specs)``: >0 grows (sort newer first on ties), <0 shrinks."""
    return allowed - sum(active_specs)
