"""`gitship get -w` / `--watch-only`: the listing, then one line per change, until Ctrl-C or SIGTERM.

kubectl watches the API server; gitship looks at its store (read-only) every ``POLL`` seconds and
prints what changed since the last look: a new or changed object as its row, a deleted one (or one
that no longer matches -l) as its last row. Rows after the first table come without a header and
keep the columns as wide as any row printed so far (kubectl's tabwriter remembers widths).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from reconciler import getprint, printers
from reconciler.cli.common import PLURAL, open_store, select
from reconciler.cli.namespaces import not_found
from reconciler.kindnames import cluster_scoped
from reconciler.cluster import key_of
from reconciler.printers import MIN_CELL, TableOptions
from reconciler.types import Key, Obj

POLL = 0.2
# get.render_objects: (format, parsed template, payload, objects, template text) -> text
Render = Callable[[str, Any, Obj, list[Obj], str], str]


class _Printer:
    """Prints watched objects in the -o format chosen; a table's header once, widths remembered."""

    def __init__(self, kind: str, fmt: str | None, parsed: Any, opts: TableOptions, render: Render) -> None:
        self.kind, self.fmt, self.parsed, self.opts, self.render = kind, fmt, parsed, opts, render
        self.widths: list[int] = []
        self.header_done = False
        self.count = 0

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        if not rows:
            return
        lines = rows if self.header_done else [headers, *rows]
        self.widths = printers.column_widths(lines, self.widths, MIN_CELL)
        self.header_done = True
        print("\n".join(printers.table_lines(lines, self.widths)), flush=True)

    def emit(self, objs: list[Obj]) -> None:
        if self.fmt in (None, "wide"):
            self.table(*printers.table_rows(self.kind, objs, time.time(), self.opts))
        elif self.fmt and self.fmt.startswith("custom-columns"):
            self.table([h for h, _ in self.parsed], getprint.custom_rows(self.parsed, objs))
        else:
            for o in objs:
                text = self.render(str(self.fmt), self.parsed, o, [o], "")
                sep = "---\n" if self.fmt == "yaml" and self.count else ""
                self.count += 1
                sys.stdout.write(sep + text)
                sys.stdout.flush()


class _Stop:
    def __init__(self) -> None:
        self.stopped = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True


def watch(
    args: argparse.Namespace,
    kind: str,
    names: tuple[str, ...],
    output: tuple[str | None, Any, TableOptions],
    render: Render,
) -> int:
    """Print the objects of ``kind`` (those ``names`` if any), then each change; 0 when stopped by SIGTERM.

    ``output`` is the -o format, its parsed template and the table options."""
    if args.sort_by:
        flag = "--watch" if args.watch else "--watch-only"
        print(f"warning: {flag} requested, --sort-by will be ignored", file=sys.stderr)
    store = open_store(args)
    ns = None if args.all_namespaces or cluster_scoped(kind) else args.namespace

    def look() -> dict[Key, Obj]:
        objs = store.cluster(kind, ns)
        if names:
            objs = [o for o in objs if o["metadata"]["name"] in names]
        return {key_of(o): o for o in select(objs, args.selector)}

    seen = look()
    for n in names:
        if n not in {k[2] for k in seen}:
            not_found(PLURAL[kind], n)
    out = _Printer(kind, *output, render)
    if not args.watch_only:
        out.emit(list(seen.values()))
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    while not stop.stopped:
        time.sleep(POLL)
        now = look()
        changed = getprint.changed(seen, now)
        if changed:
            out.emit(changed)
        seen = now
    return 0
