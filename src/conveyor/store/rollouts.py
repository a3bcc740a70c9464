"""Rollouts (moving the project from one release to another) and their step journal."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel

from conveyor.model.release import RolloutKind, RolloutStatus
from conveyor.plan.actions import Step
from conveyor.store.database import Database

JournalStatus = str  # started | done | failed | skipped


class RolloutRow(BaseModel):
    id: int
    kind: RolloutKind
    from_release: int | None
    to_release: int | None
    status: RolloutStatus
    started_at: float
    finished_at: float | None
    actor: str
    reason: str
    error: str | None
    recovers: int | None = None  # a recovery: the interrupted rollout it finishes
    environment: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


class JournalRow(BaseModel):
    rollout_id: int
    seq: int
    step: dict[str, Any]
    kind: str | None
    service: str | None
    replica: str | None
    status: JournalStatus
    started_at: float
    finished_at: float | None
    detail: str | None


class RolloutRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self,
        kind: RolloutKind,
        from_release: int | None,
        to_release: int | None,
        actor: str,
        reason: str = "",
        recovers: int | None = None,
        environment: str | None = None,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO rollouts (kind, from_release, to_release, status, started_at, actor, "
            "reason, recovers, environment) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (kind, from_release, to_release, time.time(), actor, reason, recovers, environment),
        )
        return int(cur.lastrowid or 0)

    def finish(self, rollout_id: int, status: RolloutStatus, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE rollouts SET status = ?, finished_at = ?, error = ? WHERE id = ?",
            (status, time.time(), error, rollout_id),
        )

    def get(self, rollout_id: int) -> RolloutRow | None:
        row = self._db.one("SELECT * FROM rollouts WHERE id = ?", (rollout_id,))
        return None if row is None else RolloutRow(**dict(row))

    def latest(self, limit: int = 50, status: RolloutStatus | None = None) -> list[RolloutRow]:
        if status is None:
            rows = self._db.all("SELECT * FROM rollouts ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.all(
                "SELECT * FROM rollouts WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
        return [RolloutRow(**dict(r)) for r in rows]

    def since(self, ts: float) -> list[RolloutRow]:
        """Rollouts that started, ended or are still open at or after `ts`, oldest first."""
        rows = self._db.all(
            "SELECT * FROM rollouts WHERE started_at >= ? OR finished_at >= ? "
            "OR finished_at IS NULL ORDER BY id",
            (ts, ts),
        )
        return [RolloutRow(**dict(r)) for r in rows]

    def running(self) -> list[RolloutRow]:
        """Rollouts still marked running: a crash interrupted them (the caller holds the lock)."""
        return self.latest(limit=1000, status="running")

    def of_releases(self, numbers: list[int]) -> list[RolloutRow]:
        """Rollouts to or from any of these releases, oldest first."""
        if not numbers:
            return []
        marks = ", ".join("?" * len(numbers))
        rows = self._db.all(
            f"SELECT * FROM rollouts WHERE to_release IN ({marks}) OR from_release IN ({marks}) "  # noqa: S608 — placeholders only
            "ORDER BY id",
            (*numbers, *numbers),
        )
        return [RolloutRow(**dict(r)) for r in rows]


class JournalRepository:
    """Each step is written before it acts, so a crash leaves a trace of what was under way."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(self, rollout_id: int, seq: int, step: Step) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO journal (rollout_id, seq, step, kind, service, replica, "
            "status, started_at) VALUES (?, ?, ?, ?, ?, ?, 'started', ?)",
            (
                rollout_id,
                seq,
                step.model_dump_json(),
                step.kind,
                step.service or None,
                step.replica or None,
                time.time(),
            ),
        )

    def end(
        self, rollout_id: int, seq: int, status: JournalStatus, detail: str | None = None
    ) -> None:
        self._db.execute(
            "UPDATE journal SET status = ?, finished_at = ?, detail = ? "
            "WHERE rollout_id = ? AND seq = ?",
            (status, time.time(), detail, rollout_id, seq),
        )

    def of(self, rollout_id: int) -> list[JournalRow]:
        rows = self._db.all(
            "SELECT * FROM journal WHERE rollout_id = ? ORDER BY seq", (rollout_id,)
        )
        return [JournalRow(**{**dict(r), "step": json.loads(r["step"])}) for r in rows]
