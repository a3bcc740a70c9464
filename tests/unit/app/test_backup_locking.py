"""A backup that holds replicas still (pause or stop) and a restore hold the project's writer
lock, so the agent's heal (which takes the same lock) does not start a stopped replica
mid-copy; a dump runs without it, so a rollout is not held up by a long pg_dump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.app import backup as backup_app
from conveyor.app.backup import backup_target
from conveyor.app.project import Project
from conveyor.deploy.project import project_lock
from conveyor.errors import LockBusy
from conveyor.model.backup import BackupManifest, BackupsConfig, StoredBackup

COMPOSE = """\
name: shop
services:
  db: {image: postgres:16, volumes: ["pg:/var/lib/postgresql/data"]}
  files:
    image: shop/files:1
    volumes: ["uploads:/srv"]
    x-conveyor: {backup: {consistency: stop}}
volumes: {pg: {}, uploads: {}}
"""


class Bucket:
    def backups(self, _prefix: str) -> list[StoredBackup]:
        return []


def manifest(service: str) -> BackupManifest:
    return BackupManifest(
        id=f"b-{service}",
        project="shop",
        environment="shop",
        service=service,
        kind="volume",
        consistency="stop",
        created=0.0,
        compression="zstd",
        parts=(),
    )


@pytest.fixture
def target(tmp_path: Path) -> backup_app.BackupTarget:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    project = Project.open(tmp_path / "compose.yaml", None, {}, tmp_path)
    t = backup_target(project, None, Path("conveyor.yaml"), settings=BackupsConfig())
    t.bucket = Bucket()  # type: ignore[assignment]
    t._key = b"k" * 32
    return t


def locked(target: backup_app.BackupTarget) -> bool:
    assert target.paths is not None
    try:
        with project_lock(target.paths, wait=0):
            return False
    except LockBusy:
        return True


def test_a_stopped_copy_holds_the_lock_and_a_dump_does_not(
    target: backup_app.BackupTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, tuple[str, bool]] = {}

    def create_backup(_docker: Any, _bucket: Any, job: Any, _progress: Any) -> BackupManifest:
        seen[job.item.service] = (job.item.consistency, locked(target))
        return manifest(job.item.service)

    monkeypatch.setattr(backup_app, "create_backup", create_backup)
    outcomes = backup_app.create(target)
    assert all(o.ok for o in outcomes), outcomes
    assert seen == {"db": ("dump", False), "files": ("stop", True)}
    assert not locked(target)  # and let go after


def test_a_restore_holds_the_lock(
    target: backup_app.BackupTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[bool] = []
    monkeypatch.setattr(
        backup_app,
        "_choose",
        lambda _t, service, _id: StoredBackup(prefix="p/", manifest=manifest(service)),
    )
    monkeypatch.setattr(backup_app, "restore_backup", lambda *_a, **_k: held.append(locked(target)))
    assert backup_app.restore(target, "files").ok
    assert held == [True]
