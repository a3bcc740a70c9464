"""The dashboard's sign-in sessions and CSRF tokens: the pure rules (no clock, no database).

A session id is 32 random bytes (URL-safe base64) held only in the browser's cookie; the
server stores its SHA-256 hash, as it stores API tokens, so a copy of the database signs
nobody in. A session ends at the first of: sign-out, `IDLE_SECONDS` without a request,
`MAX_AGE_SECONDS` after sign-in, or the revocation of the API token it was opened with.

CSRF: the token of a session is derived from its id (HMAC-SHA256 keyed by the id), so the
server stores nothing more and a page may show it without revealing the id. The sign-in form,
which has no session yet, uses a double-submit cookie: a random value in a cookie and in the
form, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal, TypedDict

from conveyor.model.access import Role
from conveyor.model.frozen import Frozen

SESSION_COOKIE = "conveyor_session"
SIGNIN_COOKIE = "conveyor_signin"  # the sign-in form's double-submit CSRF value
CSRF_FIELD = "csrf_token"  # the form field (and X-CSRF-Token header) carrying it
CSRF_HEADER = "x-csrf-token"
IDLE_SECONDS = 12 * 3600.0  # a dashboard left open over lunch stays signed in
MAX_AGE_SECONDS = 7 * 86400.0  # signing in again once a week at least
TOUCH_EVERY_SECONDS = 60.0  # `last_seen_at` is written at most this often per session
_CSRF_CONTEXT = b"conveyor dashboard csrf v1"


class WebSession(Frozen):
    """A live session as the server knows it: who (the token it was opened with), since when."""

    id: int
    token_id: int
    name: str  # the token's name: the actor in the audit log
    role: Role
    created_at: float
    last_seen_at: float
    expires_at: float  # the absolute end (sign-in + MAX_AGE_SECONDS)


def new_secret() -> str:
    """A fresh session id or sign-in CSRF value: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    """The CSRF token of the session `session_id`: stable for the session's life."""
    return hmac.new(session_id.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_ok(expected: str, presented: str | None) -> bool:
    """`presented` is the expected CSRF value (constant time; empty values never match)."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def live(s: WebSession, now: float, idle: float = IDLE_SECONDS) -> bool:
    """The session has not expired at `now` (neither idle too long nor too old)."""
    return now < s.expires_at and now - s.last_seen_at < idle


def needs_touch(s: WebSession, now: float) -> bool:
    """Whether to record this request as the session's last activity (not on every request:
    each would be a write to the server database)."""
    return now - s.last_seen_at >= TOUCH_EVERY_SECONDS


class CookieAttributes(TypedDict):
    httponly: bool
    samesite: Literal["strict"]
    secure: bool
    path: str
    max_age: int | None


def cookie_attributes(*, secure: bool, max_age: float | None) -> CookieAttributes:
    """Attributes of the dashboard's cookies: never readable from scripts, never sent by another
    site's request, `Secure` when the page came over https (it would not be sent over http)."""
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": secure,
        "path": "/",
        "max_age": None if max_age is None else int(max_age),
    }
