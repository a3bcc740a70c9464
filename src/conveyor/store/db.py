"""One project's state: one SQLite database, one repository per aggregate.

    store = Store.open(state_dir)
    store.releases / store.rollouts / store.journal / store.environment / store.ports
    store.address_slots / store.pipelines / store.jobs / store.artifacts / store.events
    store.backoff

Cheap to open per command; `Store.open` creates the directory private (0700) and the database
files 0600, and upgrades a database written by an older Conveyor.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.model.release import Release
from conveyor.store.backoff import BackoffRepository
from conveyor.store.database import DB_NAME, Database
from conveyor.store.environment import (
    AddressSlotRepository,
    EnvironmentRepository,
    PortRepository,
)
from conveyor.store.events import EventLog
from conveyor.store.pipelines import ArtifactRepository, JobRepository, PipelineRepository
from conveyor.store.releases import ReleaseRepository
from conveyor.store.rollouts import JournalRepository, RolloutRepository, RolloutRow

__all__ = ["RolloutRow", "Store"]


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.releases = ReleaseRepository(db)
        self.rollouts = RolloutRepository(db)
        self.journal = JournalRepository(db)
        self.environment = EnvironmentRepository(db)
        self.ports = PortRepository(db)
        self.address_slots = AddressSlotRepository(db)
        self.pipelines = PipelineRepository(db)
        self.jobs = JobRepository(db)
        self.artifacts = ArtifactRepository(db)
        self.events = EventLog(db)
        self.backoff = BackoffRepository(db)

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        return cls(Database.open(state_dir))

    @property
    def directory(self) -> Path:
        """The directory the database lives in (what `Store.open` was given)."""
        return self.db.path.parent

    @property
    def project(self) -> str:
        """The project this database belongs to (its directory's name)."""
        return self.db.path.parent.name

    def close(self) -> None:
        self.db.close()

    def adopt_pipelines(self, legacy_dir: Path) -> int:
        """Take over the CI records of Conveyor 0.1's separate CI database (`.conveyor/ci/`)
        when this database has none yet; the old file is renamed, never deleted. Returns how
        many pipelines were taken over."""
        legacy = legacy_dir / DB_NAME
        if not legacy.exists() or self.pipelines.latest(limit=1):
            return 0
        Database.open(legacy_dir).close()  # brings it to this schema first
        n = self.db.import_tables(legacy, ("pipelines", "jobs", "artifacts"))
        for suffix in ("", "-wal", "-shm"):
            side = legacy.with_name(legacy.name + suffix)
            if side.exists():
                side.rename(side.with_name(side.name + ".adopted"))
        return n

    def current_release(self) -> Release | None:
        return self.releases.get(self.environment.pointer("current_release"))

    def previous_release(self) -> Release | None:
        return self.releases.get(self.environment.pointer("previous_release"))
