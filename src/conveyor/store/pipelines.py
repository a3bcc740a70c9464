"""CI records: pipelines and their jobs, in the project's state database."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel

from conveyor.store.db import Store


class PipelineRow(BaseModel):
    id: int
    ref: str | None
    sha: str | None
    source: str
    status: str
    started_at: float
    finished_at: float | None
    file: str
    executor: str
    tests: dict[str, Any]
    coverage: float | None
    cancel_requested: bool = False

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


class JobRow(BaseModel):
    id: int
    pipeline_id: int
    name: str
    stage: str
    status: str
    when_: str
    allow_failure: bool
    attempt: int
    retry_of: int | None
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    failure_reason: str | None
    executor: str | None
    log_path: str | None
    coverage: float | None
    tests: dict[str, Any]
    artifacts: dict[str, Any] | None
    environment: dict[str, Any] | None = None
    interruptible: bool = False

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class PipelineStore:
    """Typed access to the CI tables of a `Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn = store._conn  # same connection and transactions as the rest of the state

    def create_pipeline(
        self, ref: str | None, sha: str | None, source: str, file: str, executor: str
    ) -> int:
        with self._store._tx():
            cur = self._conn.execute(
                "INSERT INTO pipelines (ref, sha, source, status, started_at, file, executor) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (ref, sha, source, time.time(), file, executor),
            )
        return int(cur.lastrowid or 0)

    def finish_pipeline(
        self, pid: int, status: str, tests: dict[str, Any], coverage: float | None
    ) -> None:
        with self._store._tx():
            self._conn.execute(
                "UPDATE pipelines SET status = ?, finished_at = ?, tests = ?, coverage = ? "
                "WHERE id = ?",
                (status, time.time(), json.dumps(tests), coverage, pid),
            )

    def create_job(
        self,
        pipeline_id: int,
        name: str,
        stage: str,
        status: str,
        when: str,
        allow_failure: bool,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> int:
        with self._store._tx():
            cur = self._conn.execute(
                "INSERT INTO ci_jobs (pipeline_id, name, stage, status, when_, allow_failure, "
                "attempt, retry_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (pipeline_id, name, stage, status, when, int(allow_failure), attempt, retry_of),
            )
        return int(cur.lastrowid or 0)

    def update_job(self, job_id: int, **fields: Any) -> None:
        allowed = {
            "status",
            "started_at",
            "finished_at",
            "exit_code",
            "failure_reason",
            "executor",
            "log_path",
            "coverage",
            "tests",
            "artifacts",
            "allow_failure",
            "environment",
            "interruptible",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        values = [
            json.dumps(v) if k in ("tests", "artifacts", "environment") and v is not None else v
            for k, v in fields.items()
        ]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._store._tx():
            self._conn.execute(f"UPDATE ci_jobs SET {sets} WHERE id = ?", (*values, job_id))  # noqa: S608 — names from the allow-list

    def next_id(self) -> int:
        """The id the next pipeline will get (CI_PIPELINE_ID is known before it is created)."""
        with self._store.lock:
            row = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM pipelines").fetchone()
        return int(row[0]) + 1

    def pipeline(self, pid: int) -> PipelineRow | None:
        with self._store.lock:
            row = self._conn.execute("SELECT * FROM pipelines WHERE id = ?", (pid,)).fetchone()
        return None if row is None else _pipeline(row)

    def pipelines(self, limit: int = 20) -> list[PipelineRow]:
        with self._store.lock:
            rows = self._conn.execute(
                "SELECT * FROM pipelines ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_pipeline(r) for r in rows]

    def jobs(self, pipeline_id: int) -> list[JobRow]:
        with self._store.lock:
            rows = self._conn.execute(
                "SELECT * FROM ci_jobs WHERE pipeline_id = ? ORDER BY id", (pipeline_id,)
            ).fetchall()
        return [_job(r) for r in rows]

    def running_for_ref(self, ref: str | None, newer_than: int) -> list[PipelineRow]:
        """Pipelines of `ref` still running, older than pipeline `newer_than`."""
        with self._store.lock:
            rows = self._conn.execute(
                "SELECT * FROM pipelines WHERE status = 'running' AND ref IS ? AND id < ?",
                (ref, newer_than),
            ).fetchall()
        return [_pipeline(r) for r in rows]

    def request_cancel(self, pid: int) -> None:
        with self._store._tx():
            self._conn.execute("UPDATE pipelines SET cancel_requested = 1 WHERE id = ?", (pid,))

    def cancel_requested(self, pid: int) -> bool:
        with self._store.lock:
            row = self._conn.execute(
                "SELECT cancel_requested FROM pipelines WHERE id = ?", (pid,)
            ).fetchone()
        return bool(row and row[0])

    def environments(self) -> dict[str, JobRow]:
        """Each environment's latest successful deploying or stopping job, by name."""
        with self._store.lock:
            rows = self._conn.execute(
                "SELECT * FROM ci_jobs WHERE environment IS NOT NULL AND status = 'success' "
                "ORDER BY id"
            ).fetchall()
        out: dict[str, JobRow] = {}
        for r in rows:
            job = _job(r)
            if job.environment is not None:
                out[str(job.environment["name"])] = job
        return out

    def find_job(self, name_or_id: str, pipeline_id: int | None = None) -> JobRow | None:
        """A job by id, or the latest job of that name (in the pipeline, if given)."""
        with self._store.lock:
            return self._find_job(name_or_id, pipeline_id)

    def _find_job(self, name_or_id: str, pipeline_id: int | None) -> JobRow | None:
        if name_or_id.isdigit():
            row = self._conn.execute(
                "SELECT * FROM ci_jobs WHERE id = ?", (int(name_or_id),)
            ).fetchone()
        elif pipeline_id is not None:
            row = self._conn.execute(
                "SELECT * FROM ci_jobs WHERE name = ? AND pipeline_id = ? ORDER BY id DESC LIMIT 1",
                (name_or_id, pipeline_id),
            ).fetchone()
        else:
            row = self._conn.execute(
                "SELECT * FROM ci_jobs WHERE name = ? ORDER BY id DESC LIMIT 1", (name_or_id,)
            ).fetchone()
        return None if row is None else _job(row)


def _pipeline(row: Any) -> PipelineRow:
    d = dict(row)
    d["tests"] = json.loads(d["tests"] or "{}")
    d["cancel_requested"] = bool(d.get("cancel_requested"))
    return PipelineRow(**d)


def _job(row: Any) -> JobRow:
    d = dict(row)
    d["tests"] = json.loads(d["tests"] or "{}")
    d["artifacts"] = json.loads(d["artifacts"]) if d["artifacts"] else None
    d["environment"] = json.loads(d["environment"]) if d.get("environment") else None
    d["allow_failure"] = bool(d["allow_failure"])
    d["interruptible"] = bool(d.get("interruptible"))
    return JobRow(**d)
