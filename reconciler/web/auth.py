"""Login tokens, sessions and CSRF tokens for the web view.

``gitship dashboard`` makes a one-time login token: a random secret whose SHA-256 names a file in
``<state-dir>/web/login/`` (a directory only the state dir's owner can write: making the token
proves the right to the state dir). The daemon's ``/login?token=`` removes that file; whoever
removes it first gets the session, so a token works once; one older than ``TOKEN_TTL`` is refused.
A session is a random cookie (HttpOnly, SameSite=Strict) with a CSRF token of its own, which
every request that changes something must carry (form field ``csrf`` or header ``X-CSRF-Token``).
Sessions live in the daemon's memory: a restart logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

TOKEN_TTL = 600.0  # seconds a login token stays good
SESSION_TTL = 12 * 3600.0
COOKIE = "gitship_session"


def login_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "web", "login")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(state_dir: str) -> str:
    """A new one-time login token (the CLI side)."""
    d = login_dir(state_dir)
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(os.path.dirname(d), 0o700)
    os.chmod(d, 0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(os.path.join(d, _digest(token)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    return token


def redeem(state_dir: str, token: str, now: float | None = None) -> bool:
    """True once for a token ``issue_token`` made within ``TOKEN_TTL``; the token is gone after."""
    if not token or len(token) > 128:
        return False
    path = os.path.join(login_dir(state_dir), _digest(token))
    try:
        made = os.stat(path).st_mtime
        os.unlink(path)  # the one who removes it wins: a second use finds nothing
    except OSError:
        return False
    return (now if now is not None else time.time()) - made <= TOKEN_TTL


def sweep(state_dir: str, now: float | None = None) -> None:
    """Remove expired login tokens."""
    now = now if now is not None else time.time()
    d = login_dir(state_dir)
    try:
        names = os.listdir(d)
    except OSError:
        return
    for name in names:
        p = os.path.join(d, name)
        try:
            if now - os.stat(p).st_mtime > TOKEN_TTL:
                os.unlink(p)
        except OSError:
            pass


@dataclass
class Session:
    csrf: str
    expires: float


class Sessions:
    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def create(self, now: float | None = None) -> tuple[str, Session]:
        now = now if now is not None else time.time()
        for sid in [s for s, v in self._by_id.items() if v.expires < now]:
            del self._by_id[sid]
        sid = secrets.token_urlsafe(32)
        s = Session(secrets.token_urlsafe(24), now + SESSION_TTL)
        self._by_id[sid] = s
        return sid, s

    def get(self, sid: str | None, now: float | None = None) -> Session | None:
        s = self._by_id.get(sid or "")
        if s is None or s.expires < (now if now is not None else time.time()):
            return None
        return s

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())
