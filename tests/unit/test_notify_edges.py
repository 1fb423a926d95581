"""Notifications are edge-triggered for the source (issue 20 item 4): an outage that begins and ends
between two looks of the watcher is reported, on a fake clock (no real sleeping, no network); a
source flapping many times between two looks makes at most three notifications."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from reconciler.applier import RevisionApplier
from reconciler.ops.notify import Sender, Target, Watcher
from reconciler.ops.notifyevents import Snapshot, derive


class _Store:
    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    def set_meta(self, **values: Any) -> None:
        self.meta.update(values)

    def revisions(self, n: int) -> list[Any]:
        return []

    def events(self, **kw: Any) -> list[Any]:
        return []


class _Cluster:
    def of_kind(self, kind: str) -> list[Any]:
        return []


class _Log:
    def _add(self, event: str, **kw: object) -> None:
        pass

    info = warning = error = exception = _add


def _run(script: dict[float, str | None], wired: bool = True, until: float = 1.0) -> list[dict[str, Any]]:
    """The watcher's loop on a fake clock: ``script`` says when the source loop records an error (or
    its recovery); the watcher looks at 0, 0.5, 1.0 s. The bodies queued for one URL."""
    store = _Store()
    applier = RevisionApplier(store, None, None, None, "", "", _Log())  # type: ignore[arg-type]

    async def main() -> Sender:
        async def post(t: Target, b: bytes) -> str:
            return "ok"

        sender = Sender(Target("http://127.0.0.1:9/hook", "generic"), _Log(), post)  # type: ignore[arg-type]
        clock = [0.0]
        stopping = asyncio.Event()

        async def wait(stop: asyncio.Event, seconds: float) -> None:
            end = clock[0] + seconds
            for t in sorted(script):
                if clock[0] < t <= end:
                    applier.set_source_error(script[t])
            clock[0] = end
            if clock[0] >= until:
                stop.set()

        watcher = Watcher(store, _Cluster(), [sender], _Log(), wait=wait)  # type: ignore[arg-type]
        if wired:
            applier.on_source_change = watcher.edges.record
        await watcher.loop(stopping)
        return sender

    sender = asyncio.run(main())
    out = []
    while not sender.queue.empty():
        out.append(json.loads(sender.queue.get_nowait()[1]))
    return out


def test_a_tenth_of_a_second_outage_between_two_looks_is_reported() -> None:
    bodies = _run({0.2: "fetch: connection refused", 0.3: None})
    assert [b["event"] for b in bodies] == ["source_unreachable", "source_recovered"]
    assert bodies[0]["message"] == "fetch: connection refused"


def test_without_the_edges_the_same_outage_goes_unseen() -> None:
    assert _run({0.2: "fetch: connection refused", 0.3: None}, wired=False) == []  # what sampling alone saw


def test_an_outage_across_looks_is_reported_once_each_way() -> None:
    bodies = _run({0.2: "down", 0.4: "down, another message", 0.7: None}, until=1.5)
    assert [b["event"] for b in bodies] == ["source_unreachable", "source_recovered"]


def test_a_flapping_source_makes_at_most_three_notifications_a_look() -> None:
    script: dict[float, str | None] = {}
    for i in range(50):
        script[0.01 + i * 0.008] = f"error {i}"
        script[0.014 + i * 0.008] = None
    bodies = _run(script)
    assert [b["event"] for b in bodies] == ["source_unreachable", "source_recovered"]
    assert bodies[0]["message"] == "error 0 (50 outages since the last notification)"


def test_edges_while_down_recover_then_fail_again() -> None:
    down = Snapshot(source_error="a")
    events = derive(down, Snapshot(source_error=None, source_edges=(None, "b", None, "c", None)))
    assert [(e.event, e.message) for e in events] == [
        ("source_recovered", "the source is reachable again"),
        ("source_unreachable", "b (2 outages since the last notification)"),
        ("source_recovered", "the source is reachable again"),
    ]
    assert [e.event for e in derive(down, Snapshot(source_error="b", source_edges=(None, "b")))] == [
        "source_recovered",
        "source_unreachable",
    ]


def test_two_revisions_applied_between_two_looks_are_both_said() -> None:
    # found by test_notify_e2e in CI: "red" then "blue" applied within one half second, only "blue" said
    prev = Snapshot(applied="red0")
    cur = Snapshot(applied="blue", applied_edges=("red", "blue"))
    said = [(e.event, e.revision) for e in derive(prev, cur)]
    assert said == [("revision_applied", "red"), ("revision_applied", "blue")]
    # without edges (the watcher not wired to the applier), the change of level as before
    assert [(e.event, e.revision) for e in derive(prev, Snapshot(applied="blue"))] == [("revision_applied", "blue")]
    assert derive(Snapshot(applied="blue"), Snapshot(applied="blue")) == []
