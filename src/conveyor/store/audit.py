"""The server's audit log: who acted (or tried to), on what, and the outcome."""

from __future__ import annotations

import json
import time
from typing import Any

from conveyor.model.access import AuditOutcome, AuditRecord, Role
from conveyor.store.database import Database, Row


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        actor: str,
        role: Role | None,
        action: str,
        target: str,
        outcome: AuditOutcome,
        detail: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> AuditRecord:
        at = time.time() if at is None else at
        cur = self._db.execute(
            "INSERT INTO audit (at, actor, role, action, target, detail, outcome) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, actor, role, action, target, json.dumps(detail or {}, default=str), outcome),
        )
        return AuditRecord(
            id=int(cur.lastrowid or 0),
            at=at,
            actor=actor,
            role=role,
            action=action,
            target=target,
            detail=detail or {},
            outcome=outcome,
        )

    def latest(self, limit: int = 100, before: int | None = None) -> list[AuditRecord]:
        """Newest first; `before` pages back from a record id."""
        rows = self._db.all(
            "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before if before is not None else 2**62, limit),
        )
        return [_record(r) for r in rows]


def _record(r: Row) -> AuditRecord:
    return AuditRecord(
        id=r["id"],
        at=r["at"],
        actor=r["actor"],
        role=r["role"],
        action=r["action"],
        target=r["target"],
        detail=json.loads(r["detail"] or "{}"),
        outcome=r["outcome"],
    )
