"""kubectl's JSONPath: templates such as ``{range .items[*]}{.metadata.name}{"\\t"}{end}``, evaluated on JSON values.

The grammar and the results follow Kubernetes' own implementation (kubernetes/client-go
util/jsonpath: parser.go and jsonpath.go), which differs from other JSONPath dialects:

* text outside ``{...}`` is printed as is; inside, ``.field`` / ``['field']`` children, ``..`` recursive
  descent, ``*`` / ``[*]`` wildcards, ``[i]``, ``[-1]``, ``[start:end:step]`` slices, ``[a,b]`` unions,
  ``[?(@.x=="y")]`` filters (``== != < > <= >=``, or existence ``[?(@.x)]``), quoted text ``{"\\t"}``,
  ``{range ...}...{end}`` loops and ``@`` / ``$`` for the current object;
* a missing key yields nothing (kubectl's ``--allow-missing-template-keys`` default), an index out of
  range is an error;
* one action's results are printed separated by spaces: strings raw, maps and lists as compact JSON
  (keys sorted, as Go's encoding/json writes them), numbers and booleans as Go prints them.

Pure: no I/O. ``Template(text).render(data)`` is the string kubectl would print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .gofmt import go_json, go_sprint, go_text

__all__ = ["JSONPathError", "Template", "relaxed"]


class JSONPathError(ValueError):
    """A template that does not parse, or one that cannot be evaluated on the data given."""


# ---- nodes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Quoted text inside an action: evaluates to itself, whatever the input."""

    text: str


@dataclass(frozen=True)
class Literal:
    """A number or boolean inside an action (the right side of a filter): one per input value."""

    value: int | float | bool


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class Recursive:
    pass


@dataclass(frozen=True)
class Index:
    """``[start:end:step]``: each bound is (known, value); ``derived`` marks ``[i]`` (end = i + 1)."""

    start: tuple[bool, int]
    end: tuple[bool, int]
    step: tuple[bool, int]
    derived: bool


@dataclass(frozen=True)
class Union:
    branches: tuple[tuple[Node, ...], ...]


@dataclass(frozen=True)
class Filter:
    left: tuple[Node, ...]
    right: tuple[Node, ...]
    op: str


@dataclass(frozen=True)
class Ident:
    """``range`` and ``end`` (any other word is an error when evaluated)."""

    name: str


Node: TypeAlias = Text | Literal | Field | Wildcard | Recursive | Index | Union | Filter | Ident


@dataclass
class _Action:
    nodes: tuple[Node, ...]


@dataclass
class _Range:
    nodes: tuple[Node, ...]
    body: list[_Part] = field(default_factory=list)


_Part: TypeAlias = "str | _Action | _Range"

# ---- parser ------------------------------------------------------------------------------------

_TERMINATORS = set(" \t\r\n.,[]$@{}")
_DICT_KEY = re.compile(r"'([^']*)'")
_SLICE = re.compile(r"(-?\d*)(:-?\d*)?(:-?\d*)?")
_FILTER = re.compile(r"([^!<>=]+)([!<>=]+)(.+?)")


def _alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdigit()


class _Parser:
    """A port of the scanner in client-go util/jsonpath/parser.go, position by position."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self.start = 0

    def next(self) -> str:
        if self.pos >= len(self.s):
            return ""
        self.pos += 1
        return self.s[self.pos - 1]

    def consume(self) -> str:
        value = self.s[self.start : self.pos]
        self.start = self.pos
        return value

    def parse(self) -> list[str | list[Node]]:
        """The template's parts: plain text, and the node list of each ``{...}`` action."""
        parts: list[str | list[Node]] = []
        while True:
            i = self.s.find("{", self.pos)
            if i < 0:
                if self.start < len(self.s):
                    parts.append(self.s[self.start :])
                return parts
            if i > self.start:
                parts.append(self.s[self.start : i])
            self.pos = self.start = i + 1
            action: list[Node] = []
            self.inside(action)
            parts.append(action)

    def inside(self, cur: list[Node]) -> None:
        while True:
            rest = self.s[self.pos :]
            if rest.startswith("}"):
                self.pos += 1
                self.start = self.pos
                return
            if rest.startswith("[?("):
                self.filter(cur)
                continue
            if rest.startswith(".."):
                self.recursive(cur)
                continue
            self.token(cur, self.next())

    def token(self, cur: list[Node], r: str) -> None:
        if r in ("", "\r", "\n"):
            raise JSONPathError("unclosed action")
        if r in (" ", "@", "$"):
            self.start = self.pos
        elif r == "[":
            self.array(cur)
        elif r in ("'", '"'):
            self.quote(cur, r)
        elif r == ".":
            self.field(cur)
        elif r in "+-" or r.isdigit():
            self.pos -= 1
            self.number(cur)
        elif _alnum(r):
            self.pos -= 1
            self.identifier(cur)
        else:
            raise JSONPathError(f"unrecognized character in action: {r!r}")

    def identifier(self, cur: list[Node]) -> None:
        while (r := self.next()) and r not in _TERMINATORS:
            pass
        if r:
            self.pos -= 1
        value = self.consume()
        cur.append(Literal(value == "true") if value in ("true", "false") else Ident(value))

    def recursive(self, cur: list[Node]) -> None:
        if cur and isinstance(cur[-1], Recursive):
            raise JSONPathError("invalid multiple recursive descent")
        self.pos += 2
        self.start = self.pos
        cur.append(Recursive())
        if self.pos < len(self.s) and _alnum(self.s[self.pos]):
            self.field(cur)

    def number(self, cur: list[Node]) -> None:
        if self.s[self.pos : self.pos + 1] in ("+", "-"):
            self.pos += 1
        while (r := self.next()) and (r == "." or r.isdigit()):
            pass
        if r:
            self.pos -= 1
        value = self.consume()
        try:
            cur.append(Literal(int(value)))
            return
        except ValueError:
            pass
        try:
            cur.append(Literal(float(value)))
        except ValueError:
            raise JSONPathError(f"cannot parse number {value}") from None

    def array(self, cur: list[Node]) -> None:
        while (r := self.next()) != "]":
            if r in ("", "\n"):
                raise JSONPathError("unterminated array")
        text = self.consume()[1:-1]
        if text == "*":
            text = ":"
        pieces = text.split(",")
        if len(pieces) > 1:
            cur.append(Union(tuple(tuple(_action(f"[{p.strip(' ')}]")) for p in pieces)))
            return
        key = _DICT_KEY.fullmatch(text)
        if key:
            cur.extend(_action(f".{key.group(1)}"))
            return
        m = _SLICE.fullmatch(text)
        if m is None:
            raise JSONPathError(f"invalid array index {text}")
        cur.append(_index([g or "" for g in m.groups()]))

    def filter(self, cur: list[Node]) -> None:
        self.pos += 3
        self.start = self.pos
        begin = end = False
        pair = ""
        while True:
            r = self.next()
            if r in ("", "\n"):
                raise JSONPathError("unterminated filter")
            if r in ("'", '"'):
                if not begin:
                    begin, pair = True, r
                elif self.s[self.pos - 2] != "\\" and r == pair:
                    end = True
            elif r == ")" and begin == end:
                break
        if self.next() != "]":
            raise JSONPathError("unclosed array expect ]")
        text = self.consume()[:-2]
        m = _FILTER.fullmatch(text)
        if m is None:
            cur.append(Filter(tuple(_action(text)), (), "exists"))
        else:
            cur.append(Filter(tuple(_action(m.group(1))), tuple(_action(m.group(3))), m.group(2)))

    def quote(self, cur: list[Node], end: str) -> None:
        while True:
            r = self.next()
            if r in ("", "\n"):
                raise JSONPathError("unterminated quoted string")
            if r == end and self.s[self.pos - 2] != "\\":
                break
        cur.append(Text(_unquote(self.consume())))

    def field(self, cur: list[Node]) -> None:
        self.start = self.pos
        while r := self.next():
            if r == "\\":
                self.next()
            elif r in _TERMINATORS:
                self.pos -= 1
                break
        value = self.consume()
        cur.append(Wildcard() if value == "*" else Field(value.replace("\\", "")))


def _action(text: str) -> list[Node]:
    """The nodes of ``text`` read as the inside of one action (filters, unions and ['key'] use it)."""
    parts = _Parser("{" + text + "}").parse()
    first = parts[0] if parts else []
    return first if isinstance(first, list) else []


def _index(groups: list[str]) -> Index:
    params: list[tuple[bool, int]] = []
    derived = False
    for i, v in enumerate(groups):
        if v:
            if i > 0:
                v = v[1:]
            if i > 0 and not v:
                params.append((False, 0))
                continue
            try:
                params.append((True, int(v)))
            except ValueError:
                raise JSONPathError(f"array index {v} is not a number") from None
        elif i == 1:
            params.append((True, params[0][1] + 1))
            derived = True
        else:
            params.append((False, 0))
    return Index(params[0], params[1], params[2], derived)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote(s: str) -> str:
    """Go's strconv.Unquote, extended to single quotes (client-go's UnquoteExtend)."""
    quote, body = s[0], s[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote:
            raise JSONPathError(f"unquote string {s} error invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e == quote:
            out.append(e)
            i += 2
        elif e in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise JSONPathError(f"unquote string {s} error invalid syntax")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif len(body[i + 1 : i + 4]) == 3 and all(d in "01234567" for d in body[i + 1 : i + 4]):
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise JSONPathError(f"unquote string {s} error invalid syntax")
    return "".join(out)


def _structure(parts: list[str | list[Node]]) -> list[_Part]:
    """Nest ``{range ...}`` ... ``{end}``; a stray ``{end}`` stays an action and fails when run."""
    root: list[_Part] = []
    stack: list[list[_Part]] = [root]
    for p in parts:
        if isinstance(p, str):
            stack[-1].append(p)
        elif p and p[0] == Ident("range"):
            r = _Range(tuple(p[1:]))
            stack[-1].append(r)
            stack.append(r.body)
        elif p == [Ident("end")] and len(stack) > 1:
            stack.pop()
        else:
            stack[-1].append(_Action(tuple(p)))
    return root


# ---- evaluation --------------------------------------------------------------------------------


def _go_type(v: Any) -> str:
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    return "string" if isinstance(v, str) else "<nil>"


def _children(v: Any) -> list[Any]:
    if isinstance(v, dict):
        return list(v.values())
    if isinstance(v, list):
        return list(v)
    if isinstance(v, str):
        return list(v.encode())
    return []


class _Eval:
    def __init__(self, allow_missing: bool) -> None:
        self.allow_missing = allow_missing

    def nodes(self, values: list[Any], nodes: tuple[Node, ...]) -> list[Any]:
        for n in nodes:
            values = self.node(values, n)
        return values

    def node(self, values: list[Any], n: Node) -> list[Any]:
        if isinstance(n, Text):
            return [n.text]
        if isinstance(n, Literal):
            return [n.value for _ in values]
        if isinstance(n, Field):
            return self.field(values, n.name)
        if isinstance(n, Index):
            return [x for v in values if v is not None for x in _slice(v, n)]
        if isinstance(n, Wildcard):
            return [x for v in values for x in _children(v)]
        if isinstance(n, Recursive):
            return _recursive(values)
        if isinstance(n, Union):
            return [x for b in n.branches for x in self.nodes(values, b)]
        if isinstance(n, Filter):
            return [x for v in values for x in self.filter(v, n)]
        if n.name == "end":
            raise JSONPathError("not in range, nothing to end")
        raise JSONPathError(f"unrecognized identifier {n.name}")

    def field(self, values: list[Any], name: str) -> list[Any]:
        out = [v[name] for v in values if isinstance(v, dict) and name in v]
        if values and not out and not self.allow_missing:
            raise JSONPathError(f"{name} is not found")
        return out

    def filter(self, v: Any, f: Filter) -> list[Any]:
        if not isinstance(v, list):
            raise JSONPathError(f"{go_sprint(v)} is not array or slice and cannot be filtered")
        out = []
        for item in v:
            if f.op == "exists":
                try:
                    if self.nodes([item], f.left):
                        out.append(item)
                except JSONPathError:
                    pass
                continue
            lefts = self.nodes([item], f.left)
            if not lefts:
                continue
            rights = self.nodes([item], f.right)
            if not rights:
                continue
            if len(lefts) > 1 or len(rights) > 1:
                raise JSONPathError("can only compare one element at a time")
            if _compare(lefts[0], rights[0], f.op):
                out.append(item)
        return out


def _slice(v: Any, n: Index) -> list[Any]:
    if not isinstance(v, list):
        raise JSONPathError(f"{_go_type(v)} is not array or slice")
    length = len(v)
    start = n.start[1] if n.start[0] else 0
    if start < 0:
        start += length
    end = n.end[1] if n.end[0] else length
    if end < 0 or (end == 0 and n.derived):
        end += length
    if end == start:
        return []
    if start >= length or start < 0:
        raise JSONPathError(f"array index out of bounds: index {start}, length {length}")
    if end > length or end < 0:
        raise JSONPathError(f"array index out of bounds: index {end - 1}, length {length}")
    if start > end:
        raise JSONPathError(f"starting index {start} is greater than ending index {end}")
    step = 1
    if n.step[0]:
        if n.step[1] <= 0:
            raise JSONPathError("step must be > 0")
        step = n.step[1]
    return v[start:end:step]


def _recursive(values: list[Any]) -> list[Any]:
    """Every value with children, before its descendants (client-go's evalRecursive)."""
    out: list[Any] = []
    for v in values:
        kids = _children(v)
        if kids:
            out.append(v)
            out.extend(_recursive(kids))
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compare(a: Any, b: Any, op: str) -> bool:
    """A filter's comparison, as Go's text/template compares basic values."""
    if op not in ("==", "!=", "<", ">", "<=", ">="):
        raise JSONPathError(f"unrecognized filter operator {op}")
    comparable = (_number(a) and _number(b)) or (type(a) is type(b) and isinstance(a, (str, bool)))
    if not comparable:
        if a is None or b is None or isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
            raise JSONPathError("invalid type for comparison")
        raise JSONPathError("incompatible types for comparison")
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if isinstance(a, bool):
        raise JSONPathError("invalid type for comparison")
    return bool({"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op])


def _print_group(values: list[Any]) -> str:
    return " ".join(go_json(v) if isinstance(v, (dict, list)) else go_text(v) for v in values)


# ---- the template ------------------------------------------------------------------------------

_RELAXED = re.compile(r"\{\.?([^{}]+)\}|\.?([^{}]+)")


def relaxed(expr: str) -> str:
    """kubectl's RelaxedJSONPathExpression: ``a.b``, ``.a.b``, ``{a.b}`` and ``{.a.b}`` all mean ``{.a.b}``."""
    if not expr:
        return expr
    m = _RELAXED.fullmatch(expr)
    if m is None:
        raise JSONPathError(
            "unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'"
        )
    return "{." + (m.group(1) or m.group(2)) + "}"


class Template:
    """A parsed template. ``render`` prints as ``kubectl get -o jsonpath=...``; ``find`` returns the values."""

    def __init__(self, text: str, allow_missing: bool = True) -> None:
        self.text = text
        self.allow_missing = allow_missing
        self.parts = _structure(_Parser(text).parse())

    def groups(self, data: Any) -> list[list[Any]]:
        """One list of values per text part and action, ranges unrolled (client-go's FindResults)."""
        out: list[list[Any]] = []
        self._run(self.parts, data, _Eval(self.allow_missing), out)
        return out

    def _run(self, parts: list[_Part], data: Any, ev: _Eval, out: list[list[Any]]) -> None:
        for p in parts:
            if isinstance(p, str):
                out.append([p])
            elif isinstance(p, _Action):
                out.append(ev.nodes([data], p.nodes))
            else:
                for item in ev.nodes([data], p.nodes):
                    self._run(p.body, item, ev, out)

    def find(self, data: Any) -> list[Any]:
        """The values of the template's first action (what custom-columns and --sort-by use)."""
        groups = self.groups(data)
        return groups[0] if groups else []

    def render(self, data: Any, as_json: bool = False) -> str:
        groups = self.groups(data)
        if as_json:
            import json

            return "".join(json.dumps(g, indent=4, ensure_ascii=False) + "\n" for g in groups)
        return "".join(_print_group(g) for g in groups)
