"""The source watcher wakes on writes to refs, never on reads (git reading HEAD must not wake it)."""

from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from reconciler.source.watch import _Handler


def wakes(event) -> int:
    count = []
    _Handler(lambda: count.append(1)).on_any_event(event)
    return len(count)


def test_reads_of_refs_do_not_wake() -> None:
    assert wakes(FileOpenedEvent("/r/.git/HEAD")) == 0
    assert wakes(FileClosedNoWriteEvent("/r/.git/refs/heads/main")) == 0


def test_writes_of_refs_wake() -> None:
    assert wakes(FileMovedEvent("/r/.git/refs/heads/main.lock", "/r/.git/refs/heads/main")) == 1
    assert wakes(FileModifiedEvent("/r/.git/packed-refs")) == 1
    assert wakes(FileClosedEvent("/r/.git/HEAD")) == 1


def test_writes_elsewhere_do_not_wake() -> None:
    assert wakes(FileModifiedEvent("/r/.git/index")) == 0
