"""A replica's files on a fleet host (docs/fleet.md, "Files and volumes on a fleet"): a
`configs:` file (with the mode Compose asks for) and a bind-mounted project file reach a
replica on a host that is not this machine, as copies of the controller's content; changing
them and deploying again rolls the replica out with the new content; copies no container
mounts go at the next start on the host.

One replica, on the shared fleet (conftest.py): three container starts in all.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from conveyor.app import deploy as app
from conveyor.testing.fleet_hosts import TestFleet, TestHost
from tests.integration.fleet.support import IMAGE, Deployed, project_on

pytestmark = pytest.mark.integration

NAME = "fleetfiles"


def _compose(host: str) -> Callable[[int, str], str]:
    def compose(port: int, version: str) -> str:
        worker = {
            "image": IMAGE,
            "network_mode": "host",
            "command": ["python", "-c", "import time; time.sleep(10**9)"],
            "volumes": ["./page.txt:/srv/page.txt:ro"],
            "configs": [{"source": "app", "target": "/etc/app.conf", "mode": "0440"}],
            "deploy": {"replicas": 1, "placement": {"constraints": [f"node.hostname=={host}"]}},
            "stop_grace_period": "2s",
        }
        return json.dumps(
            {
                "name": NAME,
                "services": {"worker": worker},
                "configs": {"app": {"file": "./app.conf"}},
            }
        )

    return compose


def _in_replica(d: Deployed, host: TestHost, *argv: str) -> str:
    running = [r for r in d.project().engine().observe().replicas if r.running]
    assert [r.host for r in running] == [host.name]
    return host.exec("docker", "exec", f"{NAME}-{running[0].replica}", *argv)


def _copies(host: TestHost) -> list[str]:
    return host.exec("ls", f"/var/lib/conveyor/{NAME}/files").split()


def test_config_and_project_files_reach_another_host_and_a_change_rolls_out(
    shared_fleet: TestFleet,
) -> None:
    host = shared_fleet.hosts[1]
    with project_on(shared_fleet, NAME, _compose(host.name)) as d:
        images = {"worker": (IMAGE, d.image_id)}
        (d.workdir / "app.conf").write_text("color = blue\n")
        (d.workdir / "page.txt").write_text("page v1\n")
        up = app.up(
            d.project(), agent=False, images=images, checks=False, metrics=False, logs=False
        )
        assert up.outcome.status == "succeeded", up.outcome.error
        assert _in_replica(d, host, "cat", "/etc/app.conf", "/srv/page.txt") == (
            "color = blue\npage v1\n"
        )
        assert _in_replica(d, host, "stat", "-c", "%a", "/etc/app.conf").strip() == "440"
        first = set(_copies(host))
        assert len(first) == 2, first

        (d.workdir / "app.conf").write_text("color = green\n")
        (d.workdir / "page.txt").write_text("page v2\n")
        again = app.deploy(d.project(), [], images=images)
        assert again.outcome.status == "succeeded", again.outcome.error
        assert again.outcome.release == 2  # the files alone made a new release
        assert _in_replica(d, host, "cat", "/etc/app.conf", "/srv/page.txt") == (
            "color = green\npage v2\n"
        )
        # The old replica's copies stay while it runs beside the new one (start-first) and
        # go at the next start on the host once no container mounts them.
        (d.workdir / "page.txt").write_text("page v3\n")
        third = app.deploy(d.project(), [], images=images)
        assert third.outcome.status == "succeeded", third.outcome.error
        assert _in_replica(d, host, "cat", "/srv/page.txt") == "page v3\n"
        after = set(_copies(host))
        assert not first & after, (first, after)  # release 1's: unmounted, removed
        assert len(after) == 3, after  # app.conf v2 (shared by 2 and 3), page v2 and v3
        # Nothing changed: nothing to do.
        assert app.deploy(d.project(), [], images=images).outcome.status == "unchanged"
