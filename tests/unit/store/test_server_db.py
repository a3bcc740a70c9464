from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from conveyor.errors import StoreError, TokenNameTaken
from conveyor.store.server_db import ServerDatabase
from conveyor.store.server_migrations import SERVER_MIGRATIONS


def test_private_directory_and_files_and_own_schema(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    sdb = ServerDatabase.open(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(sdb.path.stat().st_mode) == 0o600
    assert sdb.path.name == "server.db"
    assert sdb.db.version == len(SERVER_MIGRATIONS)
    tables = {r[0] for r in sdb.db.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tokens", "audit", "hook_deliveries"} <= tables
    assert "releases" not in tables  # not a project database
    sdb.close()
    assert ServerDatabase.open(data).db.version == len(SERVER_MIGRATIONS)  # reopens as is


def test_a_database_from_a_newer_conveyor_is_refused(tmp_path: Path) -> None:
    ServerDatabase.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "server.db")
    conn.execute(f"PRAGMA user_version = {len(SERVER_MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer Conveyor"):
        ServerDatabase.open(tmp_path)


def test_token_names_are_unique_among_active_tokens(tmp_path: Path) -> None:
    sdb = ServerDatabase.open(tmp_path)
    first = sdb.tokens.add("ci", "deployer", "h1")
    with pytest.raises(TokenNameTaken, match="'ci'"):
        sdb.tokens.add("ci", "viewer", "h2")
    revoked = sdb.tokens.revoke("ci")
    assert revoked is not None and revoked.revoked_at is not None and not revoked.active
    again = sdb.tokens.add("ci", "viewer", "h3")  # the name is free once revoked
    assert again.id != first.id
    assert [t.hash for t in sdb.tokens.active()] == ["h3"]
    assert [t.name for t in sdb.tokens.all()] == ["ci", "ci"]
    assert sdb.tokens.revoke("nobody") is None


def test_a_token_role_outside_the_three_is_refused_by_the_schema(tmp_path: Path) -> None:
    sdb = ServerDatabase.open(tmp_path)
    with pytest.raises(sqlite3.IntegrityError):
        sdb.tokens.add("x", "root", "h")  # type: ignore[arg-type]


def test_a_known_delivery_is_a_duplicate_and_changes_nothing(tmp_path: Path) -> None:
    sdb = ServerDatabase.open(tmp_path)
    assert sdb.deliveries.add("gitlab", "d1", "refs/heads/main", "a" * 40, {"n": 1}) == "added"
    assert sdb.deliveries.mark("gitlab", "d1", "done")
    again = sdb.deliveries.add("gitlab", "d1", "refs/heads/other", "b" * 40, {"n": 2})
    assert again == "duplicate"
    kept = sdb.deliveries.get("gitlab", "d1")
    assert kept is not None
    assert (kept.ref, kept.after_sha, kept.payload, kept.status) == (
        "refs/heads/main",
        "a" * 40,
        {"n": 1},
        "done",
    )
    # the same id from another source is another delivery
    assert sdb.deliveries.add("github", "d1", None, None, {}) == "added"
    assert sdb.deliveries.count() == 2
    assert [d.source for d in sdb.deliveries.with_status("pending")] == ["github"]


def test_audit_records_round_trip_newest_first(tmp_path: Path) -> None:
    sdb = ServerDatabase.open(tmp_path)
    a = sdb.audit.record("ci", "deployer", "promote", "production", "ok", {"from": "staging"})
    b = sdb.audit.record("bob", "viewer", "rollback", "production", "denied")
    assert [r.id for r in sdb.audit.latest()] == [b.id, a.id]
    assert sdb.audit.latest()[1] == a
    assert sdb.audit.latest(before=b.id) == [a]
