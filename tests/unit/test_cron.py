"""The cron parser and its next-time rule (reconciler/controllers/cron.py), against worked examples:
robfig/cron v3's standard syntax as Kubernetes' CronJob controller reads it."""

from __future__ import annotations

from datetime import datetime

import pytest

from reconciler.controllers.cron import UTC, CronError, load_zone, parse, validate

T = datetime(2026, 11, 30, 6, 25, 30, tzinfo=UTC)  # a Monday


def nxt(spec: str, when: datetime = T, tz: str | None = None) -> datetime | None:
    return parse(spec, load_zone(tz) if tz else UTC).next(when)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("* * * * *", at(2026, 11, 30, 6, 26)),
        ("*/15 * * * *", at(2026, 11, 30, 6, 30)),
        ("5 * * * *", at(2026, 11, 30, 7, 5)),
        ("0 9-17/4 * * *", at(2026, 11, 30, 9, 0)),
        ("0,30 6 * * *", at(2026, 11, 30, 6, 30)),
        ("0 0 1 * *", at(2026, 12, 1)),
        ("0 0 * * sun", at(2026, 12, 6)),
        ("0 0 * * SAT,Sun", at(2026, 12, 5)),
        ("0 12 * jan-mar mon-fri", at(2027, 1, 1, 12)),  # 1 January 2027 is a Friday
        ("@hourly", at(2026, 11, 30, 7)),
        ("@daily", at(2026, 12, 1)),
        ("@midnight", at(2026, 12, 1)),
        ("@weekly", at(2026, 12, 6)),
        ("@monthly", at(2026, 12, 1)),
        ("@yearly", at(2027, 1, 1)),
        ("@annually", at(2027, 1, 1)),
        ("30 4 ? * *", at(2026, 12, 1, 4, 30)),
        ("10/20 * * * *", at(2026, 11, 30, 6, 30)),  # N/step: N, N+step, ... to the end
    ],
)
def test_next_time_worked_examples(spec: str, expected: datetime) -> None:
    assert nxt(spec) == expected


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # "0 0 13 * 5": the 13th OR any Friday (cron's rule); from Monday 30 November 2026
    assert nxt("0 0 13 * 5") == at(2026, 12, 4)  # a Friday before the 13th
    assert nxt("0 0 13 * 5", at(2026, 12, 12)) == at(2026, 12, 13)  # a Sunday, the 13th
    # one of them "*": both must match (AND), so "0 0 13 * *" is the 13th only
    assert nxt("0 0 13 * *") == at(2026, 12, 13)
    # "*/2" in the day of week is not "*": OR again
    assert nxt("0 0 1 * */2") == at(2026, 12, 1)


def test_every_descriptor() -> None:
    assert nxt("@every 90m") == at(2026, 11, 30, 7, 55, 30)
    assert nxt("@every 1h30m") == at(2026, 11, 30, 7, 55, 30)


def test_time_zone_shifts_the_wall_clock() -> None:
    # 09:00 in Berlin (UTC+1 in winter) is 08:00 UTC
    assert nxt("0 9 * * *", tz="Europe/Berlin") == at(2026, 11, 30, 8)
    assert nxt("0 9 * * *", tz="Asia/Kolkata") == at(2026, 12, 1, 3, 30)  # UTC+5:30


def test_dst_spring_forward_skips_the_missing_time() -> None:
    # New York, 8 March 2026: 02:00 jumps to 03:00, so 02:30 does not exist that day
    start = at(2026, 3, 7, 12)
    first = nxt("30 2 * * *", start, "America/New_York")
    assert first == at(2026, 3, 9, 6, 30)  # 02:30 EDT on the 9th; the 8th has none
    assert nxt("30 2 * * *", first, "America/New_York") == at(2026, 3, 10, 6, 30)


def test_dst_fall_back_runs_the_repeated_time_twice() -> None:
    # New York, 1 November 2026: 01:00-02:00 happens twice (EDT, then EST)
    first = nxt("30 1 * * *", at(2026, 10, 31, 12), "America/New_York")
    assert first == at(2026, 11, 1, 5, 30)  # 01:30 EDT
    second = nxt("30 1 * * *", first, "America/New_York")
    assert second == at(2026, 11, 1, 6, 30)  # 01:30 EST
    assert nxt("30 1 * * *", second, "America/New_York") == at(2026, 11, 2, 6, 30)


def test_impossible_date_gives_none() -> None:
    assert nxt("0 0 30 2 *") is None  # 30 February never comes


@pytest.mark.parametrize(
    "spec",
    [
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 7",
        "5-1 * * * *",
        "*/0 * * * *",
        "a * * * *",
        "@fortnightly",
        "",
        "1-2-3 * * * *",
    ],
)
def test_bad_schedules_refused(spec: str) -> None:
    with pytest.raises(CronError):
        parse(spec)


def test_tz_in_the_schedule_refused_as_kubernetes_does() -> None:
    assert validate("TZ=UTC 0 * * * *") == "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    assert validate("CRON_TZ=Europe/Berlin 0 * * * *") is not None
    assert validate("0 * * * *", "Europe/Berlin") is None
    assert validate("0 * * * *", "Mars/Olympus") == "unknown time zone Mars/Olympus"
    assert validate("0 * * * *", "Local") is not None
