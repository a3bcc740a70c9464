"""Backups, planned (docs/backups.md): pure decisions over the stack and what the bucket holds.

plan_backups(stack, services)          which services, which volumes, dump or copy
backup_prefix(...), new_backup_id(...)  the object layout <prefix><project>/<env>/<service>/<id>/
expired(backups, retention, now)       which stored backups retention deletes
next_due(schedule, last, now)          when a schedule runs next; missed(...) if overdue
Cron(expr)                             the 5-field cron subset schedules accept (UTC)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from conveyor.errors import BackupError
from conveyor.model.backup import (
    DATABASE_KINDS,
    BackupItem,
    BackupKind,
    BackupPart,
    BackupSchedule,
    Consistency,
    Retention,
    ServiceBackup,
    StoredBackup,
)
from conveyor.model.stack import Service, Stack

# An image whose last path part (before the tag) names a database gets its dump by default.
_IMAGE_KINDS: tuple[tuple[re.Pattern[str], BackupKind], ...] = (
    (re.compile(r"(^|[/_-])(postgres|postgresql|postgis|timescaledb)([:_@-]|$)"), "postgres"),
    (re.compile(r"(^|[/_-])(mysql|mariadb|percona)([:_@-]|$)"), "mysql"),
    (re.compile(r"(^|[/_-])(redis|valkey|keydb)([:_@-]|$)"), "redis"),
)
# Where each database keeps its files: a redis backup copies dump.rdb out of this volume.
REDIS_DIR = "/data"


class BackupPlanError(BackupError):
    """A service named on the command line cannot be backed up (unknown, or nothing to copy)."""


def image_kind(image: str | None) -> BackupKind | None:
    """The database an image's name says it is, or None."""
    if not image:
        return None
    name = image.rsplit("/", 1)[-1].lower()
    for pattern, kind in _IMAGE_KINDS:
        if pattern.search(name):
            return kind
    return None


def plan_service(service: Service) -> BackupItem | None:
    """How `service` is backed up, or None (no named volume and no database, or `false`)."""
    settings = service.backup or ServiceBackup()
    if not settings.enabled:
        return None
    named = [m for m in service.volumes if m.type == "volume" and m.source]
    if settings.volumes:
        named = [m for m in named if m.source in settings.volumes]
    kind = settings.kind or image_kind(service.image) or "volume"
    if kind == "volume" and not named:
        return None
    if kind in DATABASE_KINDS and kind != "redis" and settings.consistency in (None, "dump"):
        parts: tuple[BackupPart, ...] = (BackupPart(name="dump", kind=kind),)
        consistency: Consistency = "dump"
    elif kind == "redis" and settings.consistency in (None, "dump"):
        # BGSAVE writes dump.rdb in the data directory: the part is that file, copied out.
        data = next((m for m in named if m.target == REDIS_DIR), named[0] if named else None)
        if data is None:
            return None  # nothing persisted: a cache without a volume has nothing to keep
        parts = (BackupPart(name="dump", kind="redis", volume=data.source, target=data.target),)
        consistency = "dump"
    else:
        if not named:
            return None
        parts = tuple(
            BackupPart(name=str(m.source), kind="volume", volume=m.source, target=m.target)
            for m in named
        )
        kind = "volume"
        written = settings.consistency
        consistency = written if written is not None and written != "dump" else "pause"
    return BackupItem(
        service=service.name,
        kind=kind,
        consistency=consistency,
        parts=parts,
        image=service.image,
        stop_grace=service.stop_grace_period,
    )


def plan_backups(stack: Stack, services: Sequence[str] = ()) -> list[BackupItem]:
    """The backups of `services` (all that have something to back up when empty), sorted by
    name. Raises BackupPlanError for a named service that is unknown or has nothing."""
    for name in services:
        if name not in stack.services:
            known = ", ".join(sorted(stack.services))
            raise BackupPlanError(f"no service '{name}' in the stack (services: {known})")
    chosen = services or sorted(stack.services)
    items: list[BackupItem] = []
    for name in sorted(set(chosen)):
        item = plan_service(stack.services[name])
        if item is None:
            if services:
                raise BackupPlanError(
                    f"service '{name}' has nothing to back up: no named volume, not a "
                    "database, or x-conveyor.backup is false"
                )
            continue
        items.append(item)
    return items


# --- object layout -------------------------------------------------------------------------


def new_backup_id(now: float, token: str) -> str:
    """`20261206T031500Z-<token>`: sorts by time, and two backups in one second differ."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{token}"


def backup_prefix(prefix: str, project: str, environment: str, service: str, id: str) -> str:
    return f"{service_prefix(prefix, project, environment, service)}{id}/"


def service_prefix(prefix: str, project: str, environment: str, service: str | None) -> str:
    base = f"{prefix}{project}/{environment}/"
    return base if service is None else f"{base}{service}/"


def part_key(backup: str, part: BackupPart, compression: str) -> str:
    suffix = {"volume": "tar", "postgres": "sql", "mysql": "sql", "redis": "rdb"}[part.kind]
    ext = "zst" if compression == "zstd" else "gz"
    return f"{backup}{part.name}.{suffix}.{ext}.enc"


# --- retention -----------------------------------------------------------------------------


def expired(
    backups: Iterable[StoredBackup], retention: Retention, now: float
) -> list[StoredBackup]:
    """The backups `retention` deletes, per service: those neither among the newest `keep`
    nor younger than `days`. With neither rule set nothing expires; the newest backup of a
    service is never deleted."""
    found = list(backups)
    gone = set(expired_ids(((b.service, b.prefix, b.created) for b in found), retention, now))
    return sorted((b for b in found if b.prefix in gone), key=lambda b: (b.service, b.created))


def expired_ids(
    entries: Iterable[tuple[str, str, float]], retention: Retention, now: float
) -> list[str]:
    """`expired` over (group, id, created) triples: S3 backups per service, EBS snapshots
    per volume."""
    if retention.keep is None and retention.days is None:
        return []
    groups: dict[str, list[tuple[float, str]]] = {}
    for group, ident, created in entries:
        groups.setdefault(group, []).append((created, ident))
    out: list[str] = []
    for members in groups.values():
        for index, (created, ident) in enumerate(sorted(members, reverse=True)):
            if index == 0:
                continue
            kept_by_count = retention.keep is not None and index < retention.keep
            kept_by_age = retention.days is not None and now - created < retention.days * 86400
            if not (kept_by_count or kept_by_age):
                out.append(ident)
    return out


# --- schedules -----------------------------------------------------------------------------

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))  # fmt: skip


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression (minute hour day-of-month month day-of-week, UTC) with `*`,
    lists, ranges and steps; day of week 0 and 7 are Sunday. Like cron, when both day fields
    are restricted a day matching either runs."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Raises ValueError naming the wrong field."""
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"must be 5 fields (minute hour day month weekday), got {len(fields)}: {text!r}"
            )
        sets = [_cron_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, fields[2] == "*", fields[4] == "*")

    def matches(self, at: datetime) -> bool:
        if at.minute not in self.minutes or at.hour not in self.hours:
            return False
        if at.month not in self.months:
            return False
        day = at.day in self.days
        weekday = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def next_after(self, after: float) -> float:
        """The first matching minute strictly after `after` (epoch seconds)."""
        at = datetime.fromtimestamp(after, UTC).replace(second=0, microsecond=0)
        at += timedelta(minutes=1)
        # Walk days first (cheap), then minutes within a matching day; 5 years bounds Feb 30.
        for _ in range(366 * 5):
            if at.month in self.months and self._day_ok(at):
                for hour in sorted(h for h in self.hours if h >= at.hour):
                    start = at.minute if hour == at.hour else 0
                    for minute in sorted(m for m in self.minutes if m >= start):
                        return at.replace(hour=hour, minute=minute).timestamp()
            at = (at + timedelta(days=1)).replace(hour=0, minute=0)
        raise ValueError("the expression never matches")

    def _day_ok(self, at: datetime) -> bool:
        day = at.day in self.days
        weekday = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday


def _cron_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name}: step must be a positive number, got {item!r}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _cron_number(a, name, low, high), _cron_number(b, name, low, high)
            if first > last:
                raise ValueError(f"{name}: range {base!r} runs backwards")
        else:
            first = _cron_number(base, name, low, high)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _cron_number(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name}: must be {low}-{high}, got {text!r}")
    return int(text)


def interval(schedule: BackupSchedule, now: float | None = None) -> float:
    """Seconds between two runs (for cron: between the next two matches after `now`)."""
    if schedule.every is not None:
        return schedule.every
    assert schedule.cron is not None
    cron = Cron.parse(schedule.cron)
    first = cron.next_after(time.time() if now is None else now)
    return cron.next_after(first) - first


def next_due(schedule: BackupSchedule, last: float | None, now: float) -> float:
    """When `schedule` runs next: `last + every` (at once when it never ran), or the first
    cron match after the last run (after `now` when it never ran). A time before `now`
    means it is due."""
    if schedule.every is not None:
        return now if last is None else last + schedule.every
    assert schedule.cron is not None
    return Cron.parse(schedule.cron).next_after(now if last is None else last)


# A schedule is missed when no backup succeeded for this many intervals (a slow backup or
# one retry is not an alert); the ConveyorBackupMissed rule uses the same factor.
MISSED_FACTOR = 1.5


def missed(schedule: BackupSchedule, last_success: float | None, since: float, now: float) -> bool:
    """A schedule is missed when no backup succeeded within MISSED_FACTOR intervals (`since`:
    when it started being watched, for a schedule that never succeeded)."""
    reference = since if last_success is None else last_success
    return now - reference > MISSED_FACTOR * interval(schedule, now)
