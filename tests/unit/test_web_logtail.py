"""The web view's log tail (reconciler/web/server.py _file_tail): bounded, from a line's start."""

from __future__ import annotations

from pathlib import Path

from reconciler.web.server import TAIL_BYTES, _file_tail


def test_a_small_log_is_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "c.log"
    p.write_bytes(b"one\ntwo\n")
    assert _file_tail(str(p)) == b"one\ntwo\n"


def test_a_big_log_gives_its_last_bytes_from_a_line_start(tmp_path: Path) -> None:
    p = tmp_path / "c.log"
    lines = [f"line {i:06d} ".encode() + b"x" * 990 + b"\n" for i in range(2000)]
    p.write_bytes(b"".join(lines))
    tail = _file_tail(str(p))
    assert len(tail) <= TAIL_BYTES
    assert tail.startswith(b"line ") and tail.endswith(lines[-1])
    assert tail.splitlines(keepends=True) == lines[-len(tail.splitlines()) :]


def test_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert _file_tail(str(tmp_path / "gone.log")) == b""
