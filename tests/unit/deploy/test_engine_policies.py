"""The deploy engine's policies on in-memory runtime and router fakes: failure_action
(rollback, pause, continue), max_failure_ratio, and recovery of interrupted rollouts (also a
recovery interrupted in turn). The same paths run on dockerd and HAProxy in tests/integration;
here each policy is pinned down without timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Event, Subject
from conveyor.model.release import Release, ReplicaHealth, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack, UpdateConfig
from conveyor.runtime.protocol import ReplicaRun
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime

HEALTHCHECK = Healthcheck(test=("CMD", "true"))


def release(version: str, replicas: int = 3, **update: object) -> Release:
    svc = Service(
        name="web",
        image="web",
        environment={"V": version},
        healthcheck=HEALTHCHECK,
        replicas=replicas,
        routing=Routing(port=8000),
        update_config=UpdateConfig(parallelism=1, **update),  # type: ignore[arg-type]
        rollback_config=UpdateConfig(parallelism=0),
    )
    return Release(
        number=0,
        project="p",
        services={
            "web": ServiceRelease(service=svc, image_id=f"sha256:{version}", image_ref="web")
        },
        stack=Stack(project="p", file="/x/compose.yaml", services={"web": svc}),
    )


class World:
    def __init__(self, tmp: Path) -> None:
        self.bad: set[tuple[str, int]] = set()  # (version, nth replica of it) that fail
        self.started: dict[str, int] = {}
        self.runtime = FakeRuntime(health_of=self._health)
        self.router = FakeRouter()
        self.events: list[Event] = []
        paths = ProjectPaths(tmp / "compose.yaml", "p")
        store = Store.open(paths.state_dir)
        tl = Timeline(Subject(project="p", environment="p"), store.events)
        tl.subscribe(self.events.append)
        self.engine = Engine(paths, self.runtime, self.router, store, tl)

    def _health(self, req: ReplicaRun) -> ReplicaHealth:
        version = req.service.environment["V"]
        n = self.started[version] = self.started.get(version, 0) + 1
        return "unhealthy" if (version, n) in self.bad or (version, 0) in self.bad else "healthy"

    def versions(self) -> list[str]:
        return [r.service.environment["V"] for r in self.runtime.running("web")]

    def kinds(self) -> list[str]:
        return [
            e.kind
            for e in self.events
            if e.kind.startswith("rollout.") and e.kind != "rollout.message"
        ]


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    assert w.engine.apply(release("1"), "up").status == "succeeded"
    assert w.versions() == ["1", "1", "1"]
    return w


def test_default_failure_action_rolls_back_and_the_old_release_keeps_serving(world: World) -> None:
    world.bad.add(("2", 2))  # the second new replica never becomes healthy
    o = world.engine.apply(release("2"), "deploy")
    assert (o.status, o.release) == ("rolled_back", 1)
    assert world.versions() == ["1", "1", "1"]
    assert len(world.router.ready("web")) == 3
    assert world.engine.store.current_release().number == 1  # type: ignore[union-attr]
    assert world.kinds()[-4:] == [
        "rollout.failed",
        "rollout.started",  # the rollback
        "rollout.succeeded",
        "rollout.rolled_back",
    ]


def test_an_automatic_rollback_names_the_rollout_it_undoes(world: World) -> None:
    """Readers of the timeline (notifications) tell an automatic rollback from one a person
    asked for, and know a failed rollout's verdict is still to come."""
    world.bad.add(("2", 2))
    o = world.engine.apply(release("2"), "deploy")
    failed, started, succeeded, rolled_back = [
        e for e in world.events if e.kind.startswith("rollout.") and e.kind != "rollout.message"
    ][-4:]
    assert failed.data["rolling_back"] is True and failed.data["kind"] == "deploy"
    assert started.data["undoes"] == succeeded.data["undoes"] == failed.subject.rollout
    assert succeeded.data["kind"] == "rollback" and succeeded.subject.rollout == o.rollback_id
    assert rolled_back.data["to_release"] == 1 and "undoes" not in rolled_back.data
    # a rollback a person asks for undoes nothing
    assert world.engine.apply(release("3"), "deploy").status == "succeeded"
    assert world.engine.rollback().status == "succeeded"
    assert world.events[-1].data["kind"] == "rollback" and "undoes" not in world.events[-1].data


def test_pause_stops_where_it_failed_without_rolling_back(world: World) -> None:
    world.bad.add(("2", 2))
    o = world.engine.apply(release("2", failure_action="pause"), "deploy")
    assert o.status == "paused"
    assert sorted(world.versions()) == ["1", "1", "2", "2"]  # the failed one is left to inspect
    assert world.engine.store.current_release().number == 1  # type: ignore[union-attr]
    assert world.kinds()[-1] == "rollout.paused"


def test_continue_skips_the_failed_batch_and_finishes(world: World) -> None:
    world.bad.add(("2", 2))
    o = world.engine.apply(release("2", failure_action="continue"), "deploy")
    assert o.status == "succeeded"
    # batch 2 was skipped: its old replica still serves beside the two new ones
    assert sorted(world.versions()) == ["1", "2", "2"]
    assert world.engine.store.current_release().number == 2  # type: ignore[union-attr]
    skipped = [e for e in world.events if e.kind == "step.skipped"]
    assert skipped and all(e.subject.service == "web" for e in skipped)


def test_max_failure_ratio_tolerates_failures_up_to_the_ratio(world: World) -> None:
    world.bad.add(("2", 2))  # 1 of 3 replicas fails: 0.33 <= 0.5
    o = world.engine.apply(release("2", max_failure_ratio=0.5), "deploy")
    assert o.status == "succeeded"
    assert sorted(world.versions()) == ["1", "2", "2"]
    notes = [e.message for e in world.events if e.kind == "rollout.message"]
    assert any("within max_failure_ratio=0.5" in n for n in notes), notes


def test_max_failure_ratio_exceeded_takes_the_failure_action(world: World) -> None:
    world.bad |= {("2", 1), ("2", 2)}  # 2 of 3 fail: 0.67 > 0.5
    o = world.engine.apply(release("2", max_failure_ratio=0.5), "deploy")
    assert (o.status, o.release) == ("rolled_back", 1)
    assert world.versions() == ["1", "1", "1"]


def test_recover_finishes_an_interrupted_rollout(world: World) -> None:
    store = world.engine.store
    target = store.releases.save(release("2"))
    rid = store.rollouts.start("deploy", 1, target.number, "cli", "conveyor deploy")
    [o] = world.engine.recover()
    assert o.status == "succeeded" and o.finishes is not None and o.finishes.id == rid
    assert store.rollouts.get(rid).status == "interrupted"  # type: ignore[union-attr]
    rec = store.rollouts.get(o.rollout_id or 0)
    assert rec is not None and (rec.kind, rec.recovers) == ("recover", rid)
    assert world.versions() == ["2", "2", "2"]


def test_an_interrupted_recovery_of_a_rollback_still_rolls_back(world: World) -> None:
    """A recovery interrupted in its turn goes back to the first rollout of the chain: here a
    rollback, so the rollback_config (all at once) applies and the outcome says it finished a
    rollback (the CLI's `rollback` then does not go forward again)."""
    store = world.engine.store
    assert world.engine.apply(release("2"), "deploy").status == "succeeded"
    first = store.rollouts.start("rollback", 2, 1, "cli", "rollback to release 1")
    store.rollouts.finish(first, "interrupted")
    store.rollouts.start("recover", 2, 1, "cli", "finish interrupted rollout", recovers=first)
    [o] = world.engine.recover()
    assert o.finishes is not None and o.finishes.id == first and o.finished_rollback
    assert world.versions() == ["1", "1", "1"]
