"""`conveyor backup` on a fleet (docs/backups.md, "On a fleet"): a service's named volume on
a test host that is not this machine is backed up from that host's engine (through its SSH
tunnel) to moto's S3 on 127.0.0.1, its data destroyed, restored there, and read back the same;
with that host's engine killed, a backup fails naming the host.

The service's image is named in the compose file by a name no host has (the fleet copies
images by id), so the volume's helper runs from the image of the service's own container on
that host: what a built or pulled image looks like on a fleet. One replica, `consistency:
stop`, on the shared fleet (conftest.py): three container starts and two helpers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.app import deploy as app
from conveyor.app.backup import backup_target, create, list_backups, restore
from conveyor.model.backup import BackupDestination, BackupKeySource, BackupsConfig
from conveyor.store.db import Store
from conveyor.testing.fleet_hosts import TestFleet, TestHost
from conveyor.testing.moto import Moto, aws_test_environ, moto_server
from tests.integration.fleet.support import Deployed, project_on

pytestmark = pytest.mark.integration

NAME = "fleetbkp"
REF = "fleetbkp/files:1"  # no host has an image by this name
KEY = "cd" * 32


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def _compose(host: str) -> Callable[[int, str], str]:
    def compose(port: int, version: str) -> str:
        files = {
            "image": REF,
            "network_mode": "host",
            # Ends at once on SIGTERM (the backup and the restore stop it).
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"],
            "volumes": ["files:/srv/files"],
            "deploy": {"replicas": 1, "placement": {"constraints": [f"node.hostname=={host}"]}},
            "stop_grace_period": "5s",
            "x-conveyor": {"backup": {"consistency": "stop"}},
        }
        return json.dumps({"name": NAME, "services": {"files": files}, "volumes": {"files": {}}})

    return compose


def _in_replica(d: Deployed, host: TestHost, script: str) -> str:
    running = [r for r in d.project().engine().observe().replicas if r.running]
    assert [r.host for r in running] == [host.name]
    return host.exec("docker", "exec", f"{NAME}-{running[0].replica}", "sh", "-c", script)


def test_a_volume_on_another_host_is_backed_up_and_restored_there(
    shared_fleet: TestFleet, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in aws_test_environ(moto, tmp_path).items():
        monkeypatch.setenv(name, value)
    host = shared_fleet.hosts[1]
    with project_on(shared_fleet, NAME, _compose(host.name)) as d:
        d.environ["CONVEYOR_BACKUP_KEY"] = KEY
        up = app.up(
            d.project(),
            agent=False,
            images={"files": (REF, d.image_id)},
            checks=False,
            metrics=False,
            logs=False,
        )
        assert up.outcome.status == "succeeded", up.outcome.error
        _in_replica(d, host, "mkdir -p /srv/files/sub && echo hello > /srv/files/sub/a.txt")

        settings = BackupsConfig(
            destination=BackupDestination(bucket=f"b-{NAME}", endpoint_url=moto.url),
            key=BackupKeySource(env="CONVEYOR_BACKUP_KEY"),
        )
        target = backup_target(d.project(), None, Path("conveyor.yaml"), settings=settings)
        target.connect().create()
        lines: list[str] = []
        made = create(target, ["files"], progress=lines.append)
        assert [(o.service, o.ok) for o in made] == [("files", True)], made
        assert f"files: on host {host.name}" in lines
        assert any("stopping 1 replica" in line for line in lines)
        [stored] = list_backups(target, "files")
        assert stored.manifest.host == host.name
        # Started again after the copy: the data is still there.
        assert _in_replica(d, host, "cat /srv/files/sub/a.txt") == "hello\n"

        _in_replica(d, host, "find /srv/files -mindepth 1 -delete && echo stray > /srv/files/x")
        back = restore(target, "files")
        assert back.ok, back.message
        assert _in_replica(d, host, "cat /srv/files/sub/a.txt; ls /srv/files") == "hello\nsub\n"

        store = Store.open(target.state_dir)
        try:
            events = [
                e
                for e in store.events.about(project=NAME)
                if e.kind.startswith(("backup", "restore"))
            ]
        finally:
            store.close()
        assert [(e.kind, e.data.get("host")) for e in events] == [
            ("backup.created", host.name),
            ("restore.succeeded", host.name),
        ]

        # The volume's host down (its engine killed; the others answer): an error naming it,
        # from what the start remembered, not a backup of another host's (absent) volume.
        host.kill_dockerd()
        try:
            again = backup_target(d.project(), None, Path("conveyor.yaml"), settings=settings)
            [failed] = create(again, ["files"])
        finally:
            host.start_dockerd()
        assert not failed.ok
        assert failed.message.startswith(
            f"volume files of service files is on host {host.name}, which is down"
        ), failed.message
