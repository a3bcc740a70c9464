"""The dashboard's sign-in sessions as the server stores them: the session id's hash, the
token it was opened with, and its times. A session of a revoked token is never found."""

from __future__ import annotations

from conveyor.model.web_session import WebSession
from conveyor.store.database import Database, Row

_SELECT = (
    "SELECT s.id, s.token_id, s.created_at, s.last_seen_at, s.expires_at, t.name, t.role "
    "FROM web_sessions s JOIN tokens t ON t.id = s.token_id "
)


class WebSessionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, session_hash: str, token_id: int, at: float, expires_at: float) -> WebSession:
        cur = self._db.execute(
            "INSERT INTO web_sessions (hash, token_id, created_at, last_seen_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (session_hash, token_id, at, at, expires_at),
        )
        row = self._db.one(_SELECT + "WHERE s.id = ?", (int(cur.lastrowid or 0),))
        assert row is not None
        return _session(row)

    def find(self, session_hash: str) -> WebSession | None:
        """The session with this hash whose token is still active; None otherwise."""
        row = self._db.one(_SELECT + "WHERE s.hash = ? AND t.revoked_at IS NULL", (session_hash,))
        return None if row is None else _session(row)

    def touch(self, session_id: int, at: float) -> None:
        self._db.execute("UPDATE web_sessions SET last_seen_at = ? WHERE id = ?", (at, session_id))

    def delete(self, session_hash: str) -> bool:
        return (
            self._db.execute("DELETE FROM web_sessions WHERE hash = ?", (session_hash,)).rowcount
            > 0
        )

    def purge(self, now: float, idle: float) -> int:
        """Remove the sessions over at `now` (too old, idle too long, or of a revoked token)."""
        return self._db.execute(
            "DELETE FROM web_sessions WHERE expires_at <= ? OR last_seen_at <= ? "
            "OR token_id IN (SELECT id FROM tokens WHERE revoked_at IS NOT NULL)",
            (now, now - idle),
        ).rowcount


def _session(r: Row) -> WebSession:
    return WebSession(
        id=r["id"],
        token_id=r["token_id"],
        name=r["name"],
        role=r["role"],
        created_at=r["created_at"],
        last_seen_at=r["last_seen_at"],
        expires_at=r["expires_at"],
    )
