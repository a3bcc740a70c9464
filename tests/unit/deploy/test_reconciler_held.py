"""A service healed again and again is held back by its heal backoff; the reconciler says
until when its last tick held one back (`held_until`), so a server that heals on events heals
it again then. On fakes."""

from __future__ import annotations

from pathlib import Path

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.deploy.reconciler import Reconciler
from conveyor.model.events import Subject
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime


def test_held_until_names_the_end_of_a_crash_looping_service_backoff(tmp_path: Path) -> None:
    svc = Service(
        name="web",
        image="web",
        replicas=1,
        healthcheck=Healthcheck(test=("CMD", "true")),
        routing=Routing(port=8000),
    )
    release = Release(
        number=0,
        project="p",
        services={"web": ServiceRelease(service=svc, image_id="sha256:1", image_ref="web")},
        stack=Stack(project="p", file=str(tmp_path / "compose.yaml"), services={"web": svc}),
    )
    runtime = FakeRuntime()
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    engine = Engine(
        paths, runtime, FakeRouter(), store, Timeline(Subject(project="p"), store.events)
    )
    assert engine.apply(release, "up").status == "succeeded"
    now = [1000.0]
    reconciler = Reconciler(engine, clock=lambda: now[0])
    assert reconciler.held_until() is None

    def crash() -> None:
        for c in runtime.containers.values():
            c.running, c.exit_code = False, 137

    for _ in range(2):  # healed twice within the loop window: the second heal backs off
        crash()
        assert reconciler.tick() is not None
        now[0] += 0.25
    assert reconciler.held_until() is None  # the last tick held nothing back
    crash()
    assert reconciler.tick() is None  # held back
    held = reconciler.held_until()
    assert held is not None and held > now[0]
    now[0] = held + 5  # the backoff ended since: still said, so the caller ticks at once
    assert reconciler.held_until() == held
    outcome = reconciler.tick()
    assert outcome is not None and outcome.status == "succeeded"
    assert reconciler.held_until() is None
