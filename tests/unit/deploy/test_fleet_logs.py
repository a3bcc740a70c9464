"""deploy.fleet_logs and the tunnels under it: the collector's engines on a fleet (every app
host's, and this machine's for CI jobs only); a host whose tunnel is slow to start stalls no
other host, and only the discovery's listing starts a tunnel that is down. And
FleetRuntime.logs, what `conveyor logs SERVICE` reads before any store exists."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from conveyor.deploy import fleet_engines
from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.deploy.fleet_health import FleetHealth
from conveyor.deploy.fleet_logs import FleetHostLogs, LocalJobLogs, fleet_log_engines
from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.errors import DaemonError, EngineUnreachable
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.runtime.docker_engine import DockerEngine
from conveyor.testing.logs import FakeContainerLogs

FLEET = Fleet(
    hosts=(
        FleetHost(name="h1", address="10.0.0.1"),
        FleetHost(name="h2", address="10.0.0.2"),
        FleetHost(name="e1", address="10.0.0.9", roles=("edge",)),
    )
)


class FakeTunnel:
    """A tunnel daemon: `ensure` starts it, waiting on `gate` (a host whose SSH connection
    hangs), or fails (`refuse`)."""

    def __init__(self, name: str, gate: threading.Event, refuse: set[str]) -> None:
        self.name, self.gate, self.refuse = name, gate, refuse
        self.up = False
        self.starts = 0

    def running(self) -> bool:
        return self.up

    def ensure(self) -> int:
        self.starts += 1
        if self.name == "h1":
            self.gate.wait(10)
        if self.name in self.refuse:
            raise DaemonError(f"SSH tunnel to {self.name}'s Docker Engine did not start")
        self.up = True
        return 1

    def stop(self, grace: float) -> bool:
        self.up = False
        return True


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def refuse() -> set[str]:
    return set()


@pytest.fixture
def tunnels(
    monkeypatch: pytest.MonkeyPatch, gate: threading.Event, refuse: set[str]
) -> dict[str, FakeTunnel]:
    made: dict[str, FakeTunnel] = {}

    def tunnel(host: FleetHost, run_dir: Path, known_hosts: Path | None) -> FakeTunnel:
        made[host.name] = FakeTunnel(host.name, gate, refuse)
        return made[host.name]

    monkeypatch.setattr(fleet_engines, "tunnel", tunnel)
    return made


@pytest.fixture
def engines(tmp_path: Path, tunnels: dict[str, FakeTunnel]) -> Iterator[FleetEngines]:
    e = FleetEngines(FLEET, tmp_path / "fleet")
    yield e
    e.close()


def test_a_host_whose_tunnel_hangs_stalls_no_other_host(
    engines: FleetEngines, tunnels: dict[str, FakeTunnel], gate: threading.Event
) -> None:
    slow = threading.Thread(target=engines.tunnel_up, args=("h1",))
    slow.start()
    try:
        for _ in range(1000):  # until h1's tunnel is starting (and hangs)
            if "h1" in tunnels and tunnels["h1"].starts:
                break
            gate.wait(0.01)
        assert engines.tunnel_up("h2").endswith("/fleet/h2.docker.sock")
        assert tunnels["h2"].up
        assert not tunnels["h1"].up
    finally:
        gate.set()
        slow.join(10)
    assert tunnels["h1"].up


def test_only_the_listing_starts_a_tunnel_that_is_down(
    engines: FleetEngines, tunnels: dict[str, FakeTunnel], gate: threading.Event, refuse: set[str]
) -> None:
    gate.set()
    refuse.add("h2")
    logs = FleetHostLogs(engines, "h2")
    with pytest.raises(EngineUnreachable, match="cannot reach h2's Docker Engine"):
        logs.log_containers("shop")
    assert tunnels["h2"].starts == 1
    with pytest.raises(EngineUnreachable):  # the socket is not there: no tunnel started
        logs.container_run("c1")
    assert tunnels["h2"].starts == 1


def test_the_collector_follows_every_app_host_and_this_machines_ci_jobs() -> None:
    local = FakeContainerLogs()
    local.add("job", {"io.conveyor.project": "shop", "io.conveyor.ci": "job"})
    local.add("stray", {"io.conveyor.project": "shop", "io.conveyor.replica": "web-1-1"})
    found = fleet_log_engines(FleetEngines(FLEET, Path("/run/cv")), local)
    assert sorted(found, key=str) == [None, "h1", "h2"]  # not the edge host
    here = found[None]
    assert isinstance(here, LocalJobLogs)
    assert [c.id for c in here.log_containers("shop")] == ["job"]
    assert here.container_run("stray") is not None  # reads what it is asked


class FakeHostEngine:
    """A host's engine as `FleetRuntime.logs` reads it: (replica, line) pairs; h1's followed
    lines stop after the first until `more` is set."""

    def __init__(self, name: str, more: threading.Event) -> None:
        self.name, self.more = name, more

    def logs(
        self, project: str, service: str, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str]]:
        n = self.name[1]
        yield f"web-1-{n}", f"first from {self.name}"
        if follow and self.name == "h1":
            self.more.wait(5)
        yield f"web-1-{n}", f"second from {self.name}"


class FakeFleet:
    def __init__(self, more: threading.Event) -> None:
        self.fleet = FLEET
        self.more = more
        self.known_hosts = None  # FleetFiles' SSH trusts the inventory's host keys

    def engine(self, name: str) -> FakeHostEngine:
        return FakeHostEngine(name, self.more)


def test_before_any_store_conveyor_logs_reads_every_host_naming_it() -> None:
    more = threading.Event()
    fake = FakeFleet(more)
    runtime = FleetRuntime(
        cast(FleetEngines, fake), FleetHealth(cast(FleetEngines, fake)), cast(DockerEngine, None)
    )
    assert list(runtime.logs("shop", "web", False, None)) == [
        ("web-1-1@h1", "first from h1"),
        ("web-1-1@h1", "second from h1"),
        ("web-1-2@h2", "first from h2"),
        ("web-1-2@h2", "second from h2"),
    ]
    followed = runtime.logs("shop", "web", True, None)
    got = [next(followed) for _ in range(3)]  # h1 is quiet after its first line
    assert ("web-1-1@h1", "second from h1") not in got
    more.set()
    got += list(followed)
    assert sorted(got) == [
        ("web-1-1@h1", "first from h1"),
        ("web-1-1@h1", "second from h1"),
        ("web-1-2@h2", "first from h2"),
        ("web-1-2@h2", "second from h2"),
    ]
