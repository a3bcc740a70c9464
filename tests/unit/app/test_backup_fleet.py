"""Backups on a fleet (deploy.fleet_backup, app.backup): every app host is asked once for the
project's volumes and running services; a host that does not answer holds the volumes
remembered for it in fleet-volumes.json, so a backup of its service fails naming the host
(and is a backup.failed event) while the others go on; the server's scheduler builds its
targets the same way. Engines are stand-ins; nothing here reaches a host."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from conveyor.app.backup import BackupTarget, create
from conveyor.app.backup_schedule import environment_target
from conveyor.app.project import Project
from conveyor.deploy.fleet_backup import FleetBackups
from conveyor.errors import BackupError, HostError
from conveyor.model.backup import BackupDestination, BackupKeySource, BackupsConfig
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.spec.compose import load_stack
from conveyor.store.db import Store

HOSTS = tuple(FleetHost(name=n, address=f"{n}.test") for n in ("h1", "h2", "h3"))
COMPOSE = """\
name: shop
services:
  cache: {image: redis:7, volumes: ["cache:/data"]}
  files:
    image: shop/files:1
    volumes: ["files:/srv/files"]
    x-conveyor: {backup: {consistency: stop}}
volumes: {cache: {}, files: {}}
"""


class Engine:
    def __init__(self, volumes: list[str], running: list[str]) -> None:
        self.volumes = volumes
        self.running = running

    def ping(self) -> bool:
        return True

    def project_volumes(self, project: str) -> list[str]:
        return [v for v in self.volumes if v.startswith(f"{project}_")]

    def list_replicas(self, project: str) -> list[Any]:
        return [SimpleNamespace(service=s, running=True) for s in self.running]


class Engines:
    """h1 answers (the cache's volume and replica), h2 does not, h3 answers with nothing."""

    def __init__(self) -> None:
        self.fleet = Fleet(hosts=HOSTS)
        self.asked: list[str] = []
        self.engines = {"h1": Engine(["shop_cache"], ["cache"]), "h3": Engine([], [])}

    def engine(self, name: str) -> Engine:
        self.asked.append(name)
        if name not in self.engines:
            raise HostError(f"ssh to {name}.test: Connection timed out")
        return self.engines[name]

    def close_clients(self) -> None:
        pass


def _backups(tmp_path: Path) -> tuple[FleetBackups, Engines]:
    remembered = tmp_path / "fleet-volumes.json"
    remembered.write_text(json.dumps({"h2": ["shop_files", "other_files"], "h1": ["shop_old"]}))
    engines = Engines()
    return FleetBackups(cast(Any, engines), cast(Any, None), remembered), engines


def test_the_volume_s_host_answers_or_the_error_names_it(tmp_path: Path) -> None:
    backups, engines = _backups(tmp_path)
    assert backups.host_of("shop", "cache", ("cache",)) == "h1"
    with pytest.raises(BackupError) as caught:
        backups.host_of("shop", "files", ("files",))
    assert str(caught.value).startswith(
        "volume files of service files is on host h2, which is down (ssh to h2.test"
    )
    assert sorted(engines.asked) == ["h1", "h2", "h3"]  # once each, for both services


class Bucket:
    bucket = "b"

    def backups(self, prefix: str) -> list[Any]:
        return []


def test_a_service_on_a_host_that_is_down_fails_alone_and_is_an_event(tmp_path: Path) -> None:
    backups, _ = _backups(tmp_path)
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    stack = load_stack(tmp_path / "compose.yaml", environ={})
    target = BackupTarget(
        stack=stack,
        project="shop",
        environment="production",
        settings=BackupsConfig(destination=BackupDestination(bucket="b")),
        environ={},
        state_dir=tmp_path / "state",
        bucket=cast(Any, Bucket()),
        fleet=backups,
        _key=b"k" * 32,
    )
    outcomes = {o.service: o for o in create(target, ["files"])}
    assert not outcomes["files"].ok
    assert "is on host h2, which is down" in outcomes["files"].message
    store = Store.open(target.state_dir)
    try:
        failed = [e for e in store.events.about(project="shop") if e.kind == "backup.failed"]
    finally:
        store.close()
    assert [e.data["service"] for e in failed] == ["files"]
    assert "host h2, which is down" in failed[0].data["error"]


def _project(tmp_path: Path, hosts: bool) -> Project:
    tmp_path.mkdir()
    (tmp_path / "compose.yaml").write_text(COMPOSE.replace("name: shop", "name: shop-production"))
    if hosts:
        inventory = {"h1": {"address": "h1.test", "roles": ["app"]}}
        (tmp_path / "conveyor.yaml").write_text(json.dumps({"hosts": inventory}))
    environ = {"CONVEYOR_STATE_HOME": str(tmp_path / "state")}
    return Project.open(None, None, environ, tmp_path)


def test_the_scheduler_s_targets_resolve_hosts_on_a_fleet_only(tmp_path: Path) -> None:
    settings = BackupsConfig(
        destination=BackupDestination(bucket="b"), key=BackupKeySource(env="K")
    )
    fleet = environment_target(_project(tmp_path / "a", True), "production", settings, {})
    assert fleet.fleet is not None
    assert fleet.fleet.volumes_file == fleet.state_dir / "fleet-volumes.json"
    assert [h.name for h in fleet.fleet.engines.fleet.hosts] == ["h1"]
    one = environment_target(_project(tmp_path / "b", False), "production", settings, {})
    assert one.fleet is None


class Runtime:
    """A backup runtime on a host: which image it finds there, and what it was told to use."""

    def __init__(self, here: str | None) -> None:
        self.here = here
        self.used: dict[str, str] = {}

    def image_here(self, ref: str, project: str, service: str) -> str | None:
        return self.here

    def use_image(self, ref: str, image: str) -> None:
        self.used[ref] = image


class Local:
    def __init__(self, image: str | None) -> None:
        self.image = image
        self.copied: list[tuple[str, Any]] = []

    def local_image(self, ref: str) -> str | None:
        return self.image

    def copy_image_to(self, image_id: str, other: Any) -> None:
        self.copied.append((image_id, other))


class Tunnels(Engines):
    def tunnel_up(self, name: str) -> str:
        return f"unix:///run/{name}.sock"


@pytest.mark.parametrize(
    ("here", "local", "used", "copied"),
    [
        ("shop/files:1", None, {}, False),  # the host has it by name
        ("sha256:replica", None, {"shop/files:1": "sha256:replica"}, False),  # its container's
        (None, "sha256:local", {"shop/files:1": "sha256:local"}, True),  # copied from here
    ],
)
def test_the_helper_s_image_is_made_sure_of_on_the_host(
    here: str | None, local: str | None, used: dict[str, str], copied: bool
) -> None:
    runtime, machine, engines = Runtime(here), Local(local), Tunnels()
    backups = FleetBackups(
        cast(Any, engines), cast(Any, machine), None, lambda url: cast(Any, runtime)
    )
    assert backups.runtime("h1", "shop", "files", "shop/files:1") is cast(Any, runtime)
    assert runtime.used == used
    assert machine.copied == ([("sha256:local", engines.engines["h1"])] if copied else [])


def test_an_image_nowhere_is_an_error_naming_the_host_and_the_image() -> None:
    backups = FleetBackups(
        cast(Any, Tunnels()), cast(Any, Local(None)), None, lambda url: cast(Any, Runtime(None))
    )
    with pytest.raises(BackupError, match="image shop/files:1 is neither on host h1 nor on this"):
        backups.runtime("h1", "shop", "files", "shop/files:1")
