"""The project's SQLite database: one connection, transactions, versioned migrations, and
private files (the state holds environment values and logs).

SQLite in WAL mode. Schema changes are numbered migrations (`store.migrations`) applied in
order at open; `PRAGMA user_version` records the last one applied, so a database written by
an older Conveyor opens and upgrades in place.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import StoreError

if TYPE_CHECKING:
    from conveyor.store.migrations import Migration

DB_NAME = "state.db"
_DIR_MODE = 0o700
_FILE_MODE = 0o600

Row = sqlite3.Row


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable only by its owner; tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    if path.stat().st_mode & 0o077:
        path.chmod(_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty with mode 0600 if missing; tighten it if it exists."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(_FILE_MODE)
    return path


@contextmanager
def _open_lock(lock_file: Path) -> Iterator[None]:
    """An exclusive lock on `lock_file` (created private) for as long as the block runs."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class Database:
    """One connection shared by a command's threads (CI jobs run concurrently): every
    transaction and read holds `lock`, so they never interleave."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.lock = threading.RLock()

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        name: str = DB_NAME,
        migrations: Sequence[Sequence[Migration]] | None = None,
    ) -> Database:
        """Open (creating it private) `state_dir/name` and apply `migrations` (default: the
        project database's, `store.migrations.MIGRATIONS`)."""
        from conveyor.store.migrations import MIGRATIONS, migrate

        private_dir(state_dir)
        ignore = state_dir / ".gitignore"
        if not ignore.exists():
            # state (logs, secrets, databases) never belongs in the project's commits
            private_file(ignore).write_text(
                "# written by Conveyor: this directory is local state\n*\n"
            )
        path = state_dir / name
        # Opening is serialized across processes: a reader opening a database its creator is
        # still making (turning the empty file into a WAL database, migrating) could otherwise
        # make it twice over and leave it malformed.
        with _open_lock(state_dir / f".{name}.open-lock"):
            # SQLite gives its -wal and -shm files the database file's mode: create it private.
            private_file(path)
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    private_file(side)
            try:
                conn = sqlite3.connect(
                    path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as e:
                raise StoreError(
                    f"{path}: cannot open the state database ({e}); check the file's "
                    "permissions or move it aside to start with empty state"
                ) from e
            db = cls(conn, path)
            migrate(db, MIGRATIONS if migrations is None else migrations)
        return db

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: one writer at a time across processes)."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """One write statement in its own transaction."""
        with self.tx() as c:
            return c.execute(sql, args)

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        with self.lock:
            row: Row | None = self._conn.execute(sql, args).fetchone()
        return row

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self.lock:
            return list(self._conn.execute(sql, args).fetchall())

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = self.one(sql, args)
        return None if row is None else row[0]

    def import_tables(self, other: Path, tables: tuple[str, ...]) -> int:
        """Copy every row of `tables` from another database of the same schema; returns the
        number of rows of the first table copied. One transaction."""
        with self.lock:
            self._conn.execute("ATTACH DATABASE ? AS other", (str(other),))
            try:
                with self.tx() as c:
                    counts = [
                        c.execute(f"INSERT INTO main.{t} SELECT * FROM other.{t}").rowcount  # noqa: S608 — our table names
                        for t in tables
                    ]
            finally:
                self._conn.execute("DETACH DATABASE other")
        return counts[0] if counts else 0

    @property
    def version(self) -> int:
        return int(self.scalar("PRAGMA user_version"))
