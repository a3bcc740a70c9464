"""The reconciler while the Docker Engine is away (restarting, upgraded, crashed): it replaces
nothing, says so once, and once the engine answers again re-observes and heals only after a
settle time. On fakes; tests/integration/deploy/test_engine_restart.py restarts a real dockerd
under load."""

from __future__ import annotations

from pathlib import Path

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.deploy.reconciler import Reconciler
from conveyor.model.events import Event, Subject
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_replaced_while_the_engine_is_away(tmp_path: Path) -> None:
    svc = Service(
        name="web",
        image="web",
        replicas=2,
        healthcheck=Healthcheck(test=("CMD", "true")),
        routing=Routing(port=8000),
    )
    release = Release(
        number=0,
        project="p",
        services={"web": ServiceRelease(service=svc, image_id="sha256:1", image_ref="web")},
        stack=Stack(project="p", file=str(tmp_path / "compose.yaml"), services={"web": svc}),
    )
    runtime, router = FakeRuntime(), FakeRouter()
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    events: list[Event] = []
    timeline = Timeline(Subject(project="p", environment="p"), store.events)
    timeline.subscribe(events.append)
    engine = Engine(paths, runtime, router, store, timeline)
    assert engine.apply(release, "up").status == "succeeded"
    clock = Clock()
    reconciler = Reconciler(engine, clock=clock, settle=2.0)
    assert reconciler.tick() is None  # converged

    # the engine goes away, and a replica dies meanwhile
    runtime.away = True
    victim = next(iter(runtime.containers.values()))
    victim.running, victim.exit_code = False, 137
    before = set(runtime.containers)
    for _ in range(3):
        assert reconciler.tick() is None
        clock.now += 1
    assert set(runtime.containers) == before
    assert [e.kind for e in events].count("engine.away") == 1

    # back: the first observation only re-attaches
    runtime.away = False
    assert reconciler.tick() is None
    assert [e.kind for e in events].count("engine.back") == 1
    assert set(runtime.containers) == before
    clock.now += 1
    assert reconciler.tick() is None  # still settling

    clock.now += 1.5
    outcome = reconciler.tick()
    assert outcome is not None and outcome.status == "succeeded"
    assert len(runtime.running("web")) == 2
    assert victim not in runtime.containers.values()
