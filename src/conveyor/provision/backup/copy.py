"""Backing up, restoring and verifying one service (docs/backups.md, "What runs where").

    manifest = create_backup(job)            copy or dump each part, seal, upload; manifest last
    restore_backup(runtime, bucket, stored, ...)   download, open, check digest, then replace
    verify_backup(runtime, bucket, stored, ...)    download, open, check digest (+ trial restore)

Consistency: `pause` freezes the service's replicas while its volumes are read, `stop` stops
them first and starts them after (the stop-first hook), `dump` runs the database's own tool in
a replica while it serves. A restore checks the digest of the whole part (spooled to a temporary
file on disk) before it touches the live volume or database.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import BackupCorrupt, BackupError, ConveyorError
from conveyor.model.backup import (
    BackupItem,
    BackupManifest,
    BackupPart,
    Compression,
    PartManifest,
    StoredBackup,
)
from conveyor.plan.backup import backup_prefix, part_key
from conveyor.provision.backup.protocol import BackupRuntime
from conveyor.provision.backup.s3 import BackupBucket
from conveyor.provision.backup.stream import Sealed, seal, unseal

Progress = Callable[[str], None]

# The dump commands read the credentials the official images take from their environment.
PG_DUMP = (
    'pg_dump -U "${POSTGRES_USER:-postgres}" --clean --if-exists --no-owner --no-privileges '
    '"${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"'
)
PG_LOAD = (
    'psql -q -v ON_ERROR_STOP=1 -U "${POSTGRES_USER:-postgres}" '
    '-d "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" -f '
)
MYSQL_DUMP = (
    'mysqldump -uroot -p"$MYSQL_ROOT_PASSWORD" --single-transaction --routines --events '
    "--all-databases"
)
MYSQL_LOAD = 'mysql -uroot -p"$MYSQL_ROOT_PASSWORD" < '
SPOOL = "/tmp/conveyor-restore"  # where a dump is put in the container to be loaded
_WAIT = 0.2  # seconds between two looks while a database saves or starts
_READY_TIMEOUT = 300.0


@dataclass(frozen=True)
class BackupJob:
    """One service's backup to make."""

    item: BackupItem
    project: str  # the Compose project the replicas run as (volumes are <project>_<name>)
    environment: str
    prefix: str  # the bucket's prefix
    id: str
    key: bytes
    compression: Compression
    release: int | None = None
    host: str | None = None  # the fleet host whose engine `runtime` drives (None: this one)


def create_backup(
    runtime: BackupRuntime, bucket: BackupBucket, job: BackupJob, progress: Progress
) -> BackupManifest:
    """Copy every part of the service, sealed, to the bucket, then its manifest (the backup
    exists once the manifest does). Raises BackupError (or the runtime's error)."""
    item = job.item
    folder = backup_prefix(job.prefix, job.project, job.environment, item.service, job.id)
    containers = runtime.service_containers(job.project, item.service)
    parts: list[PartManifest] = []
    # Paused or stopped replicas wait only for the copy: each part is sealed into a spool
    # file on disk meanwhile, and uploaded once they run again. A dump streams straight up.
    spooled = item.consistency in ("pause", "stop") and bool(containers)
    with ExitStack() as spools:
        pending: list[tuple[str, BackupPart, Path, Sealed]] = []
        with _consistent(runtime, item, containers, progress):
            for part in item.parts:
                key = part_key(folder, part, job.compression)
                progress(f"{item.service}: {part.name} ({part.kind}) -> s3://{bucket.bucket}/{key}")
                sealed = seal(_source(runtime, job, part, containers), job.key, job.compression)
                if spooled:
                    spool = spools.enter_context(_spool_file())
                    with spool.open("wb") as out:
                        for chunk in sealed.chunks():
                            out.write(chunk)
                    pending.append((key, part, spool, sealed))
                else:
                    bucket.upload(key, sealed.chunks())
                    parts.append(_part_manifest(key, part, sealed))
        for key, part, spool, sealed in pending:
            bucket.upload(key, _file_chunks(spool))
            parts.append(_part_manifest(key, part, sealed))
    manifest = BackupManifest(
        id=job.id,
        project=job.project,
        environment=job.environment,
        service=item.service,
        kind=item.kind,
        consistency=item.consistency,
        created=time.time(),
        release=job.release,
        image=item.image,
        host=job.host,
        compression=job.compression,
        parts=tuple(parts),
    )
    bucket.put_manifest(folder, manifest)
    return manifest


def _part_manifest(key: str, part: BackupPart, sealed: Sealed) -> PartManifest:
    return PartManifest(
        name=part.name,
        kind=part.kind,
        key=key,
        volume=part.volume,
        target=part.target,
        sha256=sealed.sha256,
        size=sealed.size,
        stored_size=sealed.stored,
    )


@contextmanager
def _spool_file() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="conveyor-backup-spool-")
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def _consistent(
    runtime: BackupRuntime, item: BackupItem, containers: list[str], progress: Progress
) -> Iterator[None]:
    if item.consistency == "dump" and item.kind != "redis" and not containers:
        raise BackupError(f"{item.service}: no running replica to dump from: start it first")
    if item.consistency == "pause" and containers:
        progress(f"{item.service}: pausing {len(containers)} replica(s)")
        paused: list[str] = []
        try:
            for c in containers:
                runtime.pause(c)
                paused.append(c)
            yield
        finally:
            for c in paused:
                runtime.unpause(c)
        return
    if item.consistency == "stop" and containers:
        progress(f"{item.service}: stopping {len(containers)} replica(s)")
        try:
            for c in containers:
                runtime.stop(c, item.stop_grace)
            yield
        finally:
            for c in containers:
                runtime.start(c)
        return
    yield


def _source(
    runtime: BackupRuntime, job: BackupJob, part: BackupPart, containers: list[str]
) -> Iterator[bytes]:
    image = job.item.image
    if part.kind == "volume":
        assert part.volume is not None
        volume = _docker_volume(job.project, part.volume)
        if not runtime.volume_exists(volume):
            raise BackupError(f"{job.item.service}: volume {volume} does not exist")
        if image is None:
            raise BackupError(f"{job.item.service}: no image to run the volume's helper from")
        return runtime.export_volume(volume, image)
    if part.kind == "postgres":
        return runtime.exec_output(containers[0], ["sh", "-c", PG_DUMP])
    if part.kind == "mysql":
        return runtime.exec_output(containers[0], ["sh", "-c", MYSQL_DUMP])
    # redis: a fresh BGSAVE, then dump.rdb copied out (as a one-file tar)
    if not containers:
        raise BackupError(f"{job.item.service}: no running replica to save from: start it first")
    container = containers[0]
    runtime.exec_run(container, ["redis-cli", "BGSAVE"])
    # BGSAVE forks before it answers: once no save is in progress, the last status is ours.
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        info = _redis_info(runtime.exec_run(container, ["redis-cli", "INFO", "persistence"]))
        if info.get("rdb_bgsave_in_progress") == "0":
            break
        if time.monotonic() > deadline:
            raise BackupError(f"{job.item.service}: BGSAVE did not finish")
        time.sleep(_WAIT)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise BackupError(
            f"{job.item.service}: BGSAVE failed (is {part.target or '/data'} writable by the "
            "redis user? see the replica's log)"
        )
    return runtime.copy_out(container, f"{part.target or '/data'}/dump.rdb")


def _redis_info(text: str) -> dict[str, str]:
    pairs = (line.strip().partition(":") for line in text.splitlines() if ":" in line)
    return {key: value for key, _, value in pairs}


def _docker_volume(project: str, volume: str) -> str:
    return f"{project}_{volume}"  # Compose's (and runtime.docker_engine's) naming


# --- reading back ----------------------------------------------------------------------------


@contextmanager
def opened_part(bucket: BackupBucket, part: PartManifest, key: bytes) -> Iterator[Path]:
    """The part's plaintext in a temporary file, its digest and size checked against the
    manifest. Raises BackupCorrupt."""
    fd, name = tempfile.mkstemp(prefix="conveyor-backup-")
    path = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for data in unseal(bucket.download(part.key), key):
                digest.update(data)
                size += len(data)
                out.write(data)
        if digest.hexdigest() != part.sha256 or size != part.size:
            raise BackupCorrupt(
                f"{part.key}: the content does not match the manifest (sha256 "
                f"{digest.hexdigest()[:12]}… of {size} bytes, expected {part.sha256[:12]}… of "
                f"{part.size})"
            )
        yield path
    finally:
        path.unlink(missing_ok=True)


def _file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as f:
        while data := f.read(size):
            yield data


def restore_backup(
    runtime: BackupRuntime,
    bucket: BackupBucket,
    stored: StoredBackup,
    project: str,
    key: bytes,
    progress: Progress,
    stop_grace: float = 10.0,
) -> None:
    """Put the backup back: volumes replaced (the replicas stopped meanwhile), dumps loaded
    into a running replica. Every part is checked before anything is replaced."""
    manifest = stored.manifest
    service = manifest.service
    containers = runtime.service_containers(project, service)
    image = manifest.image
    for part in manifest.parts:
        with opened_part(bucket, part, key) as plain:
            progress(f"{service}: {part.name} checked ({part.size} bytes), restoring")
            if part.kind == "volume":
                assert part.volume is not None
                if image is None:
                    raise BackupError(f"{service}: the manifest names no image for the helper")
                with _stopped(runtime, containers, stop_grace, progress, service):
                    runtime.import_volume(
                        project, _docker_volume(project, part.volume), image, _file_chunks(plain)
                    )
            elif part.kind in ("postgres", "mysql"):
                if not containers:
                    raise BackupError(f"{service}: no running replica to load into: start it")
                _load_dump(runtime, containers[0], part.kind, plain)
            else:  # redis: dump.rdb back in place while stopped, read at start
                if not containers:
                    raise BackupError(f"{service}: no replica to restore into: start it first")
                with _stopped(runtime, containers, stop_grace, progress, service):
                    runtime.copy_in(containers[0], part.target or "/data", _file_chunks(plain))


@contextmanager
def _stopped(
    runtime: BackupRuntime, containers: list[str], grace: float, progress: Progress, service: str
) -> Iterator[None]:
    if containers:
        progress(f"{service}: stopping {len(containers)} replica(s) for the restore")
    for c in containers:
        runtime.stop(c, grace)
    try:
        yield
    finally:
        for c in containers:
            runtime.start(c)


def _load_dump(runtime: BackupRuntime, container: str, kind: str, plain: Path) -> None:
    name = f"{os.path.basename(SPOOL)}-{os.getpid()}.sql"
    runtime.copy_file_in(container, "/tmp", plain, name)
    target = shlex.quote(f"/tmp/{name}")
    load = PG_LOAD if kind == "postgres" else MYSQL_LOAD
    try:
        runtime.exec_run(container, ["sh", "-c", load + target])
    finally:
        with suppress(ConveyorError):
            runtime.exec_run(container, ["rm", "-f", f"/tmp/{name}"])


def verify_backup(
    runtime: BackupRuntime | None,
    bucket: BackupBucket,
    stored: StoredBackup,
    key: bytes,
    progress: Progress,
) -> list[str]:
    """Check every part (authenticated, digest as in the manifest) and, for a PostgreSQL
    dump when a runtime and the image are there, load it into a throwaway container. The
    checks done, one line each; raises BackupCorrupt or BackupError when one fails."""
    done: list[str] = []
    manifest = stored.manifest
    for part in manifest.parts:
        with opened_part(bucket, part, key) as plain:
            done.append(f"{part.name}: decrypted, sha256 matches ({part.size} bytes)")
            progress(f"{manifest.service}: {done[-1]}")
            if part.kind == "postgres" and runtime is not None and manifest.image:
                _trial_postgres(runtime, manifest.image, plain, progress, manifest.service)
                done.append(f"{part.name}: loaded into a throwaway {manifest.image}")
    return done


def _trial_postgres(
    runtime: BackupRuntime, image: str, plain: Path, progress: Progress, service: str
) -> None:
    env = {"POSTGRES_PASSWORD": os.urandom(12).hex(), "POSTGRES_USER": "postgres"}
    progress(f"{service}: trial restore in a throwaway {image}")
    container = runtime.run_scratch(image, env, {"io.conveyor.verify": service})
    try:
        _wait_ready(runtime, container, ["pg_isready", "-h", "127.0.0.1", "-U", "postgres"])
        try:
            _load_dump(runtime, container, "postgres", plain)
        except ConveyorError as e:
            raise BackupCorrupt(f"{service}: the dump does not load: {e}") from None
    finally:
        runtime.remove(container)


def _wait_ready(runtime: BackupRuntime, container: str, argv: list[str]) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        try:
            runtime.exec_run(container, argv)
            return
        except ConveyorError as e:
            if time.monotonic() > deadline:
                raise BackupError(f"the throwaway database did not start: {e}") from None
        time.sleep(_WAIT)
