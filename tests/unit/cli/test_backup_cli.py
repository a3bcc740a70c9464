"""`conveyor backup` before any I/O: what it refuses, and how it says so."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.cli.main import main

COMPOSE = (
    "name: clib\nservices:\n"
    "  db: {image: postgres:16, volumes: ['d:/var/lib/postgresql/data']}\n"
    "  web: {image: shop/web:1}\n"
    "volumes: {d: {}}\n"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["conveyor", "backup", *args])
        with pytest.raises(SystemExit) as done:
            main()
        captured = capsys.readouterr()
        return int(done.value.code or 0), captured.out + captured.err

    return run


def test_a_typo_in_the_section_is_named_with_its_line(
    project: Path, run: Callable[..., tuple[int, str]]
) -> None:
    (project / "conveyor.yaml").write_text(
        "environments: {dev: {branch: main}}\nbackups:\n  retension: {keep: 2}\n"
    )
    code, out = run("create")
    assert code == 1
    assert "conveyor.yaml:3: backups.retension: unknown key" in out
    assert "did you mean 'retention'?" in out


def test_no_destination_says_what_to_write(
    project: Path, run: Callable[..., tuple[int, str]]
) -> None:
    code, out = run("create")
    assert code == 1
    assert "set backups.destination.bucket in conveyor.yaml" in out


@pytest.mark.parametrize(
    ("service", "message"),
    [("wbe", "no service 'wbe' in the stack"), ("web", "'web' has nothing to back up")],
)
def test_a_service_that_cannot_be_backed_up(
    project: Path, run: Callable[..., tuple[int, str]], service: str, message: str
) -> None:
    code, out = run("create", service)
    assert code == 1
    assert message in out


def test_no_key_is_refused_before_anything_is_copied(
    project: Path, run: Callable[..., tuple[int, str]]
) -> None:
    (project / "conveyor.yaml").write_text(
        "environments: {dev: {branch: main}}\n"
        "backups: {destination: {bucket: b-bucket}, key: {env: CLIB_KEY}}\n"
    )
    code, out = run("create", "db")
    assert code == 1
    assert "CLIB_KEY is not set" in out


def test_verify_id_needs_one_service(project: Path, run: Callable[..., tuple[int, str]]) -> None:
    code, out = run("verify", "--id", "x")
    assert code == 2
    assert "--id needs exactly one SERVICE" in out


def test_list_names_the_host_of_a_fleet_s_backups(
    project: Path, run: Callable[..., tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.model.backup import BackupManifest, StoredBackup

    (project / "conveyor.yaml").write_text("backups: {destination: {bucket: bkt}}\n")

    def stored(host: str | None) -> StoredBackup:
        manifest = BackupManifest(
            id=f"20261207T000000Z-{len(found)}",
            project="clib",
            environment="clib",
            service="db",
            kind="postgres",
            consistency="dump",
            created=0.0,
            host=host,
            compression="zstd",
            parts=(),
        )
        return StoredBackup(prefix="backups/clib/clib/db/x/", manifest=manifest)

    found: list[StoredBackup] = []
    found.append(stored(None))
    monkeypatch.setattr("conveyor.cli.backup.list_backups", lambda target, service: found)
    code, out = run("list")
    assert code == 0, out
    assert "host" not in out  # one host: no column
    found.append(stored("h2"))
    code, out = run("list")
    assert code == 0, out
    assert "host" in out
    assert "h2" in out
