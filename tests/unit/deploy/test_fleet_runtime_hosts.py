"""FleetRuntime remembers the app hosts the project runs on (`fleet-hosts.json`, beside
`fleet-volumes.json`) with the connection it used, so that a host taken out of conveyor.yaml
is still reached to take the project off it (docs/fleet.md, "Hosts that leave the fleet").
Engines and health are stand-ins: what is checked is the runtime's bookkeeping, and that a
container on a host that left is stopped there, not skipped."""

from __future__ import annotations

from pathlib import Path

from conveyor.deploy.fleet_hosts import read_hosts
from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.model.endpoint import Endpoint
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.host_health import HostHealth
from conveyor.model.release import ObservedReplica

HOSTS = (
    FleetHost(name="h1", address="10.0.0.1", key="/k1"),
    FleetHost(name="h2", address="10.0.0.2", user="deploy", port=2222, key="/k2"),
    FleetHost(name="h3", address="10.0.0.3", key="/k3"),
    FleetHost(name="e1", address="10.0.0.9", roles=("edge",)),
)


class Engine:
    def __init__(self, replicas: list[str]) -> None:
        self.replicas = replicas
        self.stopped: list[str] = []

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        return [
            ObservedReplica(
                service="web",
                replica=name,
                container_id=f"c-{name}",
                spec_hash="s",
                release=1,
                endpoint=Endpoint(host="127.0.0.1", port=8000),
                running=True,
            )
            for name in self.replicas
        ]

    def project_volumes(self, project: str) -> list[str]:
        return ["p_data"]

    def stop(self, container_id: str, signal: str, grace: float) -> int | None:
        self.stopped.append(container_id)
        return 0


class Engines:
    def __init__(self) -> None:
        self.fleet = Fleet(hosts=HOSTS)
        self.known_hosts = None
        self.adopted: dict[str, FleetHost] = {}
        self.engines = {"h1": Engine(["web-1-1"]), "h2": Engine([]), "h3": Engine(["web-1-3"])}

    def engine(self, name: str) -> Engine:
        assert self.fleet.host(name) or name in self.adopted, name
        return self.engines[name]

    def adopt(self, host: FleetHost) -> None:
        self.adopted[host.name] = host


class Health:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def probe(self) -> list[object]:
        return []

    def serving(self) -> tuple[FleetHost, ...]:
        return self.engines.fleet.with_role("app")

    def known(self, name: str) -> bool:
        return any(h.name == name for h in self.serving())

    def health(self, name: str) -> HostHealth:
        return HostHealth(host=name, status="up" if self.known(name) else "down", since=0.0)


def _runtime(tmp_path: Path) -> tuple[FleetRuntime, Engines]:
    engines = Engines()
    runtime = FleetRuntime(
        engines,  # type: ignore[arg-type]
        Health(engines),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        hosts_file=tmp_path / "fleet-hosts.json",
    )
    return runtime, engines


def test_the_hosts_running_replicas_are_remembered_with_their_connection(tmp_path: Path) -> None:
    runtime, engines = _runtime(tmp_path)
    runtime.list_replicas("p")
    known = read_hosts(tmp_path / "fleet-hosts.json")
    assert sorted(known) == ["h1", "h3"]  # h2 runs nothing of the project
    assert known["h1"].replicas == ("web-1-1",)
    runtime.remember("h2")  # a service address, a network or its HAProxy there
    runtime.remember("e1")  # not an app host: nothing of the project runs there
    known = read_hosts(tmp_path / "fleet-hosts.json")
    assert sorted(known) == ["h1", "h2", "h3"]
    assert (known["h2"].host.user, known["h2"].host.port, known["h2"].host.key) == (
        "deploy",
        2222,
        "/k2",
    )
    assert runtime.leaving() == ()
    engines.engines["h1"].replicas = []  # its replica moved: h1 still remembered, running none
    runtime.list_replicas("p")
    known = read_hosts(tmp_path / "fleet-hosts.json")
    assert sorted(known) == ["h1", "h2", "h3"] and known["h1"].replicas == ()


def test_a_host_taken_out_of_the_inventory_is_reached_as_remembered(tmp_path: Path) -> None:
    runtime, engines = _runtime(tmp_path)
    runtime.list_replicas("p")
    engines.fleet = Fleet(hosts=(HOSTS[0], HOSTS[1]))  # conveyor.yaml without h3
    (left,) = runtime.leaving()
    assert (left.name, left.address, left.key) == ("h3", "10.0.0.3", "/k3")
    assert [r.replica for r in runtime.list_replicas("p")] == ["web-1-1"]  # not observed
    found, volumes = runtime.on_left_host(left, "p")
    assert [(r.replica, r.host) for r in found] == [("web-1-3", "h3")]
    assert volumes == ["p_data"]
    # The executor's stop reaches it there (a host out of the fleet is otherwise skipped).
    assert runtime.stop("c-web-1-3", "SIGTERM", 1) == 0
    assert engines.engines["h3"].stopped == ["c-web-1-3"]
    runtime.forget_host("h3")
    assert runtime.leaving() == ()


def test_nothing_is_remembered_without_a_file(tmp_path: Path) -> None:
    engines = Engines()
    runtime = FleetRuntime(engines, Health(engines), None)  # type: ignore[arg-type]
    runtime.list_replicas("p")
    assert runtime.remembered() == {} and runtime.leaving() == ()
