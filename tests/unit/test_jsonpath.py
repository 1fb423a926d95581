"""kubectl's JSONPath (reconciler/jsonpath.py) against the examples of
kubernetes.io/docs/reference/kubectl/jsonpath/ and client-go's util/jsonpath behaviour."""

from __future__ import annotations

import pytest

from reconciler.gofmt import go_json, go_sprint, go_text
from reconciler.jsonpath import JSONPathError, Template, relaxed

# The input of kubernetes.io/docs/reference/kubectl/jsonpath/
DOC = {
    "kind": "List",
    "items": [
        {
            "kind": "None",
            "metadata": {"name": "127.0.0.1", "labels": {"kubernetes.io/hostname": "127.0.0.1"}},
            "status": {
                "capacity": {"cpu": "4"},
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}],
            },
        },
        {
            "kind": "None",
            "metadata": {"name": "127.0.0.2"},
            "status": {
                "capacity": {"cpu": "8"},
                "addresses": [
                    {"type": "LegacyHostIP", "address": "127.0.0.2"},
                    {"type": "another", "address": "127.0.0.3"},
                ],
            },
        },
    ],
    "users": [
        {"name": "myself", "user": {}},
        {"name": "e2e", "user": {"username": "admin", "password": "secret"}},
    ],
}

# (template, what kubectl prints): the documentation's table, then more of client-go's grammar
DOC_TABLE = [
    ("kind is {.kind}", "kind is List"),
    ("{.kind}", "List"),
    ("{['kind']}", "List"),
    ("{..name}", "127.0.0.1 127.0.0.2 myself e2e"),
    ("{.items[*].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{.users[0].name}", "myself"),
    ("{.items[*]['metadata.name', 'status.capacity']}", '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}'),
    ('{.users[?(@.name=="e2e")].user.password}', "secret"),
    (
        "{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}",
        '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] ',
    ),
    ("{range .items[*]}{.metadata.name}{'\\t'}{end}", "127.0.0.1\t127.0.0.2\t"),
    ('{range .items[*]}{.metadata.name}{"\\n"}{end}', "127.0.0.1\n127.0.0.2\n"),
    ("{.items[0].metadata.labels.kubernetes\\.io/hostname}", "127.0.0.1"),
    ("{@.kind}", "List"),
    ("{$.kind}", "List"),
    ("{.items[-1].metadata.name}", "127.0.0.2"),
    ("{.items[0:1].metadata.name}", "127.0.0.1"),
    ("{.items[1:].metadata.name}", "127.0.0.2"),
    ("{.items[:2].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{.items[::2].metadata.name}", "127.0.0.1"),
    ("{.items[0,1].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{.items[*].status.addresses[-1].address}", "127.0.0.1 127.0.0.3"),
    ('{.items[*].status.addresses[?(@.type!="another")].address}', "127.0.0.1 127.0.0.2"),
    ("{.users[?(@.user.password)].name}", "e2e"),
    ("{.users[*].user}", '{} {"password":"secret","username":"admin"}'),
    ("{.users[0]}", '{"name":"myself","user":{}}'),
    ("{.nothing}", ""),
    ("{.items[*].metadata.nothing}", ""),
    ("no action", "no action"),
    ("{range .users[*]}{.name}={.user.username}; {end}", "myself=; e2e=admin; "),
    ("{range .items[*]}{range .status.addresses[*]}{.address},{end};{end}", "127.0.0.1,;127.0.0.2,127.0.0.3,;"),
]


@pytest.mark.parametrize(("template", "want"), DOC_TABLE, ids=[t for t, _ in DOC_TABLE])
def test_kubectl_documented_examples(template: str, want: str) -> None:
    assert Template(template).render(DOC) == want


def test_whole_input_of_at_is_json() -> None:
    assert Template("{@}").render({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'


NUMS = {"items": [{"n": 3, "f": 0.5, "ok": True, "none": None, "big": 1e6}, {"n": 10, "f": 2.0, "ok": False}]}


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("{.items[*].n}", "3 10"),
        ("{.items[*].f}", "0.5 2"),
        ("{.items[*].ok}", "true false"),
        ("{.items[0].none}", "null"),
        ("{.items[0].big}", "1e+06"),
        ("{.items[?(@.n>5)].n}", "10"),
        ("{.items[?(@.n<=3)].n}", "3"),
        ("{.items[?(@.n==3)].f}", "0.5"),
        ("{.items[?(@.ok==true)].n}", "3"),
        ("{.items[?(@.f>=1.5)].n}", "10"),
    ],
)
def test_scalars_print_as_go_prints_them_and_filters_compare_numbers(template: str, want: str) -> None:
    assert Template(template).render(NUMS) == want


def test_recursive_descent_visits_containers_before_their_children() -> None:
    data = {"name": "a", "spec": {"name": "b", "list": [{"name": "c"}]}}
    assert Template("{..name}").render(data) == "a b c"


def test_missing_keys_fail_only_when_not_allowed() -> None:
    assert Template("{.a.b}").render({"a": {}}) == ""
    with pytest.raises(JSONPathError, match="b is not found"):
        Template("{.a.b}", allow_missing=False).render({"a": {}})


@pytest.mark.parametrize(
    ("template", "data", "message"),
    [
        ("{.items[2]}", {"items": [1, 2]}, "array index out of bounds: index 2, length 2"),
        ("{.items[0]}", {"items": []}, "array index out of bounds: index 0, length 0"),
        ("{.items[0]}", {"items": {"a": 1}}, "is not array or slice"),
        ("{.items[::0]}", {"items": [1]}, "step must be > 0"),
        ("{end}", {}, "not in range, nothing to end"),
        ("{bogus}", {}, "unrecognized identifier bogus"),
        ('{.items[?(@.a=="x")]}', {"items": {"a": "x"}}, "cannot be filtered"),
        ('{.items[?(@.a<"x")]}', {"items": [{"a": 1}]}, "incompatible types"),
    ],
)
def test_evaluation_errors(template: str, data: object, message: str) -> None:
    with pytest.raises(JSONPathError, match=message.replace("[", r"\[")):
        Template(template).render(data)


def test_an_empty_slice_is_no_error() -> None:
    assert Template("{.items[0:0]}").render({"items": []}) == ""


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{.a", "unclosed action"),
        ("{.a[1}", "unterminated array"),
        ("{.a[x]}", "invalid array index x"),
        ("{.a[?(@.b}", "unterminated filter"),
        ('{"abc}', "unterminated quoted string"),
        ("{..a..b}", ""),
        ("{....a}", "invalid multiple recursive descent"),
        ("{#}", "unrecognized character in action"),
    ],
)
def test_parse_errors(template: str, message: str) -> None:
    if not message:
        Template(template)  # two descents apart are fine
        return
    with pytest.raises(JSONPathError, match=message):
        Template(template)


def test_a_brace_only_opens_an_action_and_a_quoted_brace_is_text() -> None:
    assert Template('x}y{"}"}').render({}) == "x}y}"


def test_relaxed_expressions_as_custom_columns_and_sort_by_take_them() -> None:
    for expr in ("metadata.name", ".metadata.name", "{metadata.name}", "{.metadata.name}"):
        assert relaxed(expr) == "{.metadata.name}"
    assert relaxed("") == ""
    with pytest.raises(JSONPathError):
        relaxed("{a}{b}")


def test_find_returns_the_first_actions_values() -> None:
    assert Template("{.items[*].n}").find(NUMS) == [3, 10]
    assert Template("{.nope}").find(NUMS) == []


def test_as_json_prints_each_actions_results_as_an_array() -> None:
    assert Template("{.items[*].n}").render(NUMS, as_json=True) == "[\n    3,\n    10\n]\n"


def test_go_printing() -> None:
    assert go_json({"b": "<x>&", "a": [1, 2.5, None, False]}) == '{"a":[1,2.5,null,false],"b":"\\u003cx\\u003e\\u0026"}'
    assert go_json(1e21) == "1e+21" and go_json(1e-7) == "1e-7" and go_json(100.0) == "100"
    assert go_text(0.0001) == "0.0001" and go_text(0.00001) == "1e-05" and go_text(123456.0) == "123456"
    assert go_text(1234567.0) == "1.234567e+06" and go_text(-2.5) == "-2.5"
    assert go_sprint({"b": 1, "a": ["x", None]}) == "map[a:[x <nil>] b:1]"
    assert go_sprint(None) == "<nil>" and go_sprint("s") == "s"
