"""The deploy engine with a `deploy.mode: global` service on an in-memory fleet of three
hosts (the runtime and router fakes, plus a placer over plan.fleet_assign, as
deploy.fleet_runtime.FleetRuntime wires it): `up` runs one replica per host, a deploy
replaces each on its own host, a lost host's replica is not re-placed, a host back gets one,
and the desired count the engine reports (`status`) is the number of hosts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.app.views import PlanStep
from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Subject
from conveyor.model.fleet import FleetHost
from conveyor.model.placement import ServicePlacement
from conveyor.model.release import Observed, ObservedReplica, Release, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack, UpdateConfig
from conveyor.plan.actions import Plan
from conveyor.plan.fleet_assign import assign_hosts, global_hosts
from conveyor.plan.placement import PlacementError
from conveyor.plan.service_steps import GlobalHosts
from conveyor.runtime.protocol import Progress, ReplicaRun
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime

HOSTS = [FleetHost(name=n, address=f"{n}.test") for n in ("h1", "h2", "h3")]


@dataclass
class FakeFleet(FakeRuntime):
    """Containers on named hosts; a host in `down` is not observed. Also the engine's placer."""

    down: set[str] = field(default_factory=set)
    on: dict[str, str] = field(default_factory=dict)  # container id -> host
    assigned: dict[str, str] = field(default_factory=dict)  # replica -> host
    most: int = 0  # the most running replicas one host had at any moment

    def up(self) -> list[FleetHost]:
        return [h for h in HOSTS if h.name not in self.down]

    def assign(self, plan: Plan, release: Release, observed: Observed) -> Plan:
        placed = assign_hosts(plan, release.stack.services, observed, self.up())
        self.assigned.update({s.replica: s.host for s in placed.steps if s.kind == "start"})
        return placed

    def global_hosts(self, release: Release, observed: Observed) -> dict[str, GlobalHosts]:
        return global_hosts(release.stack.services, observed, self.up())

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        cid = super().run(req, warn)
        self.on[cid] = self.assigned[req.replica]
        self.most = max(self.most, *self.per_host().values())
        return cid

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        return [
            r.model_copy(update={"host": self.on[r.container_id]})
            for r in super().list_replicas(project)
            if self.on[r.container_id] not in self.down
        ]

    def per_host(self) -> Counter[str]:
        return Counter(self.on[cid] for cid, c in self.containers.items() if c.running)

    def versions(self) -> dict[str, str]:
        return {
            self.on[cid]: c.req.service.environment["V"]
            for cid, c in self.containers.items()
            if c.running
        }


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
