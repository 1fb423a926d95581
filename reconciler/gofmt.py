"""Go's ways of printing a JSON value, which kubectl's outputs inherit.

``go_text``: what kubectl's JSONPath prints for a scalar (Go's fmt.Fprint; JSON null is ``null``).
``go_json``: compact JSON as Go's encoding/json.Marshal writes it (map keys sorted, ``<``, ``>``, ``&`` escaped).
``go_sprint``: Go's fmt.Sprint, as custom-columns prints a value (``map[k:v]``, ``[a b]``, ``<nil>``).
``human_duration``: apimachinery's duration.HumanDuration, which kubectl prints as AGE (translateTimestampSince
in kubernetes/kubernetes pkg/printers/internalversion/printers.go) and as a Job's DURATION.

Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["go_json", "go_sprint", "go_text", "human_duration"]


def _go_float(f: float) -> str:
    """Go's %v of a float64: the shortest digits, in exponent form when the exponent is < -4 or >= 6."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    d = Decimal(repr(f)).normalize()
    digits = "".join(map(str, d.as_tuple().digits))
    exp = len(digits) + int(d.as_tuple().exponent) - 1
    sign = "-" if f < 0 else ""
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sign + format(abs(d), "f")


def go_text(v: Any) -> str:
    """A scalar as kubectl's JSONPath prints it (strings raw; JSON null is ``null``)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, (dict, list)):
        return go_json(v)
    return str(v)


def _json_str(s: str) -> str:
    out: str = json.dumps(s, ensure_ascii=False)
    for c, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        out = out.replace(c, esc)
    return out


def _json_float(f: float) -> str:
    if f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21):
        text = repr(f)
        return re.sub(r"e-0(\d)$", r"e-\1", text)
    return format(Decimal(repr(f)).normalize(), "f")


def go_json(v: Any) -> str:
    """Compact JSON as Go's encoding/json.Marshal writes it: map keys sorted, <, > and & escaped."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, dict):
        return "{" + ",".join(f"{_json_str(str(k))}:{go_json(v[k])}" for k in sorted(v)) + "}"
    return "[" + ",".join(go_json(x) for x in v) + "]"


def go_sprint(v: Any) -> str:
    """Go's fmt.Sprint of a JSON value, as custom-columns prints it: ``map[k:v]``, ``[a b]``, ``<nil>``."""
    if v is None:
        return "<nil>"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    return go_text(v)


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration (k8s.io/apimachinery/pkg/util/duration): two units down to
    the minute for short spans, then coarser ("2m30s", "3h1m", "2d3h", "1y30d"); 2 s of clock skew read as now."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if h < 24 * 365 * 2:
        return f"{d}d"
    y, dy = d // 365, d % 365
    if h < 24 * 365 * 8:
        return f"{y}y{dy}d" if dy else f"{y}y"
    return f"{y}y"
