"""The recorded timeline: durable events in the project database, queryable by what they are
about."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from conveyor.model.events import Event, Subject
from conveyor.store.database import Database, Row

_SUBJECT_COLUMNS = {
    "project": "project",
    "environment": "environment",
    "commit": "commit_sha",
    "pipeline": "pipeline_id",
    "job": "job_id",
    "release": "release",
    "rollout": "rollout_id",
    "service": "service",
    "replica": "replica",
}


class EventLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, event: Event) -> Event:
        """Record a durable event; returns it with its id."""
        s = event.subject
        cur = self._db.execute(
            "INSERT INTO timeline (ts, kind, level, actor, message, project, environment, "
            "commit_sha, pipeline_id, job_id, release, rollout_id, service, replica, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.ts, event.kind, event.level, event.actor, event.message, s.project,
                s.environment, s.commit, s.pipeline, s.job, s.release, s.rollout, s.service,
                s.replica, json.dumps(event.data, default=str),
            ),
        )  # fmt: skip
        return event.model_copy(update={"id": int(cur.lastrowid or 0)})

    def after(self, after: int | None, limit: int) -> list[Event]:
        """Up to `limit` events with an id above `after` (None: from the oldest kept), oldest
        first."""
        rows = self._db.all(
            "SELECT * FROM timeline WHERE id > ? ORDER BY id LIMIT ?", (after or 0, limit)
        )
        return [_event(r) for r in rows]

    def last_id(self) -> int | None:
        """The newest event's id; None when there is none."""
        found = self._db.scalar("SELECT MAX(id) FROM timeline")
        return None if found is None else int(found)

    def keep_newest(self, count: int) -> None:
        """Forget all but the newest `count` events."""
        self._db.execute(
            "DELETE FROM timeline WHERE id <= (SELECT MAX(id) FROM timeline) - ?", (count,)
        )

    def about(self, limit: int = 10_000, **subject: Any) -> list[Event]:
        """Events whose subject matches every given field (commit matches a prefix), oldest
        first. `about(rollout=3)`, `about(commit="ab12")`, `about(pipeline=7)`."""
        where: list[str] = []
        args: list[Any] = []
        for key, value in subject.items():
            if value is None:
                continue
            col = _SUBJECT_COLUMNS[key]
            if key == "commit":
                where.append(f"{col} LIKE ?")
                args.append(f"{value}%")
            else:
                where.append(f"{col} = ?")
                args.append(value)
        sql = "SELECT * FROM timeline"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._db.all(sql + " ORDER BY id LIMIT ?", (*args, limit))
        return [_event(r) for r in rows]

    def recent(self, kinds: Sequence[str], since: float, limit: int = 1000) -> list[Event]:
        """Events of `kinds` recorded at or after `since` (UNIX seconds), newest first."""
        if not kinds:
            return []
        marks = ", ".join("?" for _ in kinds)
        rows = self._db.all(
            f"SELECT * FROM timeline WHERE kind IN ({marks}) AND ts >= ? "  # noqa: S608 — only ?s
            "ORDER BY id DESC LIMIT ?",
            (*kinds, since, limit),
        )
        return [_event(r) for r in rows]


def _event(r: Row) -> Event:
    return Event(
        id=r["id"],
        ts=r["ts"],
        kind=r["kind"],
        level=r["level"],
        actor=r["actor"],
        message=r["message"],
        data=json.loads(r["data"] or "{}"),
        subject=Subject(
            **{k: r[col] for k, col in _SUBJECT_COLUMNS.items() if r[col] is not None}
            | {"project": r["project"]}
        ),
    )
