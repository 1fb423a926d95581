"""The YAML text-patching engine: edit one document's text so that it loads as a new value.

Pure: no I/O (text in, text out). The document is composed with PyYAML, whose
nodes carry exact source positions; the structural difference between the old
and the new value is found one change at a time, and each change is spliced
into the original text: a scalar replaced in place, a key line inserted at the
column of its siblings, a key's or an item's lines deleted, a subtree
re-rendered at its own column. Comments, quoting, odd indentation (the 1-space
style of hand-written manifests), flow collections, CRLF line breaks and
trailing spaces of untouched lines all survive, so ``set image`` is a one-line
diff.

When no such splice can be made (anchors and aliases, merge keys, complex
keys, an edit inside a flow mapping that is not a scalar...), the document is
rewritten with a ruamel.yaml round-trip instead (comments kept, indentation
detected from the document). Every result is loaded again and compared with
the intended value; ``patch_document`` never returns text that loads as
anything else.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import GitOpsError

from .documents import BREAK, lines, load, newline_of, same, split_header
from .yamltext import Indent, all_scalars, detect_indent, flow_style_of, fmt_scalar, is_scalar, render, ruamel_dump

__all__ = ["patch_document"]

_MAX_CHANGES = 2000


class _Unpatchable(Exception):
    """No splice edit can make this change; the round-trip rewrite is tried instead."""


class _Doc:
    """One composed document: its text, nodes (with marks) and constructed data."""

    def __init__(self, text: str):
        self.text = text
        loader = yaml.SafeLoader(text)
        try:
            self.root: yaml.Node | None = loader.get_single_node()
            self.data: Any = loader.construct_document(self.root) if self.root is not None else None
            self._loader = loader
            _check_patchable(self.root)
        finally:
            loader.dispose()
        self.line_starts = [0]
        for ln in lines(text):
            self.line_starts.append(self.line_starts[-1] + len(ln))
        self.nl = newline_of(text)

    def key(self, kn: yaml.Node) -> Any:
        return self._loader.construct_object(kn, deep=True)

    # ---- positions
    def line_start(self, line: int) -> int:
        return self.line_starts[min(line, len(self.line_starts) - 1)]

    def line_end(self, line: int) -> int:
        """Index just past the line's content (before its line break)."""
        start = self.line_start(line)
        nxt = self.line_start(line + 1)
        m = BREAK.search(self.text[start:nxt])
        return start + m.start() if m else nxt

    def line_of(self, index: int) -> int:
        return bisect.bisect_right(self.line_starts, index) - 1

    def col(self, index: int) -> int:
        return index - (self.text.rfind("\n", 0, index) + 1)

    def starts_line(self, index: int) -> bool:
        line_start = self.text.rfind("\n", 0, index) + 1
        return self.text[line_start:index].strip(" \t") == ""

    def last_line(self, n: yaml.Node) -> int:
        """The last line holding ``n``'s own text (a block scalar's final break is not in it)."""
        if isinstance(n, yaml.ScalarNode):
            e, s = n.end_mark, n.start_mark
            if e.line > s.line and e.column == 0:
                return int(e.line) - 1
            return int(e.line)
        if isinstance(n, (yaml.MappingNode, yaml.SequenceNode)) and not n.flow_style and n.value:
            last = n.value[-1]
            return self.last_line(last[1] if isinstance(n, yaml.MappingNode) else last)
        return int(n.end_mark.line)

    def dash(self, item: yaml.Node) -> int | None:
        """Index of the ``-`` introducing a block sequence item."""
        i = int(item.start_mark.index) - 1
        while i >= 0 and self.text[i] in " \t\r\n":
            i -= 1
        if i >= 0 and self.text[i] == "-":
            return i
        return None

    # ---- edits (each returns the new text)
    def splice(self, start: int, end: int, new: str) -> str:
        return self.text[:start] + new + self.text[end:]

    def insert_lines(self, after_line: int, new_lines: list[str], col: int) -> str:
        pos = self.line_start(after_line + 1)
        pad = " " * col
        block = "".join((pad + ln if ln.strip() else ln) + self.nl for ln in new_lines)
        if pos == len(self.text) and self.text and not BREAK.search(self.text[-2:]):
            block = self.nl + block
        return self.splice(pos, pos, block)

    def delete_lines(self, first: int, last: int) -> str:
        return self.splice(self.line_start(first), self.line_start(last + 1), "")

    def indented(self, rendered: list[str], col: int) -> str:
        """Rendered lines joined, every line after the first padded to ``col``."""
        pad = " " * col
        return self.nl.join([rendered[0]] + [(pad + ln if ln.strip() else ln) for ln in rendered[1:]])


def _check_patchable(root: yaml.Node | None) -> None:
    """Refuse aliases, merge keys and complex keys (splicing their text would change other values)."""
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


@dataclass(frozen=True)
class _Ctx:
    """Where a node sits, which says how to replace it: under a mapping key, as a sequence item, or the root."""

    parent: yaml.Node | None = None  # None: the root
    key: yaml.Node | None = None  # set in a mapping
    value: yaml.Node | None = None  # set in a mapping
    index: int = -1  # set in a sequence

    @property
    def in_mapping(self) -> bool:
        return isinstance(self.parent, yaml.MappingNode)


_ROOT = _Ctx()


# =========================================================================== one change


def _first_change(doc: _Doc, node: yaml.Node, old: Any, new: Any, ctx: _Ctx, ind: Indent) -> str:
    """Apply the first structural change that turns ``old`` into ``new``; return the new text."""
    block = not getattr(node, "flow_style", False)
    if isinstance(node, yaml.MappingNode) and block and node.value and isinstance(old, dict) and new:
        if isinstance(new, dict):
            return _change_mapping(doc, node, old, new, ind)
    if isinstance(node, yaml.SequenceNode) and block and node.value and isinstance(old, list) and new:
        if isinstance(new, list):
            return _change_sequence(doc, node, old, new, ctx, ind)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not block:
        return _change_flow(doc, node, old, new, ctx, ind)
    if (
        isinstance(node, yaml.ScalarNode)
        and is_scalar(new)
        and node.style in (None, "'", '"')
        and node.start_mark.line == node.end_mark.line
        and ctx.parent is not None
    ):
        text = fmt_scalar(new, node.style)
        start = node.start_mark.index
        if start == node.end_mark.index:  # `key:` (null) -> `key: value`
            text = " " + text if doc.text[start - 1 : start] == ":" else text
        return doc.splice(start, node.end_mark.index, text)
    return _replace(doc, ctx, new, ind, node)


def _change_mapping(doc: _Doc, node: yaml.MappingNode, old: dict[Any, Any], new: dict[Any, Any], ind: Indent) -> str:
    """A block mapping: delete a key, else change a value, else insert a key after the last one."""
    entries = [(doc.key(k), k, v) for k, v in node.value]
    for key, kn, vn in entries:
        if key not in new:
            return _delete_key(doc, node, kn, vn)
    for key, kn, vn in entries:
        if not same(old[key], new[key]):
            return _first_change(doc, vn, old[key], new[key], _Ctx(node, kn, vn), ind)
    for key in new:
        if key not in old:
            col = node.value[0][0].start_mark.column  # siblings' column (also after `- `)
            return doc.insert_lines(doc.last_line(node), render({key: new[key]}, ind), col)
    raise _Unpatchable("mapping equal")


def _change_sequence(doc: _Doc, node: yaml.SequenceNode, old: list[Any], new: list[Any], ctx: _Ctx, ind: Indent) -> str:
    """A block sequence: change an item, insert or delete one item, else re-render it whole."""
    if len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            if not same(a, b):
                return _first_change(doc, node.value[i], a, b, _Ctx(node, index=i), ind)
        raise _Unpatchable("sequence equal")
    i = 0
    while i < min(len(old), len(new)) and same(old[i], new[i]):
        i += 1
    if len(new) > len(old):
        item_lines = render([new[i]], ind)
        if i == len(old):
            return _insert_item(doc, node, None, item_lines)
        if same(old[i], new[i + 1]):
            return _insert_item(doc, node, i, item_lines)
    elif i == len(new) or same(old[i + 1], new[i]):
        return _delete_item(doc, node, i)
    return _replace(doc, ctx, new, ind, node)


def _change_flow(doc: _Doc, node: yaml.Node, old: Any, new: Any, ctx: _Ctx, ind: Indent) -> str:
    """Inside a flow collection only a scalar is replaced in place; else the whole collection is."""
    pairs: list[tuple[yaml.Node, Any, Any]] = []
    if isinstance(node, yaml.SequenceNode) and isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new) == len(node.value):
            pairs = [(node.value[i], a, b) for i, (a, b) in enumerate(zip(old, new))]
    elif isinstance(node, yaml.MappingNode) and isinstance(old, dict) and isinstance(new, dict):
        if old.keys() == new.keys():
            pairs = [(vn, old[doc.key(kn)], new[doc.key(kn)]) for kn, vn in node.value]
    for vn, a, b in pairs:
        if not same(a, b):
            if (
                isinstance(vn, yaml.ScalarNode)
                and is_scalar(b)
                and vn.style in (None, "'", '"')
                and vn.start_mark.index < vn.end_mark.index
            ):
                return doc.splice(vn.start_mark.index, vn.end_mark.index, fmt_scalar(b, vn.style, flow=True))
            break
    return _replace(doc, ctx, new, ind, node)


def _insert_item(doc: _Doc, seq: yaml.SequenceNode, before: int | None, item_lines: list[str]) -> str:
    d0 = doc.dash(seq.value[0])
    if d0 is None:
        raise _Unpatchable("no dash")
    col = doc.col(d0)
    if before is None:
        return doc.insert_lines(doc.last_line(seq), item_lines, col)
    d = doc.dash(seq.value[before])
    if d is None or not doc.starts_line(d):
        raise _Unpatchable("item not at line start")
    return doc.insert_lines(doc.line_of(d) - 1, item_lines, col)


def _delete_item(doc: _Doc, seq: yaml.SequenceNode, i: int) -> str:
    d = doc.dash(seq.value[i])
    if d is None or not doc.starts_line(d):
        raise _Unpatchable("item not at line start")
    return doc.delete_lines(doc.line_of(d), doc.last_line(seq.value[i]))


def _delete_key(doc: _Doc, mapping: yaml.MappingNode, kn: yaml.Node, vn: yaml.Node) -> str:
    pairs = mapping.value
    idx = next(i for i, (k, _) in enumerate(pairs) if k is kn)
    if doc.starts_line(kn.start_mark.index):
        return doc.delete_lines(kn.start_mark.line, doc.last_line(vn))
    if idx + 1 < len(pairs):  # `- key: v` then siblings: pull the next key up behind the dash
        return doc.splice(kn.start_mark.index, pairs[idx + 1][0].start_mark.index, "")
    raise _Unpatchable("cannot delete key")


def _replace(doc: _Doc, ctx: _Ctx, new: Any, ind: Indent, node: yaml.Node) -> str:
    """Re-render the node's whole entry (``key: value`` or ``- item``) at its own column."""
    flow = bool(getattr(node, "flow_style", False)) and not is_scalar(new) and all_scalars(new)
    style = flow_style_of(node) if flow else None
    if ctx.parent is None:
        raise _Unpatchable("root")
    if ctx.parent.flow_style:
        raise _Unpatchable("inside a flow collection")
    if ctx.in_mapping:
        kn, vn = ctx.key, ctx.value
        assert kn is not None and vn is not None
        end_line = doc.last_line(vn)
        end = doc.line_end(end_line)
        if (
            vn.start_mark.line == kn.start_mark.line
            and isinstance(vn, yaml.ScalarNode)
            and end_line == kn.start_mark.line
        ):
            end = vn.end_mark.index  # keep a trailing comment after a one-line scalar value
        rendered = render({doc.key(kn): new}, ind, flow=flow, style=style)
        return doc.splice(kn.start_mark.index, end, doc.indented(rendered, kn.start_mark.column))
    item = ctx.parent.value[ctx.index]
    d = doc.dash(item)
    if d is None:
        raise _Unpatchable("no dash")
    end = doc.line_end(doc.last_line(item))
    if isinstance(item, yaml.ScalarNode) and item.start_mark.line == item.end_mark.line:
        end = item.end_mark.index
    rendered = render([new], ind, flow=flow, style=style)
    return doc.splice(d, end, doc.indented(rendered, doc.col(d)))


# =========================================================================== the two strategies


def _surgical(text: str, new: Any) -> str:
    ind: Indent | None = None
    seen = {text}  # a splice that undoes an earlier one loops: stop at once, not after _MAX_CHANGES passes
    for _ in range(_MAX_CHANGES):
        doc = _Doc(text)
        if ind is None:
            ind = detect_indent(doc.root)
        if same(doc.data, new):
            return text
        if doc.root is None or not isinstance(doc.data, dict) or not isinstance(new, dict):
            raise _Unpatchable("not a mapping document")
        nxt = _first_change(doc, doc.root, doc.data, new, _ROOT, ind)
        if nxt in seen:
            raise _Unpatchable("no progress")
        seen.add(nxt)
        text = nxt
    raise _Unpatchable("too many changes")


def _plain_rt(v: Any) -> Any:
    """A ruamel round-trip value as plain Python values."""
    if isinstance(v, dict):
        return {k: _plain_rt(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain_rt(x) for x in v]
    for t in (bool, int, float, str):
        if isinstance(v, t):
            return t(v)
    return v


def _merge_rt(old: Any, new: Any) -> Any:
    """Update a ruamel round-trip structure in place towards ``new`` (comments kept)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [k for k in old if k not in new]:
            del old[k]
        for k, v in new.items():
            if k in old and not same(_plain_rt(old[k]), v):
                old[k] = _merge_rt(old[k], v)
            elif k not in old:
                old[k] = v
        return old
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, v in enumerate(new):
            if not same(_plain_rt(old[i]), v):
                old[i] = _merge_rt(old[i], v)
        return old
    return new


def _roundtrip(chunk: str, new: Any) -> str:
    header, body = split_header(chunk)
    try:
        root = yaml.compose(body, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    y = detect_indent(root).ruamel()
    y.preserve_quotes = True
    data = _merge_rt(y.load(body), new)
    out = ruamel_dump(y, data)
    nl = newline_of(chunk)
    if nl != "\n":
        out = out.replace("\n", nl)
    return header + out


def patch_document(chunk: str, new: Any) -> str:
    """Return ``chunk`` (one YAML document's text) edited so that it loads as ``new``.

    Minimal, layout-keeping splice edits first; a ruamel.yaml round-trip
    rewrite when those are not possible. The result is always verified.
    Raises GitOpsError when neither gives text that loads as ``new``.
    """
    attempts: tuple[Callable[[str, Any], str], ...] = (_surgical, _roundtrip)
    for attempt in attempts:
        try:
            out = attempt(chunk, new)
        except (_Unpatchable, yaml.YAMLError, StopIteration, IndexError, ValueError):
            continue
        except Exception:  # ruamel's own errors
            if attempt is _surgical:
                continue
            break
        try:
            if same(load(out), new):
                return out
        except yaml.YAMLError:
            pass
    raise GitOpsError("could not rewrite the YAML document keeping its layout")
