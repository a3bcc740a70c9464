"""Backups end to end on this machine's dockerd and moto's S3 (127.0.0.1): real PostgreSQL
(the notes example's image), a plain volume and Redis; write data, back up, destroy the
volumes, restore, read the same data back; a corrupted object fails verification.

One module-scoped stack: the replicas are containers this test starts with Conveyor's labels
(what `conveyor up` gives them), without network (nothing here needs one)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import docker
import pytest

from conveyor.app.backup import BackupTarget, backup_target, create, list_backups, restore, verify
from conveyor.app.project import Project
from conveyor.model.backup import (
    BackupDestination,
    BackupKeySource,
    BackupsConfig,
    Retention,
)
from conveyor.runtime.protocol import LABEL_PROJECT, LABEL_SERVICE
from conveyor.store.db import Store
from conveyor.testing.moto import Moto, aws_test_environ

pytestmark = pytest.mark.integration

PG_IMAGE = "notes/postgres:15"
REDIS_IMAGE = "notes/redis:7"
KEY = "ab" * 32
SERVICES = {
    "db": {
        "image": PG_IMAGE,
        "environment": {
            "POSTGRES_USER": "notes",
            "POSTGRES_PASSWORD": "pw",
            "POSTGRES_DB": "notes",
        },
        "volume": ("db-data", "/var/lib/postgresql/data"),
        "command": None,
    },
    "files": {
        "image": REDIS_IMAGE,
        "environment": {},
        "volume": ("files", "/srv/files"),
        "command": ["sleep", "infinity"],
    },
    "cache": {
        "image": REDIS_IMAGE,
        "environment": {},
        "volume": ("cache-data", "/data"),
        "command": ["redis-server", "--dir", "/data", "--save", "", "--appendonly", "no"],
    },
}

COMPOSE = """\
name: {project}
services:
  db:
    image: {pg}
    environment: {{POSTGRES_USER: notes, POSTGRES_PASSWORD: pw, POSTGRES_DB: notes}}
    volumes: [db-data:/var/lib/postgresql/data]
  files:
    image: {redis}
    command: [sleep, infinity]
    volumes: [files:/srv/files]
    x-conveyor:
      backup: {{consistency: stop}}
  cache:
    image: {redis}
    volumes: [cache-data:/data]
  web:
    image: {redis}
volumes: {{db-data: {{}}, files: {{}}, cache-data: {{}}}}
"""


@dataclass
class Stack:
    project: str
    client: docker.DockerClient
    containers: dict[str, str]

    def start(self, service: str) -> None:
        spec = SERVICES[service]
        volume, target = spec["volume"]  # type: ignore[misc]
        container = self.client.containers.run(
            spec["image"],
            spec["command"],
            environment=spec["environment"],
            labels={LABEL_PROJECT: self.project, LABEL_SERVICE: service},
            volumes={f"{self.project}_{volume}": {"bind": target, "mode": "rw"}},
            network_mode="none",
            # A fresh volume is root's: the official images chown it, these do not.
            user="0" if service in ("files", "cache") else None,
            detach=True,
            name=f"{self.project}-{service}-{uuid.uuid4().hex[:6]}",
        )
        self.containers[service] = container.id
        if service == "db":
            self.until_ok("db", ["pg_isready", "-h", "127.0.0.1", "-U", "notes"])
        if service == "cache":
            self.until_ok("cache", ["redis-cli", "ping"])

    def destroy(self, service: str) -> None:
        """The container and its volume gone, then a fresh replica on a new, empty volume."""
        self.client.containers.get(self.containers.pop(service)).remove(force=True)
        volume, _ = SERVICES[service]["volume"]  # type: ignore[misc]
        self.client.volumes.get(f"{self.project}_{volume}").remove(force=True)
        self.start(service)

    def run(self, service: str, argv: list[str]) -> tuple[int, str]:
        code, out = self.client.containers.get(self.containers[service]).exec_run(argv)
        return code, out.decode()

    def ok(self, service: str, argv: list[str]) -> str:
        code, out = self.run(service, argv)
        assert code == 0, out
        return out

    def until_ok(self, service: str, argv: list[str]) -> None:
        # Waits until the server answers (no fixed sleep); bounded by the test timeout.
        while self.run(service, argv)[0] != 0:
            time.sleep(0.2)

    def sql(self, query: str) -> str:
        return self.ok("db", ["psql", "-U", "notes", "-d", "notes", "-tA", "-c", query]).strip()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    client = docker.from_env()
    for image in (PG_IMAGE, REDIS_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.skip(f"{image} is not built (examples/notes: the deploy tests build it)")
    project = f"bkp{uuid.uuid4().hex[:8]}"
    found = Stack(project, client, {})
    try:
        for service in SERVICES:
            found.start(service)
        yield found
    finally:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project}"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"name": project}):
            if v.name.startswith(f"{project}_"):
                v.remove(force=True)


@pytest.fixture
def target(
    stack: Stack, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BackupTarget:
    for name, value in aws_test_environ(moto, tmp_path).items():
        monkeypatch.setenv(name, value)
    compose = tmp_path / "compose.yaml"
    compose.write_text(COMPOSE.format(project=stack.project, pg=PG_IMAGE, redis=REDIS_IMAGE))
    settings = BackupsConfig(
        destination=BackupDestination(bucket=f"b-{stack.project}", prefix="backups/"),
        key=BackupKeySource(env="CONVEYOR_BACKUP_KEY"),
    )
    environ = {"CONVEYOR_BACKUP_KEY": KEY, "CONVEYOR_STATE_HOME": str(tmp_path / "state")}
    project = Project.open(compose, None, environ, tmp_path)
    found = backup_target(project, None, Path("conveyor.yaml"), settings=settings)
    bucket = found.connect()
    if f"b-{stack.project}" not in [b["Name"] for b in bucket.client.list_buckets()["Buckets"]]:
        bucket.create()
    return found


def test_back_up_destroy_restore_read_the_same_data(stack: Stack, target: BackupTarget) -> None:
    stack.sql("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    stack.sql("INSERT INTO notes VALUES (1, 'kept across a restore'), (2, 'ünïcode')")
    stack.ok("files", ["sh", "-c", "mkdir -p /srv/files/sub && echo hello > /srv/files/sub/a.txt"])
    stack.ok("cache", ["redis-cli", "SET", "greeting", "bonjour"])

    lines: list[str] = []
    outcomes = create(target, progress=lines.append)
    assert {o.service: o.ok for o in outcomes} == {"cache": True, "db": True, "files": True}
    assert "web" not in {o.service for o in outcomes}  # no volume, no database: nothing
    assert any("stopping 1 replica" in line for line in lines)  # files: consistency stop

    by_service = {b.service: b for b in list_backups(target)}
    assert by_service["db"].manifest.kind == "postgres"
    assert by_service["cache"].manifest.kind == "redis"
    assert by_service["files"].manifest.kind == "volume"

    # Destroy: volumes removed, fresh empty replicas.
    stack.destroy("db")
    stack.destroy("files")
    assert "notes" not in stack.sql("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    assert stack.run("files", ["cat", "/srv/files/sub/a.txt"])[0] != 0
    stack.ok("cache", ["redis-cli", "FLUSHALL"])

    for service in ("db", "files", "cache"):
        assert restore(target, service).ok, service
    if "cache" in stack.containers:
        stack.until_ok("cache", ["redis-cli", "ping"])

    assert stack.sql("SELECT body FROM notes ORDER BY id") == "kept across a restore\nünïcode"
    assert stack.ok("files", ["cat", "/srv/files/sub/a.txt"]) == "hello\n"
    assert stack.ok("cache", ["redis-cli", "GET", "greeting"]).strip() == "bonjour"

    store = Store.open(target.state_dir)
    try:
        kinds = [e.kind for e in store.events.about(project=target.project)]
    finally:
        store.close()
    assert kinds.count("backup.created") == 3
    assert kinds.count("restore.succeeded") == 3


def test_verify_passes_then_reports_a_corrupted_backup_as_failed(
    stack: Stack, target: BackupTarget
) -> None:
    stack.sql("CREATE TABLE IF NOT EXISTS checked (id int)")
    assert all(o.ok for o in create(target, ["db", "files"]))

    results = {o.service: o for o in verify(target, ["db", "files"])}
    assert results["db"].ok and results["files"].ok
    assert "throwaway" in results["db"].message  # the dump was loaded into a scratch server

    newest = list_backups(target, "files")[-1]
    part = newest.manifest.parts[0].key
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = target.settings.destination.bucket
    body = bytearray(s3.get_object(Bucket=bucket, Key=part)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=part, Body=bytes(body))

    failed = verify(target, ["files"])
    assert [o.ok for o in failed] == [False]
    assert "authentication" in failed[0].message
    restored = restore(target, "files")
    assert not restored.ok  # nothing replaced: checked before the volume is touched
    assert stack.ok("files", ["cat", "/srv/files/sub/a.txt"]) == "hello\n"


def test_retention_keeps_the_newest(stack: Stack, target: BackupTarget) -> None:
    target.settings = target.settings.model_copy(update={"retention": Retention(keep=1)})
    assert create(target, ["files"])[0].ok
    assert create(target, ["files"])[0].ok
    kept = list_backups(target, "files")
    assert len(kept) == 1  # three or more were made in this module
