"""conveyor.yaml's `backups:` and a service's `x-conveyor.backup`: what loads, and each
mistake reported at its file:line with the field and a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.backup import (
    BackupDestination,
    BackupKeySource,
    BackupSchedule,
    BackupsConfig,
    Retention,
    ServiceBackup,
)
from conveyor.spec.backups import load_backups_settings, parse_backups_settings
from conveyor.spec.compose import load_compose
from conveyor.spec.conveyor_file import parse_conveyor

FULL = """\
environments:
  production: {branch: main}
backups:
  destination:
    bucket: shop-backups
    prefix: shop/
    endpoint_url: https://s3.example.net
    region: eu-west-1
  key: {env: CONVEYOR_BACKUP_KEY}
  retention: {keep: 7, days: 30}
  compression: gzip
  schedules:
    - {environment: production, every: 24h}
    - {environment: production, service: db, cron: "0 3 * * *"}
"""


def test_full_section_loads_the_same_both_ways() -> None:
    expected = BackupsConfig(
        destination=BackupDestination(
            bucket="shop-backups",
            prefix="shop/",
            endpoint_url="https://s3.example.net",
            region="eu-west-1",
        ),
        key=BackupKeySource(env="CONVEYOR_BACKUP_KEY"),
        retention=Retention(keep=7, days=30),
        compression="gzip",
        schedules=(
            BackupSchedule(environment="production", every=86400.0, line=13),
            BackupSchedule(environment="production", service="db", cron="0 3 * * *", line=14),
        ),
    )
    assert parse_backups_settings(FULL) == expected
    assert parse_conveyor(FULL).backups == expected


def test_absent_section_and_file_give_defaults(tmp_path: Path) -> None:
    assert parse_conveyor("environments: {dev: {branch: main}}\n").backups == BackupsConfig()
    assert load_backups_settings(tmp_path / "missing.yaml") == BackupsConfig()


def messages(text: str) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        parse_backups_settings(text)
    return str(info.value).splitlines()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "backups:\n  destination: {bucket: ok-bucket}\n  retension: {keep: 3}\n",
            "conveyor.yaml:3: backups.retension: unknown key (known: destination, key, "
            "retention, schedules, compression) (did you mean 'retention'?)",
        ),
        (
            "backups:\n  destination:\n    bukket: x\n",
            "conveyor.yaml:3: backups.destination.bukket: unknown key (known: bucket, prefix, "
            "endpoint_url, region) (did you mean 'bucket'?)",
        ),
        (
            "backups:\n  destination: {bucket: Not_A_Bucket}\n",
            "conveyor.yaml:2: backups.destination.bucket: must be a bucket name",
        ),
        (
            "backups:\n  key: {file: keys/backup.key}\n",
            "conveyor.yaml:2: backups.key.file: must be an absolute path on the host",
        ),
        (
            "backups:\n  key: {value: abc}\n",
            "conveyor.yaml:2: backups.key.value: unknown key (known: file, env)",
        ),
        (
            "backups:\n  retention: {keep: 0}\n",
            "conveyor.yaml:2: backups.retention.keep: must be at least 1, got 0",
        ),
        (
            "backups:\n  schedules:\n    - {environment: prod, every: 10s}\n",
            "conveyor.yaml:3: backups.schedules[0].every: must be at least 1m",
        ),
        (
            'backups:\n  schedules:\n    - {environment: prod, cron: "0 25 * * *"}\n',
            "conveyor.yaml:3: backups.schedules[0].cron: hour: must be 0-23, got '25'",
        ),
        (
            "backups:\n  schedules:\n    - {environment: prod}\n",
            "conveyor.yaml:3: backups.schedules[0]: set 'every' (24h) or 'cron'",
        ),
        (
            "backups:\n  compression: lz4\n",
            "conveyor.yaml:2: backups.compression: must be one of 'zstd', 'gzip', got 'lz4'",
        ),
    ],
)
def test_mistakes_name_line_field_and_fix(text: str, expected: str) -> None:
    found = messages(text)
    assert any(line.startswith(expected) for line in found), found


def compose(tmp_path: Path, backup: str) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(
        "name: t\nservices:\n  db:\n    image: postgres:16\n"
        "    volumes: [data:/var/lib/postgresql/data]\n"
        f"    x-conveyor:\n      backup: {backup}\nvolumes: {{data: {{}}}}\n"
    )
    return path


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("false", ServiceBackup(enabled=False)),
        ("{kind: volume, consistency: stop}", ServiceBackup(kind="volume", consistency="stop")),
        ("{volumes: [data]}", ServiceBackup(volumes=("data",))),
    ],
)
def test_service_backup_loads(tmp_path: Path, written: str, expected: ServiceBackup) -> None:
    stack = load_compose([compose(tmp_path, written)], None, {}, cwd=tmp_path).stack
    assert stack.services["db"].backup == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("{kind: postgress}", "compose.yaml:7: services.db.x-conveyor.backup.kind: must be one "
         "of 'volume', 'postgres', 'mysql', 'redis', got 'postgress' (did you mean 'postgres'?)"),
        ("{consistancy: stop}", "compose.yaml:7: services.db.x-conveyor.backup: unknown key "
         "'consistancy' (did you mean 'consistency'?)"),
        ("{kind: volume, consistency: dump}", "compose.yaml:7: services.db.x-conveyor.backup."
         "consistency: dump applies to postgres, mysql and redis"),
    ],
)  # fmt: skip
def test_service_backup_mistakes(tmp_path: Path, written: str, expected: str) -> None:
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_compose([compose(tmp_path, written)], None, {}, cwd=tmp_path)
    text = str(info.value)
    assert expected.split(": ", 1)[1] in text, text
    assert ":7:" in text, text
