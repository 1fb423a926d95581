"""Notifications: event derivation from recorded state, the two body formats, the back-off schedule
and the sender's queue (on a fake clock: no real sleeping, no network)."""

from __future__ import annotations

import asyncio
import json

import pytest

from reconciler.ops.notify import FATAL, OK, RETRY, Sender, Target, parse_target
from reconciler.ops.notifyevents import (
    Rollback,
    Snapshot,
    backoff_delay,
    derive,
    generic_body,
    rollout_state,
    slack_body,
)

SHA1, SHA2 = "a" * 40, "b" * 40
SOURCE = {"url": "/srv/repo", "branch": "main", "path": ""}


def dep(name: str = "web", *, updated: int = 2, available: int = 2, reason: str = "NewReplicaSetAvailable") -> dict:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "default",
            "generation": 3,
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 3,
            "replicas": 2,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": reason}],
        },
    }


def names(events) -> list[str]:
    return [e.event for e in events]


def test_nothing_for_the_state_found_at_start() -> None:
    cur = Snapshot(applied=SHA1, source_error="down", rollouts={("default", "web"): rollout_state(dep())})
    assert derive(None, cur) == []


def test_applied_and_rejected_revisions() -> None:
    prev = Snapshot(applied=SHA1, attempted=SHA1, attempted_result="applied")
    applied = Snapshot(applied=SHA2, attempted=SHA2, attempted_result="applied")
    assert names(derive(prev, applied)) == ["revision_applied"]
    assert derive(prev, applied)[0].revision == SHA2
    errs = (
        {"file": "web.yaml", "line": 7, "field": "spec.replicas", "message": "must be >= 0"},
        {"file": "db.yaml", "line": 3, "field": "metadata.name", "message": "bad"},
    )
    rejected = Snapshot(applied=SHA1, attempted=SHA2, attempted_result="rejected", rejection=errs)
    [ev] = derive(prev, rejected)
    assert ev.event == "revision_rejected" and ev.severity == "error" and ev.errors == errs
    assert "web.yaml:7 spec.replicas" in ev.message and "1 more" in ev.message
    assert derive(rejected, rejected) == []  # level-based: the same state says nothing again


def test_verification_failure_is_a_rejection() -> None:
    prev = Snapshot(applied=SHA1, ready_reason="ReconciliationSucceeded")
    cur = Snapshot(
        applied=SHA1, ready_reason="VerificationFailed", ready_message="commit bbbbbbb is not applied: unsigned"
    )
    [ev] = derive(prev, cur)
    assert (ev.event, ev.reason) == ("revision_rejected", "VerificationFailed")
    assert "unsigned" in ev.message
    assert derive(cur, cur) == []


def test_source_unreachable_and_recovered() -> None:
    up, down = Snapshot(), Snapshot(source_error="could not fetch")
    assert names(derive(up, down)) == ["source_unreachable"]
    assert derive(down, Snapshot(source_error="another error")) == []
    assert names(derive(down, up)) == ["source_recovered"]


def test_rollouts_complete_and_failed() -> None:
    key = ("default", "web")
    progressing = Snapshot(rollouts={key: rollout_state(dep(updated=1, available=1))})
    complete = Snapshot(rollouts={key: rollout_state(dep())})
    failed = Snapshot(rollouts={key: rollout_state(dep(updated=1, reason="ProgressDeadlineExceeded"))})
    [ev] = derive(progressing, complete)
    assert ev.event == "rollout_complete" and ev.object == ("Deployment", "default", "web")
    assert derive(complete, complete) == []
    [ev] = derive(progressing, failed)
    assert (ev.event, ev.reason) == ("rollout_failed", "ProgressDeadlineExceeded")
    assert derive(progressing, progressing) == []
    # a Deployment that appears complete after the start is a completed rollout
    assert names(derive(Snapshot(), complete)) == ["rollout_complete"]


def test_rollback_committed() -> None:
    rb = Rollback(SHA2, SHA1, ("Deployment", "default", "web"), "rolled back revision 2")
    [ev] = derive(Snapshot(), Snapshot(rollbacks={SHA1: rb}))
    assert ev.event == "rollback_committed" and ev.revision == SHA2 and ev.message == "rolled back revision 2"


def test_generic_body() -> None:
    errs = ({"file": "web.yaml", "line": 7, "field": "spec.replicas", "message": "bad", "document": 0},)
    ev = derive(Snapshot(), Snapshot(attempted=SHA2, attempted_result="rejected", rejection=errs))[0]
    body = generic_body(ev, SOURCE, "2026-11-30T09:00:00Z")
    assert body["event"] == "revision_rejected" and body["severity"] == "error"
    assert body["metadata"] == {"revision": SHA2}
    assert body["errors"] == [{"file": "web.yaml", "line": 7, "field": "spec.replicas", "message": "bad"}]
    assert body["source"]["branch"] == "main"
    json.dumps(body)


def test_slack_body_escapes_and_lists_errors() -> None:
    errs = ({"file": "a.yaml", "line": 2, "field": "spec", "message": "x < y & z"},)
    ev = derive(Snapshot(), Snapshot(attempted=SHA2, attempted_result="rejected", rejection=errs))[0]
    body = slack_body(ev, SOURCE, "2026-11-30T09:00:00Z")
    assert set(body) == {"text", "blocks"}
    assert "Revision rejected" in body["text"] and "&lt;" in body["text"] and "&amp;" in body["text"]
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert any("`a.yaml:2`" in t for t in texts)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(i, 1.0, 60.0) for i in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(1000, 0.5, 10.0) == 10.0


def test_targets() -> None:
    assert parse_target("https://example.com/hook") == Target("https://example.com/hook", "generic")
    t = parse_target("slack+https://hooks.slack.com/services/T/B/SECRET")
    assert t == Target("https://hooks.slack.com/services/T/B/SECRET", "slack")
    assert "SECRET" not in t.redacted()
    for bad in ("ftp://x/y", "slack+ftp://x", "not a url"):
        with pytest.raises(ValueError):
            parse_target(bad)


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def _add(self, event: str, **kw: object) -> None:
        self.lines.append((event, kw))

    info = warning = error = exception = _add


def test_sender_retries_on_a_fake_clock_then_delivers() -> None:
    results = [RETRY, RETRY, RETRY, OK]
    posted: list[bytes] = []
    slept: list[float] = []

    async def post(target: Target, body: bytes) -> str:
        posted.append(body)
        return results.pop(0)

    async def sleep(s: float) -> None:
        slept.append(s)

    async def main() -> Sender:
        s = Sender(Target("http://127.0.0.1:1/", "generic"), _Log(), post, sleep, base=1.0, cap=3.0)
        assert await s.deliver("revision_applied", b"{}")
        return s

    s = asyncio.run(main())
    assert slept == [1.0, 2.0, 3.0] and len(posted) == 4 and s.delivered == 1


def test_sender_gives_up_after_its_attempts_and_on_a_fatal_answer() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    async def main() -> tuple[bool, bool]:
        async def down(t: Target, b: bytes) -> str:
            return RETRY

        async def refused(t: Target, b: bytes) -> str:
            return FATAL

        a = Sender(Target("http://x/", "generic"), _Log(), down, sleep, attempts=3)
        b = Sender(Target("http://x/", "generic"), _Log(), refused, sleep, attempts=3)
        return await a.deliver("e", b"{}"), await b.deliver("e", b"{}")

    assert asyncio.run(main()) == (False, False)
    assert slept == [1.0, 2.0, 4.0]


def test_full_queue_drops_the_oldest_without_waiting() -> None:
    async def main() -> tuple[Sender, list[str], _Log]:
        log = _Log()

        async def post(t: Target, b: bytes) -> str:
            return OK

        s = Sender(Target("http://x/", "generic"), log, post, maxsize=2)
        for i in range(5):
            s.put(f"e{i}", b"{}")  # never awaits: a reconcile that notifies is never held up
        got = []
        while not s.queue.empty():
            got.append(s.queue.get_nowait()[0])
        return s, got, log

    s, got, log = asyncio.run(main())
    assert got == ["e3", "e4"] and s.dropped == 3
    assert [k for k, _ in log.lines].count("notification_dropped") == 3


def test_undelivered_notifications_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.ops import notify

    counted: list[str] = []
    monkeypatch.setattr(notify, "notification_failed", counted.append)

    async def sleep(s: float) -> None:
        pass

    async def main() -> None:
        async def down(t: Target, b: bytes) -> str:
            return RETRY

        s = Sender(Target("https://x/", "slack"), _Log(), down, sleep, attempts=3, maxsize=1)
        await s.deliver("e", b"{}")  # three attempts, one notification given up
        s.put("a", b"{}")
        s.put("b", b"{}")  # drops "a"

    asyncio.run(main())
    assert counted == ["slack", "slack"]


def test_a_rejection_is_said_once_per_commit_and_reason() -> None:
    """A source recovering can show Ready True for a moment before the same head is refused again:
    one "rejected" notification, not two; another commit, or the same after an applied one, is said."""
    from reconciler.ops.notifyevents import advance

    msg = "commit bbbbbbb is not applied: unsigned; what runs is unchanged"
    ok = Snapshot(applied=SHA1, ready_reason="ReconciliationSucceeded")
    refused = Snapshot(applied=SHA1, ready_reason="VerificationFailed", ready_message=msg)
    down = Snapshot(applied=SHA1, ready_reason="VerificationFailed", ready_message=msg, source_error="down")
    events, prev = advance(None, ok)
    assert events == []
    said = []
    for cur in (refused, down, ok, refused, ok, refused):
        events, prev = advance(prev, cur)
        said += [(e.event, e.reason) for e in events]
    assert said.count(("revision_rejected", "VerificationFailed")) == 1
    assert ("source_recovered", "SourceAvailable") in said
    other = Snapshot(applied=SHA1, ready_reason="VerificationFailed", ready_message=msg.replace("bbbbbbb", "ccccccc"))
    events, prev = advance(prev, other)
    assert names(events) == ["revision_rejected"]
    events, prev = advance(prev, Snapshot(applied=SHA2, ready_reason="ReconciliationSucceeded"))
    assert names(events) == ["revision_applied"]
    events, prev = advance(prev, Snapshot(applied=SHA2, ready_reason="VerificationFailed", ready_message=msg))
    assert names(events) == ["revision_rejected"]  # the applied revision moved on: said again


def test_a_validation_rejection_is_not_said_again_for_the_same_commit() -> None:
    from reconciler.ops.notifyevents import advance

    errs = ({"file": "web.yaml", "line": 7, "field": "spec.replicas", "message": "must be >= 0"},)
    rejected = Snapshot(applied=SHA1, attempted=SHA2, attempted_result="rejected", rejection=errs)
    between = Snapshot(applied=SHA1, attempted=None)
    _, prev = advance(None, Snapshot(applied=SHA1, attempted=SHA1, attempted_result="applied"))
    events, prev = advance(prev, rejected)
    assert names(events) == ["revision_rejected"]
    events, prev = advance(prev, between)
    events, prev = advance(prev, rejected)
    assert events == []


def test_the_rejection_found_at_start_is_not_said_after_a_flicker() -> None:
    from reconciler.ops.notifyevents import advance

    msg = "commit bbbbbbb is not applied: unsigned"
    refused = Snapshot(applied=SHA1, ready_reason="VerificationFailed", ready_message=msg)
    _, prev = advance(None, refused)
    _, prev = advance(prev, Snapshot(applied=SHA1, ready_reason="ReconciliationSucceeded"))
    events, prev = advance(prev, refused)
    assert events == []
