"""`conveyor backup create|list|restore|verify [SERVICE]` (docs/backups.md).

    target = backup_target(project, env, conveyor_file)    the stack, settings, names
    create(target, services, progress)      one BackupOutcome per service; retention applied
    list_backups(target, service)           StoredBackup, oldest first
    restore(target, service, backup_id)     the newest backup unless an id is given
    verify(target, services, backup_id)     download, decrypt, digest (+ trial restore)

Every backup and restore is an event of the environment's timeline (backup.created,
backup.failed, restore.succeeded…), so the dashboard and notifications see them. The
backups run on this host's Docker Engine, or on a fleet (conveyor.yaml names app hosts) on
the engine of the host holding each service's volumes (deploy.fleet_backup; the manifest
and the events name that host); the bucket is any S3-compatible store.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.app.project import Project
from conveyor.deploy.project import ProjectPaths, project_lock
from conveyor.errors import BackupError, ConveyorError
from conveyor.model.backup import (
    BackupOutcome,
    BackupsConfig,
    Compression,
    Retention,
    Snapshot,
    StoredBackup,
)
from conveyor.model.events import Subject
from conveyor.model.stack import Stack
from conveyor.plan.backup import (
    expired,
    expired_ids,
    new_backup_id,
    plan_backups,
    service_prefix,
)
from conveyor.plan.fleet_files import named_volumes
from conveyor.provision.backup.copy import (
    BackupJob,
    create_backup,
    restore_backup,
    verify_backup,
)
from conveyor.provision.backup.ebs import Snapshots
from conveyor.provision.backup.protocol import BackupRuntime
from conveyor.provision.backup.s3 import BackupBucket
from conveyor.provision.backup.stream import default_compression, read_key
from conveyor.spec.backups import load_backups_settings
from conveyor.store.db import Store
from conveyor.store.timeline import Subscriber, Timeline

if TYPE_CHECKING:
    from conveyor.deploy.fleet_backup import FleetBackups

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    return None


@dataclass
class BackupTarget:
    """What a backup command acts on: the stack, the Compose project its replicas run as on
    this host, the environment's name, the settings, and where events go."""

    stack: Stack
    project: str  # the Compose project (volumes are <project>_<name>)
    environment: str
    settings: BackupsConfig
    environ: Mapping[str, str]
    state_dir: Path
    actor: str = "cli"
    # The project's writer lock is held while replicas are paused or stopped for a copy, and
    # while a restore replaces a volume: the agent's heal would start them again mid-copy.
    # None (a target built by hand): nothing is locked.
    paths: ProjectPaths | None = None
    subscribers: list[Subscriber] = field(default_factory=list)  # events also go to these
    runtime: BackupRuntime | None = None
    bucket: BackupBucket | None = None
    # A fleet: each service's backup runs on the host holding its volumes (None: this host).
    fleet: FleetBackups | None = None
    _key: bytes | None = field(default=None, repr=False)

    def key(self) -> bytes:
        if self._key is None:
            self._key = read_key(self.settings.key, self.environ)
        return self._key

    def connect(self) -> BackupBucket:
        if self.bucket is None:
            self.bucket = BackupBucket.connect(self.settings.destination)
        return self.bucket

    def docker(self) -> BackupRuntime:
        if self.runtime is None:
            from conveyor.runtime.docker_backup import DockerBackup

            self.runtime = DockerBackup()
        return self.runtime

    def runtime_for(self, service: str, image: str | None) -> tuple[BackupRuntime, str | None]:
        """The engine `service`'s backup or restore drives, and its fleet host (None: this
        host's engine). `image`: helpers of it run there (a volume's copy), so the host gets
        it. Raises BackupError when the host holding its volumes is down (naming it)."""
        if self.fleet is None:
            return self.docker(), None
        svc = self.stack.services.get(service)
        volumes = named_volumes(svc, self.stack) if svc is not None else ()
        host = self.fleet.host_of(self.project, service, volumes)
        return self.fleet.runtime(host, self.project, service, image), host

    def close(self) -> None:
        """Close the fleet's engine clients (the SSH tunnels stay, as after `conveyor up`)."""
        if self.fleet is not None:
            self.fleet.close()

    @property
    def compression(self) -> Compression:
        return self.settings.compression or default_compression()

    def prefix(self, service: str | None = None) -> str:
        return service_prefix(
            self.settings.destination.prefix, self.project, self.environment, service
        )


def backup_target(
    project: Project,
    env: str | None,
    conveyor_file: Path,
    settings: BackupsConfig | None = None,
) -> BackupTarget:
    """The target of `conveyor backup` in this project: with `env`, the environment a
    `conveyor server` runs on this host as `<project>-<env>`; without, the project itself
    (as `conveyor up` runs it). Raises SpecError(s) for a wrong conveyor.yaml."""
    stack = project.stack()
    cwd = project.cwd or project.compose_file.parent
    if settings is None:
        settings = load_backups_settings(cwd / conveyor_file, str(conveyor_file))
    name = stack.project if env is None else f"{stack.project}-{env}"
    home = project.environ.get("CONVEYOR_STATE_HOME")
    paths = ProjectPaths(project.compose_file, name, Path(home) if home else None)
    return BackupTarget(
        stack=stack,
        project=name,
        environment=env or stack.project,
        settings=settings,
        environ=project.environ,
        state_dir=paths.state_dir,
        actor=project.actor,
        paths=paths,
        fleet=_fleet_backups(project, paths),
    )


def _fleet_backups(project: Project, paths: ProjectPaths) -> FleetBackups | None:
    """On a fleet (conveyor.yaml names app hosts, or learns them from AWS), the hosts'
    engines through the tunnels the deploy uses (nothing is started, and AWS is not asked,
    before a backup needs a host); else None."""
    from conveyor.deploy.fleet_source import StaticFleet

    source = project.fleet_source()
    if isinstance(source, StaticFleet) and not source.current().with_role("app"):
        return None
    from conveyor.deploy.fleet_backup import FleetBackups
    from conveyor.deploy.fleet_engines import FleetEngines
    from conveyor.runtime.docker_engine import DockerEngine

    engines = FleetEngines(source, paths.run_dir / "fleet")
    return FleetBackups(engines, DockerEngine(), paths.state_dir / "fleet-volumes.json")


def _on(host: str | None) -> str:
    return f" on {host}" if host else ""


@contextlib.contextmanager
def _holding(target: BackupTarget, needed: bool = True) -> Iterator[None]:
    """The project's writer lock while replicas are held still (a rollout or a heal waits;
    a rollout running now makes this wait up to 30 s, then fail naming its holder)."""
    if target.paths is None or not needed:
        yield
        return
    with project_lock(target.paths, holder=f"backup ({target.actor})"):
        yield


def _timeline(target: BackupTarget) -> tuple[Timeline, Store]:
    store = Store.open(target.state_dir)
    subject = Subject(project=target.project, environment=target.environment)
    return Timeline(subject, store.events, target.actor, list(target.subscribers)), store


def _release(target: BackupTarget) -> int | None:
    if not (target.state_dir / "state.db").exists():
        return None
    store = Store.open(target.state_dir)
    try:
        current = store.current_release()
        return current.number if current is not None else None
    finally:
        store.close()


def create(
    target: BackupTarget,
    services: Sequence[str] = (),
    progress: Progress = _quiet,
    now: float | None = None,
) -> list[BackupOutcome]:
    """Back up `services` (every one with something to keep when empty), then apply the
    retention. A failed service is reported (outcome and `backup.failed` event), the others
    go on. Raises BackupError when nothing can start (no destination, no key)."""
    items = plan_backups(target.stack, services)
    bucket = target.connect()
    key = target.key()
    release = _release(target)
    timeline, store = _timeline(target)
    outcomes: list[BackupOutcome] = []
    try:
        for item in items:
            backup_id = new_backup_id(time.time() if now is None else now, os.urandom(3).hex())
            host: str | None = None
            try:
                helper = item.image if item.kind == "volume" else None
                runtime, host = target.runtime_for(item.service, helper)
                if host is not None:
                    progress(f"{item.service}: on host {host}")
                job = BackupJob(
                    item=item,
                    project=target.project,
                    environment=target.environment,
                    prefix=target.settings.destination.prefix,
                    id=backup_id,
                    key=key,
                    compression=target.compression,
                    release=release,
                    host=host,
                )
                with _holding(target, item.consistency in ("pause", "stop")):
                    manifest = create_backup(runtime, bucket, job, progress)
            except ConveyorError as e:
                outcomes.append(
                    BackupOutcome(service=item.service, action="create", ok=False, message=str(e))
                )
                timeline.emit(
                    "backup.failed",
                    f"backup of {item.service}{_on(host)} failed: {e}",
                    level="error",
                    data={"service": item.service, "error": str(e), "host": host},
                    service=item.service,
                )
                continue
            size = sum(p.stored_size for p in manifest.parts)
            parts = tuple(p.name for p in manifest.parts)
            outcomes.append(
                BackupOutcome(
                    service=item.service,
                    action="create",
                    ok=True,
                    id=manifest.id,
                    size=size,
                    parts=parts,
                    message=f"{item.kind} backup ({item.consistency}){_on(host)}, "
                    f"{len(parts)} part(s)",
                )
            )
            timeline.emit(
                "backup.created",
                f"backed up {item.service}{_on(host)} ({item.kind}, {size} bytes stored)",
                data={
                    "id": manifest.id,
                    "service": item.service,
                    "size": size,
                    "parts": parts,
                    "host": host,
                },
                service=item.service,
            )
            _apply_retention(target, bucket, item.service, timeline, progress)
    finally:
        store.close()
        target.close()
    return outcomes


def _apply_retention(
    target: BackupTarget,
    bucket: BackupBucket,
    service: str,
    timeline: Timeline,
    progress: Progress,
) -> None:
    stored = bucket.backups(target.prefix(service))
    for old in expired(stored, target.settings.retention, time.time()):
        progress(f"{service}: retention deletes {old.id}")
        bucket.delete_backup(old)
        timeline.emit(
            "backup.expired",
            f"retention deleted backup {old.id} of {service}",
            data={"id": old.id, "service": service},
            service=service,
        )


def list_backups(target: BackupTarget, service: str | None = None) -> list[StoredBackup]:
    """The environment's backups (of one service), oldest first."""
    return target.connect().backups(target.prefix(service))


def _choose(target: BackupTarget, service: str, backup_id: str | None) -> StoredBackup:
    found = list_backups(target, service)
    if backup_id is not None:
        found = [b for b in found if b.id == backup_id]
        if not found:
            raise BackupError(f"no backup {backup_id} of {service} in {target.environment}")
    if not found:
        raise BackupError(f"{service} has no backup in {target.environment} yet")
    return found[-1]


def restore(
    target: BackupTarget,
    service: str,
    backup_id: str | None = None,
    progress: Progress = _quiet,
) -> BackupOutcome:
    """Put `service` back as its newest backup (or `backup_id`). The parts are checked
    before anything is replaced; the service's replicas are stopped and started around a
    volume's replacement."""
    if service not in target.stack.services:
        raise BackupError(f"no service '{service}' in the stack")
    stored = _choose(target, service, backup_id)
    timeline, store = _timeline(target)
    host: str | None = None
    try:
        try:
            manifest = stored.manifest
            helper = manifest.image if any(p.kind == "volume" for p in manifest.parts) else None
            runtime, host = target.runtime_for(service, helper)
            if host is not None:
                progress(f"{service}: on host {host}")
            with _holding(target):
                restore_backup(
                    runtime,
                    target.connect(),
                    stored,
                    target.project,
                    target.key(),
                    progress,
                    stop_grace=target.stack.services[service].stop_grace_period,
                )
        except ConveyorError as e:
            timeline.emit(
                "restore.failed",
                f"restore of {service}{_on(host)} from {stored.id} failed: {e}",
                level="error",
                data={"id": stored.id, "service": service, "error": str(e), "host": host},
                service=service,
            )
            return BackupOutcome(
                service=service, action="restore", ok=False, id=stored.id, message=str(e)
            )
        timeline.emit(
            "restore.succeeded",
            f"restored {service}{_on(host)} from backup {stored.id}",
            data={"id": stored.id, "service": service, "host": host},
            service=service,
        )
    finally:
        store.close()
        target.close()
    return BackupOutcome(
        service=service,
        action="restore",
        ok=True,
        id=stored.id,
        size=stored.size,
        parts=tuple(p.name for p in stored.manifest.parts),
        message=f"restored from {stored.id}{_on(host)}",
    )


def verify(
    target: BackupTarget,
    services: Sequence[str] = (),
    backup_id: str | None = None,
    progress: Progress = _quiet,
    trial: bool = True,
) -> list[BackupOutcome]:
    """Check the newest backup of each service (or `backup_id` of one): it downloads,
    authenticates and matches its digests; a PostgreSQL dump is loaded into a throwaway
    container when `trial`. A backup that fails is reported failed (and an event)."""
    names = list(services) or sorted({b.service for b in list_backups(target)})
    outcomes: list[BackupOutcome] = []
    timeline, store = _timeline(target)
    try:
        for name in names:
            try:
                stored = _choose(target, name, backup_id)
            except BackupError as e:
                outcomes.append(
                    BackupOutcome(service=name, action="verify", ok=False, message=str(e))
                )
                continue
            runtime = target.docker() if trial else None
            try:
                checks = verify_backup(runtime, target.connect(), stored, target.key(), progress)
            except ConveyorError as e:
                outcomes.append(
                    BackupOutcome(
                        service=name, action="verify", ok=False, id=stored.id, message=str(e)
                    )
                )
                timeline.emit(
                    "backup.verify_failed",
                    f"backup {stored.id} of {name} cannot be restored: {e}",
                    level="error",
                    data={"id": stored.id, "service": name, "error": str(e)},
                    service=name,
                )
                continue
            outcomes.append(
                BackupOutcome(
                    service=name,
                    action="verify",
                    ok=True,
                    id=stored.id,
                    size=stored.size,
                    parts=tuple(p.name for p in stored.manifest.parts),
                    message="; ".join(checks),
                )
            )
            timeline.emit(
                "backup.verified",
                f"backup {stored.id} of {name} verified",
                data={"id": stored.id, "service": name},
                service=name,
            )
    finally:
        store.close()
    return outcomes


# --- EBS snapshots (hosts on AWS) -------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRun:
    """What `create --ebs` did: the snapshots made and those retention deleted."""

    made: list[Snapshot]
    deleted: list[Snapshot]


def aws_stack(project: Project, conveyor_file: Path) -> tuple[str, str]:
    """The CloudFormation stack (conveyor.yaml's aws.stack_name, else conveyor-<project>)
    and its region: whose host volumes `--ebs` snapshots."""
    from conveyor.spec.aws import load_aws_settings

    cwd = project.cwd or project.compose_file.parent
    settings = load_aws_settings(cwd / conveyor_file, str(conveyor_file))
    return settings.stack_name or f"conveyor-{project.stack().project}", settings.region


def create_snapshots(
    stack: str, region: str, retention: Retention, endpoint_url: str | None = None
) -> SnapshotRun:
    """Snapshot every host volume of the stack, then delete Conveyor's older snapshots of
    each volume that `retention` lets go (DLM's own scheduled snapshots are DLM's)."""
    ebs = Snapshots.connect(region, endpoint_url)
    made = ebs.create(stack)
    existing = ebs.list(stack)
    # EC2 times snapshots to the second: the ones just made count as the newest, whatever
    # the clock says, so retention never deletes them for an older one of the same second.
    fresh = {s.id for s in made}
    entries = ((s.volume, s.id, math.inf if s.id in fresh else s.started) for s in existing)
    gone = set(expired_ids(entries, retention, time.time()))
    deleted = [s for s in existing if s.id in gone]
    for snapshot in deleted:
        ebs.delete(snapshot.id)
    return SnapshotRun(made=made, deleted=deleted)


def list_snapshots(stack: str, region: str, endpoint_url: str | None = None) -> list[Snapshot]:
    return Snapshots.connect(region, endpoint_url).list(stack)
