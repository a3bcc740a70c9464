"""The state database: releases, rollouts, their journal, events, port allocations.

SQLite in WAL mode under the project's state directory. Schema changes are numbered
migrations applied in order at open; `PRAGMA user_version` records the last one applied.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from conveyor.model.release import Release, RolloutKind, RolloutStatus

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE releases (
        number INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        commit_sha TEXT,
        body TEXT NOT NULL             -- the Release as JSON
    );
    CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        from_release INTEGER,
        to_release INTEGER,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        error TEXT
    );
    CREATE TABLE journal (
        rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
        seq INTEGER NOT NULL,
        step TEXT NOT NULL,            -- the Step as JSON
        status TEXT NOT NULL,          -- started | done | failed | skipped
        started_at REAL NOT NULL,
        finished_at REAL,
        detail TEXT,
        PRIMARY KEY (rollout_id, seq)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE ports (
        name TEXT PRIMARY KEY,         -- 'frontend:<service>' or 'stats'
        port INTEGER NOT NULL UNIQUE
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE pipelines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ref TEXT,
        sha TEXT,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        file TEXT NOT NULL,
        executor TEXT NOT NULL,
        tests TEXT NOT NULL DEFAULT '{}',    -- summed JUnit counts
        coverage REAL
    );
    CREATE TABLE ci_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline_id INTEGER NOT NULL REFERENCES pipelines(id),
        name TEXT NOT NULL,
        stage TEXT NOT NULL,
        status TEXT NOT NULL,
        when_ TEXT NOT NULL,
        allow_failure INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 1,
        retry_of INTEGER,
        started_at REAL,
        finished_at REAL,
        exit_code INTEGER,
        failure_reason TEXT,
        executor TEXT,
        log_path TEXT,
        coverage REAL,
        tests TEXT NOT NULL DEFAULT '{}',
        artifacts TEXT                      -- artifacts manifest (JSON) or NULL
    );
    CREATE INDEX ci_jobs_pipeline ON ci_jobs(pipeline_id);
    """,
    """
    ALTER TABLE ci_jobs ADD COLUMN environment TEXT   -- {"name", "url", "action"} or NULL
    """,
    """
    ALTER TABLE pipelines ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ci_jobs ADD COLUMN interruptible INTEGER NOT NULL DEFAULT 0
    """,
)


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

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


class JournalRow(BaseModel):
    rollout_id: int
    seq: int
    step: dict[str, Any]
    status: str
    started_at: float
    finished_at: float | None
    detail: str | None


class EventRow(BaseModel):
    id: int
    ts: float
    kind: str
    actor: str
    message: str
    data: dict[str, Any]


class Store:
    """One project's state. Open with `Store.open(state_dir)`; cheap to open per command."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # One connection shared by a command's threads (CI jobs run concurrently): every
        # transaction holds this lock so they never interleave.
        self.lock = threading.RLock()

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        state_dir.mkdir(parents=True, exist_ok=True)
        ignore = state_dir / ".gitignore"
        if not ignore.exists():
            # state (logs, secrets, databases) never belongs in the project's commits
            ignore.write_text("# written by Conveyor: this directory is local state\n*\n")
        conn = sqlite3.connect(
            state_dir / "state.db", timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn)
        store._migrate()
        return store

    def close(self) -> None:
        self._conn.close()

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        for i, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._tx():
                # executescript() would commit on its own; run statements inside our transaction
                for stmt in _statements(sql):
                    self._conn.execute(stmt)
                self._conn.execute(f"PRAGMA user_version = {i}")

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # releases -----------------------------------------------------------------------------

    def next_release_number(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(number), 0) FROM releases").fetchone()
        return int(row[0]) + 1

    def save_release(self, release: Release) -> Release:
        """Record a release; it is given the next number if it has none (0)."""
        with self._tx():
            number = release.number or self.next_release_number()
            rel = release.model_copy(update={"number": number, "created_at": time.time()})
            self._conn.execute(
                "INSERT INTO releases (number, created_at, commit_sha, body) VALUES (?, ?, ?, ?)",
                (number, rel.created_at, rel.commit, rel.model_dump_json()),
            )
        return rel

    def release(self, number: int) -> Release | None:
        row = self._conn.execute("SELECT body FROM releases WHERE number = ?", (number,)).fetchone()
        return None if row is None else Release.model_validate_json(row[0])

    def releases(self, limit: int = 50) -> list[Release]:
        rows = self._conn.execute(
            "SELECT body FROM releases ORDER BY number DESC LIMIT ?", (limit,)
        ).fetchall()
        return [Release.model_validate_json(r[0]) for r in rows]

    # current / previous release pointers ---------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str | None) -> None:
        with self._tx():
            if value is None:
                self._conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                self._conn.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def current_release(self) -> Release | None:
        v = self.get("current_release")
        return None if v is None else self.release(int(v))

    def set_current_release(self, number: int | None) -> None:
        self.put("current_release", None if number is None else str(number))

    # rollouts and their journal -------------------------------------------------------------

    def start_rollout(
        self,
        kind: RolloutKind,
        from_release: int | None,
        to_release: int | None,
        actor: str,
        reason: str = "",
    ) -> int:
        with self._tx():
            cur = self._conn.execute(
                "INSERT INTO rollouts (kind, from_release, to_release, status, started_at, actor, "
                "reason) VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (kind, from_release, to_release, time.time(), actor, reason),
            )
        return int(cur.lastrowid or 0)

    def finish_rollout(
        self, rollout_id: int, status: RolloutStatus, error: str | None = None
    ) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE rollouts SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                (status, time.time(), error, rollout_id),
            )

    def rollout(self, rollout_id: int) -> RolloutRow | None:
        row = self._conn.execute("SELECT * FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
        return None if row is None else RolloutRow(**dict(row))

    def rollouts(self, limit: int = 50, status: str | None = None) -> list[RolloutRow]:
        q = "SELECT * FROM rollouts"
        args: tuple[Any, ...] = ()
        if status:
            q += " WHERE status = ?"
            args = (status,)
        q += " ORDER BY id DESC LIMIT ?"
        rows = self._conn.execute(q, (*args, limit)).fetchall()
        return [RolloutRow(**dict(r)) for r in rows]

    def journal_begin(self, rollout_id: int, seq: int, step: BaseModel) -> None:
        """Written before the step acts, so a crash leaves a trace of what was under way."""
        with self._tx():
            self._conn.execute(
                "INSERT OR REPLACE INTO journal (rollout_id, seq, step, status, started_at) "
                "VALUES (?, ?, ?, 'started', ?)",
                (rollout_id, seq, step.model_dump_json(), time.time()),
            )

    def journal_end(
        self, rollout_id: int, seq: int, status: str, detail: str | None = None
    ) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE journal SET status = ?, finished_at = ?, detail = ? "
                "WHERE rollout_id = ? AND seq = ?",
                (status, time.time(), detail, rollout_id, seq),
            )

    def journal(self, rollout_id: int) -> list[JournalRow]:
        rows = self._conn.execute(
            "SELECT * FROM journal WHERE rollout_id = ? ORDER BY seq", (rollout_id,)
        ).fetchall()
        return [JournalRow(**{**dict(r), "step": json.loads(r["step"])}) for r in rows]

    # events ----------------------------------------------------------------------------------

    def event(self, kind: str, message: str, actor: str = "cli", **data: Any) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT INTO events (ts, kind, actor, message, data) VALUES (?, ?, ?, ?, ?)",
                (time.time(), kind, actor, message, json.dumps(data, default=str)),
            )

    def events(self, limit: int = 100) -> list[EventRow]:
        rows = self._conn.execute(
            "SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [EventRow(**{**dict(r), "data": json.loads(r["data"])}) for r in rows]

    # port allocations --------------------------------------------------------------------------

    def ports(self) -> dict[str, int]:
        return {str(r[0]): int(r[1]) for r in self._conn.execute("SELECT name, port FROM ports")}

    def set_port(self, name: str, port: int) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT INTO ports (name, port) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET port = excluded.port",
                (name, port),
            )

    def drop_port(self, name: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM ports WHERE name = ?", (name,))


def _statements(script: str) -> list[str]:
    """Split a migration into statements (comments stripped); ours contain no ';' in strings."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
