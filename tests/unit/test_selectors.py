"""Unit tests for reconciler/selectors.py: grammar, API form, matching, validators."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import selectors
from reconciler.errors import SelectorError
from reconciler.selectors import Requirement, Selector, parse

# --------------------------------------------------------------------------- parsing

PARSE_OK = [
    ("", ""),
    ("   ", ""),
    ("app=web", "app=web"),
    ("app==web", "app==web"),
    ("app = web", "app=web"),
    ("app!=web", "app!=web"),
    ("app", "app"),
    ("!app", "!app"),
    ("! app", "!app"),
    ("app in (b,a)", "app in (a,b)"),
    ("app in (a, b , a)", "app in (a,b)"),
    ("app notin (x)", "app notin (x)"),
    ("app in ()", "app in ()"),
    ("app in (,a)", "app in (,a)"),
    ("app in (a,)", "app in (,a)"),
    ("app=", "app="),
    ("app=,tier", "app=,tier"),
    ("tier=db,app=web", "app=web,tier=db"),
    ("x>5", "x>5"),
    ("x < 10", "x<10"),
    ("example.com/app=web", "example.com/app=web"),
    ("in in (in)", "in in (in)"),
    ("a=in,notin", "a=in,notin"),
    ("a\t=\nb", "a=b"),
]


@pytest.mark.parametrize("text,canonical", PARSE_OK)
def test_parse_canonical(text: str, canonical: str) -> None:
    assert str(parse(text)) == canonical


PARSE_BAD = [
    ("app=web,", "after ','"),
    (",app", "identifier"),
    ("app in (a", "')'"),
    ("app in a", "'('"),
    ("app foo", "expected"),
    ("app=(a)", "found '('"),
    ("=a", "identifier"),
    ("app=web tier=db", "',' or end of string"),
    ("x>abc", "integer"),
    ("x>", "integer"),
    ("-bad=1", "name part"),
    ("app=-bad", "valid label"),
    ("a/b/c=1", "qualified name"),
    ("/x=1", "prefix part must be non-empty"),
    ("app in (a b)", "',' or ')'"),
    ("!app=web", "',' or end of string"),
    ("a" * 64 + "=1", "63"),
]


@pytest.mark.parametrize("text,fragment", PARSE_BAD)
def test_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(SelectorError) as exc:
        parse(text)
    assert fragment in str(exc.value)
    assert "position" in str(exc.value)


def test_error_points_at_position() -> None:
    with pytest.raises(SelectorError) as exc:
        parse("app=web, tier in (a")
    msg = str(exc.value)
    assert "position 19" in msg
    # the caret line points under the offending spot
    lines = msg.splitlines()
    assert lines[-1].index("^") - 2 == 19


# --------------------------------------------------------------------------- matching

MATCH = [
    ("", {}, True),
    ("", {"a": "1"}, True),
    ("a=1", {"a": "1"}, True),
    ("a=1", {"a": "2"}, False),
    ("a=1", {}, False),
    ("a==1", {"a": "1"}, True),
    ("a!=1", {}, True),
    ("a!=1", {"a": "1"}, False),
    ("a!=1", {"a": "2"}, True),
    ("a in (1,2)", {"a": "2"}, True),
    ("a in (1,2)", {"a": "3"}, False),
    ("a in (1,2)", {}, False),
    ("a notin (1,2)", {}, True),
    ("a notin (1,2)", {"a": "1"}, False),
    ("a", {"a": ""}, True),
    ("a", {"b": "1"}, False),
    ("!a", {"b": "1"}, True),
    ("!a", {"a": "1"}, False),
    ("a>5", {"a": "6"}, True),
    ("a>5", {"a": "5"}, False),
    ("a>5", {"a": "x"}, False),
    ("a>5", {}, False),
    ("a<5", {"a": "-1"}, True),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("a in ()", {"a": ""}, True),
    ("a=1,b=2", {"a": "1", "b": "2"}, True),
    ("a=1,b=2", {"a": "1"}, False),
]


@pytest.mark.parametrize("text,labels,expected", MATCH)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse(text).matches(labels) is expected


def test_empty_and_nothing() -> None:
    assert parse("").empty
    assert not parse("a").empty
    assert selectors.from_label_selector({}).empty
    nothing = selectors.from_label_selector(None)
    assert not nothing.empty
    assert not nothing.matches({})
    assert not nothing.matches({"a": "1"})
    assert str(nothing) == "<none>"


def test_selector_is_immutable() -> None:
    sel = parse("a=1")
    with pytest.raises(AttributeError):
        sel.requirements = ()  # type: ignore[misc]
    assert isinstance(sel.requirements, tuple)


# --------------------------------------------------------------------------- API form


def test_from_label_selector_match_labels_and_expressions() -> None:
    sel = selectors.from_label_selector(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "zone", "operator": "Exists"},
            ],
        }
    )
    assert str(sel) == "app=web,!canary,env notin (prod),tier in (be,fe),zone"
    assert sel.matches({"app": "web", "tier": "fe", "zone": "a"})
    assert not sel.matches({"app": "web", "tier": "fe", "zone": "a", "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "fe", "zone": "a", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "fe"})


@pytest.mark.parametrize(
    "sel,fragment",
    [
        ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}, "Unsupported value"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "must be specified"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "must be specified"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "may not be specified"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "key: Required"),
        ({"matchLabels": {"a b": "x"}}, "name part"),
        ({"matchLabels": {"a": "x y"}}, "valid label"),
        ({"matchLabels": ["a"]}, "map"),
        ({"matchExpressions": {"key": "a"}}, "must be a list"),
        ("app=web", "must be an object"),
    ],
)
def test_from_label_selector_errors(sel: object, fragment: str) -> None:
    with pytest.raises(SelectorError) as exc:
        selectors.from_label_selector(sel)  # type: ignore[arg-type]
    assert fragment in str(exc.value)


def test_validate_label_selector_field_paths() -> None:
    errs = selectors.validate_label_selector(
        {
            "matchLabels": {"ok": "-bad"},
            "matchExpressions": [
                {"key": "a", "operator": "Foo"},
                {"key": "b", "operator": "In", "values": ["x", "y z"]},
            ],
        },
        "spec.selector",
    )
    fields = [f for f, _ in errs]
    assert fields == [
        "spec.selector.matchLabels",
        "spec.selector.matchExpressions[0].operator",
        "spec.selector.matchExpressions[1].values[1]",
    ]
    assert selectors.validate_label_selector({"matchLabels": {"app": "x"}}, "s") == []


def test_labels_match_selector() -> None:
    assert selectors.labels_match_selector({"matchLabels": {"app": "x"}}, {"app": "x", "b": "c"})
    assert not selectors.labels_match_selector({"matchLabels": {"app": "x"}}, {"app": "y"})
    assert not selectors.labels_match_selector(None, {"app": "x"})
    assert selectors.labels_match_selector({}, {"app": "x"})
    assert not selectors.labels_match_selector({"matchLabels": {"app": "x y"}}, {"app": "x y"})
    assert selectors.labels_match_selector(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}, {}
    )


def test_from_match_labels() -> None:
    assert selectors.from_match_labels({"app": "testing"}).matches({"app": "testing", "x": "y"})
    assert selectors.from_match_labels(None).empty


# --------------------------------------------------------------------------- key / value validators


@pytest.mark.parametrize(
    "key,ok",
    [
        ("app", True),
        ("App_1.x-y", True),
        ("example.com/app", True),
        ("k8s.io/x", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("", False),
        ("-a", False),
        ("a-", False),
        ("Example.com/app", False),
        ("/app", False),
        ("a/", False),
        ("a/b/c", False),
        ("a b", False),
        (("a" * 63 + ".") * 4 + "a/x", False),
        (5, False),
    ],
)
def test_validate_label_key(key: object, ok: bool) -> None:
    assert (selectors.validate_label_key(key) is None) is ok


@pytest.mark.parametrize(
    "value,ok",
    [
        ("", True),
        ("v1", True),
        ("a.b_c-d", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-a", False),
        ("a b", False),
        ("a/b", False),
        (1, False),
        (None, False),
    ],
)
def test_validate_label_value(value: object, ok: bool) -> None:
    assert (selectors.validate_label_value(value) is None) is ok


# --------------------------------------------------------------------------- properties

_alnum = st.sampled_from("abcxyz019")
_name = st.one_of(
    _alnum, st.builds(lambda a, mid, b: a + mid + b, _alnum, st.text(alphabet="ab9._-", max_size=6), _alnum)
)
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}.io/{n}", st.text(alphabet="abc", min_size=1, max_size=4), _name))
_value = st.one_of(st.just(""), _name)
_int_value = st.integers(min_value=0, max_value=99).map(str)


@st.composite
def _requirements(draw: st.DrawFn) -> Requirement:
    key = draw(_key)
    op = draw(st.sampled_from(sorted(selectors.OPERATORS)))
    if op in (selectors.IN, selectors.NOT_IN):
        values = tuple(sorted(set(draw(st.lists(_value, min_size=1, max_size=3)))))
    elif op in (selectors.EXISTS, selectors.DOES_NOT_EXIST):
        values = ()
    elif op in (selectors.GREATER_THAN, selectors.LESS_THAN):
        values = (draw(_int_value),)
    else:
        values = (draw(_value),)
    return Requirement(key, op, values)


_selectors = st.lists(_requirements(), max_size=5).map(lambda reqs: Selector(tuple(sorted(reqs, key=lambda r: r.key))))


@settings(max_examples=300)
@given(_selectors)
def test_parse_str_round_trips(sel: Selector) -> None:
    assert parse(str(sel)) == sel
    assert str(parse(str(sel))) == str(sel)


def _reference(req: Requirement, labels: dict[str, str]) -> bool:
    """An independent, table-driven restatement of docs/kubernetes.md §4.2."""
    present = req.key in labels
    v = labels.get(req.key)
    table = {
        "=": present and v in req.values,
        "==": present and v in req.values,
        "in": present and v in req.values,
        "!=": (not present) or v not in req.values,
        "notin": (not present) or v not in req.values,
        "exists": present,
        "!": not present,
    }
    if req.op in table:
        return table[req.op]
    if not present or not (v or "").lstrip("-").isdigit():
        return False
    return int(v) > int(req.values[0]) if req.op == ">" else int(v) < int(req.values[0])


_label_sets = st.dictionaries(st.sampled_from(["a", "b", "x.io/c", "d"]), st.one_of(_value, _int_value), max_size=4)


@settings(max_examples=300)
@given(_selectors, _label_sets)
def test_matching_agrees_with_reference(sel: Selector, labels: dict[str, str]) -> None:
    expected = all(_reference(r, labels) for r in sel.requirements)
    assert sel.matches(labels) is expected


@settings(max_examples=200)
@given(st.dictionaries(_key, _value, max_size=4), _label_sets)
def test_match_labels_fast_path_agrees(match_labels: dict[str, str], labels: dict[str, str]) -> None:
    sel = {"matchLabels": match_labels}
    assert selectors.labels_match_selector(sel, labels) is selectors.from_label_selector(sel).matches(labels)


@settings(max_examples=300)
@given(st.text(alphabet="ab=!(), <>in\t", max_size=20))
def test_parse_never_crashes(text: str) -> None:
    try:
        sel = parse(text)
    except SelectorError:
        return
    assert parse(str(sel)) == sel


@pytest.mark.parametrize("op", [["In"], {"In": 1}, 3, None])
def test_an_operator_that_is_not_a_string_is_an_error_not_a_crash(op: object) -> None:
    # found by tests/unit/test_fuzz_manifests.py: a list as the operator raised TypeError (unhashable)
    errs = selectors.validate_label_selector(
        {"matchExpressions": [{"key": "tier", "operator": op, "values": ["web"]}]}, "s"
    )
    assert [p for p, _ in errs] == ["s.matchExpressions[0].operator"]
