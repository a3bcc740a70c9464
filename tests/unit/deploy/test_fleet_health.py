"""deploy.fleet_health: engine pings become host states (plan.host_health), listeners hear
each transition, a host that is down is not probed at every look, and what placement, the
observation and the router get follows the states. A learned fleet (hosts_from: aws) is
followed: hosts that join start returning, hosts that leave are forgotten."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.deploy.fleet_health import FleetHealth
from conveyor.deploy.fleet_source import FleetSource, LearnedFleet, StaticFleet
from conveyor.errors import AwsError, HostError
from conveyor.model.fleet import Fleet, FleetChange, FleetHost
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

    def __init__(self, source: FleetSource | None = None) -> None:
        self.source = source or StaticFleet(FLEET)
        self.answers = {"h1": True, "h2": True}
        self.unreachable: set[str] = set()
        self.pings: list[str] = []
        self.forgotten: list[str] = []

    @property
    def fleet(self) -> Fleet:
        return self.source.current()

    def forget(self, name: str) -> None:
        self.forgotten.append(name)

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


# --- a learned fleet: hosts join and leave -------------------------------------------------


def test_hosts_joining_and_leaving_a_learned_fleet(tmp_path: Path) -> None:
    clock = Clock()
    h3 = FleetHost(name="h3", address="10.0.0.3", labels={"zone": "b"})
    learned = [Fleet(hosts=FLEET.hosts[:2], hosts_from="aws")]
    source = LearnedFleet(lambda: learned[-1], ttl=30.0, clock=clock)
    engines = FakeEngines(source)
    engines.answers["h3"] = True
    health = _health(engines, clock)
    changes: list[FleetChange] = []
    health.subscribe_fleet(changes.append)
    heard: list[HostTransition] = []
    health.subscribe(heard.append)
    health.probe()
    assert changes == [] and _names(health.placeable()) == ["h1", "h2"]

    # the group replaced h1 by h3: not seen before the source is due again
    learned.append(Fleet(hosts=(FLEET.hosts[1], h3), hosts_from="aws"))
    clock.now += 10
    health.probe()
    assert changes == [] and _names(health.placeable()) == ["h1", "h2"]

    clock.now += 25
    health.probe()
    assert changes == [FleetChange(joined=(h3,), left=(FLEET.hosts[0],))]
    assert engines.forgotten == ["h1"]  # its tunnel is stopped
    assert not health.known("h1") and health.health("h1").status == "down"
    # a new host answers before it takes replicas (it may still be configuring itself)
    assert health.health("h3").status == "returning"
    assert _names(health.placeable()) == ["h2"]
    assert _names(health.serving()) == ["h2"]
    clock.now += 5
    health.probe()
    assert [(t.host, t.before, t.after) for t in heard] == [("h3", "returning", "up")]
    assert _names(health.placeable()) == ["h2", "h3"]


def test_a_learned_fleet_that_cannot_be_asked_keeps_its_hosts(tmp_path: Path) -> None:
    clock = Clock()
    answers: list[Fleet | Exception] = [Fleet(hosts=FLEET.hosts[:2], hosts_from="aws")]

    def fetch() -> Fleet:
        answer = answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    engines = FakeEngines(LearnedFleet(fetch, ttl=30.0, clock=clock))
    health = _health(engines, clock)
    changes: list[FleetChange] = []
    health.subscribe_fleet(changes.append)
    answers.append(AwsError("Auto Scaling group g: Rate exceeded"))
    clock.now += 31
    health.probe()
    (change,) = changes
    assert (change.joined, change.left) == ((), ())
    assert change.error == "Auto Scaling group g: Rate exceeded (keeping the 2 host(s) known)"
    assert _names(health.placeable()) == ["h1", "h2"]


class FlakyEngine:
    """Refuses its first `refusals` pings at once (a tunnel whose SSH channel is not open
    yet), then answers."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.pings = refusals, 0

    def ping(self) -> bool:
        self.pings += 1
        return self.pings > self.refusals


def test_a_ping_refused_at_once_is_asked_again_before_the_host_is_suspect() -> None:
    engines = FakeEngines()
    flaky = {"h1": FlakyEngine(1), "h2": FlakyEngine(2)}
    engines.engine = flaky.__getitem__  # type: ignore[method-assign,assignment]
    health = _health(engines, Clock())
    moved = health.probe()
    assert flaky["h1"].pings == 2 and health.health("h1").status == "up"
    # Refused twice: silent, as before.
    assert flaky["h2"].pings == 2 and health.health("h2").status == "suspect"
    assert [(m.host, m.after) for m in moved] == [("h2", "suspect")]
