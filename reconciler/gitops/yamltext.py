"""Writing YAML values as text the way the surrounding document does.

Pure: no I/O. Scalars keep the quoting style of the value they replace (plain
when YAML reads the plain text back as the same string); new subtrees are
rendered with the document's own indentation (detected from its nodes) so a
spliced block looks hand-written like its neighbours.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml

from .documents import same


def is_scalar(v: Any) -> bool:
    return not isinstance(v, (dict, list))


def all_scalars(v: Any) -> bool:
    """A collection holding only scalars (a scalar counts as one)."""
    if isinstance(v, dict):
        return all(is_scalar(x) for x in v.values())
    if isinstance(v, list):
        return all(is_scalar(x) for x in v)
    return True


def _plain_ok(s: str, flow: bool = False) -> bool:
    """``s`` can be written unquoted and reads back as the same string."""
    if not s or s != s.strip() or any(c in s for c in "\n\r\t") or ": " in s or " #" in s:
        return False
    if flow and any(c in s for c in ",[]{}"):
        return False
    if s.endswith(":"):
        return False
    try:
        return same(yaml.safe_load("k: " + s), {"k": s})
    except yaml.YAMLError:
        return False


def _fmt_number(v: int | float) -> str:
    if isinstance(v, int):
        return str(int(v))
    if v != v:
        return ".nan"
    if v in (float("inf"), float("-inf")):
        return ".inf" if v > 0 else "-.inf"
    return repr(float(v))


# What YAML may hold raw inside a double-quoted scalar: its printable set (YAML 1.1 §5.1, as PyYAML
# reads it) less the characters that are line breaks there (U+0085, U+2028, U+2029) and the BOM.
_NOT_RAW = re.compile("[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\u{c:04x}" if c <= 0xFFFF else f"\\U{c:08x}"


def double_quoted(s: str) -> str:
    """``s`` as a YAML double-quoted scalar that reads back as ``s`` (JSON's escapes, and \\u escapes
    for C1 controls, DEL, YAML's extra line breaks and lone surrogates, which YAML cannot hold raw)."""
    return _NOT_RAW.sub(_escape, json.dumps(s, ensure_ascii=False))


def fmt_scalar(v: Any, style: str | None = None, flow: bool = False) -> str:
    """One scalar as YAML text; a string in ``style`` ("'" or '"'), else plain when that reads back."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _fmt_number(v)
    s = str(v)
    simple = s.isprintable() and "\n" not in s
    if style == "'" and simple:
        return "'" + s.replace("'", "''") + "'"
    if style == '"':
        return double_quoted(s)
    if _plain_ok(s, flow):
        return s
    return double_quoted(s)


def flow_text(v: Any, style: str | None) -> str:
    """A flow collection of scalars, strings quoted like ``style`` (None: plain when possible)."""
    if isinstance(v, dict):
        items = (f"{fmt_scalar(k, style, True)}: {fmt_scalar(x, style, True)}" for k, x in v.items())
        return "{" + ", ".join(items) + "}"
    return "[" + ", ".join(fmt_scalar(x, style, True) for x in v) + "]"


def flow_style_of(node: yaml.Node) -> str | None:
    """The quoting of the first string scalar inside a flow collection."""
    items = [x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode) else list(node.value)
    for x in items:
        if isinstance(x, yaml.ScalarNode) and x.tag == "tag:yaml.org,2002:str":
            return x.style if x.style in ("'", '"') else None
    return None


@dataclass
class Indent:
    """A document's indentation: the mapping step and the column of a list's dash under its key."""

    mapping: int = 2
    offset: int = 2  # dash column relative to the parent key

    def ruamel(self) -> Any:
        """A ruamel.yaml round-trip dumper that indents like this."""
        from ruamel.yaml import YAML

        y = YAML(typ="rt")
        y.version = (1, 1)  # gitship reads YAML 1.1 (PyYAML): "on", "yes", "n" must come out quoted
        y.width = 4096
        y.default_flow_style = False
        y.indent(mapping=max(1, self.mapping), sequence=self.offset + 2, offset=self.offset)
        return y


def ruamel_dump(y: Any, data: Any) -> str:
    """``data`` dumped by ``y`` (from ``Indent.ruamel``) without the ``%YAML 1.1`` directive it writes."""
    buf = io.StringIO()
    y.dump(data, buf)
    out: str = buf.getvalue()
    if out.startswith("%YAML"):
        _, _, rest = out.partition("\n---")
        rest = rest.lstrip(" ")
        out = rest[1:] if rest.startswith("\n") else rest
    return out


def detect_indent(root: yaml.Node | None) -> Indent:
    """The most common mapping step and sequence offset of a composed document."""
    steps: Counter[int] = Counter()
    offsets: Counter[int] = Counter()

    def walk(n: yaml.Node) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                below = v.start_mark.line > k.start_mark.line
                if isinstance(v, yaml.MappingNode) and not v.flow_style and v.value:
                    d = v.value[0][0].start_mark.column - k.start_mark.column
                    if d > 0 and below:
                        steps[d] += 1
                if isinstance(v, yaml.SequenceNode) and not v.flow_style and v.value:
                    d = v.start_mark.column - k.start_mark.column
                    if d >= 0 and below:
                        offsets[d] += 1
                walk(v)
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                walk(v)

    if root is not None:
        walk(root)
    ind = Indent()
    if steps:
        ind.mapping = steps.most_common(1)[0][0]
    ind.offset = offsets.most_common(1)[0][0] if offsets else ind.mapping
    return ind


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def render(value: Any, ind: Indent, flow: bool = False, style: str | None = None) -> list[str]:
    """Render a one-entry mapping ``{k: v}`` or a one-item list ``[v]`` as block lines (column 0).

    ``flow``: the collection value is written in flow style (it was, and holds scalars only).
    """
    if flow:
        if isinstance(value, dict):
            ((k, v),) = value.items()
            return [f"{fmt_scalar(k)}: {flow_text(v, style)}"]
        return [f"- {flow_text(value[0], style)}"]
    if isinstance(value, dict):
        ((k, v),) = value.items()
        if is_scalar(v) or v == {} or v == []:
            sv = fmt_scalar(v) if is_scalar(v) else ("{}" if v == {} else "[]")
            return [f"{fmt_scalar(k)}: {sv}"]
    elif is_scalar(value[0]):
        return [f"- {fmt_scalar(value[0])}"]
    out = ruamel_dump(ind.ruamel(), _plain(value)).rstrip("\n").split("\n")
    if isinstance(value, list):  # ruamel indents a root sequence by its offset
        strip = min((len(x) - len(x.lstrip(" ")) for x in out if x.strip()), default=0)
        out = [x[strip:] if x.strip() else x for x in out]
    return out
