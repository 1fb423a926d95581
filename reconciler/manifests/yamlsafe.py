"""YAML text -> Python values, safely: gitship's YAML loader, the hostile-input guards and
error positions.

Where it sits: pure, under ``load.py`` (manifests) and ``gitship.yaml`` parsing. ``documents``
yields each document's value and its duplicated fields; ``field_line`` finds the line of a field
path on the error path only.

Speed: the happy path is libyaml (``CSafeLoader``; ``SafeLoader`` if the C
extension is missing) plus cheap dict checks. Node positions are only
computed on the error path, by composing the file again and walking the node
tree along the error's field path. (``revision.BlobCache`` keeps the manifests
of unchanged blobs, so a commit that changes one file of 10,000 parses one file.)

Hostile input is rejected in bounded time and memory, before libyaml's
recursive composer (which can overflow the C stack) ever sees it:

``Limits`` (defaults; the README cites these):

===========================  ==========  ==============================================
``max_file_bytes``           4 MiB       checked on the raw bytes before anything else,
                                         and again on a rendered ``.j2`` output
``max_documents_per_file``   500         YAML documents (``---``) in one file
``max_depth``                64          nesting of mappings/sequences in a document
``max_aliases``              64          ``*alias`` references in one document
``max_expanded_nodes``       1,000,000   nodes of one document with aliases expanded
                                         (stops "billion laughs" within the alias limit)
``max_objects``              50,000      objects in one revision (``revision.py``)
===========================  ==========  ==============================================

A file's size is checked from the git listing before its bytes are read
(``revision.py``), so a 50 MB blob is never read into memory.

Files must be UTF-8 (a BOM is allowed) without NUL bytes. YAML tags that do not
exist in JSON (``!!binary``, ``!!set``, ``!!omap``, ``!!pairs``, ``!!timestamp``)
are rejected; dates stay strings, as in Kubernetes.

Depth and aliases are pre-checked cheaply: a file is scanned event by event
(libyaml's parser is iterative) only when it contains an alias (``&`` and ``*``)
or when a conservative bound from bracket count and the longest run of
indentation/``-``/``?`` at a line start could exceed ``max_depth``. libyaml
has a nesting limit of its own (1,000 flow levels in PyYAML 6.0.4) that its
scanner can reach before the parser yields an event; a parser error is
therefore reported as gitship's depth error whenever gitship's own count of
open flow collections where the parser stopped exceeds ``max_depth``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import ManifestError, RevisionRejected


@dataclass(frozen=True)
class Limits:
    """Bounds on what a revision may contain; see the module docstring for the table."""

    max_file_bytes: int = 4 * 1024 * 1024
    max_documents_per_file: int = 500
    max_depth: int = 64
    max_aliases: int = 64
    max_objects: int = 50_000
    max_expanded_nodes: int = 1_000_000


# --------------------------------------------------------------------------- the YAML loader

_BaseLoader: type = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
C_LOADER: bool = _BaseLoader is not yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader semantics minus the YAML types JSON has no room for."""


_DROPPED_RESOLVERS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_RESOLVERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _reject_tag(loader: Any, node: Node) -> Any:
    raise ConstructorError(
        None,
        None,
        f"the YAML tag {node.tag} is not allowed in manifests "
        "(only JSON types: maps, lists, strings, numbers, booleans, null)",
        node.start_mark,
    )


for _tag in ("binary", "set", "omap", "pairs", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _reject_tag)


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_SCALARS: dict[str, Any] = {
    "tag:yaml.org,2002:null": _Loader.construct_yaml_null,
    "tag:yaml.org,2002:bool": _Loader.construct_yaml_bool,
    "tag:yaml.org,2002:int": _Loader.construct_yaml_int,
    "tag:yaml.org,2002:float": _Loader.construct_yaml_float,
}


def _construct(loader: Any, root: Node, duplicates: list[tuple[Node, Node]]) -> Any:
    """Build the Python value of a composed document; the common tags without PyYAML's
    generic machinery (about twice as fast), anything else through the SafeConstructor.

    A key repeated in one mapping keeps the last value (as PyYAML and Kubernetes' decoder do)
    and is appended to ``duplicates`` as (mapping node, key node): the caller makes it an
    error (``duplicate field``, as kubectl's strict validation) or, under ``validation: warn``,
    a warning. Aliased nodes become shared Python objects (the event scan bounded them).
    """
    memo: dict[int, Any] = {}

    def build(node: Node) -> Any:
        t = type(node)
        if t is ScalarNode:
            tag = node.tag
            if tag == _STR:
                return node.value
            fn = _SCALARS.get(tag)
            if fn is not None:
                return fn(loader, node)
            return loader.construct_object(node, deep=True)
        nid = id(node)
        if nid in memo:
            return memo[nid]
        if t is MappingNode and node.tag == _MAP:
            d: dict[Any, Any] = {}
            memo[nid] = d
            pairs = node.value
            for knode, _vnode in pairs:
                if knode.tag == _MERGE:
                    del memo[nid]
                    value = loader.construct_object(node, deep=True)
                    memo[nid] = value
                    return value
            for knode, vnode in pairs:
                key = build(knode)
                if type(key) in (dict, list):
                    raise ConstructorError(
                        "while constructing a mapping", node.start_mark, "found unhashable key", knode.start_mark
                    )
                if key in d:
                    duplicates.append((node, knode))
                d[key] = build(vnode)
            return d
        if t is SequenceNode and node.tag == _SEQ:
            seq: list[Any] = []
            memo[nid] = seq
            for item in node.value:
                seq.append(build(item))
            return seq
        value = loader.construct_object(node, deep=True)
        memo[nid] = value
        return value

    return build(root)


# --------------------------------------------------------------------------- hostile-input guards


@lru_cache(maxsize=256)
def _deep_line_re(run: int) -> re.Pattern[str]:
    return re.compile(r"^[ \t?-]{%d}" % run, re.M)


_DOC_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|\Z)", re.M)


def _needs_event_scan(text: str, limits: Limits) -> bool:
    if "*" in text and "&" in text:
        return True
    if text.count("\n---") >= limits.max_documents_per_file or text.count("\n...") >= limits.max_documents_per_file:
        return True
    brackets = text.count("[") + text.count("{")
    if brackets > limits.max_depth // 2:
        # Document markers ("---" at column 0) bound flow collections: count per document.
        brackets = max(c.count("[") + c.count("{") for c in _DOC_MARKER.split(text))
    # Block nesting is bounded by 2 * (run of spaces, '-' and '?' at a line start) + 2.
    run = (limits.max_depth - 2 - brackets) // 2
    if run < 1:
        return True
    return _deep_line_re(run).search(text) is not None


def _event_scan(file: str, text: str, limits: Limits) -> ManifestError | None:
    """Walk parser events (iterative in libyaml) checking depth, aliases and expansion."""
    depth = 0
    aliases = 0
    doc = -1
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = []  # [node count, anchor]
    root: list[Any] = [0, None]
    try:
        for ev in yaml.parse(text, Loader=_Loader):
            t = type(ev)
            if t is yaml.DocumentStartEvent:
                doc += 1
                aliases = 0
                sizes = {}
                root = [0, None]
                stack = [root]
                if doc >= limits.max_documents_per_file:
                    return ManifestError(
                        file,
                        f"more than {limits.max_documents_per_file} YAML documents in one file",
                        line=ev.start_mark.line + 1,
                        document=doc,
                    )
            elif t is yaml.ScalarEvent:
                stack[-1][0] += 1
                if ev.anchor:
                    sizes[ev.anchor] = 1
            elif t is yaml.AliasEvent:
                aliases += 1
                if aliases > limits.max_aliases:
                    return ManifestError(
                        file,
                        f"more than {limits.max_aliases} YAML aliases in one document",
                        line=ev.start_mark.line + 1,
                        document=doc,
                    )
                stack[-1][0] += sizes.get(ev.anchor, 1)
            elif t is yaml.SequenceStartEvent or t is yaml.MappingStartEvent:
                depth += 1
                if depth > limits.max_depth:
                    return ManifestError(
                        file, f"nested deeper than {limits.max_depth} levels", line=ev.start_mark.line + 1, document=doc
                    )
                stack.append([0, ev.anchor])
            elif t is yaml.SequenceEndEvent or t is yaml.MappingEndEvent:
                depth -= 1
                count, anchor = stack.pop()
                count += 1
                if anchor:
                    sizes[anchor] = count
                stack[-1][0] += count
            else:
                continue
            if root[0] > limits.max_expanded_nodes or (stack and stack[-1][0] > limits.max_expanded_nodes):
                return ManifestError(
                    file,
                    f"document expands to more than {limits.max_expanded_nodes} nodes through YAML aliases",
                    line=ev.start_mark.line + 1,
                    document=doc,
                )
    except yaml.MarkedYAMLError as e:
        return _yaml_error(file, e, max(doc, 0), text, limits)
    except yaml.YAMLError as e:
        return ManifestError(file, f"YAML error: {e}", document=max(doc, 0))
    return None


# Quoted scalars and comments, whose brackets are not flow collections.
_NOT_FLOW = re.compile(r"""(?<![^\s\[{,:])"(?:[^"\\]|\\.)*"|(?<![^\s\[{,:])'(?:[^']|'')*'|(?<!\S)#[^\n]*""")


def _flow_depth_at(text: str, index: int) -> int:
    """How many flow collections (``[``, ``{``) are open at ``index`` of the document holding it.

    Counted by gitship itself, on the error path only: libyaml has a nesting limit of its own
    (1,000 flow levels in PyYAML 6.0.4's wheels) that its scanner reaches while looking ahead,
    before the parser hands gitship a single event of the collection.
    """
    start = max(text.rfind("\n---", 0, index), text.rfind("\n...", 0, index), 0)
    window = _NOT_FLOW.sub("", text[start:index])
    return window.count("[") + window.count("{") - window.count("]") - window.count("}")


def _yaml_error(
    file: str, e: yaml.YAMLError, document: int, text: str = "", limits: Limits | None = None
) -> ManifestError:
    """gitship's error for a YAML problem: the file, the line, and gitship's own depth message
    when the document is nested deeper than ``limits.max_depth`` where the parser stopped
    (whatever limit or wording the YAML library has)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    line = mark.line + 1 if mark is not None else 0
    if limits is not None and mark is not None and text:
        index = min(max(mark.index, 0), len(text))
        if _flow_depth_at(text, index) > limits.max_depth:
            return ManifestError(file, f"nested deeper than {limits.max_depth} levels", line=line, document=document)
    parts = [getattr(e, "context", None), getattr(e, "problem", None)]
    msg = "; ".join(p for p in parts if p) or str(e)
    if mark is not None:
        msg += f" (line {mark.line + 1}, column {mark.column + 1})"
    kind = "YAML error" if isinstance(e, ConstructorError) else "YAML syntax error"
    return ManifestError(file, f"{kind}: {msg}", line=line, document=document)


def too_big(file: str, size: int, limits: Limits) -> ManifestError | None:
    """The error for a file over ``limits.max_file_bytes`` (checked before reading or parsing it)."""
    if size <= limits.max_file_bytes:
        return None
    return ManifestError(file, f"file is {size} bytes, over the limit of {limits.max_file_bytes} bytes")


def decode(file: str, data: bytes, limits: Limits) -> str | ManifestError:
    big = too_big(file, len(data), limits)
    if big is not None:
        return big
    nul = data.find(b"\x00")
    if nul >= 0:
        return ManifestError(
            file,
            "file contains NUL bytes (a binary file?); manifests must be UTF-8 text",
            line=data.count(b"\n", 0, nul) + 1,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return ManifestError(
            file,
            f"file is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})",
            line=data.count(b"\n", 0, e.start) + 1,
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def documents(
    file: str, text: str, limits: Limits, errors: list[ManifestError]
) -> Iterator[tuple[int, int, Any, list[ManifestError]]]:
    """Yield (document index, first line, constructed object, its duplicated fields); problems
    that stop the parse go to ``errors``."""
    if _needs_event_scan(text, limits):
        err = _event_scan(file, text, limits)
        if err is not None:
            errors.append(err)
            return
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            if index >= limits.max_documents_per_file:
                errors.append(
                    ManifestError(
                        file, f"more than {limits.max_documents_per_file} YAML documents in one file", document=index
                    )
                )
                return
            node = loader.get_node()
            line = node.start_mark.line + 1
            duplicates: list[tuple[Node, Node]] = []
            obj = _construct(loader, node, duplicates)
            yield index, line, obj, _duplicate_errors(file, index, node, duplicates) if duplicates else []
            index += 1
    except yaml.MarkedYAMLError as e:
        errors.append(_yaml_error(file, e, index, text, limits))
    except yaml.YAMLError as e:
        errors.append(ManifestError(file, f"YAML error: {e}", document=index))
    except RecursionError:
        errors.append(ManifestError(file, f"nested deeper than {limits.max_depth} levels", document=index))
    finally:
        loader.dispose()


def safe_load_documents(file: str, data: bytes, limits: Limits) -> list[tuple[int, Any]]:
    """Decode and parse a plain YAML file under ``limits``: [(first line, object)] per document.

    Used for ``gitship.yaml``; raises RevisionRejected.
    """
    decoded = decode(file, data, limits)
    if isinstance(decoded, ManifestError):
        raise RevisionRejected([decoded])
    errors: list[ManifestError] = []
    docs: list[tuple[int, Any]] = []
    for _, line, obj, duplicates in documents(file, decoded, limits, errors):
        errors.extend(duplicates)
        docs.append((line, obj))
    if errors:
        raise RevisionRejected(errors)
    return docs


# --------------------------------------------------------------------------- error positions

_INDEX_RE = re.compile(r"\[(\d+)\]")


def field_line(node: Node, field: str) -> int:
    """Line of the node at ``field`` (a Kubernetes field path), or of its deepest existing ancestor."""
    line: int = node.start_mark.line + 1
    rest = field
    while rest:
        if isinstance(node, MappingNode) and rest.startswith("[") and "]" in rest:
            # a map key as Kubernetes writes it in a path: data[app.conf]
            sub, rest = rest[1 : rest.index("]")], rest[rest.index("]") + 1 :].removeprefix(".")
            hit = next((kv for kv in node.value if isinstance(kv[0], ScalarNode) and str(kv[0].value) == sub), None)
            if hit is None:
                break
            line = (hit[0] if not rest else hit[1]).start_mark.line + 1
            node = hit[1]
        elif isinstance(node, MappingNode):
            best: tuple[str, Node, Node] | None = None
            for k, v in node.value:
                if not isinstance(k, ScalarNode):
                    continue
                ks = str(k.value)
                if rest == ks or rest.startswith(ks + ".") or rest.startswith(ks + "["):
                    if best is None or len(ks) > len(best[0]):
                        best = (ks, k, v)
            if best is None:
                break
            ks, knode, vnode = best
            rest = rest[len(ks) :]
            if rest.startswith("."):
                rest = rest[1:]
            line = (knode if not rest else vnode).start_mark.line + 1
            node = vnode
        elif isinstance(node, SequenceNode):
            m = _INDEX_RE.match(rest)
            if not m or int(m.group(1)) >= len(node.value):
                break
            node = node.value[int(m.group(1))]
            line = node.start_mark.line + 1
            rest = rest[m.end() :]
            if rest.startswith("."):
                rest = rest[1:]
        else:
            break
    return line


def _node_path(root: Node, target: Node) -> str:
    """The Kubernetes field path of ``target`` in the document ``root`` (error path only)."""
    stack: list[tuple[Node, str]] = [(root, "")]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for k, v in node.value:
                key = str(k.value) if isinstance(k, ScalarNode) else "?"
                stack.append((v, f"{path}.{key}" if path else key))
        elif isinstance(node, SequenceNode):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node.value))
    return ""


def _duplicate_errors(file: str, document: int, root: Node, duplicates: list[tuple[Node, Node]]) -> list[ManifestError]:
    """``duplicate field "spec.replicas"`` at the line of each repeated key."""
    out: list[ManifestError] = []
    for mapping, knode in duplicates:
        parent = _node_path(root, mapping)
        key = str(knode.value) if isinstance(knode, ScalarNode) else "?"
        path = f"{parent}.{key}" if parent else key
        out.append(ManifestError(file, f'duplicate field "{path}"', knode.start_mark.line + 1, document, path))
    return out


def compose(text: str) -> list[Node]:
    loader = _Loader(text)
    nodes: list[Node] = []
    try:
        while loader.check_node():
            nodes.append(loader.get_node())
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()
    return nodes
