"""PURE: which notifications a change of gitship's recorded state makes, their bodies, the back-off.

Where it sits: under reconciler/ops/notify.py, which takes a ``Snapshot`` of what the daemon
already records (the store's meta: applied and attempted revisions, the Ready condition, the
source error, automatic rollbacks; the live Deployments' rollout status) every half second and
asks ``advance(previous, current)`` what changed. Level-based: a notification says that a state
was reached, whichever code path reached it, and nothing is sent for the state found at start.
The source's outages are edge-triggered besides: the snapshot carries every change of the source
error recorded since the last look (``source_edges``), so an outage shorter than a look is said.
A rejection is said once per commit and reason: the snapshot carries the last one sent
(``last_rejected``), so Ready flickering through True (a source recovering, then the same
unsigned head refused again) sends no second "rejected"; a newly applied revision forgets it.

Events (``Event.event``): revision_applied, revision_rejected (the errors' file, line and
field; or VerificationFailed), rollout_complete, rollout_failed (ProgressDeadlineExceeded),
rollback_committed, source_unreachable, source_recovered.

Bodies: ``generic_body`` (gitship's JSON, shaped like Flux's notification events) and
``slack_body`` (Slack's incoming-webhook ``{"text", "blocks"}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from reconciler.controllers.deployment.kubectl import rollout_status
from reconciler.types import Key, NsName, Obj

COMPLETE, FAILED, PROGRESSING = "complete", "failed", "progressing"
MAX_ERRORS = 20  # errors carried in one notification (a revision may have hundreds)


@dataclass(frozen=True)
class Rollback:
    commit: str  # the revert (or template) commit gitship made
    failed: str  # the commit whose rollout failed
    object: Key | None = None
    message: str = ""


@dataclass(frozen=True)
class Snapshot:
    """What the notifier compares from one look to the next."""

    applied: str | None = None
    attempted: str | None = None
    attempted_result: str | None = None
    rejection: tuple[Obj, ...] = ()  # the attempted revision's errors when it was rejected
    ready_reason: str = ""
    ready_message: str = ""
    source_error: str | None = None
    rollouts: dict[NsName, tuple[str, str, str]] = field(default_factory=dict)  # (state, revision, message)
    rollbacks: dict[str, Rollback] = field(default_factory=dict)  # by failed commit
    last_rejected: tuple[str, str] | None = None  # (reason, commit or message) of the last rejection sent
    source_edges: tuple[str | None, ...] = ()  # the source's changes since the last look, in order (None: up)
    applied_edges: tuple[str, ...] = ()  # the revisions applied since the last look, in order


@dataclass(frozen=True)
class Event:
    event: str
    severity: str  # "info" or "error"
    reason: str
    message: str
    revision: str | None = None
    object: Key | None = None
    errors: tuple[Obj, ...] = ()


def rollout_state(dep: Obj) -> tuple[str, str, str]:
    """A Deployment's (state, revision, message): complete / failed / progressing as ``kubectl
    rollout status`` sees it, and the revision annotation it is at."""
    message, done, failed = rollout_status(dep)
    revision = str(((dep.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision", ""))
    return (FAILED if failed else COMPLETE if done else PROGRESSING), revision, message


def _revision_events(prev: Snapshot, cur: Snapshot) -> list[Event]:
    out: list[Event] = []
    applied = list(cur.applied_edges)  # each one, however soon the next came; else the change of level
    if not applied and cur.applied and cur.applied != prev.applied:
        applied = [cur.applied]
    for sha in applied:
        out.append(Event("revision_applied", "info", "ReconciliationSucceeded", f"applied {sha}", sha))
    if cur.attempted != prev.attempted and cur.attempted_result == "rejected" and cur.attempted:
        errs = cur.rejection[:MAX_ERRORS]
        first = errs[0] if errs else {}
        where = f"{first.get('file')}:{first.get('line')} {first.get('field') or ''}".rstrip() if errs else ""
        msg = f"revision {cur.attempted[:7]} rejected" + (f": {where}: {first.get('message')}" if errs else "")
        if len(cur.rejection) > 1:
            msg += f" (and {len(cur.rejection) - 1} more)"
        out.append(Event("revision_rejected", "error", "ValidationFailed", msg, cur.attempted, errors=errs))
    verification = cur.ready_reason == "VerificationFailed"
    if verification and (prev.ready_reason, prev.ready_message) != (cur.ready_reason, cur.ready_message):
        out.append(Event("revision_rejected", "error", "VerificationFailed", cur.ready_message))
    return out


def _source_events(prev: Snapshot, cur: Snapshot) -> list[Event]:
    """The source's outages and recoveries: each edge recorded since the last look (an outage that
    began and ended between two looks included), else the change of level. At most three events
    a look, whatever the source did meanwhile: the first change, one ``source_unreachable`` for
    every further outage (counted in its message) and the recovery that ended them."""
    if not cur.source_edges:
        if cur.source_error and not prev.source_error:
            return [Event("source_unreachable", "error", "SourceUnavailable", cur.source_error)]
        if prev.source_error and not cur.source_error:
            return [Event("source_recovered", "info", "SourceAvailable", "the source is reachable again")]
        return []
    walked: list[Event] = []
    down = bool(prev.source_error)
    for edge in cur.source_edges:
        if edge and not down:
            walked.append(Event("source_unreachable", "error", "SourceUnavailable", edge))
        elif not edge and down:
            walked.append(Event("source_recovered", "info", "SourceAvailable", "the source is reachable again"))
        down = bool(edge)
    return _coalesce(walked)


def _coalesce(walked: list[Event]) -> list[Event]:
    """Alternating outages and recoveries, at most three: the first, the further outages as one
    (counted), the last recovery."""
    if len(walked) <= 2:
        return walked
    first, rest = walked[0], walked[1:]
    outages = [e for e in rest if e.event == "source_unreachable"]
    out = [first]
    if first.event == "source_unreachable":
        n = len(outages) + 1
        out = [replace(first, message=f"{first.message} ({n} outages since the last notification)")]
    elif outages:
        more = f" ({len(outages)} outages since the last notification)" if len(outages) > 1 else ""
        out.append(replace(outages[0], message=outages[0].message + more))
    if walked[-1].event == "source_recovered" and out[-1].event != "source_recovered":
        out.append(walked[-1])
    return out


def _rollout_events(prev: Snapshot, cur: Snapshot) -> list[Event]:
    out: list[Event] = []
    for (ns, name), (state, revision, message) in sorted(cur.rollouts.items()):
        before = prev.rollouts.get((ns, name))
        if state == PROGRESSING or (before and before[:2] == (state, revision)):
            continue
        key: Key = ("Deployment", ns, name)
        if state == COMPLETE:
            out.append(Event("rollout_complete", "info", "NewReplicaSetAvailable", message, object=key))
        else:
            out.append(Event("rollout_failed", "error", "ProgressDeadlineExceeded", message, object=key))
    return out


def rejection_key(ev: Event) -> tuple[str, str]:
    """What makes two rejections the same: the reason and the commit (a VerificationFailed
    message names the commit and the signer)."""
    return ev.reason, ev.revision or ev.message


def derive(prev: Snapshot | None, cur: Snapshot) -> list[Event]:
    """The notifications the change from ``prev`` to ``cur`` makes (none for the first look); a
    rejection equal to ``prev.last_rejected`` is not said again."""
    if prev is None:
        return []
    out = [
        ev
        for ev in _revision_events(prev, cur)
        if ev.event != "revision_rejected" or rejection_key(ev) != prev.last_rejected
    ]
    out += _source_events(prev, cur) + _rollout_events(prev, cur)
    for failed, rb in cur.rollbacks.items():
        if failed not in prev.rollbacks:
            msg = rb.message or f"rolled back commit {failed[:7]}: committed {rb.commit[:7]}"
            out.append(Event("rollback_committed", "error", "AutoRollback", msg, rb.commit, rb.object))
    return out


def remember(prev: Snapshot | None, cur: Snapshot, events: list[Event]) -> Snapshot:
    """``cur`` carrying the last rejection sent: the newest of ``events``, else the one before
    (forgotten when another revision was applied). At the first look, the rejection found counts
    as said (nothing is sent for the state found at start)."""
    if prev is None:
        events = [ev for ev in _revision_events(Snapshot(), cur) if ev.event == "revision_rejected"]
    last = prev.last_rejected if prev is not None and prev.applied == cur.applied else None
    for ev in events:
        if ev.event == "revision_rejected":
            last = rejection_key(ev)
    return replace(cur, last_rejected=last)


def advance(prev: Snapshot | None, cur: Snapshot) -> tuple[list[Event], Snapshot]:
    """``derive`` and the snapshot to compare the next look with."""
    events = derive(prev, cur)
    return events, remember(prev, cur, events)


# --------------------------------------------------------------------------- bodies

TITLES = {
    "revision_applied": "Revision applied",
    "revision_rejected": "Revision rejected",
    "rollout_complete": "Rollout complete",
    "rollout_failed": "Rollout failed",
    "rollback_committed": "Automatic rollback committed",
    "source_unreachable": "Source unreachable",
    "source_recovered": "Source recovered",
}


def generic_body(ev: Event, source: Obj, timestamp: str) -> Obj:
    """gitship's JSON notification (fields named as Flux's notification-controller events)."""
    body: Obj = {
        "event": ev.event,
        "severity": ev.severity,
        "reason": ev.reason,
        "message": ev.message,
        "timestamp": timestamp,
        "reportingController": "gitship",
        "source": {"url": source.get("url"), "branch": source.get("branch"), "path": source.get("path") or ""},
        "metadata": {"revision": ev.revision} if ev.revision else {},
    }
    if ev.object:
        body["involvedObject"] = {"kind": ev.object[0], "namespace": ev.object[1], "name": ev.object[2]}
    if ev.errors:
        body["errors"] = [{k: e.get(k) for k in ("file", "line", "field", "message")} for e in ev.errors]
    return body


def _mrkdwn(text: str) -> str:
    """Slack's three characters to escape in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(ev: Event, source: Obj, timestamp: str) -> Obj:
    """Slack's incoming-webhook body: ``text`` (the fallback) and the same as blocks."""
    mark = ":white_check_mark:" if ev.severity == "info" else ":x:"
    what = f"{ev.object[0].lower()}/{ev.object[2]} in {ev.object[1]}: " if ev.object else ""
    text = f"{mark} *{TITLES.get(ev.event, ev.event)}*: {_mrkdwn(what + ev.message)}"
    lines = [
        f"• `{_mrkdwn(str(e.get('file')))}:{e.get('line')}` {_mrkdwn(str(e.get('field') or ''))}: "
        f"{_mrkdwn(str(e.get('message')))}"
        for e in ev.errors[:10]
    ]
    context = f"{_mrkdwn(str(source.get('url') or ''))} ({_mrkdwn(str(source.get('branch') or ''))})"
    if ev.revision:
        context += f" · `{ev.revision[:12]}`"
    blocks: list[Obj] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"gitship · {context} · {timestamp}"}]})
    return {"text": text, "blocks": blocks}


BODIES = {"generic": generic_body, "slack": slack_body}


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait after the ``attempt``-th failed delivery (0-based): base·2^attempt, at most ``cap``."""
    return float(min(cap, base * (2 ** min(attempt, 30))))
