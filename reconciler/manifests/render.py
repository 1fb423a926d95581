"""Jinja2 rendering of ``*.yaml.j2`` manifests in a sandbox.

Where it sits: a pure step between reading a revision's files (``source``) and
parsing YAML (``load.py``). Templates see the repository's ``values``
(``gitship.yaml``) as top-level variables and as ``values``. The environment is
an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``, no loader (so
``include``/``import``/``extends`` cannot read files) and no autoescaping.

Hostile templates are bounded: the output may not exceed ``max_output`` bytes
(checked while streaming), ``range`` is capped by the sandbox and every loop
over it counts against an iteration budget, and ``*``/``**`` on numbers and
sequences are checked before they run. Every failure is a ``ManifestError``
with the template line.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reconciler.errors import ManifestError

MAX_OUTPUT = 4 * 1024 * 1024
MAX_ITERATIONS = 1_000_000
MAX_SEQUENCE = 1_000_000
_TEMPLATE_NAME = "<template>"


class _TooBig(Exception):
    pass


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox with guarded ``*``/``**`` and a budgeted ``range``."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, loader=None)
        self.globals["range"] = self._range
        self.budget = MAX_ITERATIONS

    def _range(self, *args: int) -> Iterator[int]:
        rng = range(*args)
        if len(rng) > MAX_SEQUENCE or len(rng) > self.budget:
            raise SecurityError(f"range of {len(rng)} items is over the template iteration budget")
        self.budget -= len(rng)
        return iter(rng)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        # '*': sequence repetition is bounded by the output limit.
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple, bytes)) and isinstance(times, int):
                if len(seq) * times > MAX_OUTPUT:
                    raise SecurityError("result of '*' would be too large")
        return operator.mul(left, right)


def _template_line(tb: TracebackType | None) -> int:
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_NAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(file: str, text: str, values: dict[str, Any], max_output: int = MAX_OUTPUT) -> str:
    """Render one template; raises ManifestError(file, message, line=template line)."""
    env = _Env()
    try:
        template = env.from_string(text)
    except TemplateSyntaxError as e:
        return _raise(file, f"template syntax error: {e.message}", e.lineno or 0)
    context: dict[str, Any] = dict(values)
    context["values"] = values
    out: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > max_output:
                raise _TooBig()
            out.append(chunk)
    except _TooBig:
        return _raise(file, f"rendered template is larger than {max_output} characters", 0)
    except SecurityError as e:
        return _raise(file, f"template not allowed by the sandbox: {e}", _template_line(sys.exc_info()[2]))
    except TemplateError as e:
        # UndefinedError and friends; StrictUndefined messages name the variable.
        return _raise(file, f"template error: {e.message or e}", _template_line(sys.exc_info()[2]))
    except TypeError as e:
        msg = str(e)
        if "no loader" in msg:
            msg = "include, import and extends are not available (templates cannot read other files)"
        return _raise(file, f"template error: {msg}", _template_line(sys.exc_info()[2]))
    except (ArithmeticError, ValueError, LookupError, AttributeError, RecursionError, MemoryError) as e:
        return _raise(file, f"template error: {type(e).__name__}: {e}", _template_line(sys.exc_info()[2]))
    return "".join(out)


def _raise(file: str, message: str, line: int) -> str:
    raise ManifestError(file, message, line=line)
