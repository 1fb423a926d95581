"""Structured reconcile logs (structlog).

Where it sits: every part of the daemon logs through ``get_logger``; one JSON
object per line goes to ``<state-dir>/reconcile.log`` (what ``gitship events``
reads and filters), and a readable rendering to the console when stderr is a
terminal (JSON lines otherwise, so a supervisor can collect them).

Event names are snake_case (``revision_applied``); values go in fields, never
formatted into the message. Reconciles bind ``reconcile_id`` and ``commit``.
A Secret logged in a field (at any depth) is written with its values replaced by their
sizes (reconciler/redact.py): no secret value reaches the log file or the console.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, Protocol, TextIO

import structlog

from .redact import redact

LOG_FILE = "reconcile.log"
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class _Tee:
    """Writes each rendered event to the JSON file and the console."""

    def __init__(self, path: str | None, console: TextIO | None, pretty: bool):
        self._lock = threading.Lock()
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None
        self._console = console
        self._pretty = (
            structlog.dev.ConsoleRenderer(colors=console is not None and console.isatty()) if pretty else None
        )

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        line = json.dumps(event, default=str, separators=(",", ":"))
        with self._lock:
            if self._file:
                self._file.write(line + "\n")
            if self._console:
                out = self._pretty(logger, name, dict(event)) if self._pretty else line
                try:
                    self._console.write(out + "\n")
                    self._console.flush()
                except (ValueError, OSError):
                    pass
        raise structlog.DropEvent


def _redact_secrets(logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A Secret in any field of the event, with its values replaced by their sizes."""
    return {k: redact(v) for k, v in event.items()}


def configure(state_dir: str | None, console: TextIO | None = sys.stderr, level: str = "info") -> None:
    """Set up structlog for the daemon. ``state_dir`` None logs to the console only."""
    path = os.path.join(state_dir, LOG_FILE) if state_dir else None
    pretty = bool(console is not None and console.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_secrets,
            _Tee(path, console, pretty),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        cache_logger_on_first_use=False,
    )


class Logger(Protocol):
    """What gitship's code calls on a logger (a structlog bound logger)."""

    def debug(self, event: str, **fields: Any) -> Any: ...
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...
    def error(self, event: str, **fields: Any) -> Any: ...
    def exception(self, event: str, **fields: Any) -> Any: ...
    def bind(self, **fields: Any) -> Logger: ...


def get_logger(**bind: Any) -> Any:
    return structlog.get_logger().bind(**bind)
