"""Time as Kubernetes prints it: RFC 3339 timestamps in objects, Go durations in messages."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timezone


def rfc3339(t: float) -> str:
    """Seconds since the epoch as an RFC 3339 UTC timestamp with second precision.

    >>> rfc3339(0)
    '1970-01-01T00:00:00Z'
    """
    return _rfc3339_seconds(math.floor(t))


@functools.lru_cache(maxsize=8192)
def _rfc3339_seconds(s: int) -> str:
    # memoized: every pass formats each pod's start time and the current second (bench/RESULTS.md "Scale")
    return datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """``2026-11-25T20:00:00Z`` (fractions and offsets accepted) -> seconds since the epoch.

    >>> parse_rfc3339("1970-01-01T00:01:00.5+00:00")
    60.5
    """
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String(): 200ms, 10s, 1.5s, 5m0s, 1h0m0s."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = round(seconds * 1000, 3)
        return f"{ms:g}ms"
    total = round(seconds, 9)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    s_txt = f"{s:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{s_txt}"
    if m:
        return f"{int(m)}m{s_txt}"
    return s_txt
