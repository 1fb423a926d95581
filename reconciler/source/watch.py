"""Noticing that the branch moved.

Where it sits: sources only wake the daemon; they never apply anything. A
local repository is watched with watchdog (inotify on Linux) on its git dir:
a commit, a reset or a fetch touches ``refs/``, ``packed-refs`` or ``HEAD``,
and the daemon re-resolves the branch (about 1 ms). A URL repository is
fetched every ``interval`` seconds. Both also poll at the interval as a
safety net, so a missed file event costs at most one interval.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .git import git

WRITE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})  # "closed": IN_CLOSE_WRITE


def git_dir(repo_dir: str) -> str:
    out = git(repo_dir, "rev-parse", "--absolute-git-dir").decode().strip()
    return out


class _Handler(FileSystemEventHandler):
    def __init__(self, wake: Callable[[], None]):
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        # only writes: git reading HEAD or refs (our own `git rev-parse`) opens them, and
        # waking on opens fed the watcher its own reads (a busy loop at 45% of a core)
        if event.event_type not in WRITE_EVENTS:
            return
        path = str(event.src_path) + " " + str(getattr(event, "dest_path", "") or "")
        if "refs" in path or "HEAD" in path or "packed-refs" in path:
            self._wake()


class LocalWatcher:
    """Calls ``wake`` on the loop whenever the repository's refs may have changed."""

    def __init__(self, repo_dir: str, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]):
        self.gitdir = git_dir(repo_dir)
        self._loop = loop
        self._wake = wake
        self._observer = Observer()

    def _threadsafe_wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # loop closed during shutdown
            pass

    def start(self) -> None:
        handler = _Handler(self._threadsafe_wake)
        self._observer.schedule(handler, self.gitdir, recursive=False)
        refs = os.path.join(self.gitdir, "refs")
        if os.path.isdir(refs):
            self._observer.schedule(handler, refs, recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
