"""`deploy.mode: global` on the worker's shared fleet of three real hosts (conftest.py): `up`
runs one replica on each host (the file says no count), `status` says 3/3 global, `plan`
names the host of every new replica, and a rolling deploy replaces each host's replica
under a bounded load loop through the edge with zero failed requests (docs/fleet.md,
"Global services"). Six container starts in all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conveyor.app import deploy as app
from conveyor.testing.fleet_hosts import TestFleet
from tests.integration.fleet.support import (
    APP,
    IMAGE,
    Deployed,
    Load,
    project_containers,
    project_on,
    web,
)

pytestmark = pytest.mark.integration

PROJECT = "fleetglob"
HOSTS = ["h1", "h2", "h3"]


def _compose(port: int, version: str) -> str:
    web = {
        "image": IMAGE,
        "network_mode": "host",
        "command": ["python", "-c", APP],
        "environment": {"VERSION": version},
        "ports": [f"0.0.0.0:{port}:{port}"],
        "deploy": {
            "mode": "global",
            "placement": {"constraints": ["node.role==app"]},
            "update_config": {"parallelism": 1, "order": "start-first"},
        },
        "stop_grace_period": "5s",
        "x-conveyor": {"probe": {"path": "/health"}},
    }
    return json.dumps({"name": PROJECT, "services": {"web": web}})


@pytest.fixture(scope="module")
def deployed(shared_fleet: TestFleet) -> Iterator[Deployed]:
    with project_on(shared_fleet, PROJECT, _compose) as state:
        yield state


def test_a_global_service_runs_one_replica_per_host_and_rolls_each_in_place(
    deployed: Deployed,
) -> None:
    project = deployed.project()
    up = app.up(
        project, agent=False, images=deployed.images(), checks=False, metrics=False, logs=False
    )
    assert up.outcome.status == "succeeded", up.outcome.error
    first = {r.host: r.replica for r in web(project.engine())}
    assert sorted(first) == HOSTS
    (svc,) = app.status(project).services
    assert (svc.mode, svc.running_replicas, svc.desired_replicas) == ("global", 3, 3)
    assert sorted(r.host for r in svc.replicas) == HOSTS

    deployed.write("v2")
    plan = app.plan(deployed.project(), [])
    assert sorted(s.host for s in plan.steps if s.kind == "start") == HOSTS
    assert plan.warnings == []  # placement is done on a fleet, not "ignored"

    with Load(deployed.url) as load:
        result = app.deploy(deployed.project(), [], images=deployed.images())
    assert result.outcome.status == "succeeded", result.outcome.error
    assert load.failed == 0, load.statuses
    assert load.bodies["v1"] > 0 and load.bodies["v2"] > 0, load.bodies
    after = {r.host: r.replica for r in web(project.engine())}
    assert sorted(after) == HOSTS
    assert not set(first.values()) & set(after.values())  # every replica was replaced
    # One container per host, as each host's engine says.
    assert project_containers(deployed) == {h: {f"{PROJECT}-{after[h]}"} for h in HOSTS}
