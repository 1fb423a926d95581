"""A receiver for push webhooks (``--webhook-addr``): a push to the watched branch fetches at once.

Where it sits: an aiohttp server of its own (reconciler/ops/start.py starts it). A delivery is
checked in this order, each step answering on its own:

1. size: a body over 1 MiB is refused with 413, from its Content-Length before it is read, or
   while it is read (chunked);
2. signature, with the secret of ``--webhook-secret-file`` (compared in constant time):
   GitHub ``X-Hub-Signature-256: sha256=HEX`` (HMAC-SHA256 of the body), GitLab ``X-Gitlab-Token``
   (the secret itself), Gitea / Forgejo ``X-Gitea-Signature`` / ``X-Forgejo-Signature`` (hex
   HMAC-SHA256), and a generic ``X-Signature: sha256=HEX``; a bad or missing one is 401, logged;
3. replay: a delivery id seen before (``X-GitHub-Delivery`` and the like; else the body's hash)
   is acknowledged (200) and does nothing more;
4. event: a push whose ``ref`` is ``refs/heads/<watched branch>`` wakes the source loop, which
   fetches a URL source at once (Daemon.wake_source(fetch=True)); other branches, tags and events: 200, ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader, web

from . import metrics

MAX_BODY = 1 << 20  # 1 MiB: GitHub caps payloads at 25 MB, but a push that matters to us is small
REMEMBERED_DELIVERIES = 4096

# provider -> (event header, delivery-id header); the first provider whose headers are present wins
# (Gitea and Forgejo also send GitHub's and Gogs' headers: they are looked for first)
_PROVIDERS = (
    ("forgejo", "X-Forgejo-Event", "X-Forgejo-Delivery", "X-Forgejo-Signature"),
    ("gitea", "X-Gitea-Event", "X-Gitea-Delivery", "X-Gitea-Signature"),
    ("gitlab", "X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Gitlab-Token"),
    ("github", "X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256"),
    ("generic", "X-Event", "X-Delivery", "X-Signature"),
)


def provider_of(headers: Mapping[str, str]) -> str:
    """github, gitlab, gitea, forgejo or generic (by the headers each sends); "unknown" otherwise."""
    for name, event, _delivery, signature in _PROVIDERS:
        if event in headers or signature in headers:
            return name
    return "unknown"


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(provider: str, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    """The delivery carries the provider's proof of the secret (constant-time comparisons)."""
    if not secret:
        return False
    if provider == "gitlab":
        return hmac.compare_digest(headers.get("X-Gitlab-Token", "").encode(), secret)
    header = next((sig for name, _e, _d, sig in _PROVIDERS if name == provider), None)
    if header is None:
        return False
    given = headers.get(header, "").strip()
    if provider in ("github", "generic"):
        if not given.startswith("sha256="):
            return False
        given = given[len("sha256=") :]
    return hmac.compare_digest(given.lower().encode(), _hmac_hex(secret, body).encode())


def event_of(provider: str, headers: Mapping[str, str]) -> str:
    """The event, in GitHub's words (push, ping, ...): GitLab's "Push Hook" is push."""
    header = next((ev for name, ev, _d, _s in _PROVIDERS if name == provider), "")
    value = headers.get(header, "push" if provider == "generic" else "")
    if provider == "gitlab":
        return {"Push Hook": "push", "Tag Push Hook": "tag_push", "System Hook": "system"}.get(value, value)
    return value.lower()


def delivery_id(provider: str, headers: Mapping[str, str], body: bytes) -> str:
    """The provider's delivery id (GitLab: the event UUID, else Idempotency-Key); the body's hash
    when there is none (the same body twice is the same push)."""
    header = next((d for name, _e, d, _s in _PROVIDERS if name == provider), "")
    given = headers.get(header) or (headers.get("Idempotency-Key") if provider == "gitlab" else None)
    return f"{provider}:{given}" if given else "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Decision:
    status: int
    result: str  # the gitship_webhook_deliveries_total result label
    message: str
    fetch: bool = False


def decide(event: str, payload: Any, branch: str) -> Decision:
    """What a verified, first-seen delivery does."""
    if event == "ping":
        return Decision(200, "ignored", "pong")
    if event != "push":
        return Decision(200, "ignored", f"event {event or '(none)'} ignored: only pushes trigger a fetch")
    if not isinstance(payload, dict):
        return Decision(400, "bad_request", "the body is not a JSON object")
    ref = payload.get("ref")
    if ref is None or ref == f"refs/heads/{branch}":
        return Decision(202, "accepted", f"fetching branch {branch}", fetch=True)
    return Decision(200, "ignored", f"{ref} is not the watched branch refs/heads/{branch}")


async def read_limited(stream: StreamReader, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


class Receiver:
    """The webhook endpoint: POST to any path. ``trigger`` fetches the source now; ``branch`` gives
    the watched branch; ``log`` is the daemon's structured logger."""

    def __init__(self, secret: bytes, branch: Callable[[], str], trigger: Callable[[], None], log: Any):
        self.secret, self.branch, self.trigger, self.log = secret, branch, trigger, log
        self.seen: OrderedDict[str, None] = OrderedDict()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{tail:.*}", self.handle)
        return app

    def _answer(self, provider: str, d: Decision, **fields: Any) -> web.Response:
        metrics.webhook_delivery(provider, d.result)
        log = self.log.warning if d.status in (400, 401, 413) else self.log.info
        log("webhook_delivery", provider=provider, result=d.result, status=d.status, message=d.message, **fields)
        return web.json_response({"result": d.result, "message": d.message}, status=d.status)

    async def handle(self, request: web.Request) -> web.Response:
        headers = request.headers
        provider = provider_of(headers)
        peer = request.remote
        if (request.content_length or 0) > MAX_BODY:
            return self._answer(provider, Decision(413, "too_large", f"bodies over {MAX_BODY} bytes are refused"))
        body = await read_limited(request.content, MAX_BODY)
        if body is None:
            return self._answer(provider, Decision(413, "too_large", f"bodies over {MAX_BODY} bytes are refused"))
        if not signature_ok(provider, headers, body, self.secret):
            return self._answer(provider, Decision(401, "unauthorized", "missing or invalid signature"), remote=peer)
        did = delivery_id(provider, headers, body)
        if did in self.seen:
            return self._answer(provider, Decision(200, "duplicate", "delivery already received"), delivery=did)
        event = event_of(provider, headers)
        try:
            payload = json.loads(body) if event == "push" else None
        except ValueError:
            return self._answer(provider, Decision(400, "bad_request", "the body is not JSON"), delivery=did)
        self.seen[did] = None
        while len(self.seen) > REMEMBERED_DELIVERIES:
            self.seen.popitem(last=False)
        decision = decide(event, payload, self.branch())
        if decision.fetch:
            self.trigger()
        return self._answer(provider, decision, delivery=did, hook_event=event)
