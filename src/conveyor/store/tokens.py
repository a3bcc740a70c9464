"""API tokens as the server stores them: name, role and the token's SHA-256 hash."""

from __future__ import annotations

import sqlite3
import time

from conveyor.errors import TokenNameTaken
from conveyor.model.access import Role, Token
from conveyor.store.database import Database, Row


class TokenRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, name: str, role: Role, token_hash: str, at: float | None = None) -> Token:
        """Record a new token; `TokenNameTaken` if an active token has this name."""
        try:
            cur = self._db.execute(
                "INSERT INTO tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)",
                (name, role, token_hash, time.time() if at is None else at),
            )
        except sqlite3.IntegrityError as e:
            if "tokens.name" not in str(e):
                raise  # a role the schema refuses: a bug of the caller, not the user's input
            raise TokenNameTaken(
                f"a token named {name!r} exists: revoke it first or choose another --name"
            ) from e
        found = self.get(int(cur.lastrowid or 0))
        assert found is not None
        return found

    def get(self, token_id: int) -> Token | None:
        row = self._db.one("SELECT * FROM tokens WHERE id = ?", (token_id,))
        return None if row is None else _token(row)

    def active(self) -> list[Token]:
        """Every token not revoked, oldest first."""
        rows = self._db.all("SELECT * FROM tokens WHERE revoked_at IS NULL ORDER BY id")
        return [_token(r) for r in rows]

    def all(self) -> list[Token]:
        """Every token ever created, revoked ones included, oldest first."""
        return [_token(r) for r in self._db.all("SELECT * FROM tokens ORDER BY id")]

    def names(self) -> set[str]:
        return {str(r[0]) for r in self._db.all("SELECT name FROM tokens")}

    def revoke(self, name: str, at: float | None = None) -> Token | None:
        """Revoke the active token called `name`; None if there is none."""
        with self._db.tx() as c:
            row = c.execute(
                "SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ?",
                (time.time() if at is None else at, row[0]),
            )
        return self.get(int(row[0]))

    def touch(self, token_id: int, at: float | None = None) -> None:
        self._db.execute(
            "UPDATE tokens SET last_used_at = ? WHERE id = ?",
            (time.time() if at is None else at, token_id),
        )


def _token(r: Row) -> Token:
    return Token(
        id=r["id"],
        name=r["name"],
        role=r["role"],
        hash=r["hash"],
        created_at=r["created_at"],
        last_used_at=r["last_used_at"],
        revoked_at=r["revoked_at"],
    )
