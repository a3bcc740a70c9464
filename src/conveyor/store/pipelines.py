"""CI records: pipelines, their jobs, the artifacts jobs kept and their failed JUnit cases."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from conveyor.store.database import Database, Row

_TESTS = ("total", "passed", "failed", "errors", "skipped")
_ENV = ("name", "url", "action", "on_stop")
# What a cancel request stops: everything, or only the jobs marked `interruptible` (GitLab's
# `workflow:auto_cancel:on_new_commit: interruptible`).
CancelScope = Literal["all", "interruptible"]


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
    tests: dict[str, int]  # summed JUnit counts; {} when no job had a report
    coverage: float | None
    cancel_requested: bool = False
    cancel_scope: CancelScope | None = None  # what the cancel request covers
    parent_pipeline_id: int | None = None  # a downstream pipeline: the pipeline that made it
    trigger_job_id: int | None = None  # and its trigger job
    auto_cancel_on_new_commit: str = "conservative"  # workflow:auto_cancel, as it resolved
    auto_cancel_on_job_failure: str = "none"
    superseded_by: str | None = None  # the newer commit whose arrival canceled it as redundant

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
    tests: dict[str, int]  # JUnit counts; {} without a report
    artifacts: dict[str, int] | None  # {"files", "bytes"} of what the job kept
    environment: dict[str, Any] | None = None  # name, url, action, on_stop (str or None)
    interruptible: bool = False
    # A shell job's running script: its process group and its leader's start
    # (`host.process_groups.identity`), so what a killed runner left can be stopped safely.
    process_group: int | None = None
    process_start: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class TestFailure(BaseModel):
    """A failed or errored case of a job's JUnit report."""

    __test__ = False  # not a pytest class, whatever its name

    status: Literal["failed", "error"]
    name: str
    classname: str | None = None
    suite: str | None = None
    file: str | None = None  # the report it came from
    message: str | None = None


class PipelineRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        ref: str | None,
        sha: str | None,
        source: str,
        file: str,
        executor: str,
        *,
        status: str = "running",
        parent: int | None = None,
        trigger_job: int | None = None,
    ) -> int:
        """A new pipeline; a downstream one names its parent pipeline and trigger job (and
        starts `created`: its id is known before its variables and jobs are)."""
        cur = self._db.execute(
            "INSERT INTO pipelines (ref, sha, source, status, started_at, file, executor, "
            "parent_pipeline_id, trigger_job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ref, sha, source, status, time.time(), file, executor, parent, trigger_job),
        )
        return int(cur.lastrowid or 0)

    def start(
        self,
        pid: int,
        *,
        ref: str | None,
        sha: str | None,
        source: str,
        file: str,
        executor: str,
        on_new_commit: str,
        on_job_failure: str,
    ) -> None:
        """The pipeline runs: what it runs, and its `workflow:auto_cancel` settings."""
        self._db.execute(
            "UPDATE pipelines SET status = 'running', started_at = ?, ref = ?, sha = ?, "
            "source = ?, file = ?, executor = ?, auto_cancel_on_new_commit = ?, "
            "auto_cancel_on_job_failure = ? WHERE id = ?",
            (time.time(), ref, sha, source, file, executor, on_new_commit, on_job_failure, pid),
        )

    def discard(self, pid: int) -> None:
        """Forget a pipeline that could not be created (it has no jobs yet)."""
        self._db.execute("DELETE FROM pipelines WHERE id = ?", (pid,))

    def finish(self, pid: int, status: str, tests: dict[str, int], coverage: float | None) -> None:
        counts = tuple(tests.get(k, 0) for k in _TESTS) if tests else (None,) * 5
        self._db.execute(
            "UPDATE pipelines SET status = ?, finished_at = ?, coverage = ?, tests_total = ?, "
            "tests_passed = ?, tests_failed = ?, tests_errors = ?, tests_skipped = ? WHERE id = ?",
            (status, time.time(), coverage, *counts, pid),
        )

    def next_id(self) -> int:
        """The id the next pipeline will get (CI_PIPELINE_ID is known before it is created)."""
        return int(self._db.scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM pipelines"))

    def get(self, pid: int) -> PipelineRow | None:
        row = self._db.one("SELECT * FROM pipelines WHERE id = ?", (pid,))
        return None if row is None else _pipeline(row)

    def latest(self, limit: int = 20, before: int | None = None) -> list[PipelineRow]:
        """The project's pipelines, newest first (older than pipeline `before`, if given: the
        next page); downstream pipelines are shown with their parent, as in GitLab's list."""
        rows = self._db.all(
            "SELECT * FROM pipelines WHERE parent_pipeline_id IS NULL AND (? IS NULL OR id < ?) "
            "ORDER BY id DESC LIMIT ?",
            (before, before, limit),
        )
        return [_pipeline(r) for r in rows]

    def downstream(self, pid: int) -> list[PipelineRow]:
        """The pipelines `pid`'s trigger jobs created, in order."""
        rows = self._db.all(
            "SELECT * FROM pipelines WHERE parent_pipeline_id = ? ORDER BY id", (pid,)
        )
        return [_pipeline(r) for r in rows]

    def for_commit(self, sha: str) -> list[PipelineRow]:
        rows = self._db.all("SELECT * FROM pipelines WHERE sha LIKE ? ORDER BY id", (f"{sha}%",))
        return [_pipeline(r) for r in rows]

    def running_for_ref(
        self, ref: str | None, newer_than: int | None = None, other_than_sha: str | None = None
    ) -> list[PipelineRow]:
        """Pipelines of `ref` still running, older than pipeline `newer_than` (if given) and
        of another commit than `other_than_sha` (if given): this project's pipelines and child
        pipelines (which may outlive their parent), not the pipelines of other projects that
        trigger jobs created."""
        rows = self._db.all(
            "SELECT * FROM pipelines WHERE status = 'running' AND ref IS ? "
            "AND (? IS NULL OR id < ?) AND (? IS NULL OR sha IS NULL OR sha != ?) "
            "AND (parent_pipeline_id IS NULL OR source = 'parent_pipeline') ORDER BY id",
            (ref, newer_than, newer_than, other_than_sha, other_than_sha),
        )
        return [_pipeline(r) for r in rows]

    def unfinished(self) -> list[PipelineRow]:
        """Pipelines `running` or `created`, oldest first."""
        rows = self._db.all(
            "SELECT * FROM pipelines WHERE status IN ('running', 'created') ORDER BY id"
        )
        return [_pipeline(r) for r in rows]

    def interrupt_unfinished(self, reason: str) -> list[int]:
        """Pipelines left `running` (or `created`) by a process that died: marked
        `interrupted`, with their jobs still running; their ids, oldest first. Only for a
        caller that knows no process runs them (the server, the one writer of its
        environments' pipelines, when it starts)."""
        now = time.time()
        with self._db.tx() as c:
            rows = c.execute(
                "SELECT id FROM pipelines WHERE status IN ('running', 'created') ORDER BY id"
            ).fetchall()
            ids = [int(r[0]) for r in rows]
            for pid in ids:
                c.execute(
                    "UPDATE pipelines SET status = 'interrupted', finished_at = ? WHERE id = ?",
                    (now, pid),
                )
                c.execute(
                    "UPDATE jobs SET status = 'interrupted', finished_at = ?, failure_reason = ? "
                    "WHERE pipeline_id = ? AND status IN ('running', 'pending', 'created')",
                    (now, reason, pid),
                )
        return ids

    def request_cancel(
        self, pid: int, scope: CancelScope = "all", superseded_by: str | None = None
    ) -> None:
        """Ask the process running pipeline `pid` to cancel it (or only its interruptible
        jobs); a request for everything is never narrowed by a later one. `superseded_by`: the
        newer commit that makes it redundant (the newest one asking is kept)."""
        self._db.execute(
            "UPDATE pipelines SET cancel_requested = 1, cancel_scope = CASE "
            "WHEN cancel_scope = 'all' THEN 'all' ELSE ? END, "
            "superseded_by = COALESCE(?, superseded_by) WHERE id = ?",
            (scope, superseded_by, pid),
        )

    def resume(self, pid: int) -> bool:
        """A finished pipeline runs again (a job of it is retried or played): `running`, with
        no finish and no cancel request. False, changing nothing, when it is not finished
        (another process runs it): the check and the change are one statement."""
        cur = self._db.execute(
            "UPDATE pipelines SET status = 'running', finished_at = NULL, cancel_requested = 0, "
            "cancel_scope = NULL, superseded_by = NULL "
            "WHERE id = ? AND status NOT IN ('running', 'created', 'pending')",
            (pid,),
        )
        return cur.rowcount == 1

    def cancel_requested(self, pid: int) -> bool:
        return bool(self._db.scalar("SELECT cancel_requested FROM pipelines WHERE id = ?", (pid,)))

    def cancel_request(self, pid: int) -> CancelScope | None:
        """What a pending cancel request covers, if there is one."""
        row = self._db.one(
            "SELECT cancel_requested, cancel_scope FROM pipelines WHERE id = ?", (pid,)
        )
        if row is None or not row["cancel_requested"]:
            return None
        return "interruptible" if row["cancel_scope"] == "interruptible" else "all"


_JOB_FIELDS = {
    "status", "started_at", "finished_at", "exit_code", "failure_reason", "executor",
    "log_path", "coverage", "allow_failure", "interruptible", "process_group", "process_start",
}  # fmt: skip


class JobRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
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
        cur = self._db.execute(
            "INSERT INTO jobs (pipeline_id, name, stage, status, when_, allow_failure, "
            "attempt, retry_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (pipeline_id, name, stage, status, when, int(allow_failure), attempt, retry_of),
        )
        return int(cur.lastrowid or 0)

    def update(
        self,
        job_id: int,
        tests: dict[str, int] | None = None,
        environment: dict[str, str | None] | None = None,
        **fields: Any,
    ) -> None:
        """Set columns of a job; `tests` are JUnit counts, `environment` its deployment."""
        unknown = set(fields) - _JOB_FIELDS
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        cols = dict(fields)
        if tests is not None:
            cols |= {f"tests_{k}": (tests.get(k, 0) if tests else None) for k in _TESTS}
        if environment is not None:
            cols |= {f"environment_{k}": environment.get(k) for k in _ENV}
        if not cols:
            return
        sets = ", ".join(f"{k} = ?" for k in cols)
        self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*cols.values(), job_id))  # noqa: S608 — names from the allow-list

    def of(self, pipeline_id: int) -> list[JobRow]:
        rows = self._db.all(_JOB_SELECT + " WHERE j.pipeline_id = ? ORDER BY j.id", (pipeline_id,))
        return [_job(r) for r in rows]

    def environments(self) -> dict[str, JobRow]:
        """Each environment's latest successful deploying or stopping job, by name."""
        rows = self._db.all(
            _JOB_SELECT + " WHERE j.environment_name IS NOT NULL AND j.status = 'success' "
            "ORDER BY j.id"
        )
        out: dict[str, JobRow] = {}
        for r in rows:
            out[str(r["environment_name"])] = _job(r)
        return out

    def record_test_failures(self, job_id: int, failures: Sequence[TestFailure]) -> None:
        """The failed cases of the job's JUnit report (replacing any recorded before)."""
        with self._db.tx() as c:
            c.execute("DELETE FROM test_failures WHERE job_id = ?", (job_id,))
            c.executemany(
                "INSERT INTO test_failures (job_id, seq, status, name, classname, suite, file, "
                "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (job_id, seq, f.status, f.name, f.classname, f.suite, f.file, f.message)
                    for seq, f in enumerate(failures)
                ],
            )

    def test_failures(self, pipeline_id: int) -> dict[int, list[TestFailure]]:
        """The recorded failed JUnit cases of each job of the pipeline, by job id."""
        rows = self._db.all(
            "SELECT f.* FROM test_failures f JOIN jobs j ON j.id = f.job_id "
            "WHERE j.pipeline_id = ? ORDER BY f.job_id, f.seq",
            (pipeline_id,),
        )
        out: dict[int, list[TestFailure]] = {}
        for r in rows:
            out.setdefault(int(r["job_id"]), []).append(
                TestFailure(
                    status=r["status"],
                    name=r["name"],
                    classname=r["classname"],
                    suite=r["suite"],
                    file=r["file"],
                    message=r["message"],
                )
            )
        return out

    def find(self, name_or_id: str, pipeline_id: int | None = None) -> JobRow | None:
        """A job by id, or the latest job of that name (in the pipeline, if given)."""
        if name_or_id.isdigit():
            row = self._db.one(_JOB_SELECT + " WHERE j.id = ?", (int(name_or_id),))
        elif pipeline_id is not None:
            row = self._db.one(
                _JOB_SELECT + " WHERE j.name = ? AND j.pipeline_id = ? ORDER BY j.id DESC LIMIT 1",
                (name_or_id, pipeline_id),
            )
        else:
            row = self._db.one(
                _JOB_SELECT + " WHERE j.name = ? ORDER BY j.id DESC LIMIT 1", (name_or_id,)
            )
        return None if row is None else _job(row)


class ArtifactRepository:
    """What each job kept as artifacts (the files live in the CI blob store)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, job_id: int, files: int, size: int) -> None:
        self._db.execute(
            "INSERT INTO artifacts (job_id, files, bytes) VALUES (?, ?, ?) "
            "ON CONFLICT(job_id) DO UPDATE SET files = excluded.files, bytes = excluded.bytes",
            (job_id, files, size),
        )


_JOB_SELECT = (
    "SELECT j.*, a.files AS artifact_files, a.bytes AS artifact_bytes "
    "FROM jobs j LEFT JOIN artifacts a ON a.job_id = j.id"
)


def _tests(row: Row) -> dict[str, int]:
    if row["tests_total"] is None:
        return {}
    return {k: int(row[f"tests_{k}"] or 0) for k in _TESTS}


def _pipeline(row: Row) -> PipelineRow:
    d = {k: row[k] for k in row.keys() if not k.startswith("tests_")}  # noqa: SIM118 — sqlite3.Row
    d["cancel_requested"] = bool(d["cancel_requested"])
    return PipelineRow(**d, tests=_tests(row))


def _job(row: Row) -> JobRow:
    d = {
        k: row[k]
        for k in row.keys()  # noqa: SIM118 — sqlite3.Row
        if not k.startswith(("tests_", "environment_", "artifact_"))
    }
    env = (
        {k: row[f"environment_{k}"] for k in _ENV} if row["environment_name"] is not None else None
    )
    arts = (
        {"files": int(row["artifact_files"]), "bytes": int(row["artifact_bytes"])}
        if row["artifact_files"] is not None
        else None
    )
    return JobRow(
        **d
        | {
            "tests": _tests(row),
            "environment": env,
            "artifacts": arts,
            "allow_failure": bool(d["allow_failure"]),
            "interruptible": bool(d["interruptible"]),
        }
    )
