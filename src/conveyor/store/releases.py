"""Releases: immutable stacks with resolved images, numbered 1, 2, 3… per project."""

from __future__ import annotations

import time

from conveyor.model.release import Release
from conveyor.store.database import Database


class ReleaseRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, release: Release) -> Release:
        """Record a release; it is given the next number if it has none (0)."""
        with self._db.tx() as c:
            number = release.number or int(
                c.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM releases").fetchone()[0]
            )
            rel = release.model_copy(update={"number": number, "created_at": time.time()})
            c.execute(
                "INSERT INTO releases (number, created_at, commit_sha, pipeline_id, job_id, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (number, rel.created_at, rel.commit, rel.pipeline, rel.job, rel.model_dump_json()),
            )
        return rel

    def get(self, number: int | None) -> Release | None:
        if number is None:
            return None
        row = self._db.one("SELECT body FROM releases WHERE number = ?", (number,))
        return None if row is None else Release.model_validate_json(row[0])

    def latest(self, limit: int = 50) -> list[Release]:
        rows = self._db.all("SELECT body FROM releases ORDER BY number DESC LIMIT ?", (limit,))
        return [Release.model_validate_json(r[0]) for r in rows]

    def for_commit(self, sha: str) -> list[Release]:
        """Releases built from `sha` (a full or abbreviated commit id), oldest first."""
        rows = self._db.all(
            "SELECT body FROM releases WHERE commit_sha LIKE ? ORDER BY number", (f"{sha}%",)
        )
        return [Release.model_validate_json(r[0]) for r in rows]
