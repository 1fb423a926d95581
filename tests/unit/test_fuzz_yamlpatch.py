"""Fuzzing the YAML patcher (reconciler.gitops.yamlpatch / yamltext): a round trip keeps everything
but the edited field, comments included.

Random block-style manifests are written with a comment line before every key and an end-of-line
comment on every scalar; one change is made to the value (a scalar replaced, a key added, a key
removed) and ``patch_document`` must give text that loads as the new value where:
- a scalar change is a one-line diff (the line of that field), every comment kept;
- an added key only inserts lines, a removed key only deletes lines;
- ``fmt_scalar`` of any scalar loads back as that scalar (quoting is right for "yes", "1.0", "#x"...).
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.gitops import patch_document
from reconciler.gitops.documents import load, same
from reconciler.gitops.yamltext import fmt_scalar
from tests.unit.fuzzing import FUZZ

_tricky_strings = st.sampled_from(
    [
        "yes",
        "no",
        "on",
        "null",
        "~",
        "1.0",
        "0x1F",
        "1e3",
        "#x",
        "a: b",
        "- x",
        "",
        " lead",
        "trail ",
        "@at",
        "x'y",
        'q"',
    ]
    + ["*a", "&b", "!t", "%p", "`b", "{x}", "[y]", "a #b", "007", ".inf", "2024-01-01", "<<"]
)
_scalars = (
    st.booleans()
    | st.none()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=8)
    | _tricky_strings
)
_keys = st.from_regex(r"[a-z][a-zA-Z0-9]{0,6}", fullmatch=True).filter(lambda k: yaml.safe_load(k) == k)
# keys the patcher must quote when it adds them ("on" is true in YAML 1.1)
_new_keys = _keys | st.sampled_from(["on", "yes", "n", "1", "null", "~", "a: b", "#k", "-", "k "])
_values = st.recursive(
    _scalars,
    lambda inner: st.dictionaries(_keys, inner, min_size=1, max_size=4) | st.lists(inner, min_size=1, max_size=3),
    max_leaves=15,
)
_docs = st.dictionaries(_keys, _values, min_size=1, max_size=5)


class _Writer:
    """Block-style YAML with a numbered comment line before every key and after every scalar."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def comment(self) -> str:
        self.n += 1
        return f"# c{self.n}"

    def value(self, v: Any, col: int) -> None:
        pad = " " * col
        if isinstance(v, dict):
            for k, x in v.items():
                self.lines.append(pad + self.comment())
                self.entry(pad + k + ":", x, col)
        else:
            for x in v:
                self.entry(pad + "-", x, col, item=True)

    def entry(self, head: str, x: Any, col: int, item: bool = False) -> None:
        if isinstance(x, (dict, list)) and x:
            self.lines.append(head)
            self.value(x, col + 2)
        else:
            self.lines.append(f"{head} {fmt_scalar(x)}  {self.comment()}")


def _write(doc: dict[str, Any]) -> str:
    w = _Writer()
    w.value(doc, 0)
    return "\n".join(w.lines) + "\n"


def _scalar_paths(v: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in _scalar_paths(x, (*path, k))]
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in _scalar_paths(x, (*path, i))]
    return [path]


def _maps(v: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(v, dict):
        return [path] + [p for k, x in v.items() for p in _maps(x, (*path, k))]
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in _maps(x, (*path, i))]
    return []


def _at(v: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        v = v[p]
    return v


def _ops(text: str, out: str) -> set[str]:
    sm = difflib.SequenceMatcher(a=text.splitlines(), b=out.splitlines(), autojunk=False)
    return {tag for tag, *_ in sm.get_opcodes() if tag != "equal"}


def _comments(text: str) -> set[str]:
    return {"# c" + part.split("# c", 1)[1].split()[0] for part in text.splitlines() if "# c" in part}


@FUZZ
@given(_docs)
def test_writer_output_loads_as_the_value(doc: dict[str, Any]) -> None:
    assert same(load(_write(doc)), doc)


@FUZZ
@given(_docs, st.data())
def test_scalar_change_is_a_one_line_diff(doc: dict[str, Any], data: st.DataObject) -> None:
    text = _write(doc)
    path = data.draw(st.sampled_from(_scalar_paths(doc)))
    new = copy.deepcopy(doc)
    value = data.draw(_scalars)
    _at(new, path[:-1])[path[-1]] = value
    out = patch_document(text, new)
    assert same(load(out), new)
    a, b = text.splitlines(), out.splitlines()
    if same(_at(doc, path), value):
        assert out == text
        return
    assert len(a) == len(b)
    changed = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    assert len(changed) == 1, (text, out)
    assert _comments(out) == _comments(text)


@FUZZ
@given(_docs, st.data())
def test_added_key_only_inserts_and_removed_key_only_deletes(doc: dict[str, Any], data: st.DataObject) -> None:
    text = _write(doc)
    where = data.draw(st.sampled_from(_maps(doc)))
    target = _at(doc, where)
    added = copy.deepcopy(doc)
    key = data.draw(_new_keys.filter(lambda k: k not in target))
    _at(added, where)[key] = data.draw(_values)
    out = patch_document(text, added)
    assert same(load(out), added)
    assert _ops(text, out) <= {"insert"}, (text, out)
    assert _comments(text) <= _comments(out)

    if len(target) > 1:
        removed = copy.deepcopy(doc)
        del _at(removed, where)[data.draw(st.sampled_from(sorted(target)))]
        out = patch_document(text, removed)
        assert same(load(out), removed)
        assert _ops(text, out) <= {"delete"}, (text, out)


@FUZZ
@given(_scalars, st.booleans())
def test_fmt_scalar_loads_back(value: Any, flow: bool) -> None:
    text = fmt_scalar(value, flow=flow)
    got = yaml.safe_load(f"[{text}]" if flow else f"k: {text}")
    assert same(got[0] if flow else got["k"], value)


def test_keys_yaml_1_1_reads_as_booleans_are_quoted_in_a_new_subtree() -> None:
    # found by the fuzzer: ruamel wrote `yes:` (a string in YAML 1.2, true in 1.1 as PyYAML and go-yaml read it),
    # so adding {"yes": {...}} failed after 2,000 splice passes (minutes) instead of writing 'yes':
    out = patch_document("c: 1  # keep\n", {"c": 1, "yes": {"on": "no", "y": 1}})
    assert out.startswith("c: 1  # keep\n")
    assert same(load(out), {"c": 1, "yes": {"on": "no", "y": 1}})


def test_c1_controls_and_yaml_line_breaks_are_escaped() -> None:
    # found by the fuzzer: "\x80" was written raw inside double quotes (unreadable YAML), "\x85" folded to a space
    for s in ["\x80", "a\x85b", "\u2028", "\x7f", "\ufeff"]:
        out = patch_document("k: v  # keep\n", {"k": s})
        assert same(load(out), {"k": s}) and out.endswith("  # keep\n")
