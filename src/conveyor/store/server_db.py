"""The GitOps server's own database (`<data dir>/server.db`), beside the per-project ones:

    sdb = ServerDatabase.open(data_dir)
    sdb.tokens / sdb.audit / sdb.deliveries / sdb.events / sdb.web_sessions

Same machinery as a project's store (`store.database`): 0700 directory, 0600 files, WAL, its
own numbered migrations (`store.server_migrations`).
"""

from __future__ import annotations

from pathlib import Path

from conveyor.store.audit import AuditRepository
from conveyor.store.database import Database
from conveyor.store.deliveries import DeliveryRepository
from conveyor.store.events import EventLog
from conveyor.store.server_migrations import SERVER_MIGRATIONS
from conveyor.store.tokens import TokenRepository
from conveyor.store.web_sessions import WebSessionRepository

SERVER_DB_NAME = "server.db"


class ServerDatabase:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tokens = TokenRepository(db)
        self.audit = AuditRepository(db)
        self.deliveries = DeliveryRepository(db)
        self.events = EventLog(db)
        self.web_sessions = WebSessionRepository(db)

    @classmethod
    def open(cls, data_dir: Path) -> ServerDatabase:
        return cls(Database.open(data_dir, name=SERVER_DB_NAME, migrations=SERVER_MIGRATIONS))

    @property
    def path(self) -> Path:
        return self.db.path

    def close(self) -> None:
        self.db.close()
