"""The server's backup scheduler: runs what is due, seeds its memory from the bucket, and
tells the metrics what each covered service expects."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.backup import BackupTarget
from conveyor.app.backup_schedule import BackupScheduler
from conveyor.app.project import Project
from conveyor.model.backup import (
    BackupManifest,
    BackupOutcome,
    BackupSchedule,
    BackupsConfig,
    StoredBackup,
)
from conveyor.model.environments import ConveyorConfig, EnvironmentSpec

COMPOSE = """\
name: shop-production
services:
  db: {image: postgres:16, volumes: ["data:/var/lib/postgresql/data"]}
  web: {image: shop/web:1}
volumes: {data: {}}
"""
HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(*schedules: BackupSchedule) -> ConveyorConfig:
    return ConveyorConfig(
        environments={"production": EnvironmentSpec(name="production", branch="main")},
        backups=BackupsConfig(schedules=schedules),
    )


def stored(service: str, created: float) -> StoredBackup:
    manifest = BackupManifest(
        id=f"id-{created}",
        project="shop-production",
        environment="production",
        service=service,
        kind="postgres",
        consistency="dump",
        created=created,
        compression="zstd",
        parts=(),
    )
    return StoredBackup(prefix=f"x/{created}/", manifest=manifest)


class World:
    def __init__(self, tmp_path: Path, bucket: list[StoredBackup]) -> None:
        (tmp_path / "compose.yaml").write_text(COMPOSE)
        self.project = Project.open(tmp_path / "compose.yaml", None, {}, tmp_path)
        self.bucket = bucket
        self.runs: list[tuple[str, list[str]]] = []
        self.gauges: list[tuple[str, str, str, float, float, float | None]] = []

    def backup(self, target: BackupTarget, services: list[str]) -> list[BackupOutcome]:
        self.runs.append((target.environment, services))
        return [BackupOutcome(service="db", action="create", ok=True, id="new")]

    def listing(self, _target: BackupTarget) -> list[StoredBackup]:
        return self.bucket

    def gauge(self, *values: object) -> None:
        self.gauges.append(values)  # type: ignore[arg-type]


def scheduler(
    world: World, cfg: ConveyorConfig, clock: Clock, deployed: bool = True
) -> BackupScheduler:
    return BackupScheduler(
        lambda: cfg,
        lambda env: world.project if deployed and env == "production" else None,
        {},
        gauge=world.gauge,
        clock=clock,
        backup=world.backup,
        stored=world.listing,
    )


def test_every_runs_when_due_and_not_before(tmp_path: Path) -> None:
    world = World(tmp_path, [])
    clock = Clock(1_000_000.0)
    s = scheduler(world, config(BackupSchedule(environment="production", every=24 * HOUR)), clock)
    s.tick()  # never backed up: at once
    assert world.runs == [("production", [])]
    clock.now += 23 * HOUR
    s.tick()
    assert len(world.runs) == 1
    clock.now += 2 * HOUR
    s.tick()
    assert len(world.runs) == 2
    # the metrics: db covered (web has nothing to back up), its last success, the interval
    project, env, service, interval, since, last = world.gauges[-1]
    assert (project, env, service, interval, since) == (
        "shop-production", "production", "db", 24 * HOUR, 1_000_000.0
    )  # fmt: skip
    assert last == clock.now


def test_a_restarted_server_seeds_from_the_bucket(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    world = World(tmp_path, [stored("db", clock.now - 2 * HOUR)])
    s = scheduler(world, config(BackupSchedule(environment="production", every=24 * HOUR)), clock)
    s.tick()
    assert world.runs == []  # backed up two hours ago: not due
    assert world.gauges[-1][5] == clock.now - 2 * HOUR


def test_nothing_deployed_nothing_run(tmp_path: Path) -> None:
    world = World(tmp_path, [])
    s = scheduler(
        world, config(BackupSchedule(environment="production", every=HOUR)), Clock(0), False
    )
    assert s.tick() == []
    assert world.runs == [] and world.gauges == []


def test_a_schedule_for_one_service(tmp_path: Path) -> None:
    world = World(tmp_path, [])
    start = 1_796_524_800.0  # 2026-12-06 02:40 UTC
    clock = Clock(start)
    s = scheduler(
        world,
        config(BackupSchedule(environment="production", service="db", cron="0 3 * * *")),
        clock,
    )
    s.tick()
    assert world.runs == []  # waits for 03:00
    assert world.gauges[-1][3] == 24 * HOUR  # the cron's interval
    clock.now = start + 21 * 60  # 03:01
    s.tick()
    assert world.runs == [("production", ["db"])]
    s.tick()
    assert len(world.runs) == 1
