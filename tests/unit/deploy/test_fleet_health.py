"""deploy.fleet_health: engine pings become host states (plan.host_health), listeners hear
each transition, a host that is down is not probed at every look, and what placement, the
observation and the router get follows the states."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.deploy.fleet_health import FleetHealth
from conveyor.errors import HostError
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.host_health import HostHealthSettings, HostTransition

FLEET = Fleet(
    hosts=(
        FleetHost(name="h1", address="10.0.0.1"),
        FleetHost(name="h2", address="10.0.0.2"),
        FleetHost(name="e1", address="10.0.0.9", roles=("edge",)),
    )
)


class FakeEngine:
    def __init__(self, answers: dict[str, bool], name: str, pings: list[str]) -> None:
        self.answers, self.name, self.pings = answers, name, pings

    def ping(self) -> bool:
        self.pings.append(self.name)
        return self.answers[self.name]


class FakeEngines:
    """FleetEngines' `engine(name)`: a tunnel that cannot start raises, as the real one does."""

    def __init__(self) -> None:
        self.fleet = FLEET
        self.answers = {"h1": True, "h2": True}
        self.unreachable: set[str] = set()
        self.pings: list[str] = []

    def engine(self, name: str) -> FakeEngine:
        if name in self.unreachable:
            raise HostError(f"ssh to {name}: connection timed out")
        return FakeEngine(self.answers, name, self.pings)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _health(engines: FakeEngines, clock: Clock) -> FleetHealth:
    settings = HostHealthSettings(interval=2.0, down_after=8.0, up_after=2)
    return FleetHealth(cast(FleetEngines, engines), settings, clock)


def _names(hosts: tuple[FleetHost, ...]) -> list[str]:
    return [h.name for h in hosts]


def test_a_host_that_stops_answering_is_suspect_then_down_then_returns(tmp_path: Path) -> None:
    engines, clock = FakeEngines(), Clock()
    health = _health(engines, clock)
    heard: list[HostTransition] = []
    health.subscribe(heard.append)
    assert health.probe() == []  # every app host starts up (the edge host is not probed)
    assert sorted(engines.pings) == ["h1", "h2"]
    assert _names(health.placeable()) == ["h1", "h2"]

    engines.answers["h2"] = False
    clock.now += 1
    moved = health.probe()
    assert [(t.host, t.before, t.after) for t in moved] == [("h2", "up", "suspect")]
    assert _names(health.placeable()) == ["h1"]
    assert _names(health.holding()) == ["h2"]
    assert _names(health.serving()) == ["h1", "h2"]  # its replicas still count
    assert _names(health.driven()) == ["h1"]

    engines.unreachable.add("h2")  # the link is gone too: the tunnel cannot start
    clock.now += 8
    moved = health.probe()
    assert [(t.host, t.after) for t in moved] == [("h2", "down")]
    assert "connection timed out" in (health.health("h2").error or "")
    assert _names(health.serving()) == ["h1"]
    assert heard == health.transitions

    # A down host is probed again only once its quiet time has passed.
    engines.pings.clear()
    clock.now += 1
    health.probe()
    assert engines.pings == ["h1"]
    clock.now += health.quiet_for
    engines.unreachable.clear()
    engines.answers["h2"] = True
    moved = health.probe()
    assert [(t.host, t.after) for t in moved] == [("h2", "returning")]
    assert _names(health.placeable()) == ["h1"]
    clock.now += 1
    assert health.probe() == []  # a returning host is not probed at every look either
    clock.now += health.quiet_for
    moved = health.probe()  # its second answer in a row: up_after=2
    assert [(t.host, t.before, t.after) for t in moved] == [("h2", "returning", "up")]
    assert _names(health.placeable()) == ["h1", "h2"]


def test_no_host_up_drives_every_app_host(tmp_path: Path) -> None:
    engines, clock = FakeEngines(), Clock()
    engines.answers = {"h1": False, "h2": False}
    health = _health(engines, clock)
    health.probe()
    clock.now += 9
    health.probe()
    assert health.placeable() == ()
    assert _names(health.driven()) == ["h1", "h2"]  # the edge needs somewhere to send requests
