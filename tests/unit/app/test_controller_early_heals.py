"""The controller's early heals, without Docker: a Docker event names a project; the controller
maps it to the environment serving that project and heals that environment alone, before the
heal interval, and says in the drift event how the drift was noticed. A change in an
environment's HAProxy since its last heal does the same. The environments' reconcilers are
stand-ins that record their ticks, over fake routers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.app.controller import Controller
from conveyor.gitops.sync import EnvProgress
from conveyor.model.endpoint import Endpoint
from conveyor.model.events import Event, Subject
from conveyor.model.routing import Frontend, RouterConfig, ServerEntry
from conveyor.runtime.docker_events import ContainerEvent
from conveyor.spec.conveyor_file import parse_conveyor
from conveyor.testing.fakes import FakeRouter

CONFIG = """\
environments:
  staging:
    branch: main
  production:
    branch: production
"""


@dataclass
class Engine:
    project: str
    router: FakeRouter


@dataclass
class StandIn:
    """An environment's reconciler: records its ticks; a tick reports a heal, as a real one
    correcting drift does."""

    env: str
    ticks: list[str]
    controller: Controller
    ticked: threading.Event = field(default_factory=threading.Event)
    router: FakeRouter = field(default_factory=FakeRouter)
    held: float | None = None  # until when its heal backoff holds a service back

    def held_until(self) -> float | None:
        return self.held

    @property
    def engine(self) -> Engine:
        return Engine(f"app-{self.env}", self.router)

    def tick(self) -> None:
        self.ticks.append(self.env)
        self.controller._collect(
            Event(
                kind="heal.succeeded",
                message="healed web",
                subject=Subject(project=f"app-{self.env}", environment=self.env),
                data={"services": ["web"], "corrections": ["web: replica count restored"]},
            )
        )
        self.ticked.set()


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    c = Controller(str(tmp_path / "app.git"), tmp_path / "data", {}, heal_interval=3600)
    c.config = parse_conveyor(CONFIG)
    c._check = lambda spec, commit: None  # type: ignore[method-assign]  # heals only, no Nagios
    return c


@pytest.fixture
def ticks(controller: Controller) -> list[str]:
    """Both environments serve a commit; their reconcilers are stand-ins."""
    ticks: list[str] = []
    for env, commit in (("staging", "a" * 40), ("production", "b" * 40)):
        controller._save(env, EnvProgress(deployed=commit))
        controller._reconcilers[env] = (commit, StandIn(env, ticks, controller))  # type: ignore[assignment]
    return ticks


def event(project: str, action: str = "destroy", status: str = "") -> ContainerEvent:
    return ContainerEvent(
        project=project, action=action, container="c" * 64, replica="web-1-1", status=status
    )


def test_an_event_wakes_the_environment_serving_its_project(
    controller: Controller, ticks: list[str]
) -> None:
    controller._docker_event(event("app-production", "die"))
    controller._docker_event(event("app-production", "destroy"))
    controller._docker_event(event("other-staging"))  # not one of ours
    controller._docker_event(event("app-staging", "health_status", "healthy"))  # not drift
    due = controller._wakeups.take_due(float("inf"))
    assert due == {"production": "Docker event: die of web-1-1, Docker event: destroy of web-1-1"}
    controller.heal_all(only=due)
    assert ticks == ["production"]
    (drift,) = controller.events(None, 10)
    assert drift.kind == "drift.corrected" and drift.subject.environment == "production"
    assert drift.data["noticed"] == due["production"]


def test_an_early_heal_skips_a_suspended_environment(
    controller: Controller, ticks: list[str]
) -> None:
    controller._save("staging", EnvProgress(deployed="a" * 40, suspended=True))
    controller.heal_all(only={"staging": "Docker event: destroy of web-1-1"})
    assert ticks == []


def test_the_worker_heals_an_environment_on_its_event_before_the_interval(
    controller: Controller, ticks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller, "sync_all", lambda: None)
    staging, production = (controller._reconcilers[env][1] for env in ("staging", "production"))
    assert isinstance(staging, StandIn) and isinstance(production, StandIn)
    stopping = threading.Event()
    worker = threading.Thread(target=controller.run, args=(stopping,), daemon=True)
    worker.start()
    try:
        assert production.ticked.wait(30)  # the pass after the first sync: staging first
        staging.ticked.clear()
        assert ticks == ["staging", "production"]
        controller._docker_event(event("app-staging", "kill"))
        assert staging.ticked.wait(30)  # the heal interval is an hour: only the event explains it
    finally:
        stopping.set()
        controller.wake()
        worker.join(30)
    assert not worker.is_alive()
    assert ticks[2:] == ["staging"]
    drifts = [e for e in controller.events(None, 10) if e.kind == "drift.corrected"]
    assert [e.data["noticed"] for e in drifts] == [
        "heal interval",
        "heal interval",
        "Docker event: kill of web-1-1",
    ]


def test_a_change_in_haproxy_since_the_last_heal_wakes_that_environment(
    controller: Controller, ticks: list[str]
) -> None:
    staging = controller._reconcilers["staging"][1]
    assert isinstance(staging, StandIn)
    router = staging.router
    router.ensure(RouterConfig(frontends=(Frontend(service="web", port=8080),)))
    router.add_server("web", ServerEntry(name="web-1-1", endpoint=Endpoint.loopback(20001)))
    controller.heal_all()  # marks each environment's HAProxy as its heal begins
    controller._look_at_routers()
    assert controller._wakeups.next_due() is None  # nothing changed since

    router.set_state("web", "web-1-1", "maint")
    router.set_weight("web", "web-1-1", 10)
    controller._look_at_routers()
    controller._look_at_routers()  # seen once
    due = controller._wakeups.take_due(float("inf"))
    assert due == {"staging": "HAProxy: web-1-1 ready -> maint; web-1-1 weight 100 -> 10"}

    router.stop()
    controller._look_at_routers()
    assert controller._wakeups.take_due(float("inf")) == {"staging": "HAProxy: stopped"}


def test_a_service_held_back_by_its_heal_backoff_is_healed_when_that_is_over(
    controller: Controller, ticks: list[str]
) -> None:
    staging = controller._reconcilers["staging"][1]
    assert isinstance(staging, StandIn)
    staging.held = time.time() + 600
    controller.heal_all(only={"staging": "Docker event: destroy of web-1-1"})
    due = controller._wakeups.next_due()
    assert due is not None and due > time.monotonic() + 500  # not at once, not in an hour
    assert controller._wakeups.take_due(due) == {
        "staging": "Docker event: destroy of web-1-1 (once its heal backoff was over)"
    }
    staging.held = None
    controller.heal_all(only={"staging": "Docker event: destroy of web-1-1"})
    assert controller._wakeups.next_due() is None
