"""A YAML stream as text: documents, line breaks, and value equality as YAML sees it.

Pure: no I/O. A manifest file is split on its document boundaries (``^---``
lines) into chunks whose concatenation is the file again, byte for byte; an
edit rewrites one chunk and leaves the others untouched.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

try:  # the C loader is ~10x faster for scanning a repository
    FastLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    FastLoader = yaml.SafeLoader

# PyYAML's line breaks (its marks count lines with these).
BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_DOC_START = re.compile(r"---(?:[ \t]|[\r\n\x85\u2028\u2029]|$)")


def load(text: str | bytes) -> Any:
    """One YAML document's data (the fast loader; safe tags only)."""
    return yaml.load(text, Loader=FastLoader)


def lines(text: str) -> list[str]:
    """Split keeping line ends, with PyYAML's notion of a line break."""
    out: list[str] = []
    pos = 0
    for m in BREAK.finditer(text):
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
    for line in lines(text):
        if _DOC_START.match(line):
            chunks.append("".join(cur))
            cur = []
        cur.append(line)
    chunks.append("".join(cur))
    return chunks


def _has_content(chunk: str) -> bool:
    for line in lines(chunk):
        s = line.strip()
        if s and not s.startswith("#") and not s.startswith("%") and s != "...":
            return True
    return False


def doc_indices(chunks: list[str]) -> list[int | None]:
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


def split_header(chunk: str) -> tuple[str, str]:
    """(the ``---`` line or "", the rest)."""
    ls = lines(chunk)
    if ls and _DOC_START.match(ls[0]):
        return ls[0], "".join(ls[1:])
    return "", chunk


def newline_of(text: str) -> str:
    """The line break a text uses: CRLF if it has one, else LF."""
    return "\r\n" if "\r\n" in text else "\n"


def ensure_nl(s: str, nl: str) -> str:
    """``s`` ending in a line break (an empty string stays empty)."""
    return s if not s or s.endswith(("\n", "\r")) else s + nl


def replace_chunk(old: str, new: str, last: bool) -> str:
    """``new``'s document body under ``old``'s ``---`` header line."""
    header, _ = split_header(old)
    body = split_header(new)[1]
    nl = newline_of(old)
    if not last or old.endswith(("\n", "\r")):
        body = ensure_nl(body, nl)
    return header + body


def same(a: Any, b: Any) -> bool:
    """Type-aware deep equality (True != 1, 1 != 1.0 as YAML values)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        # str subclasses / int subclasses from ruamel compare by plain value
        for t in (bool, int, float, str):
            if (
                isinstance(a, t)
                and isinstance(b, t)
                and not (t is int and (isinstance(a, bool) or isinstance(b, bool)))
            ):
                return bool(a == b)
        return False
    return bool(a == b)


# whether a chunk of split_documents holds a document (not only comments or directives)
has_content = _has_content
