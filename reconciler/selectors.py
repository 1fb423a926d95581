"""Label selectors: the ``-l`` string grammar, the API form, and matching.

Where it sits: a pure module (docs/kubernetes.md §4). ``manifests/validate.py`` uses the
label key/value and ``LabelSelector`` validators; the controllers use
``from_label_selector`` / ``labels_match_selector`` to decide which pods a
ReplicaSet, Deployment or Service selects; the CLI uses ``parse`` for ``-l``.
Nothing here does I/O.

Semantics (Kubernetes ``apimachinery/pkg/labels``):

* requirements are ANDed; ``in``/``=``/``==`` need the label present with a
  value in the set; ``!=``/``notin`` also match when the label is absent;
  ``key`` needs it present, ``!key`` absent; ``>``/``<`` compare integers and
  never match an absent or non-integer label;
* a nil API selector matches nothing, an empty one (``{}``) everything;
* parsed requirements are sorted by key, so ``str`` gives a canonical form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import SelectorError

# Operators of a Requirement, as spelled in the string form.
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = ">"
LESS_THAN = "<"

OPERATORS: frozenset[str] = frozenset(
    {EQUALS, DOUBLE_EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN}
)

# API (metav1.LabelSelectorRequirement) operator -> string-form operator.
API_OPERATORS: dict[str, str] = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}

_NAME_RE = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_DNS1123_SUBDOMAIN_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\Z")
_INT_RE = re.compile(r"[-+]?[0-9]+\Z")

_NAME_FMT = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_FMT = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or "
    "'my_value', or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_SUBDOMAIN_FMT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


# --------------------------------------------------------------------------- validators

_KEY_CACHE: dict[str, str | None] = {}
_VALUE_CACHE: dict[str, str | None] = {}
_CACHE_MAX = 65536


def validate_label_key(key: object) -> str | None:
    """Why ``key`` is not a valid label key (``[prefix/]name``), or None if it is."""
    if type(key) is str:
        try:
            return _KEY_CACHE[key]
        except KeyError:
            pass
        result = _label_key_error(key)
        if len(_KEY_CACHE) < _CACHE_MAX:
            _KEY_CACHE[key] = result
        return result
    return _label_key_error(key)


def _label_key_error(key: object) -> str | None:
    if not isinstance(key, str):
        return f"label key must be a string, not {type(key).__name__}"
    parts = key.split("/")
    if len(parts) == 1:
        name = key
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253:
            return "prefix part must be no more than 253 characters"
        if not _DNS1123_SUBDOMAIN_RE.match(prefix):
            return "prefix part " + _SUBDOMAIN_FMT
    else:
        return (
            "a qualified name "
            + _NAME_FMT
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _NAME_RE.match(name):
        return "name part " + _NAME_FMT
    return None


def validate_label_value(value: object) -> str | None:
    """Why ``value`` is not a valid label value (empty is valid), or None if it is."""
    if type(value) is str:
        try:
            return _VALUE_CACHE[value]
        except KeyError:
            pass
        result = _label_value_error(value)
        if len(_VALUE_CACHE) < _CACHE_MAX:
            _VALUE_CACHE[value] = result
        return result
    return _label_value_error(value)


def _label_value_error(value: object) -> str | None:
    if not isinstance(value, str):
        return f"label value must be a string, not {type(value).__name__}"
    if not value:
        return None
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _NAME_RE.match(value):
        return _VALUE_FMT
    return None


def is_dns1123_subdomain(value: str) -> bool:
    """True when ``value`` is a lowercase RFC 1123 subdomain of at most 253 characters."""
    return len(value) <= 253 and bool(_DNS1123_SUBDOMAIN_RE.match(value))


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Requirement:
    """One requirement: ``key op values``; ``values`` is sorted and de-duplicated for in/notin."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_EQUALS, NOT_IN):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        # > and <: integer comparison; absent or non-integer labels never match.
        if self.key not in labels:
            return False
        have = labels[self.key]
        if not isinstance(have, str) or not _INT_RE.match(have):
            return False
        want = int(self.values[0])
        return int(have) > want if op == GREATER_THAN else int(have) < want

    def __str__(self) -> str:
        if self.op == EXISTS:
            return self.key
        if self.op == DOES_NOT_EXIST:
            return "!" + self.key
        if self.op in (IN, NOT_IN):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        return f"{self.key}{self.op}{self.values[0]}"


def _make_requirement(key: str, op: str, values: Iterable[str]) -> Requirement:
    """Build a validated Requirement; raises SelectorError (message without position)."""
    if op not in OPERATORS:
        raise SelectorError(f"operator {op!r} is not recognized")
    err = validate_label_key(key)
    if err:
        raise SelectorError(f"invalid label key {key!r}: {err}")
    vals = list(values)
    if op in (IN, NOT_IN):
        if not vals:
            raise SelectorError(f"for 'in', 'notin' operators, values set can't be empty (key {key!r})")
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            raise SelectorError(f"exact-match compatibility requires one single value (key {key!r})")
    elif op in (EXISTS, DOES_NOT_EXIST):
        if vals:
            raise SelectorError(f"values set must be empty for exists and does not exist (key {key!r})")
    else:
        if len(vals) != 1:
            raise SelectorError(f"for 'Gt', 'Lt' operators, exactly one value is required (key {key!r})")
        if not _INT_RE.match(vals[0]):
            raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer, got {vals[0]!r}")
    for v in vals:
        err = validate_label_value(v)
        if err:
            raise SelectorError(f"invalid label value {v!r} for key {key!r}: {err}")
    return Requirement(key, op, tuple(sorted(set(vals))))


@dataclass(frozen=True)
class Selector:
    """An immutable AND of requirements. ``nothing`` marks the nil selector, which matches nothing."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector matches everything (no requirements, not nil)."""
        return not self.requirements and not self.nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        lab: Mapping[str, str] = labels or {}
        for r in self.requirements:
            if not r.matches(lab):
                return False
        return True

    def __str__(self) -> str:
        """Canonical string form; the nil selector prints as ``<none>`` (not parseable)."""
        if self.nothing:
            return "<none>"
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def _selector(reqs: Iterable[Requirement]) -> Selector:
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


# --------------------------------------------------------------------------- string grammar

_SPECIAL = "=!(),><"
_WS = " \t\r\n"
_OP_TOKENS = (DOUBLE_EQUALS, NOT_EQUALS, EQUALS, GREATER_THAN, LESS_THAN)

# token kinds
_ID, _OP, _NOT, _LPAR, _RPAR, _COMMA, _EOS = "identifier", "operator", "'!'", "'('", "')'", "','", "end of string"


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _WS:
            i += 1
            continue
        if c in _SPECIAL:
            two = text[i : i + 2]
            if two in ("==", "!="):
                tokens.append((_OP, two, i))
                i += 2
            elif c in "=><":
                tokens.append((_OP, c, i))
                i += 1
            elif c == "!":
                tokens.append((_NOT, c, i))
                i += 1
            elif c == "(":
                tokens.append((_LPAR, c, i))
                i += 1
            elif c == ")":
                tokens.append((_RPAR, c, i))
                i += 1
            else:
                tokens.append((_COMMA, c, i))
                i += 1
            continue
        start = i
        while i < n and text[i] not in _WS and text[i] not in _SPECIAL:
            i += 1
        tokens.append((_ID, text[start:i], start))
    tokens.append((_EOS, "", n))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def next(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        if tok[0] != _EOS:
            self.i += 1
        return tok

    def fail(self, message: str, pos: int) -> SelectorError:
        return SelectorError(
            f"unable to parse selector {self.text!r}: {message} at position {pos}\n  {self.text}\n  {' ' * pos}^"
        )

    def found(self, tok: tuple[str, str, int], expected: str) -> SelectorError:
        what = repr(tok[1]) if tok[0] != _EOS else "end of string"
        return self.fail(f"found {what}, expected: {expected}", tok[2])

    def parse(self) -> Selector:
        reqs: list[Requirement] = []
        if self.peek()[0] == _EOS:
            return EVERYTHING
        while True:
            reqs.append(self.requirement())
            tok = self.next()
            if tok[0] == _EOS:
                break
            if tok[0] != _COMMA:
                raise self.found(tok, "',' or end of string")
            if self.peek()[0] == _EOS:
                raise self.fail("expected a requirement after ','", self.peek()[2])
        return _selector(reqs)

    def requirement(self) -> Requirement:
        tok = self.next()
        negated = tok[0] == _NOT
        if negated:
            tok = self.next()
        if tok[0] != _ID:
            raise self.found(tok, "identifier (a label key)")
        key, key_pos = tok[1], tok[2]
        if negated:
            return self.build(key, DOES_NOT_EXIST, [], key_pos)
        nxt = self.peek()
        if nxt[0] in (_EOS, _COMMA):
            return self.build(key, EXISTS, [], key_pos)
        op_tok = self.next()
        if op_tok[0] == _OP:
            val = self.peek()
            if val[0] in (_EOS, _COMMA):
                value = ""
            elif val[0] == _ID:
                value = self.next()[1]
            else:
                raise self.found(val, "identifier (a label value), ',' or end of string")
            return self.build(key, op_tok[1], [value], op_tok[2])
        if op_tok[0] == _ID and op_tok[1] in (IN, NOT_IN):
            par = self.next()
            if par[0] != _LPAR:
                raise self.found(par, "'('")
            return self.build(key, op_tok[1], self.values(), op_tok[2])
        raise self.found(op_tok, "'in', 'notin', '=', '==', '!=', '>', '<', ',' or end of string")

    def values(self) -> list[str]:
        vals: list[str] = []
        expect_value = True
        while True:
            tok = self.next()
            if tok[0] == _ID and expect_value:
                vals.append(tok[1])
                expect_value = False
            elif tok[0] == _COMMA:
                if expect_value:
                    vals.append("")
                expect_value = True
            elif tok[0] == _RPAR:
                if expect_value:
                    vals.append("")
                return vals
            else:
                raise self.found(tok, "identifier (a label value), ',' or ')'" if expect_value else "',' or ')'")

    def build(self, key: str, op: str, values: list[str], pos: int) -> Requirement:
        try:
            return _make_requirement(key, op, values)
        except SelectorError as e:
            raise self.fail(str(e), pos) from None


def parse(text: str) -> Selector:
    """Parse the ``kubectl -l`` string form; raises SelectorError pointing at the position."""
    if not isinstance(text, str):
        raise SelectorError(f"selector must be a string, not {type(text).__name__}")
    return _Parser(text).parse()


# --------------------------------------------------------------------------- API form


Problems = list[tuple[str, str]]
"""(field path, message) pairs."""


def _validate_match_labels(ml: object, path: str) -> Problems:
    if not isinstance(ml, dict):
        return [(f"{path}.matchLabels", "must be a map of label keys to values")]
    errs: Problems = []
    for k, v in ml.items():
        e = validate_label_key(k)
        if e:
            errs.append((f"{path}.matchLabels", f"Invalid value: {k!r}: {e}"))
        e = validate_label_value(v)
        if e:
            errs.append((f"{path}.matchLabels", f"Invalid value: {v!r}: {e}"))
    return errs


def _validate_operator(op: object, values: list[Any] | None, p: str) -> Problems:
    """The operator must be an API one; In/NotIn need values, Exists/DoesNotExist forbid them."""
    if not isinstance(op, str) or op not in API_OPERATORS:  # a list or a map is not hashable
        return [
            (
                f"{p}.operator",
                f'Unsupported value: {op!r}: supported values: "In", "NotIn", "Exists", "DoesNotExist"',
            )
        ]
    if op in ("In", "NotIn") and not values:
        return [(f"{p}.values", "Required value: must be specified when `operator` is 'In' or 'NotIn'")]
    if op in ("Exists", "DoesNotExist") and values:
        return [(f"{p}.values", "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]
    return []


def _validate_expression(expr: object, p: str) -> Problems:
    """One ``matchExpressions`` entry at path ``p``: key, values' shape, operator, each value."""
    if not isinstance(expr, dict):
        return [(p, "must be an object with key, operator and values")]
    errs: Problems = []
    key = expr.get("key")
    if key is None:
        errs.append((f"{p}.key", "Required value"))
    else:
        e = validate_label_key(key)
        if e:
            errs.append((f"{p}.key", f"Invalid value: {key!r}: {e}"))
    values = expr.get("values")
    if values is not None and not isinstance(values, list):
        errs.append((f"{p}.values", "must be a list of strings"))
        values = None
    errs.extend(_validate_operator(expr.get("operator"), values, p))
    for j, v in enumerate(values or []):
        e = validate_label_value(v)
        if e:
            errs.append((f"{p}.values[{j}]", f"Invalid value: {v!r}: {e}"))
    return errs


def validate_label_selector(sel: object, path: str) -> list[tuple[str, str]]:
    """Problems of a ``metav1.LabelSelector`` dict as (field path, message) pairs."""
    errs: Problems = []
    if sel is None:
        return errs
    if not isinstance(sel, dict):
        return [(path, "must be an object with matchLabels and/or matchExpressions")]
    ml = sel.get("matchLabels")
    if ml is not None:
        errs.extend(_validate_match_labels(ml, path))
    me = sel.get("matchExpressions")
    if me is not None:
        if not isinstance(me, list):
            errs.append((f"{path}.matchExpressions", "must be a list"))
        else:
            for i, expr in enumerate(me):
                errs.extend(_validate_expression(expr, f"{path}.matchExpressions[{i}]"))
    return errs


def from_label_selector(sel: Mapping[str, Any] | None) -> Selector:
    """Convert a ``metav1.LabelSelector`` dict. None matches nothing; ``{}`` matches everything."""
    if sel is None:
        return NOTHING
    errs = validate_label_selector(sel, "selector")
    if errs:
        raise SelectorError("; ".join(f"{f}: {m}" for f, m in errs))
    reqs: list[Requirement] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append(_make_requirement(k, EQUALS, [v]))
    for expr in sel.get("matchExpressions") or []:
        reqs.append(_make_requirement(expr["key"], API_OPERATORS[expr["operator"]], expr.get("values") or []))
    return _selector(reqs)


def from_match_labels(labels: Mapping[str, str] | None) -> Selector:
    """A Service-style ``spec.selector`` map (every pair must match). None or ``{}`` matches everything."""
    return from_label_selector({"matchLabels": dict(labels or {})})


def labels_match_selector(sel: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Does a ``metav1.LabelSelector`` dict select these labels? A nil selector selects nothing.

    Invalid selectors select nothing (validation reports them elsewhere).
    """
    if sel is None:
        return False
    lab = labels or {}
    if type(sel) is dict and len(sel) == 1 and type(sel.get("matchLabels")) is dict:
        # fast path: matchLabels only (validity is the caller's business, as below)
        ml = sel["matchLabels"]
        for k, v in ml.items():
            if lab.get(k) != v or validate_label_key(k) or validate_label_value(v):
                return False
        return True
    try:
        return from_label_selector(sel).matches(labels or {})
    except SelectorError:
        return False
