"""The backup planner: what each service's backup is, the key layout, retention, schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.model.backup import (
    BackupManifest,
    BackupSchedule,
    Retention,
    ServiceBackup,
    StoredBackup,
)
from conveyor.model.stack import Service, Stack, VolumeMount
from conveyor.plan.backup import (
    BackupPlanError,
    Cron,
    backup_prefix,
    expired,
    image_kind,
    missed,
    new_backup_id,
    next_due,
    part_key,
    plan_backups,
)

DAY = 86400.0


def svc(name: str, image: str, *volumes: str, backup: ServiceBackup | None = None) -> Service:
    mounts = tuple(
        VolumeMount(type="bind" if v.startswith("/") else "volume", source=v.split(":")[0],
                    target=v.split(":")[1])
        for v in volumes
    )  # fmt: skip
    return Service(name=name, image=image, volumes=mounts, backup=backup)


STACK = Stack(
    project="shop",
    file="/x/compose.yaml",
    services={
        s.name: s
        for s in (
            svc("db", "registry.local/library/postgres:16", "pgdata:/var/lib/postgresql/data"),
            svc("mysql", "mariadb:11", "my:/var/lib/mysql"),
            svc("cache", "redis:7-alpine", "cache:/data"),
            svc("bare-cache", "valkey/valkey:8"),
            svc("uploads", "shop/web:1", "files:/srv/files", "/host/dir:/srv/host", "tmp:/tmp"),
            svc("web", "shop/web:1"),
            svc("off", "postgres:16", "x:/x", backup=ServiceBackup(enabled=False)),
            svc(
                "pg-copy",
                "postgres:16",
                "data:/data",
                backup=ServiceBackup(consistency="stop"),
            ),
            svc("some", "shop/web:1", "a:/a", "b:/b", backup=ServiceBackup(volumes=("b",))),
        )
    },
)


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        ("postgres:16", "postgres"),
        ("docker.io/library/postgres@sha256:abc", "postgres"),
        ("postgis/postgis:16-3.4", "postgres"),
        ("mysql:8", "mysql"),
        ("bitnami/mariadb:11", "mysql"),
        ("redis", "redis"),
        ("notes/redis:7", "redis"),
        ("shop/web:1", None),
        ("mypostgresql-admin:1", None),  # a word inside a name is not the database
        (None, None),
    ],
)
def test_image_kind(image: str | None, kind: str | None) -> None:
    assert image_kind(image) == kind


def test_plan_every_service_with_state() -> None:
    plan = {i.service: i for i in plan_backups(STACK)}
    assert sorted(plan) == ["cache", "db", "mysql", "pg-copy", "some", "uploads"]
    assert (plan["db"].kind, plan["db"].consistency) == ("postgres", "dump")
    assert [p.name for p in plan["db"].parts] == ["dump"]
    assert (plan["mysql"].kind, plan["mysql"].consistency) == ("mysql", "dump")
    assert plan["cache"].parts[0].volume == "cache"  # dump.rdb is copied out of /data
    # Only named volumes: a bind mount is the host's, not the stack's.
    assert [p.volume for p in plan["uploads"].parts] == ["files", "tmp"]
    assert plan["uploads"].consistency == "pause"
    # A database asked to be stopped and copied is copied as a volume.
    assert (plan["pg-copy"].kind, plan["pg-copy"].consistency) == ("volume", "stop")
    assert [p.volume for p in plan["some"].parts] == ["b"]


def test_named_services_must_exist_and_have_state() -> None:
    assert [i.service for i in plan_backups(STACK, ["db"])] == ["db"]
    with pytest.raises(BackupPlanError, match="no service 'dbb'"):
        plan_backups(STACK, ["dbb"])
    with pytest.raises(BackupPlanError, match="'web' has nothing to back up"):
        plan_backups(STACK, ["web"])
    with pytest.raises(BackupPlanError, match="'off' has nothing"):
        plan_backups(STACK, ["off"])


def test_key_layout() -> None:
    now = datetime(2026, 12, 6, 3, 15, 0, tzinfo=UTC).timestamp()
    backup_id = new_backup_id(now, "a1b2c3")
    assert backup_id == "20261206T031500Z-a1b2c3"
    folder = backup_prefix("backups/", "shop-production", "production", "db", backup_id)
    assert folder == "backups/shop-production/production/db/20261206T031500Z-a1b2c3/"
    part = plan_backups(STACK, ["db"])[0].parts[0]
    assert part_key(folder, part, "zstd") == f"{folder}dump.sql.zst.enc"


def stored(service: str, age_days: float, now: float) -> StoredBackup:
    created = now - age_days * DAY
    manifest = BackupManifest(
        id=f"{age_days}", project="p", environment="e", service=service, kind="volume",
        consistency="pause", created=created, compression="zstd", parts=(),
    )  # fmt: skip
    return StoredBackup(prefix=f"p/e/{service}/{age_days}/", manifest=manifest)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("retention", "deleted"),
    [
        (Retention(), []),
        (Retention(keep=2), ["a:10", "a:30"]),
        (Retention(days=15), ["a:30"]),
        (Retention(keep=3, days=5), ["a:30"]),  # a:10 is kept by count, not by age
        # b's only backup is never deleted, however old
        (Retention(days=1), ["a:1.5", "a:10", "a:30"]),
    ],
)
def test_retention(retention: Retention, deleted: list[str]) -> None:
    backups = [stored("a", age, NOW) for age in (0.5, 1.5, 10, 30)]
    backups.append(stored("b", 40, NOW))
    got = [f"{b.service}:{b.id}" for b in expired(backups, retention, NOW)]
    assert sorted(got) == sorted(deleted)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 3 * * *", "2026-12-06T02:59:00", "2026-12-06T03:00:00"),
        ("0 3 * * *", "2026-12-06T03:00:00", "2026-12-07T03:00:00"),
        ("*/15 * * * *", "2026-12-06T10:07:30", "2026-12-06T10:15:00"),
        ("30 1 1 * *", "2026-12-06T00:00:00", "2027-01-01T01:30:00"),
        ("0 0 * * 0", "2026-12-06T00:00:00", "2026-12-13T00:00:00"),  # Sundays (12-06 is one)
        ("0 0 * * 7", "2026-12-05T12:00:00", "2026-12-06T00:00:00"),  # 7 is Sunday too
        ("0 12 29 2 *", "2026-03-01T00:00:00", "2028-02-29T12:00:00"),
        ("0 0 13 * 5", "2026-12-06T00:00:00", "2026-12-11T00:00:00"),  # day OR weekday
    ],
)
def test_cron_next(expr: str, after: str, expected: str) -> None:
    assert Cron.parse(expr).next_after(ts(after)) == ts(expected)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 3 * *", "must be 5 fields"),
        ("60 * * * *", "minute: must be 0-59"),
        ("* * 0 * *", "day of month: must be 1-31"),
        ("*/0 * * * *", "step must be a positive number"),
        ("5-1 * * * *", "runs backwards"),
    ],
)
def test_cron_mistakes(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cron.parse(expr)


def test_schedule_due_and_missed() -> None:
    every = BackupSchedule(environment="prod", every=DAY)
    assert next_due(every, None, NOW) == NOW  # never ran: due at once
    assert next_due(every, NOW - 3600, NOW) == NOW - 3600 + DAY
    assert not missed(every, NOW - DAY, NOW - 10 * DAY, NOW)
    assert missed(every, NOW - 2 * DAY, NOW - 10 * DAY, NOW)
    assert missed(every, None, NOW - 2 * DAY, NOW)  # never succeeded since watched
    nightly = BackupSchedule(environment="prod", cron="0 3 * * *")
    at = ts("2026-12-06T12:00:00")
    assert next_due(nightly, ts("2026-12-06T03:00:05"), at) == ts("2026-12-07T03:00:00")
    assert missed(nightly, ts("2026-12-04T03:00:00"), 0, at)
    assert not missed(nightly, ts("2026-12-06T03:00:00"), 0, at)
