"""The YAML text-patching engine (reconciler.gitops.yamlpatch), table-driven: text + new value -> text.

Each case gives a document's text, a change to the value it loads as, and the exact text
patch_document must produce: the change spliced in, every other byte kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from reconciler.errors import GitOpsError
from reconciler.gitops import patch_document, split_documents
from reconciler.gitops.documents import doc_indices, same, split_header
from reconciler.gitops.yamltext import fmt_scalar

Change = Callable[[Any], None]


def put(path: str, value: Any) -> Change:
    """Set ``a.b.0.c`` (list indices as numbers) to ``value``."""

    def change(d: Any) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for p in parents:
            d = d[p]
        d[last] = value

    return change


def drop(path: str) -> Change:
    def change(d: Any) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for p in parents:
            d = d[p]
        del d[last]

    return change


def insert(path: str, index: int, value: Any) -> Change:
    def change(d: Any) -> None:
        for p in [int(p) if p.isdigit() else p for p in path.split(".")]:
            d = d[p]
        d.insert(index, value)

    return change


def both(*changes: Change) -> Change:
    def change(d: Any) -> None:
        for c in changes:
            c(d)

    return change


CASES: list[tuple[str, str, Change, str]] = [
    # ---- scalars keep their quoting and trailing comments
    ("plain scalar, comment kept", "image: nginx:1  # pinned\n", put("image", "nginx:2"), "image: nginx:2  # pinned\n"),
    ("single quotes kept", "a: 'x'\nb: 1\n", put("a", "it's"), "a: 'it''s'\nb: 1\n"),
    ("double quotes kept", 'a: "x"\n', put("a", "y"), 'a: "y"\n'),
    ("a string that reads as a bool is quoted", "a: x\n", put("a", "true"), 'a: "true"\n'),
    ("a string that reads as a number is quoted", "a: x\n", put("a", "1"), 'a: "1"\n'),
    ("an int stays plain", "replicas: 1 # n\n", put("replicas", 3), "replicas: 3 # n\n"),
    ("a bool", "paused: false\n", put("paused", True), "paused: true\n"),
    ("a null value gets one", "a:\nb: 1\n", put("a", "v"), "a: v\nb: 1\n"),
    ("a string with ': ' is quoted", "a: x\n", put("a", "k: v"), 'a: "k: v"\n'),
    ("a block scalar becomes plain", "s: |\n  one\n  two\nt: 1\n", put("s", "x"), "s: x\nt: 1\n"),
    # ---- keys
    (
        "insert at the siblings' column (1-space style)",
        "m:\n a: 1\nz: 0\n",
        put("m.b", 2),
        "m:\n a: 1\n b: 2\nz: 0\n",
    ),
    (
        "insert a mapping with the document's indentation",
        "metadata:\n    name: a  # the name\nspec: {}\n",
        put("metadata.labels", {"app": "a"}),
        "metadata:\n    name: a  # the name\n    labels:\n        app: a\nspec: {}\n",
    ),
    (
        "delete a key, comments of the others kept",
        "m:\n  a: 1  # keep\n  b: 2\n  c: 3\n",
        drop("m.b"),
        "m:\n  a: 1  # keep\n  c: 3\n",
    ),
    (
        "delete a key with a block value",
        "# head\nspec:\n  paused: true\n  template:\n    x: 1\n    y: [1, 2]\nend: 1\n",
        drop("spec.template"),
        "# head\nspec:\n  paused: true\nend: 1\n",
    ),
    (
        "delete the first key of a list item pulls the next one behind the dash",
        "l:\n- name: c\n  image: i\n",
        drop("l.0.name"),
        "l:\n- image: i\n",
    ),
    (
        "a scalar becomes a mapping",
        "a: 1\nb: 2\n",
        put("a", {"x": {"z": 1}}),
        "a:\n  x:\n    z: 1\nb: 2\n",
    ),
    # ---- flow style
    ("flow mapping: a key added", "labels: {app: a}\n", put("labels.tier", "web"), "labels: {app: a, tier: web}\n"),
    ("flow sequence: a scalar in place", 'args: ["x", "y"]\n', put("args.1", "z"), 'args: ["x", "z"]\n'),
    ("flow sequence: an item added, quoting kept", "args: ['x']\n", insert("args", 1, "y"), "args: ['x', 'y']\n"),
    ("flow mapping: a value in place", "m: {a: 1, b: 2}  # c\n", put("m.b", 3), "m: {a: 1, b: 3}  # c\n"),
    # ---- sequences
    ("append an item", "l:\n- a\n- b\nx: 1\n", insert("l", 2, "c"), "l:\n- a\n- b\n- c\nx: 1\n"),
    ("insert an item in the middle", "l:\n  - a\n  - c  # c\n", insert("l", 1, "b"), "l:\n  - a\n  - b\n  - c  # c\n"),
    ("delete an item", "l:\n- a  # first\n- b\n- c\n", drop("l.1"), "l:\n- a  # first\n- c\n"),
    (
        "change a field of a list item",
        "containers:\n- name: web   # the app\n  image: old\n- name: side\n  image: old\n",
        put("containers.1.image", "new"),
        "containers:\n- name: web   # the app\n  image: old\n- name: side\n  image: new\n",
    ),
    (
        "append a mapping item",
        "ports:\n  - port: 80\n",
        insert("ports", 1, {"port": 443, "name": "tls"}),
        "ports:\n  - port: 80\n  - port: 443\n    name: tls\n",
    ),
    # ---- line breaks and headers
    ("CRLF kept", "a: 1\r\nb: 2\r\n", put("c", 3), "a: 1\r\nb: 2\r\nc: 3\r\n"),
    (
        "CRLF flow and block edits",
        'metadata:\r\n  name: a\r\n  labels: {app: a}\r\nspec:\r\n  args: ["x", "y"]\r\n',
        both(put("metadata.labels.tier", "web"), put("spec.args.1", "z"), put("spec.paused", True)),
        'metadata:\r\n  name: a\r\n  labels: {app: a, tier: web}\r\nspec:\r\n  args: ["x", "z"]\r\n  paused: true\r\n',
    ),
    ("a document header kept", "--- # the pod\nkind: Pod\n", put("kind", "Job"), "--- # the pod\nkind: Job\n"),
    ("no final line break", "a: 1", put("b", 2), "a: 1\nb: 2\n"),
    ("nothing to change", "a:   1 # odd\n", lambda d: None, "a:   1 # odd\n"),
]


@pytest.mark.parametrize("text,change,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_patch_document(text: str, change: Change, expected: str) -> None:
    new = copy.deepcopy(yaml.safe_load(text))
    change(new)
    out = patch_document(text, new)
    assert out == expected
    assert same(yaml.safe_load(out), new)


# ---- the round-trip fallback: what a splice cannot do (anchors, aliases, merge keys), ruamel.yaml
# rewrites. Its exact layout is ruamel's; what is asserted is the value and the text that is kept.

FALLBACK: list[tuple[str, str, Change, list[str]]] = [
    (
        "merge key",
        "base: &b\n  image: nginx  # web\nspec:\n  <<: *b\n  replicas: 1\n",
        put("spec.replicas", 2),
        ["# web", "<<: *b", "replicas: 2"],
    ),
    (
        "an alias elsewhere",
        "a: &x 1  # one\nb: *x\nc: 2  # two\n",
        put("c", 3),
        ["a: &x 1", "b: *x", "# one", "c: 3", "# two"],
    ),
    ("the alias itself replaced", "a: &x [1, 2]  # list\nb: *x\n", put("b", [3]), ["# list"]),
    (
        "merge of a flow mapping",
        "base: &b {image: nginx}\nspec:\n  <<: *b\n  replicas: 1  # r\n",
        put("spec.replicas", 2),
        ["<<: *b", "replicas: 2", "# r"],
    ),
]


@pytest.mark.parametrize("text,change,kept", [c[1:] for c in FALLBACK], ids=[c[0] for c in FALLBACK])
def test_round_trip_fallback(text: str, change: Change, kept: list[str]) -> None:
    new = copy.deepcopy(yaml.safe_load(text))
    change(new)
    out = patch_document(text, new)
    assert same(yaml.safe_load(out), new)
    for fragment in kept:
        assert fragment in out


def test_fallback_keeps_crlf() -> None:
    text = "a: &x 1\r\nb: *x  # alias\r\n"
    out = patch_document(text, {"a": 1, "b": 2})
    assert yaml.safe_load(out) == {"a": 1, "b": 2}
    assert "\r\n" in out and "\n" not in out.replace("\r\n", "")
    assert "# alias" in out


def test_unparseable_document_is_refused() -> None:
    with pytest.raises(GitOpsError):
        patch_document("a: [1,\n", {"a": [1]})


def test_types_are_kept_apart() -> None:
    # 1 -> True is a change (YAML's true is not 1); the result loads as the bool
    out = patch_document("a: 1\n", {"a": True})
    assert out == "a: true\n"
    out = patch_document("a: 1\n", {"a": 1.0})
    assert out == "a: 1.0\n"


# ---- documents: a stream split on `---` lines, byte for byte

SPLITS: list[tuple[str, str, list[str], list[int | None]]] = [
    ("empty", "", [""], [None]),
    ("one document", "a: 1\n", ["a: 1\n"], [0]),
    (
        "leading comment, two documents",
        "# c\n---\na: 1\n---\nb: 2\n",
        ["# c\n", "---\na: 1\n", "---\nb: 2\n"],
        [None, 0, 1],
    ),
    ("content before the first ---", "a: 1\n--- # x\nb: 2", ["a: 1\n", "--- # x\nb: 2"], [0, 1]),
    ("---- is not a boundary", 'a: "x\n----y"\n', ['a: "x\n----y"\n'], [0]),
    ("CRLF", "---\r\na: 1\r\n---\r\n", ["", "---\r\na: 1\r\n", "---\r\n"], [None, 0, 1]),
]


@pytest.mark.parametrize("text,chunks,indices", [c[1:] for c in SPLITS], ids=[c[0] for c in SPLITS])
def test_split_documents(text: str, chunks: list[str], indices: list[int | None]) -> None:
    got = split_documents(text)
    assert got == chunks
    assert "".join(got) == text
    assert doc_indices(got) == indices
    loaded = [d for d in yaml.safe_load_all(text)]
    assert len([i for i in indices if i is not None]) == len(loaded)


def test_multi_document_edit_leaves_other_documents_byte_identical() -> None:
    text = (
        "# a file of three\n"
        "---\n"
        "kind: ConfigMap   # first\n"
        "data: {a: '1'}\n"
        "--- # the one we change\n"
        "kind: Deployment\n"
        "spec:\n"
        "  replicas: 1\n"
        "---\n"
        "kind: Service\n"
        "spec:  {ports: [ {port: 80} ]}\n"
    )
    chunks = split_documents(text)
    new = yaml.safe_load(chunks[2])
    new["spec"]["replicas"] = 5
    chunks[2] = patch_document(chunks[2], new)
    out = "".join(chunks)
    assert out == text.replace("replicas: 1", "replicas: 5")
    assert split_header(chunks[2])[0] == "--- # the one we change\n"


# ---- scalars as text

SCALARS: list[tuple[Any, str | None, bool, str]] = [
    (None, None, False, "null"),
    (True, None, False, "true"),
    (3, '"', False, "3"),
    (1.5, None, False, "1.5"),
    (float("inf"), None, False, ".inf"),
    ("web", None, False, "web"),
    ("web", "'", False, "'web'"),
    ("web", '"', False, '"web"'),
    ("yes", None, False, '"yes"'),
    ("a,b", None, False, "a,b"),
    ("a,b", None, True, '"a,b"'),
    ("#x", None, False, '"#x"'),
    ("two\nlines", "'", False, '"two\\nlines"'),
    ("", None, False, '""'),
]


@pytest.mark.parametrize("value,style,flow,expected", SCALARS)
def test_fmt_scalar(value: Any, style: str | None, flow: bool, expected: str) -> None:
    text = fmt_scalar(value, style, flow)
    assert text == expected
    assert same(yaml.safe_load("k: " + text)["k"], value)
