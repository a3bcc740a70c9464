"""The environment page's latest backups and restores, from the server's timeline (the
backup scheduler's and `conveyor backup`'s events reach it; docs/backups.md)."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.model.events import Event
from conveyor.server.backend import ServerBackend

KINDS = frozenset(
    {
        "backup.created",
        "backup.failed",
        "backup.expired",
        "backup.verified",
        "backup.verify_failed",
        "restore.succeeded",
        "restore.failed",
    }
)
_STATUS = {
    "backup.created": "ok",
    "backup.verified": "ok",
    "restore.succeeded": "ok",
    "backup.expired": "expired",
    "backup.failed": "failed",
    "backup.verify_failed": "failed",
    "restore.failed": "failed",
}
WINDOW = 2000  # newest events looked through: backups are a few a day among many events


@dataclass(frozen=True)
class BackupRow:
    ts: float
    service: str
    what: str  # the event's kind, e.g. backup.created
    status: str  # ok, failed, expired: the badge
    id: str
    message: str


def recent_backups(backend: ServerBackend, env: str, limit: int = 8) -> list[BackupRow]:
    """The newest backup and restore events of `env`, newest first."""
    last = backend.last_event_id() or 0
    events = backend.events(max(0, last - WINDOW), WINDOW)
    found = [e for e in events if e.kind in KINDS and e.subject.environment == env]
    return [_row(e) for e in reversed(found[-limit:])]


def _row(e: Event) -> BackupRow:
    return BackupRow(
        ts=e.ts,
        service=e.subject.service or str(e.data.get("service", "")),
        what=e.kind,
        status=_STATUS.get(e.kind, "info"),
        id=str(e.data.get("id", "")),
        message=e.message,
    )
