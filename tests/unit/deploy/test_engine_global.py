"""The deploy engine with a `deploy.mode: global` service on an in-memory fleet of three
hosts (the runtime and router fakes, plus a placer over plan.fleet_assign, as
deploy.fleet_runtime.FleetRuntime wires it): `up` runs one replica per host, a deploy
replaces each on its own host, a lost host's replica is not re-placed, a host back gets one,
and the desired count the engine reports (`status`) is the number of hosts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conveyor.app.views import PlanStep
from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Subject
from conveyor.model.placement import ServicePlacement
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack, UpdateConfig
from conveyor.plan.placement import PlacementError
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter
from tests.unit.deploy.fake_fleet import FakeFleet


def release(version: str, order: str = "start-first") -> Release:
    svc = Service(
        name="web",
        image="web",
        environment={"V": version},
        healthcheck=Healthcheck(test=("CMD", "true")),
        routing=Routing(port=8000),
        placement=ServicePlacement(mode="global"),
        update_config=UpdateConfig(parallelism=1, order=order),  # type: ignore[arg-type]
    )
    return Release(
        number=0,
        project="p",
        services={
            "web": ServiceRelease(service=svc, image_id=f"sha256:{version}", image_ref="web")
        },
        stack=Stack(project="p", file="/x/compose.yaml", services={"web": svc}),
    )


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Engine, FakeFleet]:
    runtime = FakeFleet()
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    tl = Timeline(Subject(project="p", environment="p"), store.events)
    engine = Engine(paths, runtime, FakeRouter(), store, tl, placer=runtime)
    assert engine.apply(release("1"), "up").status == "succeeded"
    return engine, runtime


def test_up_runs_one_replica_on_every_host(fleet: tuple[Engine, FakeFleet]) -> None:
    engine, runtime = fleet
    assert runtime.per_host() == Counter({"h1": 1, "h2": 1, "h3": 1})
    cur = engine.store.current_release()
    assert cur is not None
    assert engine.desired_replicas(cur, engine.observe()) == {"web": 3}
    assert engine.heal_plan().empty


@pytest.mark.parametrize(("order", "most"), [("start-first", 2), ("stop-first", 1)])
def test_a_deploy_replaces_each_replica_on_its_own_host(
    fleet: tuple[Engine, FakeFleet], order: str, most: int
) -> None:
    engine, runtime = fleet
    runtime.most = 0
    assert engine.apply(release("2", order), "deploy").status == "succeeded"
    assert runtime.versions() == {"h1": "2", "h2": "2", "h3": "2"}
    assert runtime.per_host() == Counter({"h1": 1, "h2": 1, "h3": 1})
    assert runtime.most == most


def test_a_lost_host_is_not_replaced_elsewhere_and_gets_one_when_back(
    fleet: tuple[Engine, FakeFleet],
) -> None:
    engine, runtime = fleet
    runtime.down.add("h2")
    # Nothing is re-placed (h1 and h3 have theirs): its server only leaves the backends.
    assert [s.describe() for s in engine.heal_plan().steps] == [
        "web: remove from rotation web-1-2 (no container)"
    ]
    engine.heal()
    assert len(runtime.on) == 3  # no container started
    cur = engine.store.current_release()
    assert cur is not None
    assert engine.desired_replicas(cur, engine.observe()) == {"web": 2}
    # Back: its stale container removed (as FleetRuntime does for a returning host).
    for cid in [cid for cid, host in runtime.on.items() if host == "h2"]:
        runtime.remove(cid)
    runtime.down.clear()
    # `conveyor plan` (and its --json) says where the replica starts.
    start = next(s for s in engine.heal_plan().steps if s.kind == "start")
    shown = PlanStep(**start.model_dump(mode="json"), description=start.describe())
    assert (shown.host, shown.description) == ("h2", f"web: start {start.replica} on h2")
    healed = engine.heal()
    assert healed is not None and healed.ok
    assert runtime.per_host() == Counter({"h1": 1, "h2": 1, "h3": 1})


def test_no_host_up_is_a_count_of_zero_for_status_and_an_error_for_a_plan(
    fleet: tuple[Engine, FakeFleet],
) -> None:
    engine, runtime = fleet
    runtime.down.update({"h1", "h2", "h3"})
    cur = engine.store.current_release()
    assert cur is not None
    assert engine.desired_replicas(cur, engine.observe()) == {"web": 0}
    with pytest.raises(PlacementError, match="no app host is up"):
        engine.heal_plan()
