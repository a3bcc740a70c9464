"""The dashboard's sign-in: an API token, checked as the API checks it, opens a server-side
session whose id lives in an HttpOnly cookie; sign-out ends it. Sessions are stored hashed in
the server database (`web_sessions`) and end when idle, when too old, or when their token is
revoked (model/web_session.py holds the rules). Signing in and out is in the audit log."""

from __future__ import annotations

import time
from dataclasses import dataclass

from conveyor.app.access import ServerDatabase, find_token, record
from conveyor.model.access import Principal
from conveyor.model.web_session import (
    IDLE_SECONDS,
    MAX_AGE_SECONDS,
    WebSession,
    live,
    needs_touch,
    new_secret,
    session_hash,
)

__all__ = ["OpenedSession", "close_session", "open_session", "resume_session"]


@dataclass(frozen=True)
class OpenedSession:
    session_id: str  # for the cookie only: the server keeps its hash
    session: WebSession

    @property
    def principal(self) -> Principal:
        return Principal(name=self.session.name, role=self.session.role)


def open_session(
    sdb: ServerDatabase,
    presented_token: str,
    now: float | None = None,
    max_age: float = MAX_AGE_SECONDS,
    idle: float = IDLE_SECONDS,
) -> OpenedSession | None:
    """A new session for the active API token `presented_token`; None when the token is not
    one (unknown or revoked: nothing is recorded, as for the API's 401)."""
    now = time.time() if now is None else now
    token = find_token(sdb, presented_token.strip())
    if token is None:
        return None
    sdb.web_sessions.purge(now, idle)  # a sign-in is a fine moment to forget the ended ones
    sid = new_secret()
    s = sdb.web_sessions.add(session_hash(sid), token.id, now, now + max_age)
    record(sdb, Principal(name=token.name, role=token.role), "dashboard.sign_in", token.name, "ok")
    return OpenedSession(sid, s)


def resume_session(
    sdb: ServerDatabase,
    session_id: str | None,
    now: float | None = None,
    idle: float = IDLE_SECONDS,
) -> WebSession | None:
    """The live session whose id the cookie carries, its activity recorded; None when there is
    none (never was, signed out, expired, or its token revoked)."""
    if not session_id:
        return None
    now = time.time() if now is None else now
    digest = session_hash(session_id)
    s = sdb.web_sessions.find(digest)
    if s is None:
        return None
    if not live(s, now, idle):
        sdb.web_sessions.delete(digest)
        return None
    if needs_touch(s, now):
        sdb.web_sessions.touch(s.id, now)
    return s


def close_session(sdb: ServerDatabase, session_id: str | None) -> bool:
    """Sign out: the session is forgotten (its cookie then finds nothing). False when there was
    no live session."""
    if not session_id:
        return False
    digest = session_hash(session_id)
    s = sdb.web_sessions.find(digest)
    gone = sdb.web_sessions.delete(digest)
    if s is not None:
        record(sdb, Principal(name=s.name, role=s.role), "dashboard.sign_out", s.name, "ok")
    return gone
