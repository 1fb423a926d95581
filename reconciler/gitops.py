"""Commits gitship makes: round-trip YAML edits, revert, push.

Every change of desired state made through gitship (``label``, ``set image``,
``scale``, ``rollout pause/resume/undo``, ``create -f``/``apply -f``) is an edit
of a manifest file in the repository, committed with a message that names the
object and the change. ``RepoWriter`` makes those commits.

Layout preservation
    A manifest file is split on its document boundaries (``^---``); only the
    document that declares the object is rewritten, every other document stays
    byte-identical. Inside that document the edit is *surgical*: the document is
    composed (PyYAML nodes carry exact source positions), the structural
    difference between the old and the new object is computed, and each change
    is spliced into the original text (a scalar replaced in place, a key line
    inserted at the indentation of its siblings, a key's lines deleted, a
    subtree re-rendered at its own column). Comments, quoting, odd indentation
    (the 1-space style of hand-written manifests) and trailing spaces of the
    untouched lines all survive, so ``set image`` is a one-line diff. Every
    result is re-parsed and compared with the intended object; if a surgical
    edit cannot be made (flow mappings, anchors, merge keys...) the document is
    rewritten with ruamel.yaml round-trip instead (comments kept, indentation
    detected from the document), and that result is verified the same way.

Safety
    * ``fcntl.flock`` on ``<git-common-dir>/gitship.lock`` around every
      (fetch +) edit + commit (+ push): the CLI and the daemon never race.
    * A file with uncommitted changes (staged, unstaged or untracked) is never
      edited: ``GitOpsError`` names it. Only the edited paths are committed
      (``git commit --only -- <paths>``), so whatever else a user has staged
      stays staged and out of gitship's commit.
    * With ``remote`` set, the branch is fetched and fast-forwarded before the
      edit, and the commit is pushed (fast-forward only) after; a rejected push
      resets the local branch to where it was (``git reset --keep``) and raises.
    * Files rendered from ``*.yaml.j2`` templates are never edited.

Public API: ``RepoWriter`` (``find``, ``set_labels``, ``set_image``, ``scale``,
``set_paused``, ``set_template``, ``add_file``, ``revert``, ``log``,
``commit_info``, ``file_at``, ``introducing_commit``, ``head``) and
``patch_document`` (the text engine, usable on its own).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import io
import json
import fnmatch
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import GitOpsError, NotFound

try:  # the C loader is ~10x faster for scanning a repository
    _FastLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _FastLoader = yaml.SafeLoader

__all__ = ["RepoWriter", "patch_document", "split_documents", "DEFAULT_AUTHOR"]

DEFAULT_AUTHOR = ("gitship", "gitship@localhost")
MANIFEST_SUFFIXES = (".yaml", ".yml")
TEMPLATE_SUFFIXES = (".yaml.j2", ".yml.j2")
LOCK_TIMEOUT = 120.0
GIT_TIMEOUT = 300.0

# PyYAML's line breaks (its marks count lines with these).
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_DOC_START = re.compile(r"---(?:[ \t]|[\r\n\x85\u2028\u2029]|$)")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# =========================================================================== documents


def _lines(text: str) -> list[str]:
    """Split keeping line ends, with PyYAML's notion of a line break."""
    out: list[str] = []
    pos = 0
    for m in _BREAK.finditer(text):
        out.append(text[pos : m.end()])
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def split_documents(text: str) -> list[str]:
    """Split a YAML stream into chunks on ``^---`` lines; ``"".join(chunks) == text``.

    Chunk 0 is whatever precedes the first ``---`` line (possibly "" or only
    comments); every later chunk starts with its ``---`` line.
    """
    chunks: list[str] = []
    cur: list[str] = []
    for line in _lines(text):
        if _DOC_START.match(line):
            chunks.append("".join(cur))
            cur = []
        cur.append(line)
    chunks.append("".join(cur))
    return chunks


def _has_content(chunk: str) -> bool:
    for line in _lines(chunk):
        s = line.strip()
        if s and not s.startswith("#") and not s.startswith("%") and s != "...":
            return True
    return False


def _doc_indices(chunks: list[str]) -> list[int | None]:
    """Document index (as ``yaml.safe_load_all`` counts) of each chunk; None: not a document."""
    out: list[int | None] = []
    n = 0
    for i, c in enumerate(chunks):
        if i == 0 and not _has_content(c):
            out.append(None)
            continue
        out.append(n)
        n += 1
    return out


def _split_header(chunk: str) -> tuple[str, str]:
    """(the ``---`` line or "", the rest)."""
    ls = _lines(chunk)
    if ls and _DOC_START.match(ls[0]):
        return ls[0], "".join(ls[1:])
    return "", chunk


def _newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


# =========================================================================== equality


def _same(a: Any, b: Any) -> bool:
    """Type-aware deep equality (True != 1, 1 != 1.0 as YAML values)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        # str subclasses / int subclasses from ruamel compare by plain value
        for t in (bool, int, float, str):
            if (
                isinstance(a, t)
                and isinstance(b, t)
                and not (t is int and (isinstance(a, bool) or isinstance(b, bool)))
            ):
                return a == b
        return False
    return a == b


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, (dict, list))


# =========================================================================== scalar text


def _plain_ok(s: str, flow: bool = False) -> bool:
    if not s or s != s.strip() or any(c in s for c in "\n\r\t") or ": " in s or " #" in s:
        return False
    if flow and any(c in s for c in ",[]{}"):
        return False
    if s.endswith(":"):
        return False
    try:
        return _same(yaml.safe_load("k: " + s), {"k": s})
    except yaml.YAMLError:
        return False


def _fmt_scalar(v: Any, style: str | None = None, flow: bool = False) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if v != v:
            return ".nan"
        if v in (float("inf"), float("-inf")):
            return ".inf" if v > 0 else "-.inf"
        return repr(float(v))
    s = str(v)
    simple = s.isprintable() and "\n" not in s
    if style == "'" and simple:
        return "'" + s.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(s, ensure_ascii=False)
    if _plain_ok(s, flow):
        return s
    return json.dumps(s, ensure_ascii=False)


def _flow_text(v: Any, style: str | None) -> str:
    """A flow collection of scalars, strings quoted like ``style`` (None: plain when possible)."""
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"{_fmt_scalar(k, style, True)}: {_fmt_scalar(x, style, True)}" for k, x in v.items()) + "}"
        )
    return "[" + ", ".join(_fmt_scalar(x, style, True) for x in v) + "]"


def _flow_style_of(node: yaml.Node) -> str | None:
    """The quoting of the first string scalar inside a flow collection."""
    items = [x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode) else list(node.value)
    for x in items:
        if isinstance(x, yaml.ScalarNode) and x.tag == "tag:yaml.org,2002:str":
            return x.style if x.style in ("'", '"') else None
    return None


# =========================================================================== rendering


@dataclass
class _Indent:
    mapping: int = 2
    offset: int = 2  # dash column relative to the parent key

    def ruamel(self) -> Any:
        from ruamel.yaml import YAML

        y = YAML(typ="rt")
        y.width = 4096
        y.default_flow_style = False
        y.indent(mapping=max(1, self.mapping), sequence=self.offset + 2, offset=self.offset)
        return y


def _detect_indent(root: yaml.Node | None) -> _Indent:
    steps: Counter[int] = Counter()
    offsets: Counter[int] = Counter()

    def walk(n: yaml.Node) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if isinstance(v, yaml.MappingNode) and not v.flow_style and v.value:
                    d = v.value[0][0].start_mark.column - k.start_mark.column
                    if d > 0 and v.start_mark.line > k.start_mark.line:
                        steps[d] += 1
                if isinstance(v, yaml.SequenceNode) and not v.flow_style and v.value:
                    d = v.start_mark.column - k.start_mark.column
                    if d >= 0 and v.start_mark.line > k.start_mark.line:
                        offsets[d] += 1
                walk(v)
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                walk(v)

    if root is not None:
        walk(root)
    ind = _Indent()
    if steps:
        ind.mapping = steps.most_common(1)[0][0]
    if offsets:
        ind.offset = offsets.most_common(1)[0][0]
    else:
        ind.offset = ind.mapping
    return ind


def _render(value: Any, ind: _Indent, flow: bool = False, style: str | None = None) -> list[str]:
    """Render a one-entry mapping ``{k: v}`` or a one-item list ``[v]`` as block lines.

    ``flow``: the collection value is written in flow style (it was, and holds scalars only).
    """
    if flow:
        if isinstance(value, dict):
            ((k, v),) = value.items()
            return [f"{_fmt_scalar(k)}: {_flow_text(v, style)}"]
        return [f"- {_flow_text(value[0], style)}"]
    if isinstance(value, dict):
        ((k, v),) = value.items()
        if _is_scalar(v) or v == {} or v == []:
            sv = _fmt_scalar(v) if _is_scalar(v) else ("{}" if v == {} else "[]")
            return [f"{_fmt_scalar(k)}: {sv}"]
    elif _is_scalar(value[0]):
        return [f"- {_fmt_scalar(value[0])}"]
    buf = io.StringIO()
    ind.ruamel().dump(_plain(value), buf)
    lines = buf.getvalue().rstrip("\n").split("\n")
    if isinstance(value, list):  # ruamel indents a root sequence by its offset
        strip = min((len(x) - len(x.lstrip(" ")) for x in lines if x.strip()), default=0)
        lines = [x[strip:] if x.strip() else x for x in lines]
    return lines


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _all_scalars(v: Any) -> bool:
    if isinstance(v, dict):
        return all(_is_scalar(x) for x in v.values())
    if isinstance(v, list):
        return all(_is_scalar(x) for x in v)
    return True


# =========================================================================== surgical patching


class _Unpatchable(Exception):
    pass


class _Doc:
    """One composed document: its text, nodes (with marks) and constructed data."""

    def __init__(self, text: str):
        self.text = text
        loader = yaml.SafeLoader(text)
        try:
            self.root = loader.get_single_node()
            self.data = loader.construct_document(self.root) if self.root is not None else None
            self._loader = loader
            self._check(self.root)
        finally:
            loader.dispose()
        self.line_starts = [0]
        for ln in _lines(text):
            self.line_starts.append(self.line_starts[-1] + len(ln))
        self.nl = _newline_of(text)

    def _check(self, root: yaml.Node | None) -> None:
        seen: set[int] = set()

        def walk(n: yaml.Node) -> None:
            if id(n) in seen:
                raise _Unpatchable("alias")
            seen.add(id(n))
            if isinstance(n, yaml.MappingNode):
                for k, v in n.value:
                    if k.tag == "tag:yaml.org,2002:merge" or not isinstance(k, yaml.ScalarNode):
                        raise _Unpatchable("merge key or complex key")
                    walk(k)
                    walk(v)
            elif isinstance(n, yaml.SequenceNode):
                for v in n.value:
                    walk(v)

        if root is not None:
            walk(root)

    def key(self, kn: yaml.Node) -> Any:
        return self._loader.construct_object(kn, deep=True)

    # ---- positions
    def line_start(self, line: int) -> int:
        return self.line_starts[min(line, len(self.line_starts) - 1)]

    def line_end(self, line: int) -> int:
        """Index just past the line's content (before its line break)."""
        start = self.line_start(line)
        nxt = self.line_start(line + 1)
        seg = self.text[start:nxt]
        m = _BREAK.search(seg)
        return start + m.start() if m else nxt

    def starts_line(self, index: int) -> bool:
        line_start = self.text.rfind("\n", 0, index) + 1
        return self.text[line_start:index].strip(" \t") == ""

    def last_line(self, n: yaml.Node) -> int:
        if isinstance(n, yaml.ScalarNode):
            e, s = n.end_mark, n.start_mark
            if e.line > s.line and e.column == 0:
                return e.line - 1
            return e.line
        if isinstance(n, (yaml.MappingNode, yaml.SequenceNode)) and not n.flow_style and n.value:
            last = n.value[-1]
            return self.last_line(last[1] if isinstance(n, yaml.MappingNode) else last)
        return n.end_mark.line

    def splice(self, start: int, end: int, new: str) -> str:
        return self.text[:start] + new + self.text[end:]

    def insert_lines(self, after_line: int, lines: list[str], col: int) -> str:
        pos = self.line_start(after_line + 1)
        pad = " " * col
        block = "".join((pad + ln if ln.strip() else ln) + self.nl for ln in lines)
        if pos == len(self.text) and self.text and not _BREAK.search(self.text[-2:]):
            block = self.nl + block
        return self.splice(pos, pos, block)

    def delete_lines(self, first: int, last: int) -> str:
        return self.splice(self.line_start(first), self.line_start(last + 1), "")


# A "context" says how to replace a node: ("map", mapping, keynode, valuenode),
# ("seq", sequence, index) or ("root",).
_Ctx = tuple


def _first_change(doc: _Doc, node: yaml.Node, old: Any, new: Any, ctx: _Ctx, ind: _Indent) -> str:
    """Apply the first structural change that turns ``old`` into ``new``; return the new text."""
    if (
        isinstance(node, yaml.MappingNode)
        and not node.flow_style
        and node.value
        and isinstance(old, dict)
        and isinstance(new, dict)
        and new
    ):
        entries = [(doc.key(k), k, v) for k, v in node.value]
        for key, kn, vn in entries:
            if key not in new:
                return _delete_key(doc, node, kn, vn, ctx, ind)
        for key, kn, vn in entries:
            if not _same(old[key], new[key]):
                return _first_change(doc, vn, old[key], new[key], ("map", node, kn, vn), ind)
        for key in new:
            if key not in old:
                col = node.value[0][0].start_mark.column  # siblings' column (also after `- `)
                lines = _render({key: new[key]}, ind)
                return doc.insert_lines(doc.last_line(node), lines, col)
        raise _Unpatchable("mapping equal")
    if (
        isinstance(node, yaml.SequenceNode)
        and not node.flow_style
        and node.value
        and isinstance(old, list)
        and isinstance(new, list)
        and new
    ):
        if len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new)):
                if not _same(a, b):
                    return _first_change(doc, node.value[i], a, b, ("seq", node, i), ind)
            raise _Unpatchable("sequence equal")
        i = 0
        while i < min(len(old), len(new)) and _same(old[i], new[i]):
            i += 1
        if len(new) > len(old):
            item_lines = _render([new[i]], ind)
            if i == len(old):
                return _insert_item(doc, node, None, item_lines)
            if _same(old[i], new[i + 1]):
                return _insert_item(doc, node, i, item_lines)
        else:
            if i == len(new) or _same(old[i + 1], new[i]):
                return _delete_item(doc, node, i)
        return _replace(doc, ctx, new, ind, node)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.flow_style:
        # inside a flow collection only scalars are replaced in place; else the whole of it
        pairs: list[tuple[yaml.Node, Any, Any, _Ctx]] = []
        if (
            isinstance(node, yaml.SequenceNode)
            and isinstance(old, list)
            and isinstance(new, list)
            and len(old) == len(new) == len(node.value)
        ):
            pairs = [(node.value[i], a, b, ("seq", node, i)) for i, (a, b) in enumerate(zip(old, new))]
        elif (
            isinstance(node, yaml.MappingNode)
            and isinstance(old, dict)
            and isinstance(new, dict)
            and old.keys() == new.keys()
        ):
            pairs = [(vn, old[doc.key(kn)], new[doc.key(kn)], ("map", node, kn, vn)) for kn, vn in node.value]
        for vn, a, b, c in pairs:
            if not _same(a, b):
                if (
                    isinstance(vn, yaml.ScalarNode)
                    and _is_scalar(b)
                    and vn.style in (None, "'", '"')
                    and vn.start_mark.index < vn.end_mark.index
                ):
                    return doc.splice(vn.start_mark.index, vn.end_mark.index, _fmt_scalar(b, vn.style, flow=True))
                break
        return _replace(doc, ctx, new, ind, node)
    if (
        isinstance(node, yaml.ScalarNode)
        and _is_scalar(new)
        and node.style in (None, "'", '"')
        and node.start_mark.line == node.end_mark.line
        and ctx[0] != "root"
    ):
        text = _fmt_scalar(new, node.style)
        if node.start_mark.index == node.end_mark.index:  # `key:` (null) -> `key: value`
            text = " " + text if doc.text[node.start_mark.index - 1 : node.start_mark.index] == ":" else text
        return doc.splice(node.start_mark.index, node.end_mark.index, text)
    return _replace(doc, ctx, new, ind, node)


def _dash_index(doc: _Doc, item: yaml.Node) -> int | None:
    """Index of the ``-`` introducing a block sequence item."""
    i = item.start_mark.index - 1
    while i >= 0 and doc.text[i] in " \t\r\n":
        i -= 1
    if i >= 0 and doc.text[i] == "-":
        return i
    return None


def _col(doc: _Doc, index: int) -> int:
    return index - (doc.text.rfind("\n", 0, index) + 1)


def _line_of(doc: _Doc, index: int) -> int:
    # line_starts is sorted: bisect
    import bisect

    return bisect.bisect_right(doc.line_starts, index) - 1


def _insert_item(doc: _Doc, seq: yaml.SequenceNode, before: int | None, lines: list[str]) -> str:
    d0 = _dash_index(doc, seq.value[0])
    if d0 is None:
        raise _Unpatchable("no dash")
    col = _col(doc, d0)
    if before is None:
        return doc.insert_lines(doc.last_line(seq), lines, col)
    d = _dash_index(doc, seq.value[before])
    if d is None or not doc.starts_line(d):
        raise _Unpatchable("item not at line start")
    return doc.insert_lines(_line_of(doc, d) - 1, lines, col)


def _delete_item(doc: _Doc, seq: yaml.SequenceNode, i: int) -> str:
    d = _dash_index(doc, seq.value[i])
    if d is None or not doc.starts_line(d):
        raise _Unpatchable("item not at line start")
    return doc.delete_lines(_line_of(doc, d), doc.last_line(seq.value[i]))


def _delete_key(doc: _Doc, mapping: yaml.MappingNode, kn: yaml.Node, vn: yaml.Node, ctx: _Ctx, ind: _Indent) -> str:
    pairs = mapping.value
    idx = next(i for i, (k, _) in enumerate(pairs) if k is kn)
    if doc.starts_line(kn.start_mark.index):
        return doc.delete_lines(kn.start_mark.line, doc.last_line(vn))
    if idx + 1 < len(pairs):  # `- key: v` then siblings: pull the next key up behind the dash
        return doc.splice(kn.start_mark.index, pairs[idx + 1][0].start_mark.index, "")
    raise _Unpatchable("cannot delete key")


def _replace(doc: _Doc, ctx: _Ctx, new: Any, ind: _Indent, node: yaml.Node) -> str:
    flow = bool(getattr(node, "flow_style", False)) and not _is_scalar(new) and _all_scalars(new)
    style = _flow_style_of(node) if flow else None
    if ctx[0] == "map":
        _, mapping, kn, vn = ctx
        if mapping.flow_style:
            raise _Unpatchable("inside a flow mapping")
        lines = _render({doc.key(kn): new}, ind, flow=flow, style=style)
        col = kn.start_mark.column
        end_line = doc.last_line(vn)
        end = doc.line_end(end_line)
        if (
            vn.start_mark.line == kn.start_mark.line
            and isinstance(vn, yaml.ScalarNode)
            and end_line == kn.start_mark.line
        ):
            # keep a trailing comment after a one-line scalar value
            end = vn.end_mark.index
        pad = " " * col
        body = (doc.nl).join([lines[0]] + [(pad + ln if ln.strip() else ln) for ln in lines[1:]])
        return doc.splice(kn.start_mark.index, end, body)
    if ctx[0] == "seq":
        _, seq, i = ctx
        item = seq.value[i]
        d = _dash_index(doc, item)
        if d is None:
            raise _Unpatchable("no dash")
        if seq.flow_style:
            raise _Unpatchable("inside a flow sequence")
        lines = _render([new], ind, flow=flow, style=style)
        col = _col(doc, d)
        end = doc.line_end(doc.last_line(item))
        if isinstance(item, yaml.ScalarNode) and item.start_mark.line == item.end_mark.line:
            end = item.end_mark.index
        pad = " " * col
        body = doc.nl.join([lines[0]] + [(pad + ln if ln.strip() else ln) for ln in lines[1:]])
        return doc.splice(d, end, body)
    raise _Unpatchable("root")


def _surgical(text: str, new: Any) -> str:
    ind: _Indent | None = None
    for _ in range(2000):
        doc = _Doc(text)
        if ind is None:
            ind = _detect_indent(doc.root)
        if _same(doc.data, new):
            return text
        if doc.root is None or not isinstance(doc.data, dict) or not isinstance(new, dict):
            raise _Unpatchable("not a mapping document")
        nxt = _first_change(doc, doc.root, doc.data, new, ("root",), ind)
        if nxt == text:
            raise _Unpatchable("no progress")
        text = nxt
    raise _Unpatchable("too many changes")


def _merge_rt(old: Any, new: Any) -> Any:
    """Update a ruamel round-trip structure in place towards ``new`` (comments kept)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [k for k in old if k not in new]:
            del old[k]
        for k, v in new.items():
            if k in old and not _same(_plain_rt(old[k]), v):
                old[k] = _merge_rt(old[k], v)
            elif k not in old:
                old[k] = v
        return old
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, v in enumerate(new):
            if not _same(_plain_rt(old[i]), v):
                old[i] = _merge_rt(old[i], v)
        return old
    return new


def _plain_rt(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain_rt(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain_rt(x) for x in v]
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    return v


def _roundtrip(chunk: str, new: Any) -> str:
    header, body = _split_header(chunk)
    try:
        root = yaml.compose(body, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    ind = _detect_indent(root)
    y = ind.ruamel()
    y.preserve_quotes = True
    data = y.load(body)
    data = _merge_rt(data, new)
    buf = io.StringIO()
    y.dump(data, buf)
    out = buf.getvalue()
    nl = _newline_of(chunk)
    if nl != "\n":
        out = out.replace("\n", nl)
    return header + out


def patch_document(chunk: str, new: Any) -> str:
    """Return ``chunk`` (one YAML document's text) edited so that it loads as ``new``.

    Minimal, layout-keeping splice edits first; a ruamel.yaml round-trip
    rewrite when those are not possible. The result is always verified.
    """
    for attempt in (_surgical, _roundtrip):
        try:
            out = attempt(chunk, new)
        except (_Unpatchable, yaml.YAMLError, StopIteration, IndexError, ValueError):
            continue
        except Exception:  # ruamel's own errors
            if attempt is _surgical:
                continue
            break
        try:
            if _same(yaml.load(out, Loader=_FastLoader), new):
                return out
        except yaml.YAMLError:
            pass
    raise GitOpsError("could not rewrite the YAML document keeping its layout")


# =========================================================================== objects


def _meta(obj: Any) -> dict[str, Any]:
    m = obj.get("metadata") if isinstance(obj, dict) else None
    return m if isinstance(m, dict) else {}


def _obj_key(obj: Any) -> tuple[str, str, str] | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        return None
    m = _meta(obj)
    name = m.get("name")
    if not isinstance(name, str):
        return None
    ns = m.get("namespace") or "default"
    return obj["kind"], str(ns), name


def _ref(kind: str, ns: str, name: str) -> str:
    s = f"{kind.lower()}/{name}"
    return s if ns == "default" else f"{s} (namespace {ns})"


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    kind = str(obj.get("kind", "")).lower()
    if kind == "pod":
        return spec
    if kind == "cronjob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    tmpl = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        return tmpl["spec"]
    return None


def _validate_label(key: str, value: str | None) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise GitOpsError(f"invalid label key {key!r}: the prefix must be a DNS subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise GitOpsError(
            f"invalid label key {key!r}: a name of at most 63 characters "
            "([A-Za-z0-9], '-', '_', '.'; alphanumeric at both ends)"
        )
    if value is not None and (len(value) > 63 or not _LABEL_VALUE.match(value)):
        raise GitOpsError(
            f"invalid label value {value!r} for {key!r}: at most 63 characters "
            "([A-Za-z0-9], '-', '_', '.'; alphanumeric at both ends)"
        )


# =========================================================================== git


def _git_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")
    }
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    env.setdefault("GIT_EDITOR", "true")
    return env


@dataclass
class _Located:
    file: str  # relative to the repository root, '/'-separated
    chunk: int  # index into split_documents(text)
    document: int  # index as safe_load_all counts documents


class RepoWriter:
    """Makes gitship's commits in the git work tree ``workdir``.

    ``manifests_path`` (relative to ``workdir``) is where manifests live;
    ``branch`` must be the checked-out branch (default: whatever is checked
    out); ``remote`` (e.g. ``"origin"``) turns on fetch + fast-forward before
    and a fast-forward-only push after every commit.

    Every edit returns the new commit's sha, or ``None`` when it would change
    nothing (nothing is committed then). Paths in and out are relative to the
    repository root.
    """

    def __init__(self, workdir: str, manifests_path: str = "", branch: str | None = None, remote: str | None = None):
        self.workdir = os.path.realpath(workdir)
        if not os.path.isdir(self.workdir):
            raise GitOpsError(f"{workdir} is not a directory")
        top = self._git("rev-parse", "--show-toplevel", check=False, cwd=self.workdir)
        if top.returncode != 0:
            raise GitOpsError(f"{workdir} is not a git work tree: {top.stderr.strip()}")
        self.root = os.path.realpath(top.stdout.strip())
        common = self._git("rev-parse", "--git-common-dir").stdout.strip()
        self.git_dir = os.path.realpath(os.path.join(self.root, common))
        self.manifests_dir = os.path.realpath(os.path.join(self.workdir, manifests_path or "."))
        if os.path.commonpath([self.manifests_dir, self.root]) != self.root:
            raise GitOpsError(f"manifests path {manifests_path!r} is outside the repository")
        self.manifests_rel = os.path.relpath(self.manifests_dir, self.root).replace(os.sep, "/")
        if self.manifests_rel == ".":
            self.manifests_rel = ""
        self.branch = branch
        self.remote = remote

    # ------------------------------------------------------------------ git plumbing
    def _git(
        self,
        *args: str,
        check: bool = True,
        cwd: str | None = None,
        input: bytes | None = None,
        text: bool = True,
        config: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[Any]:
        cmd = ["git"]
        for c in config:
            cmd += ["-c", c]
        cmd += list(args)
        try:
            p = subprocess.run(
                cmd, cwd=cwd or self.root, env=_git_env(), input=input, capture_output=True, timeout=GIT_TIMEOUT
            )
        except subprocess.TimeoutExpired as e:
            raise GitOpsError(f"`git {' '.join(args)}` timed out") from e
        except FileNotFoundError as e:
            raise GitOpsError("git is not installed") from e
        if text:
            p = subprocess.CompletedProcess(
                p.args, p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
            )
        if check and p.returncode != 0:
            err = p.stderr if text else p.stderr.decode("utf-8", "replace")
            raise GitOpsError(f"`git {' '.join(args)}` failed: {err.strip()}")
        return p

    def head(self) -> str | None:
        p = self._git("rev-parse", "--verify", "-q", "HEAD", check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def _current_branch(self) -> str:
        p = self._git("symbolic-ref", "-q", "--short", "HEAD", check=False)
        if p.returncode != 0:
            raise GitOpsError(f"{self.root}: HEAD is detached; gitship commits only to a branch")
        cur = p.stdout.strip()
        if self.branch and cur != self.branch:
            raise GitOpsError(f"{self.root}: branch {cur!r} is checked out, not {self.branch!r}")
        return cur

    def _upstream(self, branch: str) -> str:
        """The remote branch name the local branch tracks (default: same name)."""
        p = self._git("rev-parse", "--abbrev-ref", "--symbolic-full-name", f"{branch}@{{upstream}}", check=False)
        up = p.stdout.strip()
        if p.returncode == 0 and self.remote and up.startswith(self.remote + "/"):
            return up[len(self.remote) + 1 :]
        return branch

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        path = os.path.join(self.git_dir, "gitship.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GitOpsError(f"another gitship writer holds {path}") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[str]:
        """Lock, check the branch, sync with the remote; yields the branch name."""
        with self._locked():
            branch = self._current_branch()
            if self.remote:
                self._sync(branch)
            yield branch

    def _sync(self, branch: str) -> None:
        rb = self._upstream(branch)
        tracking = f"refs/remotes/{self.remote}/{rb}"
        p = self._git("fetch", "-q", "--no-tags", self.remote, f"+refs/heads/{rb}:{tracking}", check=False)
        if p.returncode != 0:
            if "couldn't find remote ref" in p.stderr:
                return  # the remote branch does not exist yet: the push creates it
            raise GitOpsError(f"could not fetch {self.remote}/{rb}: {p.stderr.strip()}")
        if self.head() is None:  # an unborn branch: check the remote's out
            p = self._git("read-tree", "-m", "-u", tracking, check=False)
            if p.returncode != 0:
                raise GitOpsError(f"cannot check out {self.remote}/{rb}: {p.stderr.strip()}")
            self._git("update-ref", f"refs/heads/{branch}", tracking)
            return
        p = self._git("merge", "--ff-only", "-q", tracking, check=False)
        if p.returncode != 0:
            raise GitOpsError(
                f"cannot fast-forward {branch} to {self.remote}/{rb} "
                f"(diverged, or local changes in the way): {p.stderr.strip()}"
            )

    def _author_config(self) -> tuple[str, ...]:
        cfg: list[str] = []
        for key, default in (("user.name", DEFAULT_AUTHOR[0]), ("user.email", DEFAULT_AUTHOR[1])):
            p = self._git("config", "--get", key, check=False)
            if p.returncode != 0 or not p.stdout.strip():
                cfg.append(f"{key}={default}")
        return tuple(cfg)

    def _dirty(self, path: str) -> str | None:
        p = self._git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", path)
        return p.stdout or None

    def _check_clean(self, paths: list[str]) -> None:
        for path in paths:
            st = self._dirty(path)
            if st:
                what = "is not committed" if st.startswith("??") else "has uncommitted changes"
                raise GitOpsError(f"{path} {what}; commit or discard them first (gitship commits only its own edits)")

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def _read(self, rel: str) -> bytes | None:
        try:
            with open(self._abs(rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _write(self, rel: str, data: bytes | None) -> None:
        path = self._abs(rel)
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        d = os.path.dirname(path)
        os.makedirs(d, exist_ok=True)
        mode = None
        with contextlib.suppress(FileNotFoundError):
            mode = os.stat(path).st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".gitship-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode if mode is not None else 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _commit(self, changes: dict[str, bytes | None], message: str, branch: str) -> str:
        """Write ``changes`` (path -> content, None = delete), commit only them, push."""
        paths = sorted(changes)
        self._check_clean(paths)
        old_head = self.head()
        backup = {p: self._read(p) for p in paths}
        try:
            for p in paths:
                self._write(p, changes[p])
            self._git("add", "-A", "--", *paths)
            self._git(
                "commit",
                "-q",
                "--no-verify",
                "--allow-empty-message",
                "-m",
                message,
                "--only",
                "--",
                *paths,
                config=self._author_config(),
            )
        except BaseException as e:
            for p in paths:
                self._write(p, backup[p])
            if old_head:
                self._git("reset", "-q", old_head, "--", *paths, check=False)
            else:
                self._git("rm", "-q", "--cached", "--ignore-unmatch", "--", *paths, check=False)
            if isinstance(e, GitOpsError):
                raise GitOpsError(f"commit failed, nothing changed: {e}") from None
            raise
        new_head = self.head()
        assert new_head
        if self.remote:
            rb = self._upstream(branch)
            p = self._git("push", "-q", "--porcelain", self.remote, f"refs/heads/{branch}:refs/heads/{rb}", check=False)
            if p.returncode != 0:
                if old_head:
                    self._git("reset", "-q", "--keep", old_head, check=False)
                else:
                    self._git("update-ref", "-d", f"refs/heads/{branch}", check=False)
                    for path in paths:
                        self._write(path, backup[path])
                    self._git("rm", "-q", "--cached", "--ignore-unmatch", "--", *paths, check=False)
                detail = (p.stderr.strip() or p.stdout.strip()).splitlines()
                raise GitOpsError(
                    f"push to {self.remote}/{rb} was rejected (the remote branch moved since "
                    f"gitship fetched it?); the commit was undone, nothing changed"
                    + (f": {detail[-1]}" if detail else "")
                )
        return new_head

    # ------------------------------------------------------------------ locating objects
    def _manifest_files(self) -> list[str]:
        args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--"]
        args.append(self.manifests_rel or ".")
        out = self._git(*args).stdout
        files = sorted({f for f in out.split("\0") if f})
        ignore = self._ignore_patterns()
        res = []
        for f in files:
            if any(part.startswith(".") for part in f.split("/")[:-1]):
                continue
            rel = os.path.relpath(f, self.manifests_rel) if self.manifests_rel else f
            if any(fnmatch.fnmatch(rel, pat) for pat in ignore):
                continue
            if f.endswith(MANIFEST_SUFFIXES) or f.endswith(TEMPLATE_SUFFIXES):
                if os.path.isfile(self._abs(f)):
                    res.append(f)
        return res

    def _ignore_patterns(self) -> list[str]:
        """The `ignore` globs of the repository's gitship.yaml (files that are not manifests)."""
        data = self._read(os.path.join(self.manifests_rel or "", "gitship.yaml"))
        if not data:
            return []
        try:
            conf = yaml.safe_load(data) or {}
        except yaml.YAMLError:
            return []
        pats = conf.get("ignore") if isinstance(conf, dict) else None
        return [p for p in pats if isinstance(p, str)] if isinstance(pats, list) else []

    def _scan(self, rel: str) -> list[tuple[int, int | None, Any]]:
        """(chunk index, document index, object) for each parseable document of a file."""
        data = self._read(rel)
        if data is None:
            return []
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return []
        chunks = split_documents(text)
        out = []
        for i, (c, d) in enumerate(zip(chunks, _doc_indices(chunks))):
            if d is None:
                continue
            try:
                obj = yaml.load(c, Loader=_FastLoader)
            except yaml.YAMLError:
                continue
            out.append((i, d, obj))
        return out

    def _template_declares(self, rel: str, key: tuple[str, str, str]) -> bool:
        data = self._read(rel) or b""
        text = data.decode("utf-8", "replace")
        rendered = self._render_template(rel, text)
        if rendered is not None:
            try:
                for obj in yaml.load_all(rendered, Loader=_FastLoader):
                    k = _obj_key(obj)
                    if k and k[0].lower() == key[0].lower() and k[1:] == key[1:]:
                        return True
                return False
            except yaml.YAMLError:
                pass
        # heuristic: a document with `kind: <kind>` and `name: <name>` lines
        kind_re = re.compile(rf"^\s*kind:\s*[\"']?{re.escape(key[0])}[\"']?\s*(#.*)?$", re.M | re.I)
        name_re = re.compile(rf"^\s*name:\s*[\"']?{re.escape(key[2])}[\"']?\s*(#.*)?$", re.M)
        return any(kind_re.search(c) and name_re.search(c) for c in split_documents(text))

    def _render_template(self, rel: str, text: str) -> str | None:
        try:
            from reconciler.manifests.render import render
        except Exception:
            return None
        values: dict[str, Any] = {}
        for cfg in ("gitship.yaml", "gitship.yml"):
            raw = self._read(cfg)
            if raw is not None:
                try:
                    v = (yaml.safe_load(raw) or {}).get("values") or {}
                    values = v if isinstance(v, dict) else {}
                except (yaml.YAMLError, AttributeError):
                    pass
                break
        try:
            return render(rel, text, values)
        except Exception:
            return None

    def _index(self) -> tuple[dict[tuple[str, str, str], list[_Located]], list[str]]:
        """(lowercased object key -> where it is declared, template files)."""
        index: dict[tuple[str, str, str], list[_Located]] = {}
        templates: list[str] = []
        for rel in self._manifest_files():
            if rel.endswith(TEMPLATE_SUFFIXES):
                templates.append(rel)
                continue
            for ci, di, obj in self._scan(rel):
                k = _obj_key(obj)
                if k:
                    index.setdefault((k[0].lower(), k[1], k[2]), []).append(_Located(rel, ci, di or 0))
        return index, templates

    def _locate(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        index: tuple[dict[tuple[str, str, str], list[_Located]], list[str]] | None = None,
    ) -> _Located:
        ns = namespace or "default"
        objects, templates = index or self._index()
        hits = objects.get((kind.lower(), ns, name), [])
        if len(hits) > 1:
            where = ", ".join(f"{h.file} (document {h.document + 1})" for h in hits)
            raise GitOpsError(f"{_ref(kind, ns, name)} is declared more than once: {where}")
        if hits:
            return hits[0]
        for rel in templates:
            if self._template_declares(rel, (kind, ns, name)):
                raise GitOpsError(
                    f"{_ref(kind, ns, name)} is rendered from the template {rel}; "
                    "edit the template and commit it yourself"
                )
        where = self.manifests_rel or "the repository"
        raise NotFound(f'{kind.lower()} "{name}" not found in namespace {ns} (no manifest under {where} declares it)')

    def find(self, kind: str, namespace: str | None, name: str) -> tuple[str, int]:
        """(file relative to the repository root, 0-based document index) declaring the object.

        Raises NotFound, or GitOpsError when it comes from a ``*.yaml.j2``
        template or is declared more than once.
        """
        loc = self._locate(kind, namespace, name)
        return loc.file, loc.document

    # ------------------------------------------------------------------ edits
    def _edit(self, kind: str, ns: str | None, name: str, mutate: Callable[[dict[str, Any]], str | None]) -> str | None:
        """Locate, mutate a copy of the object, patch its document, commit.

        ``mutate`` changes the object in place and returns the commit message
        (None: nothing to do).
        """
        with self._transaction() as branch:
            loc = self._locate(kind, ns, name)
            self._check_clean([loc.file])
            raw = self._read(loc.file)
            assert raw is not None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise GitOpsError(f"{loc.file} is not UTF-8 text") from None
            chunks = split_documents(text)
            old = yaml.load(chunks[loc.chunk], Loader=_FastLoader)
            new = copy.deepcopy(old)
            message = mutate(new)
            if message is None or _same(old, new):
                return None
            chunks[loc.chunk] = patch_document(chunks[loc.chunk], new)
            return self._commit({loc.file: "".join(chunks).encode("utf-8")}, message, branch)

    def set_labels(
        self,
        kind: str,
        ns: str | None,
        name: str,
        set: dict[str, str],
        remove: list[str] | None = None,
        overwrite: bool = False,
    ) -> str | None:
        """kubectl label: add/change ``set``, delete ``remove`` (missing ones are ignored).

        Changing an existing label's value needs ``overwrite``. An emptied
        ``labels`` mapping is removed from the manifest.
        """
        remove = list(remove or [])
        for k, v in set.items():
            _validate_label(k, str(v))
        for k in remove:
            _validate_label(k, None)
            if k in set:
                raise GitOpsError(f"can not both modify and remove the label {k!r} in the same command")

        def mutate(obj: dict[str, Any]) -> str | None:
            meta = obj.setdefault("metadata", {})
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = {}
            changed: list[str] = []
            for k, v in set.items():
                v = str(v)
                if k in labels:
                    if labels[k] == v:
                        continue
                    if not overwrite:
                        raise GitOpsError(f"'{k}' already has a value ({labels[k]}), and --overwrite is false")
                labels[k] = v
                changed.append(f"{k}={v}")
            for k in remove:
                if k in labels:
                    del labels[k]
                    changed.append(f"{k}-")
            if not changed:
                return None
            if labels:
                meta["labels"] = labels
            else:
                meta.pop("labels", None)
            return f"label {_ref(kind, ns or 'default', name)}: {', '.join(changed)}"

        return self._edit(kind, ns, name, mutate)

    def set_image(self, kind: str, ns: str | None, name: str, images: dict[str, str]) -> str | None:
        """kubectl set image: ``{container name: image}``; ``"*"`` = every container."""
        if not images:
            raise GitOpsError("at least one image update is required")

        def mutate(obj: dict[str, Any]) -> str | None:
            spec = _pod_spec(obj)
            if spec is None:
                raise GitOpsError(f"{_ref(kind, ns or 'default', name)} has no pod template")
            containers = [
                c for key in ("initContainers", "containers") for c in (spec.get(key) or []) if isinstance(c, dict)
            ]
            changed: list[str] = []
            for cname, image in images.items():
                if not image:
                    raise GitOpsError(f"an image is required for container {cname}")
                targets = containers if cname == "*" else [c for c in containers if c.get("name") == cname]
                if not targets:
                    raise GitOpsError(f"unable to find container named {cname}")
                if any(c.get("image") != image for c in targets):
                    for c in targets:
                        c["image"] = image
                    changed.append(f"{cname}={image}")
            if not changed:
                return None
            return f"set image {_ref(kind, ns or 'default', name)}: {', '.join(changed)}"

        return self._edit(kind, ns, name, mutate)

    def scale(self, kind: str, ns: str | None, name: str, replicas: int) -> str | None:
        """Set ``spec.replicas`` (Deployment, ReplicaSet, StatefulSet...)."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise GitOpsError(f"replicas must be a non-negative integer, not {replicas!r}")

        def mutate(obj: dict[str, Any]) -> str | None:
            if str(obj.get("kind", "")).lower() in ("pod", "service", "configmap", "secret"):
                raise GitOpsError(f"{_ref(kind, ns or 'default', name)} cannot be scaled")
            spec = obj.setdefault("spec", {})
            if not isinstance(spec, dict):
                raise GitOpsError(f"{_ref(kind, ns or 'default', name)}: spec is not a mapping")
            before = spec.get("replicas", 1)
            if _same(before, replicas):
                return None
            spec["replicas"] = replicas
            return f"scale {_ref(kind, ns or 'default', name)}: replicas {before} -> {replicas}"

        return self._edit(kind, ns, name, mutate)

    def set_paused(self, kind: str, ns: str | None, name: str, paused: bool) -> str | None:
        """rollout pause (``spec.paused: true``) / resume (deletes ``spec.paused``)."""

        def mutate(obj: dict[str, Any]) -> str | None:
            ref = _ref(kind, ns or "default", name)
            if str(obj.get("kind", "")).lower() != "deployment":
                raise GitOpsError(f"{ref}: only deployments can be paused and resumed")
            spec = obj.setdefault("spec", {})
            now = spec.get("paused") is True
            if paused:
                if now:
                    raise GitOpsError(f"{ref} is already paused")
                spec["paused"] = True
                return f"rollout pause {ref}"
            if not now:
                raise GitOpsError(f"{ref} is not paused")
            del spec["paused"]
            return f"rollout resume {ref}"

        return self._edit(kind, ns, name, mutate)

    def set_template(self, kind: str, ns: str | None, name: str, template: dict[str, Any], message: str) -> str | None:
        """Replace ``spec.template`` (rollout undo when a plain revert is not possible).

        Parts of the template that do not change keep their text and comments.
        """
        if not isinstance(template, dict):
            raise GitOpsError("the pod template must be a mapping")

        def mutate(obj: dict[str, Any]) -> str | None:
            spec = obj.setdefault("spec", {})
            if not isinstance(spec, dict):
                raise GitOpsError(f"{_ref(kind, ns or 'default', name)}: spec is not a mapping")
            spec["template"] = copy.deepcopy(template)
            return message

        return self._edit(kind, ns, name, mutate)

    # ------------------------------------------------------------------ files
    def _target_path(self, filename: str) -> str:
        if not filename or filename.startswith("/") or "\\" in filename:
            raise GitOpsError(f"invalid manifest file name {filename!r}")
        parts = [p for p in filename.split("/") if p not in ("", ".")]
        if not parts or any(p == ".." or p.startswith(".") for p in parts):
            raise GitOpsError(f"invalid manifest file name {filename!r}")
        base = parts[-1]
        if base.endswith(TEMPLATE_SUFFIXES):
            raise GitOpsError(f"{filename}: gitship does not write templates")
        if base.endswith(".json"):
            base = base[: -len(".json")] + ".yaml"
        elif not base.endswith(MANIFEST_SUFFIXES):
            base += ".yaml"
        parts[-1] = base
        return "/".join(([self.manifests_rel] if self.manifests_rel else []) + parts)

    def add_file(self, filename: str, data: bytes, overwrite: bool, message: str) -> str | None:
        """``create -f`` (overwrite=False) or ``apply -f`` (overwrite=True) of a manifest file.

        create: GitOpsError "AlreadyExists" if any object of the file is already
        declared in the repository (or the file exists); else the file is added
        verbatim under manifests_path.
        apply: each document whose object is already declared somewhere is
        replaced in place (verbatim; left alone when it loads the same); the
        other documents go to ``filename`` (created, or appended to).
        Returns the commit sha, or None when nothing changes.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise GitOpsError(f"{filename} is not UTF-8 text") from None
        chunks = split_documents(text)
        docs: list[tuple[int, Any, tuple[str, str, str]]] = []
        seen: set[tuple[str, str, str]] = set()
        for ci, (c, di) in enumerate(zip(chunks, _doc_indices(chunks))):
            if di is None:
                continue
            try:
                obj = yaml.load(c, Loader=_FastLoader)
            except yaml.YAMLError as e:
                raise GitOpsError(f"{filename} (document {di + 1}) is not valid YAML: {e}") from None
            if obj is None:
                continue
            k = _obj_key(obj)
            if k is None:
                raise GitOpsError(f"{filename} (document {di + 1}): every document needs kind and metadata.name")
            kl = (k[0].lower(), k[1], k[2])
            if kl in seen:
                raise GitOpsError(f"{filename}: {_ref(*k)} is declared twice")
            seen.add(kl)
            docs.append((ci, obj, k))
        if not docs:
            raise GitOpsError(f"{filename} declares no objects")
        target = self._target_path(filename)

        with self._transaction() as branch:
            located: dict[int, _Located] = {}
            index = self._index()
            for ci, obj, k in docs:
                try:
                    located[ci] = self._locate(*k, index=index)
                except NotFound:
                    continue
                except GitOpsError as e:
                    if overwrite or "rendered from the template" not in str(e):
                        raise
                    raise GitOpsError(f'AlreadyExists: {k[0].lower()} "{k[2]}" already exists ({e})') from None
            if not overwrite:
                if located:
                    ci = next(iter(located))
                    k = next(d[2] for d in docs if d[0] == ci)
                    raise GitOpsError(
                        f'AlreadyExists: {k[0].lower()} "{k[2]}" already exists (declared in {located[ci].file})'
                    )
                if os.path.lexists(self._abs(target)):
                    raise GitOpsError(f"AlreadyExists: {target} already exists in the repository")
                return self._commit({target: data}, message, branch)

            # apply
            new_texts: dict[str, list[str]] = {}
            for ci, obj, k in docs:
                loc = located.get(ci)
                if loc is None:
                    continue
                if loc.file not in new_texts:
                    raw = self._read(loc.file) or b""
                    new_texts[loc.file] = split_documents(raw.decode("utf-8"))
                fchunks = new_texts[loc.file]
                old_obj = yaml.load(fchunks[loc.chunk], Loader=_FastLoader)
                if _same(old_obj, obj):
                    continue
                fchunks[loc.chunk] = _replace_chunk(fchunks[loc.chunk], chunks[ci], last=loc.chunk == len(fchunks) - 1)
            rest = [ci for ci, _, _ in docs if ci not in located]
            changes: dict[str, bytes | None] = {}
            for f, fchunks in new_texts.items():
                new = "".join(fchunks).encode("utf-8")
                if new != self._read(f):
                    changes[f] = new
            if rest:
                if target in changes or os.path.exists(self._abs(target)):
                    base = changes.get(target) or self._read(target) or b""
                    btxt = base.decode("utf-8")
                    nl = _newline_of(btxt)
                    if btxt and not btxt.endswith(("\n", "\r")):
                        btxt += nl
                    for ci in rest:
                        body = _split_header(chunks[ci])[1]
                        btxt += "---" + nl + _ensure_nl(body, nl)
                    changes[target] = btxt.encode("utf-8")
                elif len(rest) == len(docs):
                    changes[target] = data
                else:
                    nl = _newline_of(text)
                    out = ""
                    for j, ci in enumerate(rest):
                        body = _split_header(chunks[ci])[1]
                        out += ("---" + nl if j else "") + _ensure_nl(body, nl)
                    changes[target] = out.encode("utf-8")
            if not changes:
                return None
            return self._commit(changes, message, branch)

    # ------------------------------------------------------------------ revert
    def revert(self, sha: str, message_extra: str = "") -> str:
        """Commit the inverse of ``sha`` (like ``git revert --no-edit``).

        Done as a per-file three-way merge (``git merge-file``) written to the
        work tree and committed with ``--only``, so nothing else a user has
        staged is touched. A conflict raises GitOpsError and changes nothing.
        """
        with self._transaction() as branch:
            full = self._git("rev-parse", "--verify", "-q", f"{sha}^{{commit}}", check=False)
            if full.returncode != 0:
                raise GitOpsError(f"no such commit: {sha}")
            sha = full.stdout.strip()
            parents = self._git("rev-list", "--parents", "-n", "1", sha).stdout.split()[1:]
            if len(parents) > 1:
                raise GitOpsError(f"{sha[:12]} is a merge commit; gitship does not revert merges")
            parent = parents[0] if parents else None
            diff_args = ["diff-tree", "-r", "-z", "--no-renames", "--name-only", "--no-commit-id"]
            out = self._git(*diff_args, *([parent, sha] if parent else ["--root", sha])).stdout
            paths = [p for p in out.split("\0") if p]
            if not paths:
                raise GitOpsError(f"{sha[:12]} changes no files; nothing to revert")
            self._check_clean(paths)
            changes: dict[str, bytes | None] = {}
            conflicts: list[str] = []
            for p in paths:
                base = self.file_at(sha, p)  # what the commit made
                theirs = self.file_at(parent, p) if parent else None  # what was before
                ours = self.file_at("HEAD", p)
                if ours == base:
                    result = theirs
                elif ours == theirs:
                    continue
                elif ours is None or base is None or theirs is None:
                    conflicts.append(p)
                    continue
                else:
                    merged = self._merge_file(ours, base, theirs)
                    if merged is None:
                        conflicts.append(p)
                        continue
                    result = merged
                if result != ours:
                    changes[p] = result
            subject = self._git("log", "-1", "--format=%s", sha).stdout.strip()
            if conflicts:
                raise GitOpsError(
                    f"cannot revert {sha[:12]} ({subject}): it conflicts with later "
                    f"changes to {', '.join(conflicts)}; nothing was changed"
                )
            if not changes:
                raise GitOpsError(f"reverting {sha[:12]} ({subject}) changes nothing (already reverted?)")
            msg = f'Revert "{subject}"\n\nThis reverts commit {sha}.'
            if message_extra:
                msg += "\n\n" + message_extra.strip()
            return self._commit(changes, msg, branch)

    def _merge_file(self, ours: bytes, base: bytes, theirs: bytes) -> bytes | None:
        with tempfile.TemporaryDirectory(prefix="gitship-merge-") as d:
            names = []
            for n, content in (("ours", ours), ("base", base), ("theirs", theirs)):
                path = os.path.join(d, n)
                with open(path, "wb") as f:
                    f.write(content)
                names.append(path)
            p = self._git("merge-file", "-p", "-q", *names, check=False, text=False)
            if p.returncode != 0:
                return None
            return p.stdout

    # ------------------------------------------------------------------ history
    _LOG_FMT = "%x1e%H%x1f%h%x1f%an%x1f%ae%x1f%at%x1f%s%x1f"

    def _parse_log(self, out: str) -> list[dict[str, Any]]:
        res = []
        for rec in out.split("\x1e"):
            if not rec.strip("\0\n"):
                continue
            fields = rec.split("\x1f")
            if len(fields) < 7:
                continue
            files = [f.strip("\n") for f in fields[6].split("\0") if f.strip("\n")]
            res.append(
                {
                    "sha": fields[0],
                    "short": fields[1],
                    "author": fields[2],
                    "email": fields[3],
                    "time": int(fields[4] or 0),
                    "subject": fields[5],
                    "files": files,
                }
            )
        return res

    def log(self, path: str | None = None, n: int = 50) -> list[dict[str, Any]]:
        """Newest first: dict(sha, short, author, email, time (epoch), subject, files)."""
        if self.head() is None:
            return []
        args = ["log", f"-n{int(n)}", "-z", "--name-only", "--no-renames", f"--format={self._LOG_FMT}", "HEAD", "--"]
        if path:
            args.append(path)
        return self._parse_log(self._git(*args).stdout)

    def commit_info(self, sha: str) -> dict[str, Any]:
        p = self._git(
            "log", "-1", "-z", "--name-only", "--no-renames", f"--format={self._LOG_FMT}", sha, "--", check=False
        )
        got = self._parse_log(p.stdout) if p.returncode == 0 else []
        if not got:
            raise GitOpsError(f"no such commit: {sha}")
        return got[0]

    def file_at(self, sha: str, path: str) -> bytes | None:
        """The file's content at a commit, or None (no such file or commit)."""
        p = self._git("cat-file", "blob", f"{sha}:{path}", check=False, text=False)
        return p.stdout if p.returncode == 0 else None

    def introducing_commit(self, file: str, predicate: Callable[[bytes | None], bool]) -> str | None:
        """Newest commit C touching ``file`` with predicate(file at C) and not predicate(at C^)."""
        if self.head() is None:
            return None
        shas = self._git("log", "--format=%H", "HEAD", "--", file).stdout.split()
        cache: dict[str, bool] = {}

        def holds(rev: str) -> bool:
            if rev not in cache:
                cache[rev] = bool(predicate(self.file_at(rev, file)))
            return cache[rev]

        for c in shas:
            if holds(c) and not holds(c + "^"):
                return c
        return None

    def changed_files(self, sha: str) -> list[str]:
        """The paths a commit changed."""
        return list(self.commit_info(sha)["files"])

    def manifest_files(self, sha: str) -> list[str]:
        """The *.yaml / *.yml files under the manifests path at a commit."""
        rel = os.path.relpath(self.manifests_dir, os.path.realpath(self.workdir))
        out = self._git("ls-tree", "-r", "--name-only", "-z", sha, "--", rel, check=False).stdout
        return [p for p in out.split("\0") if p.endswith((".yaml", ".yml"))]


def _ensure_nl(s: str, nl: str) -> str:
    return s if not s or s.endswith(("\n", "\r")) else s + nl


def _replace_chunk(old: str, new: str, last: bool) -> str:
    """``new``'s document body under ``old``'s ``---`` header line."""
    header, _ = _split_header(old)
    body = _split_header(new)[1]
    nl = _newline_of(old)
    if not last or old.endswith(("\n", "\r")):
        body = _ensure_nl(body, nl)
    return header + body
