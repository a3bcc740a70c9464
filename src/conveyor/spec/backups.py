"""The `backups:` section of conveyor.yaml -> model.BackupsConfig, and a service's
`x-conveyor.backup` -> model.ServiceBackup (docs/backups.md).

    backups:
      destination: {bucket: shop-backups, prefix: backups/, region: eu-west-1,
                    endpoint_url: https://s3.example.net}   # any S3-compatible store
      key: {file: /etc/conveyor/backup.key}                 # or {env: CONVEYOR_BACKUP_KEY}
      retention: {keep: 7, days: 30}
      compression: zstd                                     # or gzip
      schedules:
        - {environment: production, every: 24h}
        - {environment: production, service: db, cron: "0 3 * * *"}

    services:
      db:
        x-conveyor:
          backup: {kind: postgres}            # volume | postgres | mysql | redis
      uploads:
        x-conveyor:
          backup: {volumes: [files], consistency: stop}   # pause | stop | dump
      cache:
        x-conveyor: {backup: false}

Problems are recorded on the Context at their key's line, with the closest known key for a
typo, like every other section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conveyor.errors import SpecError
from conveyor.model.backup import (
    BackupDestination,
    BackupKeySource,
    BackupKind,
    BackupSchedule,
    BackupsConfig,
    Compression,
    Consistency,
    Retention,
    ServiceBackup,
)
from conveyor.plan.backup import Cron
from conveyor.spec.context import Context, raise_errors
from conveyor.spec.durations import parse_duration
from conveyor.spec.keys import env_name, known_keys, mapping
from conveyor.spec.values import describe, one_of, to_int
from conveyor.spec.yamlpos import YamlPath, load_yaml

KEYS = ("destination", "key", "retention", "schedules", "compression")
DESTINATION_KEYS = ("bucket", "prefix", "endpoint_url", "region")
KEY_KEYS = ("file", "env")
RETENTION_KEYS = ("keep", "days")
SCHEDULE_KEYS = ("environment", "service", "every", "cron")
SERVICE_KEYS = ("kind", "volumes", "consistency")
KINDS: tuple[BackupKind, ...] = ("volume", "postgres", "mysql", "redis")
CONSISTENCY: tuple[Consistency, ...] = ("pause", "stop", "dump")
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "gzip")
MIN_EVERY = 60.0  # seconds: the scheduler looks once a minute

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"([A-Za-z0-9!_.*'()-]+/)*")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d")
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")


def backups_settings(ctx: Context, path: YamlPath, raw: Any) -> BackupsConfig:
    """`raw` (the value at `path`, `("backups",)`) as BackupsConfig; absent: the defaults
    (no destination: `conveyor backup create` then says what to write)."""
    if raw is None or mapping(ctx, path, raw) is None:
        return BackupsConfig()
    known_keys(ctx, path, raw, KEYS, listed=True)
    compression = raw.get("compression")
    return BackupsConfig(
        destination=_destination(ctx, (*path, "destination"), raw.get("destination")),
        key=_key(ctx, (*path, "key"), raw.get("key")),
        retention=_retention(ctx, (*path, "retention"), raw.get("retention")),
        schedules=_schedules(ctx, (*path, "schedules"), raw.get("schedules")),
        compression=None
        if compression is None
        else ctx.convert((*path, "compression"), _compression, compression, None),
    )


def service_backup(ctx: Context, path: YamlPath, raw: Any) -> ServiceBackup | None:
    """A service's `x-conveyor.backup` (`path` ends in "backup"): false, true or a mapping."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return ServiceBackup(enabled=raw)
    if mapping(ctx, path, raw, "false, true or a mapping (kind, volumes, consistency)") is None:
        return None
    known_keys(ctx, path, raw, SERVICE_KEYS, listed=True)
    kind = raw.get("kind")
    consistency = raw.get("consistency")
    parsed_kind = None if kind is None else ctx.convert((*path, "kind"), _kind, kind, None)
    parsed_consistency = (
        None
        if consistency is None
        else ctx.convert((*path, "consistency"), _consistency, consistency, None)
    )
    if parsed_consistency == "dump" and parsed_kind == "volume":
        ctx.error((*path, "consistency"), "dump applies to postgres, mysql and redis, not volume")
    return ServiceBackup(
        kind=parsed_kind,
        volumes=_names(ctx, (*path, "volumes"), raw.get("volumes")),
        consistency=parsed_consistency,
    )


def load_backups_settings(path: Path, name: str | None = None) -> BackupsConfig:
    """The `backups:` section of the conveyor.yaml at `path` (defaults when the file or the
    section is absent; the other sections are not checked). Raises SpecError(s)."""
    file = str(path) if name is None else name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return BackupsConfig()
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(file, None, "", f"cannot read the file: {e}") from None
    return parse_backups_settings(text, file)


def parse_backups_settings(text: str, file: str = "conveyor.yaml") -> BackupsConfig:
    doc = load_yaml(text, file, version="1.2")
    ctx = Context(doc=doc, file=file, base=Path("."), environ={})
    if doc.data is None:
        return BackupsConfig()
    root = mapping(ctx, (), doc.data)
    settings = (
        BackupsConfig()
        if root is None
        else backups_settings(ctx, ("backups",), root.get("backups"))
    )
    raise_errors(ctx.errors)
    return settings


# --- parts -----------------------------------------------------------------------------------


def _section(ctx: Context, path: YamlPath, raw: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if raw is None:
        return {}
    found = mapping(ctx, path, raw)
    if found is None:
        return {}
    known_keys(ctx, path, found, keys, listed=True)
    return found


def _destination(ctx: Context, path: YamlPath, raw: Any) -> BackupDestination:
    found = _section(ctx, path, raw, DESTINATION_KEYS)
    defaults = BackupDestination()
    return BackupDestination(
        bucket=_matching(ctx, path, found, "bucket", _BUCKET, "a bucket name (3-63 a-z 0-9 . -)"),
        prefix=_matching(ctx, path, found, "prefix", _PREFIX, "a key prefix ending in '/'")
        or defaults.prefix,
        endpoint_url=_matching(
            ctx, path, found, "endpoint_url", _URL, "an http(s) URL such as https://s3.example.net"
        ),
        region=_matching(ctx, path, found, "region", _REGION, "a region such as eu-west-1"),
    )


def _key(ctx: Context, path: YamlPath, raw: Any) -> BackupKeySource:
    found = _section(ctx, path, raw, KEY_KEYS)
    if not found:
        return BackupKeySource()
    if "file" in found and "env" in found:
        ctx.error(path, "set 'file' or 'env', not both")
    file = found.get("file")
    if file is not None and not (isinstance(file, str) and file.startswith("/")):
        ctx.error(
            (*path, "file"),
            f"must be an absolute path on the host that runs backups (never a file in git), "
            f"got {describe(file)}",
        )
        file = None
    return BackupKeySource(file=file, env=env_name(ctx, path, found, "env"))


def _retention(ctx: Context, path: YamlPath, raw: Any) -> Retention:
    found = _section(ctx, path, raw, RETENTION_KEYS)
    keep = found.get("keep")
    days = found.get("days")
    return Retention(
        keep=None if keep is None else ctx.convert((*path, "keep"), _positive, keep, None),
        days=None if days is None else ctx.convert((*path, "days"), _positive, days, None),
    )


def _schedules(ctx: Context, path: YamlPath, raw: Any) -> tuple[BackupSchedule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, f"must be a list of schedules, got {describe(raw)}")
        return ()
    out: list[BackupSchedule] = []
    for index, item in enumerate(raw):
        where = (*path, index)
        found = mapping(ctx, where, item)
        if found is None:
            continue
        known_keys(ctx, where, found, SCHEDULE_KEYS, listed=True)
        environment = found.get("environment")
        if not isinstance(environment, str) or not environment:
            ctx.error(where, "'environment' is required: the environment it backs up")
            continue
        service = found.get("service")
        if service is not None and not isinstance(service, str):
            ctx.error((*where, "service"), f"must be a service's name, got {describe(service)}")
            service = None
        every = found.get("every")
        cron = found.get("cron")
        if (every is None) == (cron is None):
            ctx.error(where, "set 'every' (24h) or 'cron' (\"0 3 * * *\"), one of them")
            continue
        seconds = None if every is None else ctx.convert((*where, "every"), _every, every, None)
        expr = None if cron is None else ctx.convert((*where, "cron"), _cron, cron, None)
        if seconds is None and expr is None:
            continue
        out.append(
            BackupSchedule(
                environment=environment,
                service=service,
                every=seconds,
                cron=expr,
                line=ctx.where(where)[1],
            )
        )
    return tuple(out)


def _names(ctx: Context, path: YamlPath, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        ctx.error(path, f"must be a list of volume names, got {describe(raw)}")
        return ()
    return tuple(raw)


def _matching(
    ctx: Context, path: YamlPath, raw: dict[str, Any], key: str, pattern: re.Pattern[str], what: str
) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    ctx.error((*path, key), f"must be {what}, got {describe(value)}")
    return None


# --- values ----------------------------------------------------------------------------------


def _kind(value: Any) -> BackupKind:
    found = one_of(value, KINDS)
    return next(k for k in KINDS if k == found)


def _consistency(value: Any) -> Consistency:
    found = one_of(value, CONSISTENCY)
    return next(c for c in CONSISTENCY if c == found)


def _compression(value: Any) -> Compression:
    found = one_of(value, COMPRESSIONS)
    return next(c for c in COMPRESSIONS if c == found)


def _positive(value: Any) -> int:
    number = to_int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {number}")
    return number


def _every(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < MIN_EVERY:
        raise ValueError(f"must be at least 1m (the scheduler looks once a minute), got {value}")
    return seconds


def _cron(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a cron expression in quotes, got {describe(value)}")
    Cron.parse(value)
    return " ".join(value.split())
