"""app.project's listener for a learned fleet (hosts_from: aws): hosts joining and leaving are
one `fleet.changed` event and the router follows the new fleet; AWS not answering is a
warning naming its error, and the router is left as it is."""

from __future__ import annotations

from typing import Any, cast

from conveyor.app.project import _fleet_changed
from conveyor.deploy.fleet_source import StaticFleet
from conveyor.model.fleet import Fleet, FleetChange, FleetHost
from conveyor.router.fleet import FleetRouter
from conveyor.store.timeline import Timeline

H1 = FleetHost(name="i-01", address="10.0.0.1")
H2 = FleetHost(name="i-02", address="10.0.0.2")
NOW = Fleet(hosts=(H2,), hosts_from="aws")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []
        self.followed: list[Fleet] = []
        self.edges = 0

    def emit(self, kind: str, message: str, level: str = "info", data: Any = None) -> None:
        self.events.append((kind, message, level, data))

    def follow(self, fleet: Fleet) -> None:
        self.followed.append(fleet)

    def ensure_edge(self) -> None:
        self.edges += 1


def _call(change: FleetChange) -> Recorder:
    seen = Recorder()
    _fleet_changed(cast(FleetRouter, seen), StaticFleet(NOW), cast(Timeline, seen), change)
    return seen


def test_hosts_joining_and_leaving_are_recorded_and_followed() -> None:
    seen = _call(FleetChange(joined=(H2,), left=(H1,)))
    assert seen.events == [
        (
            "fleet.changed",
            "the fleet's hosts changed (joined: i-02, left: i-01)",
            "warning",
            {"joined": ["i-02"], "left": ["i-01"]},
        )
    ]
    assert seen.followed == [NOW] and seen.edges == 1


def test_a_host_joining_alone_is_news_not_a_warning() -> None:
    seen = _call(FleetChange(joined=(H2,)))
    assert [(e[1], e[2]) for e in seen.events] == [
        ("the fleet's hosts changed (joined: i-02)", "info")
    ]
    assert seen.followed == [NOW] and seen.edges == 0


def test_aws_not_answering_is_a_warning_and_nothing_moves() -> None:
    seen = _call(FleetChange(error="Rate exceeded (keeping the 2 host(s) known)"))
    assert seen.events == [
        (
            "fleet.changed",
            "the fleet's hosts could not be learned: Rate exceeded (keeping the 2 host(s) known)",
            "warning",
            {"error": "Rate exceeded (keeping the 2 host(s) known)"},
        )
    ]
    assert seen.followed == [] and seen.edges == 0
