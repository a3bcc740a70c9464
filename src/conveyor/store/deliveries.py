"""Webhook deliveries, persisted before the server answers 2xx so none is lost to a crash;
unique per (source, delivery id), so a redelivery is recognised and changes nothing."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from conveyor.model.access import DeliveryStatus, StoredDelivery
from conveyor.store.database import Database, Row

Added = Literal["added", "duplicate"]


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        source: str,
        delivery_id: str,
        ref: str | None,
        after_sha: str | None,
        payload: dict[str, Any],
        at: float | None = None,
    ) -> Added:
        """Persist a delivery as pending; "duplicate" (and nothing written) when this source
        already delivered this id."""
        cur = self._db.execute(
            "INSERT INTO hook_deliveries (source, delivery_id, received_at, ref, after_sha, "
            "payload) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, delivery_id) DO NOTHING",
            (
                source,
                delivery_id,
                time.time() if at is None else at,
                ref,
                after_sha,
                json.dumps(payload),
            ),
        )
        return "added" if cur.rowcount == 1 else "duplicate"

    def get(self, source: str, delivery_id: str) -> StoredDelivery | None:
        row = self._db.one(
            "SELECT * FROM hook_deliveries WHERE source = ? AND delivery_id = ?",
            (source, delivery_id),
        )
        return None if row is None else _delivery(row)

    def with_status(self, status: DeliveryStatus, limit: int = 1000) -> list[StoredDelivery]:
        """Oldest first: what a controller starting up still has to handle is `pending`."""
        rows = self._db.all(
            "SELECT * FROM hook_deliveries WHERE status = ? ORDER BY id LIMIT ?", (status, limit)
        )
        return [_delivery(r) for r in rows]

    def mark(self, source: str, delivery_id: str, status: DeliveryStatus) -> bool:
        cur = self._db.execute(
            "UPDATE hook_deliveries SET status = ? WHERE source = ? AND delivery_id = ?",
            (status, source, delivery_id),
        )
        return cur.rowcount == 1

    def count(self) -> int:
        return int(self._db.scalar("SELECT count(*) FROM hook_deliveries"))


def _delivery(r: Row) -> StoredDelivery:
    return StoredDelivery(
        source=r["source"],
        delivery_id=r["delivery_id"],
        received_at=r["received_at"],
        ref=r["ref"],
        after_sha=r["after_sha"],
        payload=json.loads(r["payload"] or "{}"),
        status=r["status"],
    )
