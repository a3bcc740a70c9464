"""Docker events as Conveyor reads them (runtime.docker_events), and the watcher's reconnection,
against stand-in event streams: one that cannot be opened (dockerd away), one that ends (dockerd
stopped), one that stays open until closed (a quiet engine)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from conveyor.runtime.docker_events import (
    ContainerEvent,
    DockerEventWatcher,
    container_event,
    event_filters,
)


def raw(action: str, **attributes: str) -> dict[str, Any]:
    labels = {"io.conveyor.project": "shop-staging", "io.conveyor.service": "web"}
    labels |= {"io.conveyor.replica": "web-2-1", "name": "shop-staging-web-2-1"}
    return {
        "Type": "container",
        "Action": action,
        "id": "c0ffee" * 10,
        "Actor": {"ID": "c0ffee" * 10, "Attributes": labels | attributes},
        "time": 1700000000,
        "timeNano": 1700000000250000000,
    }


def test_an_event_of_a_replica_names_its_project_service_and_replica() -> None:
    event = container_event(raw("destroy"))
    assert event == ContainerEvent(
        project="shop-staging",
        action="destroy",
        container="c0ffee" * 10,
        name="shop-staging-web-2-1",
        service="web",
        replica="web-2-1",
        at=1700000000.25,
    )
    assert event.drift and event.describe() == "destroy of web-2-1"


@pytest.mark.parametrize(("status", "drift"), [("unhealthy", True), ("healthy", False)])
def test_a_health_event_is_drift_only_when_unhealthy(status: str, drift: bool) -> None:
    event = container_event(raw(f"health_status: {status}"))
    assert event is not None
    assert (event.action, event.status, event.drift) == ("health_status", status, drift)


@pytest.mark.parametrize(
    "event",
    [
        raw("start"),  # what every rollout does
        raw("destroy") | {"Type": "network"},
        raw("destroy", **{"io.conveyor.project": ""}),
    ],
)
def test_other_events_are_not_read(event: dict[str, Any]) -> None:
    assert container_event(event) is None


def test_the_engine_is_asked_for_conveyor_containers_only() -> None:
    filters = event_filters()
    assert filters["label"] == ["io.conveyor.project"] and filters["type"] == ["container"]
    assert "start" not in filters["event"] and "destroy" in filters["event"]


class Ended:
    """A stream that hands out its events and ends, as when dockerd stops."""

    def __init__(self, *events: Mapping[str, Any]) -> None:
        self.events = events

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.events)

    def close(self) -> None:
        pass


class Quiet:
    """A stream that stays open, with nothing to say, until it is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        self.closed.wait()
        return iter(())

    def close(self) -> None:
        self.closed.set()


def test_the_watcher_reconnects_after_the_engine_goes_away_and_stops_when_told() -> None:
    quiet = Quiet()
    opened = threading.Event()
    attempts: list[str] = []

    def open_stream() -> Ended | Quiet:
        attempts.append("open")
        if len(attempts) == 1:
            raise ConnectionError("no such file: /var/run/docker.sock")
        if len(attempts) == 2:
            return Ended(raw("kill"), raw("start"), raw("destroy"))
        opened.set()
        return quiet

    events: list[ContainerEvent] = []
    told: list[tuple[bool, str]] = []
    watcher = DockerEventWatcher(
        events.append,
        on_connection=lambda up, why: told.append((up, why)),
        open_stream=open_stream,
        backoff=(0.0, 0.0),
    ).start()
    assert opened.wait(30)
    watcher.stop()
    assert quiet.closed.is_set() and watcher._thread is not None
    assert not watcher._thread.is_alive()
    assert [e.action for e in events] == ["kill", "destroy"]
    assert [up for up, _ in told] == [False, True, False, True]
    assert "no such file" in told[0][1] and "ended its event stream" in told[2][1]


def test_a_failing_callback_does_not_end_the_watching() -> None:
    done = threading.Event()
    seen: list[str] = []

    def on_event(event: ContainerEvent) -> None:
        seen.append(event.action)
        if event.action == "kill":
            raise RuntimeError("a bug in the caller")
        done.set()

    streams = iter([Ended(raw("kill"), raw("die")), Quiet()])
    watcher = DockerEventWatcher(on_event, open_stream=lambda: next(streams), backoff=(0.0, 0.0))
    watcher.start()
    assert done.wait(30)
    watcher.stop()
    assert seen == ["kill", "die"]
