"""The deploy engine on an in-memory fleet when a host leaves it (docs/fleet.md, "Hosts that
leave the fleet"): a deploy observes the replicas still on the host that left, moves them
start-first (the replacement in rotation before the old one drains), has the edge rendered
before any step and the host cleaned after the rollout; `plan` says so first; a heal does
none of it; `down` takes the project off it too; a host that does not answer is tried again
at the next deploy. The retirement's I/O is a stand-in over the fake fleet (the real one,
deploy.fleet_retire, is exercised on real hosts by the fleet integration test)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Subject
from conveyor.model.release import Observed, ObservedReplica, Release, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack, UpdateConfig
from conveyor.plan.fleet_retire import LeftHost, retire_moves, retirement_notes
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter
from tests.unit.deploy.fake_fleet import HOSTS, FakeFleet


@dataclass
class Logged(FakeFleet):
    log: list[str] = field(default_factory=list)

    def stop(self, container_id: str, signal: str, grace: float) -> int | None:
        self.log.append(f"stop {self.containers[container_id].req.replica}@{self.on[container_id]}")
        return super().stop(container_id, signal, grace)


@dataclass
class Retirement:
    """The engine's `Retirement` over the fake fleet: every host that ran a replica is
    remembered; one no longer in `fleet.hosts` left."""

    fleet: Logged
    unreachable: set[str] = field(default_factory=set)
    found: list[LeftHost] = field(default_factory=list)

    def remembered(self) -> set[str]:
        return set(self.fleet.on.values())

    def left_replicas(self, project: str) -> list[ObservedReplica]:
        now = {h.name for h in self.fleet.hosts}
        self.found, out = [], []
        for name in sorted(self.remembered() - now):
            mine = [
                self.fleet._observed(cid, c).model_copy(update={"host": name})
                for cid, c in self.fleet.containers.items()
                if self.fleet.on[cid] == name and c.running
            ]
            answered = name not in self.unreachable
            self.found.append(
                LeftHost(name=name, answered=answered, replicas=tuple(r.replica for r in mine))
            )
            out += mine if answered else []
        return out

    def moves(
        self, release: Release, observed: Observed
    ) -> Mapping[str, Sequence[tuple[str, str]]]:
        return retire_moves(release.stack, observed, [h.name for h in self.found if h.answered])

    def notes(self) -> list[str]:
        return retirement_notes(self.found)

    def begin(self) -> None:
        if any(h.answered for h in self.found):
            self.fleet.log.append("edge without " + ", ".join(h.name for h in self.found))

    def finish(self, project: str) -> list[tuple[str, str | None]]:
        done: list[tuple[str, str | None]] = []
        for h in (h for h in self.found if h.answered):
            for cid in [cid for cid, on in self.fleet.on.items() if on == h.name]:
                self.fleet.containers.pop(cid, None)
                del self.fleet.on[cid]
            self.fleet.log.append(f"cleaned {h.name}")
            done.append((h.name, None))
        self.found = [h for h in self.found if not h.answered]
        return done


def release() -> Release:
    svc = Service(
        name="web",
        image="web",
        replicas=3,
        healthcheck=Healthcheck(test=("CMD", "true")),
        routing=Routing(port=8000),
        update_config=UpdateConfig(parallelism=1),  # start-first by default
    )
    return Release(
        number=0,
        project="p",
        services={"web": ServiceRelease(service=svc, image_id="sha256:1", image_ref="web")},
        stack=Stack(project="p", file="/x/compose.yaml", services={"web": svc}),
    )


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Engine, Logged, Retirement]:
    runtime = Logged()
    retirement = Retirement(runtime)
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    tl = Timeline(Subject(project="p", environment="p"), store.events)
    engine = Engine(paths, runtime, FakeRouter(), store, tl, placer=runtime, retirement=retirement)
    assert engine.apply(release(), "up").status == "succeeded"
    assert runtime.per_host() == Counter({"h1": 1, "h2": 1, "h3": 1})
    runtime.log.clear()
    return engine, runtime, retirement


def _current(engine: Engine) -> Release:
    cur = engine.store.current_release()
    assert cur is not None
    return cur


def test_a_deploy_moves_the_replicas_of_a_host_that_left_then_cleans_it(
    fleet: tuple[Engine, Logged, Retirement],
) -> None:
    engine, runtime, _ = fleet
    runtime.hosts = [h for h in HOSTS if h.name != "h3"]  # conveyor.yaml without h3
    plan = engine.plan(_current(engine))
    assert plan.notes == (
        "web-1-3 on h3 moves: h3 left the fleet",
        "h3 left the fleet: web-1-3 and its HAProxy are removed (the project's files and "
        "containers there too; named volumes are kept)",
    )
    assert [s.describe() for s in plan.steps if s.service == "web"] == [
        "web: start web-1-4 on h1",
        "web: wait until healthy web-1-4",
        "web: add to rotation web-1-4",
        "web: drain web-1-3 (moves: h3 left the fleet)",
        "web: remove from rotation web-1-3",
        "web: stop web-1-3 (moves: h3 left the fleet)",
    ]
    outcome = engine.apply(_current(engine), "deploy")
    assert outcome.status == "succeeded", outcome.error
    # The edge first, then the replica (drained by then: the plan above), then the host.
    assert runtime.log == ["edge without h3", "stop web-1-3@h3", "cleaned h3"]
    assert runtime.per_host() == Counter({"h1": 2, "h2": 1})
    retired = [e for e in engine.store.events.after(None, 1000) if e.kind == "host.retired"]
    assert [e.data["host"] for e in retired] == ["h3"]
    # Nothing left to do: the next deploy is unchanged, and says nothing of h3.
    assert engine.plan(_current(engine)).empty and not engine.plan(_current(engine)).notes


def test_a_heal_does_not_retire_a_host_that_left(fleet: tuple[Engine, Logged, Retirement]) -> None:
    engine, runtime, _ = fleet
    runtime.hosts = [h for h in HOSTS if h.name != "h3"]
    engine.heal()  # h3 is not observed by a heal: its replica is replaced, as for a lost host
    assert "cleaned h3" not in runtime.log and "edge without h3" not in runtime.log
    assert runtime.per_host()["h3"] == 1  # still running there, until the next deploy
    assert engine.apply(_current(engine), "deploy").ok
    assert runtime.log[-1] == "cleaned h3" and runtime.per_host()["h3"] == 0
    assert sum(runtime.per_host().values()) == 3


def test_a_host_that_left_and_does_not_answer_is_tried_again_at_the_next_deploy(
    fleet: tuple[Engine, Logged, Retirement],
) -> None:
    engine, runtime, retirement = fleet
    runtime.hosts = [h for h in HOSTS if h.name != "h3"]
    retirement.unreachable = {"h3"}
    plan = engine.plan(_current(engine))
    assert plan.notes == (
        "h3 left the fleet; 1 replica still there (unreachable); tried again at the next deploy",
    )
    assert engine.apply(_current(engine), "deploy").ok  # its replica replaced elsewhere
    assert "cleaned h3" not in runtime.log
    retirement.unreachable = set()
    assert engine.apply(_current(engine), "deploy").ok
    assert runtime.log[-1] == "cleaned h3" and runtime.per_host()["h3"] == 0
    assert sum(runtime.per_host().values()) == 3


def test_down_takes_the_project_off_a_host_that_left(
    fleet: tuple[Engine, Logged, Retirement],
) -> None:
    engine, runtime, _ = fleet
    runtime.hosts = [h for h in HOSTS if h.name != "h3"]
    assert engine.down().ok
    assert "stop web-1-3@h3" in runtime.log and runtime.log[-1] == "cleaned h3"
    assert sum(runtime.per_host().values()) == 0
