"""The cron schedule a CronJob runs on, as Kubernetes reads it (pure).

Kubernetes parses ``spec.schedule`` with robfig/cron v3's standard parser (``cron.ParseStandard``,
kubernetes/kubernetes pkg/controller/cronjob/utils.go): five fields (minute, hour, day of month,
month, day of week), each a ``*`` or ``?``, a value, a range ``a-b``, a step ``/n`` of either, or a
comma-separated list of those; month and weekday names (``jan``..``dec``, ``sun``..``sat``, any
case); the descriptors ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``), ``@hourly`` and ``@every <duration>``. When both day fields are restricted (neither
starts with ``*`` or ``?``), a day matches either of them (cron's OR rule); otherwise both.

``next_time`` is robfig's ``SpecSchedule.Next``: it walks the wall clock of the schedule's time
zone, so a time skipped by a daylight-saving jump does not run that day and a time repeated by
the fall-back runs in both occurrences, as in Kubernetes. Without a ``timeZone`` the schedule is
read in the controller's local zone; gitship's is UTC.

``TZ=`` and ``CRON_TZ=`` inside the schedule are refused by the API server (the ``timeZone`` field
names the zone): ``parse`` refuses them too. Times are aware ``datetime``s; nothing here reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
STAR = 1 << 63  # robfig's starBit: the field was "*" or "?"

MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A schedule that does not parse (the message says why)."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Bounds(0, 59),
    _Bounds(0, 23),
    _Bounds(1, 31),
    _Bounds(1, 12, MONTHS),
    _Bounds(0, 6, DAYS),
)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: one bit mask per field (bit n: value n matches), or a constant delay."""

    minute: int = 0
    hour: int = 0
    dom: int = 0
    month: int = 0
    dow: int = 0
    tz: tzinfo = UTC
    every: float = 0.0  # @every: seconds between runs (then the masks are unused)

    def next(self, t: datetime) -> datetime | None:
        return next_time(self, t)


def load_zone(name: str) -> tzinfo:
    """The zone ``name`` from the zoneinfo database (CronError when unknown; ``Local`` refused,
    as Kubernetes' validation refuses it)."""
    if name in ("Local", "") or name.startswith("/") or ".." in name:
        raise CronError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise CronError(f"unknown time zone {name}") from e


def _number(text: str, bounds: _Bounds) -> int:
    if bounds.names is not None and text.lower() in bounds.names:
        return bounds.names[text.lower()]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: strconv.Atoi: parsing {text!r}: invalid syntax")
    return int(text)


def _range(expr: str, bounds: _Bounds) -> int:
    """One element of a field's list: ``*``, ``?``, ``N``, ``a-b``, each with an optional ``/step``."""
    range_step = expr.split("/")
    low_high = range_step[0].split("-")
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, STAR
    else:
        start = _number(low_high[0], bounds)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _number(low_high[1], bounds)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_step) == 1:
        step = 1
    elif len(range_step) == 2:
        step = _number(range_step[1], _Bounds(0, 0))
        if len(low_high) == 1 and low_high[0] not in ("*", "?"):
            end = bounds.high  # "N/step" means "N-max/step"
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    bits = 0
    for v in range(start, end + 1, step):
        bits |= 1 << v
    return bits | extra


def _field(text: str, bounds: _Bounds) -> int:
    bits = 0
    for expr in text.split(","):
        bits |= _range(expr, bounds)
    return bits


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(text: str) -> float:
    """A Go duration (``1h30m``, ``90s``) in seconds."""
    if not text or _DURATION.sub("", text) != "":
        raise CronError(f"failed to parse duration @every {text}: time: invalid duration {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


def parse(spec: str, tz: tzinfo = UTC) -> Schedule:
    """``spec`` as robfig/cron's standard parser reads it, in the zone ``tz``."""
    text = spec.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if not text:
        raise CronError("empty spec string")
    if text.startswith("@"):
        if text.startswith("@every "):
            seconds = _go_duration(text[len("@every ") :].strip())
            return Schedule(tz=tz, every=max(1.0, float(int(seconds))))
        if text not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = DESCRIPTORS[text]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    m, h, dom, mon, dow = (_field(f, b) for f, b in zip(fields, _FIELDS))
    return Schedule(m, h, dom, mon, dow, tz)


def validate(spec: str, time_zone: str | None = None) -> str | None:
    """The API server's complaint about a schedule (and its timeZone), or None."""
    try:
        parse(spec, load_zone(time_zone) if time_zone is not None else UTC)
    except CronError as e:
        return str(e)
    return None


# -- Next: robfig/cron v3 spec.go SpecSchedule.Next, on the wall clock of the schedule's zone ------------


def _local(y: int, mo: int, d: int, h: int, mi: int, s: int, tz: tzinfo) -> datetime:
    """Go's time.Date in ``tz``: fields normalised, a time in a DST gap read with the offset before it."""
    day = date(y, mo, 1) + timedelta(days=d - 1)
    naive = datetime(day.year, day.month, day.day) + timedelta(hours=h, minutes=mi, seconds=s)
    return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def _add(t: datetime, seconds: float) -> datetime:
    """Absolute time arithmetic (Go's Time.Add), shown in ``t``'s zone."""
    tz = t.tzinfo
    assert tz is not None
    return (t.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(tz)


def _day_matches(s: Schedule, t: datetime) -> bool:
    dom = bool((1 << t.day) & s.dom)
    dow = bool((1 << ((t.weekday() + 1) % 7)) & s.dow)
    if s.dom & STAR or s.dow & STAR:
        return dom and dow
    return dom or dow


def next_time(s: Schedule, when: datetime) -> datetime | None:
    """The first time after ``when`` the schedule fires (UTC), or None within five years."""
    if s.every:
        return (when.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=s.every)).astimezone(UTC)
    tz = s.tz
    t = _add(when.astimezone(tz).replace(microsecond=0), 1)
    added = False
    year_limit = t.year + 5
    while t.year <= year_limit:
        if not (1 << t.month) & s.month:
            if not added:
                added = True
                t = _local(t.year, t.month, 1, 0, 0, 0, tz)
            t = _local(t.year + (t.month == 12), t.month % 12 + 1, 1, t.hour, t.minute, t.second, tz)
            continue  # robfig: wraps when it reaches January; checking again from the top is the same
        if not _day_matches(s, t):
            if not added:
                added = True
                t = _local(t.year, t.month, t.day, 0, 0, 0, tz)
            t = _local(t.year, t.month, t.day + 1, t.hour, t.minute, t.second, tz)
            if t.hour != 0:  # DST moved midnight
                t = _add(t, (24 - t.hour) * 3600 if t.hour > 12 else -t.hour * 3600)
            continue
        if not (1 << t.hour) & s.hour:
            if not added:
                added = True
                t = _local(t.year, t.month, t.day, t.hour, 0, 0, tz)
            t = _add(t, 3600)
            continue
        if not (1 << t.minute) & s.minute:
            if not added:
                added = True
                t = _add(t, -t.second)
            t = _add(t, 60)
            continue
        if t.second != 0:
            added = True
            t = _add(t, 60 - t.second)
            continue
        return t.astimezone(UTC)
    return None
