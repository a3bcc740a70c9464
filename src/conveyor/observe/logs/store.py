"""The embedded log store: SQLite FTS5 in its own database file (`logs.db` in the project's
state directory), apart from the state database so its write volume never slows a deploy.

    store = LogStore.open(path)                 # creates it (private, 0600)
    src = store.source(labels)                  # a (container, stream) and its labels -> id
    store.write([(src, ts_ns, level, message, fields_json)], {src: Cursor(ts, n)})
    store.search(LogQuery(services=("web",), text="timeout", since=t0))   # newest first
    store.tail(LogQuery(...), after=last_id)    # what came in since, oldest first
    store.maintain(now)                         # seal, retention, compaction

Layout:

- `sources`: one row per container stream with its labels (project, environment, service,
  replica, release, job, the fleet host) and the collector's cursor in it. A source stays
  after its container is gone, so the lines of a replica that no longer exists stay
  searchable (retention drops the lines, not the labels).
- `segments` and `seg<N>`: lines go into full-text tables (FTS5) of up to a million lines
  (retention.py); each line is a row whose rowid is its global id, with the message and the
  fields (JSON) indexed, and a `tags` column of tokens for the labels: `v<service>`,
  `s<source>` and `l<level>`, so a service or level filter is an index lookup like a word.
  Timestamp, source and level are kept unindexed beside them.
- `blocks`: per segment, runs of consecutive ids with their oldest and newest timestamps, so
  a time range becomes an id range before the full-text search starts.

Writes come from one collector (a lock file keeps a second one out: `observe.logs.collect`);
any number of readers search at the same time (WAL). Records and cursors are written in one
transaction: after a crash the cursors match what is stored.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from conveyor.errors import StoreError
from conveyor.model.logs import LEVELS, LogLabels, LogLevel, LogQuery, LogRecord, Stream
from conveyor.observe.logs.cursor import Cursor
from conveyor.observe.logs.retention import Retention, Segment, seal_due, to_drop
from conveyor.store.database import private_dir, private_file

LOGS_DB = "logs.db"
# 2: `sources.host`, the fleet host a container ran on (a version 1 file gets the column
# when a writer opens it; a reader of one reads no host).
SCHEMA_VERSION = 2
BLOCK_ROWS = 65_536  # ids per block: the granularity of time-range lookups
# A row as the collector hands it over: source id, timestamp (ns), level index in LEVELS or
# None, message, fields as JSON text or None.
Row = tuple[int, int, int | None, str, str | None]
LEVEL_INDEX: dict[LogLevel, int] = {name: i for i, name in enumerate(LEVELS)}
_ROW_OVERHEAD = 64  # bytes a row costs beyond its text in table and index (estimate)
_INDEX_FACTOR = 2  # the full-text index roughly doubles the text's size
_WORD = re.compile(r"\w", re.UNICODE)
# The level's tag token, by level index (None: a line without a level).
LEVEL_TAG: dict[int | None, str] = {None: "l", **{i: f"l{i}" for i in range(len(LEVELS))}}
# Rows as the store inserts them, one flat list of ROW_VALUES values a row: message, fields
# (JSON or None), tags (`LogStore.tag` of the source + LEVEL_TAG of the level), ts, source,
# level. Made where lines are parsed (the parse worker), so the writer neither builds nor
# takes apart a Python object per row.
FlatRows = list[Any]
ROW_VALUES = 6
# Rows per INSERT statement, largest first; a batch is cut greedily into these sizes so only
# a handful of statements are ever prepared. 4096 rows are 24,577 values, under SQLite's
# default limit of 32,766 (a build with a lower limit gets smaller statements: `_max_chunk`).
_CHUNK_SIZES = (4096, 512, 64, 8, 1)

_SCHEMA = (
    """CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        container TEXT NOT NULL,
        stream TEXT NOT NULL,
        project TEXT NOT NULL,
        environment TEXT,
        service TEXT,
        replica TEXT,
        release INTEGER,
        job INTEGER,
        host TEXT,
        service_key INTEGER NOT NULL,
        cursor_ts INTEGER NOT NULL DEFAULT 0,
        cursor_count INTEGER NOT NULL DEFAULT 0,
        UNIQUE (container, stream)
    )""",
    "CREATE TABLE services (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    """CREATE TABLE segments (
        n INTEGER PRIMARY KEY,
        created REAL NOT NULL,
        first_id INTEGER,
        last_id INTEGER,
        min_ts INTEGER,
        max_ts INTEGER,
        rows INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        sealed INTEGER NOT NULL DEFAULT 0,
        optimized INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE blocks (
        segment INTEGER NOT NULL,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        min_ts INTEGER NOT NULL,
        max_ts INTEGER NOT NULL,
        rows INTEGER NOT NULL
    )""",
    "CREATE INDEX blocks_segment ON blocks (segment, first_id)",
)


@dataclass(frozen=True)
class StoreStats:
    path: str
    lines: int
    segments: int
    sources: int
    bytes: int  # the database file's pages in use
    oldest: float | None  # UNIX seconds
    newest: float | None


@dataclass(frozen=True)
class Maintenance:
    """What one `maintain` pass did."""

    sealed: int | None = None
    dropped: tuple[int, ...] = ()
    optimized: int | None = None
    freed_pages: int = 0


@dataclass
class _Block:
    segment: int
    rowid: int  # of the blocks row
    first_id: int
    last_id: int
    min_ts: int
    max_ts: int
    rows: int


class LogStore:
    """One connection to a log database; its methods hold a lock, so threads may share it."""

    def __init__(self, conn: sqlite3.Connection, path: Path, policy: Retention) -> None:
        self._conn = conn
        self.path = path
        self.policy = policy
        self._lock = threading.RLock()
        self._labels: dict[int, LogLabels] = {}
        self._tags: dict[int, str] = {}  # source id -> "v<service> s<source> "
        self._by_key: dict[tuple[str, str], int] = {}
        self._next_id = 0
        self._current: int | None = None  # the segment being written
        self._block: _Block | None = None
        self._has_host = True  # False in a version 1 file opened to read
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._max_chunk = max(1, (limit - 1) // ROW_VALUES)

    # opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, policy: Retention | None = None, *, create: bool = True) -> LogStore:
        """Open the log database at `path` (creating it, private, unless `create` is False:
        then a missing file raises StoreError)."""
        if not path.exists():
            if not create:
                raise StoreError(f"{path}: no log store here yet")
            private_dir(path.parent)
            private_file(path)
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot open the log store ({e})") from e
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: the index pages being merged
            conn.execute("PRAGMA temp_store=MEMORY")
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    private_file(side)
            store = cls(conn, path, policy or Retention())
            store._migrate(create)
            store._load()
        except sqlite3.Error as e:
            conn.close()
            raise StoreError(
                f"{path}: cannot open the log store ({e}); move the file aside to start an "
                "empty one (the lines in it are then not searchable)"
            ) from e
        except StoreError:
            conn.close()
            raise
        return store

    def _migrate(self, create: bool) -> None:
        """Create the schema in a new file, or bring an older one up to date (the writer); a
        reader only checks it (and reads a version 1 file as it is)."""
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer Conveyor (schema {version})")
        if version == SCHEMA_VERSION:
            return
        if version == 1:
            if create:
                self._upgrade_from_1()
            else:
                self._has_host = False
            return
        if not create:
            raise StoreError(f"{self.path}: the log store is being created; try again")
        # Pages of dropped segments go back to the file system (set before any table).
        self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            # Looked at again under the write lock: another writer may have just made it.
            if int(self._conn.execute("PRAGMA user_version").fetchone()[0]) == 0:
                for sql in _SCHEMA:
                    self._conn.execute(sql)
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _upgrade_from_1(self) -> None:
        """Version 1 -> 2: sources get their host (None for the lines already there)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if int(self._conn.execute("PRAGMA user_version").fetchone()[0]) == 1:
                self._conn.execute("ALTER TABLE sources ADD COLUMN host TEXT")
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _load(self) -> None:
        self._next_id = self._max_id() + 1
        self._current = self._open_segment()
        self._load_sources()

    def _open_segment(self) -> int | None:
        """The segment being written (not sealed), if any."""
        cur = self._conn.execute("SELECT n FROM segments WHERE sealed = 0 ORDER BY n DESC LIMIT 1")
        found = cur.fetchone()
        return int(found[0]) if found else None

    def _load_sources(self) -> None:
        host = "host" if self._has_host else "NULL"  # a version 1 file has no such column
        rows = self._conn.execute(
            "SELECT id, container, stream, project, environment, service, replica, release, "  # noqa: S608 — a column name or NULL
            f"job, service_key, {host} FROM sources"
        ).fetchall()
        for r in rows:
            labels = LogLabels(
                project=r[3],
                environment=r[4],
                service=r[5],
                replica=r[6],
                release=r[7],
                container=r[1],
                stream=r[2],
                job=r[8],
                host=r[10],
            )
            self._remember(int(r[0]), labels, int(r[9]))

    def _remember(self, source: int, labels: LogLabels, service_key: int) -> None:
        self._labels[source] = labels
        self._tags[source] = f"v{service_key} s{source} "
        self._by_key[(labels.container, labels.stream)] = source

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # sources and cursors -------------------------------------------------------------------

    def source(self, labels: LogLabels) -> int:
        """The id of a container stream, registered with its labels on first use."""
        key = (labels.container, labels.stream)
        with self._lock:
            found = self._by_key.get(key)
            if found is not None:
                return found
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                service_key = self._service_key(labels.service)
                cur = self._conn.execute(
                    "INSERT INTO sources (container, stream, project, environment, service, "
                    "replica, release, job, host, service_key) VALUES (?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (container, stream) DO UPDATE SET project = excluded.project "
                    "RETURNING id",
                    (
                        labels.container,
                        labels.stream,
                        labels.project,
                        labels.environment,
                        labels.service,
                        labels.replica,
                        labels.release,
                        labels.job,
                        labels.host,
                        service_key,
                    ),
                )
                source = int(cur.fetchone()[0])
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._remember(source, labels, service_key)
            return source

    def _service_key(self, service: str | None) -> int:
        if service is None:
            return 0
        self._conn.execute("INSERT OR IGNORE INTO services (name) VALUES (?)", (service,))
        row = self._conn.execute("SELECT id FROM services WHERE name = ?", (service,)).fetchone()
        return int(row[0])

    def cursor(self, source: int) -> Cursor:
        with self._lock:
            row = self._conn.execute(
                "SELECT cursor_ts, cursor_count FROM sources WHERE id = ?", (source,)
            ).fetchone()
        return Cursor(int(row[0]), int(row[1])) if row else Cursor()

    def labels(self, source: int) -> LogLabels:
        with self._lock:
            if source not in self._labels:
                self._load_sources()
            return self._labels[source]

    # writing -------------------------------------------------------------------------------

    def write(self, rows: Sequence[Row], cursors: Mapping[int, Cursor] | None = None) -> int:
        """Store `rows` and move the given sources' cursors, in one transaction. Returns the
        id of the last row written (0 when none)."""
        return self._write(rows, None, cursors)

    def write_flat(self, values: FlatRows, cursors: Mapping[int, Cursor] | None = None) -> int:
        """`write` of rows in their flat form (`flat_rows`: made where the lines were parsed,
        so the writer binds them as they are)."""
        return self._write(None, values, cursors)

    def tag(self, source: int) -> str:
        """The tags a source's rows carry before their level's (`flat_rows`)."""
        with self._lock:
            return self._tags[source]

    def _write(
        self,
        rows: Sequence[Row] | None,
        values: FlatRows | None,
        cursors: Mapping[int, Cursor] | None,
    ) -> int:
        cursors = cursors or {}
        if not rows and not values and not cursors:
            return 0
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                last = 0
                if rows or values:
                    segment = self._writable_segment()
                    if values is None:
                        values = flat_rows(rows or (), self._tags)
                    last = self._insert(segment, values)
                if cursors:
                    conn.executemany(
                        "UPDATE sources SET cursor_ts = ?, cursor_count = ? WHERE id = ?",
                        [(c.ts, c.count, s) for s, c in cursors.items()],
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                # What the transaction made is gone (a new segment too): read it all again.
                self._block = None
                self._next_id = self._max_id() + 1
                self._current = self._open_segment()
                raise
            conn.execute("COMMIT")
            return last

    def _insert(self, segment: int, values: FlatRows) -> int:
        first = self._next_id
        count = len(values) // ROW_VALUES
        last = first + count - 1
        # Rows go in as multi-row `INSERT ... VALUES (?1, ...), (?1+1, ...)` statements of a
        # few fixed sizes (each prepared once and cached), the first id bound once and the
        # rest of each row's values bound as the parser laid them out: the sqlite3 module
        # binds them in C and gives Python's lock back once per statement, not once per row
        # as executemany does, and nothing is encoded to JSON and parsed again (the batch as
        # one `json_each` array cost about 40 % more CPU; docs/logs.md "Figures").
        pos = 0
        for size in _chunks(count, self._max_chunk):
            args = values[pos * ROW_VALUES : (pos + size) * ROW_VALUES]
            args.insert(0, first + pos)
            self._conn.execute(_insert_sql(segment, size), args)
            pos += size
        stamps = values[3::ROW_VALUES]
        min_ts, max_ts = min(stamps), max(stamps)
        messages, fields = values[0::ROW_VALUES], values[1::ROW_VALUES]
        size = sum(map(len, messages)) + sum(map(len, filter(None, fields)))
        grown = size * _INDEX_FACTOR + count * _ROW_OVERHEAD
        self._conn.execute(
            "UPDATE segments SET first_id = coalesce(first_id, ?), last_id = ?, "
            "min_ts = min(coalesce(min_ts, ?), ?), max_ts = max(coalesce(max_ts, ?), ?), "
            "rows = rows + ?, bytes = bytes + ? WHERE n = ?",
            (first, last, min_ts, min_ts, max_ts, max_ts, count, grown, segment),
        )
        self._extend_block(segment, first, last, min_ts, max_ts, count)
        self._next_id = last + 1
        return last

    def _writable_segment(self) -> int:
        if self._current is None:
            cur = self._conn.execute(
                "INSERT INTO segments (created) VALUES (?) RETURNING n", (time.time(),)
            )
            n = int(cur.fetchone()[0])
            self._conn.execute(
                f"CREATE VIRTUAL TABLE seg{n} USING fts5("  # our table name
                "message, fields, tags, ts UNINDEXED, source UNINDEXED, level UNINDEXED, "
                # no per-row column sizes: they serve ranking (bm25), which searches skip
                "columnsize=0)"
            )
            # Merge the index's b-trees 8 at a time, not 4: each row's terms are rewritten
            # less often while the segment is written (11 % fewer instructions per insert,
            # counted by callgrind over 500,000 rows; 16: 13 %), for searches of the open
            # segment that look up more b-trees (about twice the time; a sealed segment is
            # merged into one by `maintain`). docs/logs.md "Figures".
            table = f"seg{n}"
            self._conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('automerge', 8)")  # noqa: S608
            self._current = n
            self._block = None
        return self._current

    def _extend_block(
        self, segment: int, first: int, last: int, min_ts: int, max_ts: int, count: int
    ) -> None:
        block = self._block
        if block is None or block.segment != segment:
            block = self._last_block(segment)
        if block is not None and block.rows + count <= BLOCK_ROWS:
            block.last_id = last
            block.min_ts = min(block.min_ts, min_ts)
            block.max_ts = max(block.max_ts, max_ts)
            block.rows += count
            self._conn.execute(
                "UPDATE blocks SET last_id = ?, min_ts = ?, max_ts = ?, rows = ? WHERE rowid = ?",
                (block.last_id, block.min_ts, block.max_ts, block.rows, block.rowid),
            )
        else:
            cur = self._conn.execute(
                "INSERT INTO blocks (segment, first_id, last_id, min_ts, max_ts, rows) "
                "VALUES (?,?,?,?,?,?) RETURNING rowid",
                (segment, first, last, min_ts, max_ts, count),
            )
            block = _Block(segment, int(cur.fetchone()[0]), first, last, min_ts, max_ts, count)
        self._block = block

    def _last_block(self, segment: int) -> _Block | None:
        row = self._conn.execute(
            "SELECT rowid, first_id, last_id, min_ts, max_ts, rows FROM blocks "
            "WHERE segment = ? ORDER BY first_id DESC LIMIT 1",
            (segment,),
        ).fetchone()
        if row is None:
            return None
        return _Block(segment, *(int(v) for v in row))

    def _max_id(self) -> int:
        row = self._conn.execute("SELECT max(last_id) FROM segments").fetchone()
        return int(row[0] or 0)

    # maintenance ---------------------------------------------------------------------------

    def segments(self) -> list[Segment]:
        """Oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT n, created, rows, bytes, min_ts, max_ts, sealed FROM segments ORDER BY n"
            ).fetchall()
        return [
            Segment(
                n=int(r[0]),
                created=float(r[1]),
                rows=int(r[2]),
                bytes=int(r[3]),
                min_ts=r[4],
                max_ts=r[5],
                sealed=bool(r[6]),
            )
            for r in rows
        ]

    def used_bytes(self) -> int:
        with self._lock:
            pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
            free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
            size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
        return (pages - free) * size

    def maintain(self, now: float | None = None, *, optimize: bool = True) -> Maintenance:
        """Seal the segment being written when it is due, drop what retention says, give the
        freed pages back and (with `optimize`) merge the full-text index of one sealed
        segment (FTS5 `optimize`: fewer b-trees, faster searches; it holds the write lock
        for a moment, so the collector calls it between batches)."""
        now = time.time() if now is None else now
        sealed: int | None = None
        optimized: int | None = None
        with self._lock:
            segments = self.segments()
            current = next((s for s in segments if s.n == self._current), None)
            if current is not None and seal_due(current, now, self.policy):
                self._conn.execute("UPDATE segments SET sealed = 1 WHERE n = ?", (current.n,))
                sealed, self._current, self._block = current.n, None, None
                segments = self.segments()
            drop = to_drop(segments, now, self.used_bytes(), self.policy)
            if drop:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for n in drop:
                        self._conn.execute(f"DROP TABLE IF EXISTS seg{n}")
                        self._conn.execute("DELETE FROM blocks WHERE segment = ?", (n,))
                        self._conn.execute("DELETE FROM segments WHERE n = ?", (n,))
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            freed = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
            if freed:
                self._conn.execute("PRAGMA incremental_vacuum").fetchall()
            if optimize:
                row = self._conn.execute(
                    "SELECT n FROM segments WHERE sealed = 1 AND optimized = 0 ORDER BY n LIMIT 1"
                ).fetchone()
                if row is not None:
                    optimized = int(row[0])
                    self._conn.execute(
                        f"INSERT INTO seg{optimized} (seg{optimized}) VALUES ('optimize')"  # noqa: S608
                    )
                    self._conn.execute(
                        "UPDATE segments SET optimized = 1 WHERE n = ?", (optimized,)
                    )
        return Maintenance(sealed, tuple(drop), optimized, freed)

    def stats(self) -> StoreStats:
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(rows), 0), min(min_ts), max(max_ts) FROM segments"
            ).fetchone()
            sources = int(self._conn.execute("SELECT count(*) FROM sources").fetchone()[0])
        return StoreStats(
            path=str(self.path),
            lines=int(row[1]),
            segments=int(row[0]),
            sources=sources,
            bytes=self.used_bytes(),
            oldest=None if row[2] is None else row[2] / 1e9,
            newest=None if row[3] is None else row[3] / 1e9,
        )

    # searching -----------------------------------------------------------------------------

    def search(self, query: LogQuery) -> list[LogRecord]:
        """The newest `query.limit` records that match, newest first (by arrival)."""
        with self._lock:
            plan = self._plan(query)
            if plan is None:
                return []
            out: list[tuple[Any, ...]] = []
            since, until = _ns(query.since), _ns(query.until)
            for seg in reversed(self._segments_between(since, until)):
                bounds = self._id_bounds(seg, since, until)
                if bounds is None:
                    continue
                want = query.limit - len(out)
                sql, args = plan.select(seg, "rowid BETWEEN ? AND ?", bounds, "DESC", want)
                out.extend(self._conn.execute(sql, args).fetchall())
                if len(out) >= query.limit:
                    break
            return [self._record(r) for r in out[: query.limit]]

    def tail(self, query: LogQuery, after: int, limit: int = 1000) -> list[LogRecord]:
        """Records with an id above `after` that match, oldest first (at most `limit`): a
        live tail polls this with the last id it printed."""
        with self._lock:
            plan = self._plan(query)
            if plan is None:
                return []
            out: list[tuple[Any, ...]] = []
            for seg in self._segments_after(after):
                sql, args = plan.select(seg, "rowid > ?", (after,), "ASC", limit - len(out))
                out.extend(self._conn.execute(sql, args).fetchall())
                if len(out) >= limit:
                    break
            return [self._record(r) for r in out[:limit]]

    def last_id(self) -> int:
        """The id of the newest record (0: none): a live tail starts after it."""
        with self._lock:
            return self._max_id()

    def _segments_between(self, since: int | None, until: int | None) -> list[int]:
        rows = self._conn.execute(
            "SELECT n FROM segments WHERE rows > 0 AND (? IS NULL OR max_ts >= ?) "
            "AND (? IS NULL OR min_ts <= ?) ORDER BY n",
            (since, since, until, until),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _segments_after(self, after: int) -> list[int]:
        rows = self._conn.execute(
            "SELECT n FROM segments WHERE rows > 0 AND last_id > ? ORDER BY n", (after,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _id_bounds(self, seg: int, since: int | None, until: int | None) -> tuple[int, int] | None:
        row = self._conn.execute(
            "SELECT min(first_id), max(last_id) FROM blocks WHERE segment = ? "
            "AND (? IS NULL OR max_ts >= ?) AND (? IS NULL OR min_ts <= ?)",
            (seg, since, since, until, until),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def _plan(self, query: LogQuery) -> _Plan | None:
        """The query as a full-text expression and SQL conditions; None when no source can
        match (a service nobody logged from)."""
        match: list[str] = []
        where: list[str] = []
        args: list[Any] = []
        words, literals = _terms(query.text)
        if words:
            match.append("{message fields} : (" + " AND ".join(words) + ")")
        for literal in literals:
            where.append("(instr(message, ?) > 0 OR instr(coalesce(fields, ''), ?) > 0)")
            args += [literal, literal]
        if query.services:
            keys = self._service_keys(query.services)
            if not keys:
                return None
            match.append("tags : (" + " OR ".join(f"v{k}" for k in keys) + ")")
        if query.replicas or query.hosts or query.release is not None or query.streams:
            sources = self._sources_matching(query)
            if not sources:
                return None
            match.append("tags : (" + " OR ".join(f"s{s}" for s in sources) + ")")
        if query.level is not None:
            levels = range(LEVEL_INDEX[query.level], len(LEVELS))
            match.append("tags : (" + " OR ".join(f"l{i}" for i in levels) + ")")
        for key, value in query.fields.items():
            phrase = f"{key} {value}"
            if _WORD.search(phrase):
                match.append("fields : " + _quote(phrase))
            where.append("json_extract(fields, ?) = ?")
            args += ['$."' + key.replace('"', '""') + '"', value]
        since, until = _ns(query.since), _ns(query.until)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts <= ?")
            args.append(until)
        return _Plan(" AND ".join(match), where, args)

    def _service_keys(self, services: Iterable[str]) -> list[int]:
        names = list(services)
        marks = ",".join("?" * len(names))
        rows = self._conn.execute(
            f"SELECT id FROM services WHERE name IN ({marks}) ORDER BY id",  # noqa: S608
            names,
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _sources_matching(self, query: LogQuery) -> list[int]:
        self._load_sources()
        out: list[int] = []
        for source, labels in sorted(self._labels.items()):
            if query.services and labels.service not in query.services:
                continue
            if query.replicas and labels.replica not in query.replicas:
                continue
            if query.hosts and labels.host not in query.hosts:
                continue
            if query.release is not None and labels.release != query.release:
                continue
            if query.streams and labels.stream not in query.streams:
                continue
            out.append(source)
        return out

    def written(self, rows: Sequence[Row], first: int) -> list[LogRecord]:
        """`rows` a `write` just stored from id `first` on, as a search returns them."""
        with self._lock:
            return [
                self._record((first + i, ts, source, level, message, fields))
                for i, (source, ts, level, message, fields) in enumerate(rows)
            ]

    def written_flat(self, values: FlatRows, first: int) -> list[LogRecord]:
        """`written` of rows in their flat form (`write_flat`)."""
        v, n = values, ROW_VALUES
        with self._lock:
            return [
                self._record((first + i, v[k + 3], v[k + 4], v[k + 5], v[k], v[k + 1]))
                for i, k in enumerate(range(0, len(v), n))
            ]

    def _record(self, row: tuple[Any, ...]) -> LogRecord:
        rowid, ts, source, level, message, fields = row
        if source not in self._labels:
            self._load_sources()
        return LogRecord(
            id=int(rowid),
            ts=int(ts) / 1e9,
            labels=self._labels[int(source)],
            message=str(message),
            level=None if level is None else LEVELS[int(level)],
            fields=json.loads(fields) if fields else {},
        )


@dataclass(frozen=True)
class _Plan:
    match: str
    where: list[str]
    args: list[Any]

    def select(
        self, seg: int, id_cond: str, id_args: tuple[int, ...], order: str, limit: int
    ) -> tuple[str, list[Any]]:
        table = f"seg{seg}"
        conds = [id_cond, *self.where]
        args: list[Any] = [*id_args, *self.args]
        if self.match:
            conds.insert(0, f"{table} MATCH ?")
            args.insert(0, self.match)
        sql = (
            f"SELECT rowid, ts, source, level, message, fields FROM {table} "  # noqa: S608 — our names
            f"WHERE {' AND '.join(conds)} ORDER BY rowid {order} LIMIT ?"
        )
        return sql, [*args, limit]


def _chunks(count: int, largest: int) -> Iterator[int]:
    """`count` rows cut into statement sizes from _CHUNK_SIZES (none above `largest`)."""
    left = count
    for size in _CHUNK_SIZES:
        if size > largest:
            continue
        while left >= size:
            yield size
            left -= size
    while left > 0:  # a limit below every listed size (never in practice)
        size = min(left, largest)
        yield size
        left -= size


@lru_cache(maxsize=64)
def _insert_sql(segment: int, rows: int) -> str:
    # ?1 is the first row's id; the other `?` are numbered after it, in order.
    values = ",".join(f"(?1+{k},?,?,?,?,?,?)" for k in range(rows))
    return (
        f"INSERT INTO seg{segment} (rowid, message, fields, tags, ts, source, level) "  # noqa: S608 — our table name
        "VALUES " + values
    )


def flat_rows(rows: Iterable[Row], tags: Mapping[int, str]) -> FlatRows:
    """Rows in the flat form the store inserts (`FlatRows`); `tags`: `LogStore.tag` of each
    source."""
    out: FlatRows = []
    extend = out.extend
    for source, ts, level, message, fields in rows:
        extend((message, fields, tags[source] + LEVEL_TAG[level], ts, source, level))
    return out


def _terms(text: str) -> tuple[list[str], list[str]]:
    """Words for the full-text index (`word*` a prefix) and literals without a word
    character (`->`, `:::`), which are looked for as they are."""
    words: list[str] = []
    literals: list[str] = []
    for term in text.split():
        prefix = term.endswith("*") and len(term) > 1
        body = term[:-1] if prefix else term
        if _WORD.search(body):
            words.append(_quote(body) + ("*" if prefix else ""))
        else:
            literals.append(term)
    return words, literals


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


def level_index(level: LogLevel | None) -> int | None:
    return None if level is None else LEVEL_INDEX[level]


def stream_of(value: str) -> Stream:
    return "stderr" if value == "stderr" else "stdout"
