"""The reconciler's per-service heal backoff, kept across restarts of the reconciler."""

from __future__ import annotations

from conveyor.model.release import HealBackoff
from conveyor.store.database import Database


class BackoffRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> dict[str, HealBackoff]:
        rows = self._db.all("SELECT service, streak, last_heal, not_before FROM heal_backoff")
        return {str(r[0]): HealBackoff(streak=r[1], last_heal=r[2], not_before=r[3]) for r in rows}

    def save(self, service: str, b: HealBackoff) -> None:
        self._db.execute(
            "INSERT INTO heal_backoff (service, streak, last_heal, not_before) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(service) DO UPDATE SET streak = excluded.streak, "
            "last_heal = excluded.last_heal, not_before = excluded.not_before",
            (service, b.streak, b.last_heal, b.not_before),
        )
