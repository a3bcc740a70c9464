"""The deploy engine on an in-memory fleet when a service's placement changes: a deploy
moves the replicas a new constraint (or a host's new labels in conveyor.yaml) excludes,
start-first, and `plan` says why; a heal moves nothing (it replaces what was lost); a global
service's replica on a host it may no longer run on is stopped by a deploy, kept by a heal."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Subject
from conveyor.model.fleet import FleetHost
from conveyor.model.placement import Constraint, DeployMode, ServicePlacement
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack, UpdateConfig
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter
from tests.unit.deploy.fake_fleet import FakeFleet

ZONES = {"h1": "a", "h2": "b", "h3": "a"}
ZONE_A = Constraint(
    attribute="label",
    label="zone",
    op="==",
    value="a",
    text="node.labels.zone==a",
    file="/x/compose.yaml",
    line=9,
)


def release(constraints: tuple[Constraint, ...] = (), mode: DeployMode = "replicated") -> Release:
    svc = Service(
        name="web",
        image="web",
        replicas=2,
        healthcheck=Healthcheck(test=("CMD", "true")),
        routing=Routing(port=8000),
        placement=ServicePlacement(mode=mode, constraints=constraints),
        update_config=UpdateConfig(parallelism=1),
    )
    return Release(
        number=0,
        project="p",
        services={"web": ServiceRelease(service=svc, image_id="sha256:1", image_ref="web")},
        stack=Stack(project="p", file="/x/compose.yaml", services={"web": svc}),
    )


def _engine(tmp_path: Path) -> tuple[Engine, FakeFleet]:
    runtime = FakeFleet(
        hosts=[FleetHost(name=n, address=f"{n}.test", labels={"zone": z}) for n, z in ZONES.items()]
    )
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    tl = Timeline(Subject(project="p", environment="p"), store.events)
    return Engine(paths, runtime, FakeRouter(), store, tl, placer=runtime), runtime


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Engine, FakeFleet]:
    engine, runtime = _engine(tmp_path)
    assert engine.apply(release(), "up").status == "succeeded"
    assert runtime.per_host() == Counter({"h1": 1, "h2": 1})
    return engine, runtime


def _current(engine: Engine) -> Release:
    cur = engine.store.current_release()
    assert cur is not None
    return cur


def test_a_new_constraint_moves_the_replica_it_excludes_at_the_deploy(
    fleet: tuple[Engine, FakeFleet],
) -> None:
    engine, runtime = fleet
    target = release((ZONE_A,))
    plan = engine.plan(target)
    assert plan.notes == ("web-1-2 on h2 moves: h2 no longer matches node.labels.zone==a",)
    assert [s.describe() for s in plan.steps if s.kind in ("start", "stop")] == [
        "web: start web-0-1 on h3",  # named at the apply (release 0: not saved yet)
        "web: stop web-1-2 (moves: h2 no longer matches node.labels.zone==a)",
    ]
    outcome = engine.apply(target, "deploy")
    assert outcome.status == "succeeded"
    assert runtime.per_host() == Counter({"h1": 1, "h3": 1})
    assert engine.heal_plan().empty and engine.plan(_current(engine)).empty


def test_a_label_changed_in_conveyor_yaml_moves_at_the_next_deploy_not_at_a_heal(
    fleet: tuple[Engine, FakeFleet],
) -> None:
    engine, runtime = fleet
    assert engine.apply(release((ZONE_A,)), "deploy").ok
    assert runtime.per_host() == Counter({"h1": 1, "h3": 1})
    # conveyor.yaml now gives h1 zone b: the release is the same, the hosts are not.
    runtime.hosts[0] = runtime.hosts[0].model_copy(update={"labels": {"zone": "b"}})
    assert engine.heal_plan().empty and engine.heal() is None  # a heal moves nothing
    cur = _current(engine)
    assert [n for n in engine.plan(cur).notes] == [
        "web-1-1 on h1 moves: h1 no longer matches node.labels.zone==a"
    ]
    assert engine.apply(cur, "deploy").status == "succeeded"
    # Both on h3 now: the only zone-a host (no max_replicas_per_node).
    assert runtime.per_host() == Counter({"h3": 2})


def test_a_global_replica_on_an_excluded_host_stops_at_a_deploy_not_at_a_heal(
    tmp_path: Path,
) -> None:
    engine, runtime = _engine(tmp_path)
    assert engine.apply(release(mode="global"), "up").ok
    assert runtime.per_host() == Counter({"h1": 1, "h2": 1, "h3": 1})
    assert engine.apply(release((ZONE_A,), mode="global"), "deploy").ok
    assert runtime.per_host() == Counter({"h1": 1, "h3": 1})
    runtime.hosts[0] = runtime.hosts[0].model_copy(update={"labels": {"zone": "b"}})
    assert engine.heal_plan().empty
    plan = engine.plan(_current(engine))
    assert [s.describe() for s in plan.steps if s.kind == "stop"] == [
        "web: stop web-1-1 (placement excludes h1)"
    ]
    assert engine.apply(_current(engine), "deploy").ok
    assert runtime.per_host() == Counter({"h3": 1})
