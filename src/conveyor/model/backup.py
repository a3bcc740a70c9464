"""Backups as data (docs/backups.md): conveyor.yaml's `backups:` section, a service's
`x-conveyor.backup`, what the planner decides (BackupItem), and what a stored backup says
about itself (BackupManifest).

Pure types: `spec.backups` reads them, `plan.backup` plans over them, `provision.backup`
does the copying, compressing, encrypting and uploading.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.frozen import Frozen

BackupKind = Literal["volume", "postgres", "mysql", "redis"]
# pause: the replicas are frozen (`docker pause`) while their volumes are copied;
# stop: they are stopped first and started again after (the stop-first hook);
# dump: the database's own dump tool, run in a replica while it serves.
Consistency = Literal["pause", "stop", "dump"]
Compression = Literal["zstd", "gzip"]

DATABASE_KINDS: tuple[BackupKind, ...] = ("postgres", "mysql", "redis")


class ServiceBackup(Frozen):
    """A service's `x-conveyor.backup`: how it is backed up. `enabled=False` is the written
    `backup: false`."""

    enabled: bool = True
    kind: BackupKind | None = None  # None: guessed from the image (postgres/mysql/redis)
    volumes: tuple[str, ...] = ()  # empty: every named volume the service mounts
    consistency: Consistency | None = None  # None: dump for databases, pause for volumes


class BackupDestination(Frozen):
    """Where backups go: an S3 bucket (AWS, or any S3-compatible store at `endpoint_url`)."""

    bucket: str | None = None  # None: no destination configured (create refuses)
    prefix: str = "backups/"
    endpoint_url: str | None = None  # None: AWS (or AWS_ENDPOINT_URL, which boto3 reads)
    region: str | None = None


class BackupKeySource(Frozen):
    """Where the 256-bit encryption key is read from (never from git): a file on the host
    that runs the backup, or an environment variable; either holds 32 bytes as 64 hex digits
    or base64 (a file may also hold the 32 raw bytes)."""

    file: str | None = None
    env: str | None = None


class Retention(Frozen):
    """Which backups are kept, per service: the newest `keep`, and all younger than `days`
    (the union when both are set); neither set keeps everything."""

    keep: int | None = None
    days: float | None = None


class BackupSchedule(Frozen):
    """When the server backs up: every `every` seconds, or at the times a 5-field cron
    expression (UTC) names; for one environment and, optionally, one service."""

    environment: str
    service: str | None = None  # None: every service the planner finds
    every: float | None = None  # seconds
    cron: str | None = None
    line: int | None = Field(default=None, exclude=True, repr=False)

    @property
    def name(self) -> str:
        return f"{self.environment}/{self.service or '*'}"


class BackupsConfig(Frozen):
    """conveyor.yaml's `backups:` section."""

    destination: BackupDestination = BackupDestination()
    key: BackupKeySource = BackupKeySource()
    retention: Retention = Retention()
    schedules: tuple[BackupSchedule, ...] = ()
    compression: Compression | None = None  # None: zstd when installed, else gzip


# --- what the planner decides --------------------------------------------------------------


class BackupPart(Frozen):
    """One object of a backup: a volume's tar, or a database's dump."""

    name: str  # the volume's name in the compose file, or the dump's ("dump")
    kind: BackupKind
    volume: str | None = None  # the compose volume (volume kind; redis: where dump.rdb lives)
    target: str | None = None  # where the volume is mounted in the service's containers


class BackupItem(Frozen):
    """What backing up one service means: its parts and how consistency is kept."""

    service: str
    kind: BackupKind
    consistency: Consistency
    parts: tuple[BackupPart, ...]
    image: str | None = None  # the service's image (helpers and trial restores use it)
    stop_grace: float = 10.0  # the service's stop_grace_period (consistency: stop)


# --- what a stored backup says about itself -------------------------------------------------


class PartManifest(Frozen):
    name: str
    kind: BackupKind
    key: str  # the object's key in the bucket
    volume: str | None = None
    target: str | None = None
    sha256: str  # of the plaintext (the tar, or the dump), before compression
    size: int  # plaintext bytes
    stored_size: int  # bytes in the bucket (compressed + encrypted)


class BackupManifest(Frozen):
    """`manifest.json` next to a backup's parts (not encrypted: it names no data)."""

    format: int = 1
    id: str  # <timestamp>-<random>, also the backup's folder
    project: str
    environment: str
    service: str
    kind: BackupKind
    consistency: Consistency
    created: float
    release: int | None = None
    image: str | None = None  # the service's image when it was backed up
    host: str | None = None  # the fleet host it was copied or dumped on (None: one host)
    compression: Compression
    parts: tuple[PartManifest, ...]


class StoredBackup(Frozen):
    """A backup found in the bucket (its manifest, where it is)."""

    prefix: str  # the backup's folder: <prefix><project>/<env>/<service>/<id>/
    manifest: BackupManifest

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def service(self) -> str:
        return self.manifest.service

    @property
    def created(self) -> float:
        return self.manifest.created

    @property
    def size(self) -> int:
        return sum(p.stored_size for p in self.manifest.parts)


class BackupOutcome(Frozen):
    """One service's backup, restore or verification: what the CLI prints and --json shows."""

    service: str
    action: Literal["create", "restore", "verify"]
    ok: bool
    id: str | None = None
    message: str = ""
    size: int = 0
    parts: tuple[str, ...] = ()


class Snapshot(Frozen):
    """An EBS snapshot of a host's data volume (`conveyor backup create --ebs`)."""

    id: str
    volume: str
    started: float
    state: str  # pending, completed, error (EC2's words)
    size_gb: int = 0
    stack: str = ""
