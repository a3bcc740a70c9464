"""Numbered schema migrations. Never edit one that has shipped: append a new one.

1 to 4 are the schema of Conveyor 0.1 (deploy state and CI records). 5 gives every fact a typed
column: the key-value pointers become the `environment` row, `frontend:<name>` port keys and
the comma-joined frontend list become tables, a recovery names the rollout it finishes, events
become the timeline (commit, pipeline, job, release, rollout), and CI jobs' JSON blobs become
columns and an artifacts table. 6 keeps the failed and errored cases of each job's JUnit report
(`ci show` names them). 7 links a downstream pipeline to its parent pipeline and trigger job, and
keeps each pipeline's `workflow:auto_cancel` and what a cancel request covers. 8 gives each
service address a stable slot: its IP on every project network, which replicas' /etc/hosts name.
9 records the process group a shell job's script runs in (and when its leader started, against
PID reuse) so what a killed process left running can be stopped, and the newer commit that made
a canceled pipeline redundant.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import StoreError

if TYPE_CHECKING:
    from conveyor.store.database import Database

Migration = str | Callable[[sqlite3.Connection], None]

_V1 = """
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
"""

_V2 = """
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
"""

_V3 = "ALTER TABLE ci_jobs ADD COLUMN environment TEXT   -- {name, url, action} or NULL"

_V4 = """
ALTER TABLE pipelines ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ci_jobs ADD COLUMN interruptible INTEGER NOT NULL DEFAULT 0
"""

# The recorded timeline; the server database has one too (store.server_migrations).
TIMELINE_TABLE = """\
CREATE TABLE timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warning', 'error')),
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    project TEXT NOT NULL,
    environment TEXT,
    commit_sha TEXT,
    pipeline_id INTEGER,
    job_id INTEGER,
    release INTEGER,
    rollout_id INTEGER,
    service TEXT,
    replica TEXT,
    data TEXT NOT NULL DEFAULT '{}'          -- further fields of the event kind, as JSON
);
CREATE INDEX timeline_commit ON timeline(commit_sha);
CREATE INDEX timeline_rollout ON timeline(rollout_id);
CREATE INDEX timeline_pipeline ON timeline(pipeline_id);
"""

_V5 = (
    """
CREATE TABLE environment (
    id INTEGER PRIMARY KEY CHECK (id = 1),   -- one environment per project database
    name TEXT NOT NULL,
    current_release INTEGER REFERENCES releases(number),
    previous_release INTEGER REFERENCES releases(number),
    target_release INTEGER REFERENCES releases(number)
);
CREATE TABLE port_allocations (
    purpose TEXT NOT NULL CHECK (purpose IN ('frontend', 'stats')),
    service TEXT NOT NULL DEFAULT '',        -- '' for the stats page
    port INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (purpose, service)
);
CREATE TABLE frontends (
    service TEXT PRIMARY KEY                 -- services HAProxy listens for right now
);
ALTER TABLE releases ADD COLUMN pipeline_id INTEGER;
ALTER TABLE releases ADD COLUMN job_id INTEGER;
ALTER TABLE rollouts ADD COLUMN recovers INTEGER REFERENCES rollouts(id);
ALTER TABLE rollouts ADD COLUMN environment TEXT;
ALTER TABLE journal ADD COLUMN kind TEXT;
ALTER TABLE journal ADD COLUMN service TEXT;
ALTER TABLE journal ADD COLUMN replica TEXT;
"""
    + TIMELINE_TABLE
    + """CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines(id),
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    when_ TEXT NOT NULL,
    allow_failure INTEGER NOT NULL DEFAULT 0,
    interruptible INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 1,
    retry_of INTEGER REFERENCES jobs(id),
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    failure_reason TEXT,
    executor TEXT,
    log_path TEXT,
    coverage REAL,
    tests_total INTEGER,                      -- NULL: the job has no JUnit report
    tests_passed INTEGER,
    tests_failed INTEGER,
    tests_errors INTEGER,
    tests_skipped INTEGER,
    environment_name TEXT,
    environment_url TEXT,
    environment_action TEXT,
    environment_on_stop TEXT
);
CREATE INDEX jobs_pipeline ON jobs(pipeline_id);
CREATE TABLE artifacts (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
ALTER TABLE pipelines ADD COLUMN tests_total INTEGER;
ALTER TABLE pipelines ADD COLUMN tests_passed INTEGER;
ALTER TABLE pipelines ADD COLUMN tests_failed INTEGER;
ALTER TABLE pipelines ADD COLUMN tests_errors INTEGER;
ALTER TABLE pipelines ADD COLUMN tests_skipped INTEGER;
CREATE TABLE heal_backoff (
    service TEXT PRIMARY KEY,
    streak INTEGER NOT NULL,                 -- heals in a row, each within the loop window
    last_heal REAL NOT NULL,                 -- wall clock: backoff survives a restart
    not_before REAL NOT NULL
)
"""
)

_V6 = """
CREATE TABLE test_failures (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    seq INTEGER NOT NULL,                    -- the order of the report
    status TEXT NOT NULL CHECK (status IN ('failed', 'error')),
    name TEXT NOT NULL,
    classname TEXT,
    suite TEXT,
    file TEXT,                               -- the report file the case came from
    message TEXT,
    PRIMARY KEY (job_id, seq)
)
"""

_V7 = """
ALTER TABLE pipelines ADD COLUMN parent_pipeline_id INTEGER REFERENCES pipelines(id);
ALTER TABLE pipelines ADD COLUMN trigger_job_id INTEGER REFERENCES jobs(id);
ALTER TABLE pipelines ADD COLUMN auto_cancel_on_new_commit TEXT NOT NULL DEFAULT 'conservative'
    CHECK (auto_cancel_on_new_commit IN ('conservative', 'interruptible', 'none'));
ALTER TABLE pipelines ADD COLUMN auto_cancel_on_job_failure TEXT NOT NULL DEFAULT 'none'
    CHECK (auto_cancel_on_job_failure IN ('none', 'all'));
ALTER TABLE pipelines ADD COLUMN cancel_scope TEXT  -- with cancel_requested: all | interruptible
    CHECK (cancel_scope IN ('all', 'interruptible'));
CREATE INDEX pipelines_parent ON pipelines(parent_pipeline_id)
"""

_V8 = """
CREATE TABLE address_slots (
    service TEXT PRIMARY KEY,                -- a routed service on project networks
    slot INTEGER NOT NULL UNIQUE CHECK (slot >= 0)
)
"""

_V9 = """
ALTER TABLE jobs ADD COLUMN process_group INTEGER;   -- a shell job's script: its process group
ALTER TABLE jobs ADD COLUMN process_start TEXT;      -- its leader's start (host.process_groups)
ALTER TABLE pipelines ADD COLUMN superseded_by TEXT  -- canceled as redundant: the newer commit
"""

_RECOVER_REASON = re.compile(r"finish interrupted rollout (\d+)")
_TESTS = ("total", "passed", "failed", "errors", "skipped")


def _v5_data(c: sqlite3.Connection) -> None:
    """Move 0.1's untyped facts into the typed tables of migration 5."""
    kv = {str(k): str(v) for k, v in c.execute("SELECT key, value FROM kv")}
    project = _project_name(c)

    def num(key: str) -> int | None:
        v = kv.get(key, "")
        return int(v) if v.isdigit() else None

    c.execute(
        "INSERT INTO environment (id, name, current_release, previous_release, target_release) "
        "VALUES (1, ?, ?, ?, ?)",
        (project, num("current_release"), num("previous_release"), num("target_release")),
    )
    for name, port in c.execute("SELECT name, port FROM ports").fetchall():
        purpose, _, service = str(name).partition(":")
        c.execute(
            "INSERT INTO port_allocations (purpose, service, port) VALUES (?, ?, ?)",
            (purpose, service, port),
        )
    for service in filter(None, kv.get("frontends", "").split(",")):
        c.execute("INSERT OR IGNORE INTO frontends (service) VALUES (?)", (service,))
    for rid, reason in c.execute("SELECT id, reason FROM rollouts WHERE kind = 'recover'"):
        m = _RECOVER_REASON.fullmatch(str(reason))
        if m:
            c.execute("UPDATE rollouts SET recovers = ? WHERE id = ?", (int(m.group(1)), rid))
    for row in c.execute("SELECT rollout_id, seq, step FROM journal").fetchall():
        step = json.loads(row[2])
        c.execute(
            "UPDATE journal SET kind = ?, service = ?, replica = ? "
            "WHERE rollout_id = ? AND seq = ?",
            (step.get("kind"), step.get("service"), step.get("replica"), row[0], row[1]),
        )
    for e in c.execute("SELECT id, ts, kind, actor, message, data FROM events").fetchall():
        data = json.loads(e[5] or "{}")
        rollout = data.pop("rollout", None)
        c.execute(
            "INSERT INTO timeline (id, ts, kind, actor, message, project, rollout_id, service, "
            "data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e[0], e[1], e[2], e[3], e[4], project, rollout, data.pop("service", None),
             json.dumps(data)),
        )  # fmt: skip
    for p in c.execute("SELECT id, tests FROM pipelines").fetchall():
        t = json.loads(p[1] or "{}")
        if t:
            c.execute(
                "UPDATE pipelines SET tests_total = ?, tests_passed = ?, tests_failed = ?, "
                "tests_errors = ?, tests_skipped = ? WHERE id = ?",
                (*(int(t.get(k, 0)) for k in _TESTS), p[0]),
            )
    cols = [str(r[1]) for r in c.execute("PRAGMA table_info(ci_jobs)")]
    for j in c.execute("SELECT * FROM ci_jobs ORDER BY id").fetchall():
        row = dict(zip(cols, j, strict=True))
        t = json.loads(row["tests"] or "{}")
        env = json.loads(row["environment"]) if row["environment"] else {}
        c.execute(
            "INSERT INTO jobs (id, pipeline_id, name, stage, status, when_, allow_failure, "
            "interruptible, attempt, retry_of, started_at, finished_at, exit_code, "
            "failure_reason, executor, log_path, coverage, tests_total, tests_passed, "
            "tests_failed, tests_errors, tests_skipped, environment_name, environment_url, "
            "environment_action, environment_on_stop) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row["id"], row["pipeline_id"], row["name"], row["stage"], row["status"],
                row["when_"], row["allow_failure"], row["interruptible"], row["attempt"],
                row["retry_of"], row["started_at"], row["finished_at"], row["exit_code"],
                row["failure_reason"], row["executor"], row["log_path"], row["coverage"],
                *((int(t.get(k, 0)) for k in _TESTS) if t else (None,) * 5),
                env.get("name"), env.get("url"), env.get("action"), env.get("on_stop"),
            ),
        )  # fmt: skip
        if row["artifacts"]:
            a = json.loads(row["artifacts"])
            c.execute(
                "INSERT INTO artifacts (job_id, files, bytes) VALUES (?, ?, ?)",
                (row["id"], int(a.get("files", 0)), int(a.get("bytes", 0))),
            )
    for stmt in (
        "DROP TABLE kv",
        "DROP TABLE ports",
        "DROP TABLE events",
        "DROP TABLE ci_jobs",
        "ALTER TABLE pipelines DROP COLUMN tests",
    ):
        c.execute(stmt)


def _project_name(c: sqlite3.Connection) -> str:
    """The project a 0.1 database belongs to: its directory's name (`.conveyor/<project>/`)."""
    for _seq, name, file in c.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file).parent.name
    return "default"


MIGRATIONS: tuple[tuple[Migration, ...], ...] = (
    (_V1,),
    (_V2,),
    (_V3,),
    (_V4,),
    (_V5, _v5_data),
    (_V6,),
    (_V7,),
    (_V8,),
    (_V9,),
)


def migrate(db: Database, migrations: Sequence[Sequence[Migration]] = MIGRATIONS) -> None:
    """Apply every migration newer than the database, each in its own transaction. The
    server's database has its own list (`store.server_migrations`)."""
    version = db.version
    if version > len(migrations):
        raise StoreError(
            f"{db.path}: written by a newer Conveyor (schema {version}, this one knows "
            f"{len(migrations)}); upgrade Conveyor or move the file aside"
        )
    for number, parts in enumerate(migrations[version:], start=version + 1):
        with db.tx() as c:
            for part in parts:
                if isinstance(part, str):
                    # executescript() would commit on its own: run statements in our transaction
                    for stmt in _statements(part):
                        c.execute(stmt)
                else:
                    part(c)
            c.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (comments stripped); ours contain no ';' in strings."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
