"""A fleet's ports, with in-memory fakes: every port of a project-networking replica is
observed at its host's address and published port (`deploy.fleet_runtime.reachable`), the
executor hands those ports to the router with the server (each further backend reaches it
there), and a host-networking replica's port comes from the fleet's picker (free on the
replica's host), not from this machine (docs/fleet.md, "Addresses")."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conveyor.deploy import fleet_runtime
from conveyor.deploy.engine import Engine
from conveyor.deploy.fleet_runtime import FleetRuntime, reachable
from conveyor.deploy.ports import REPLICA_RANGE, pick_port
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import RuntimeAdapterError
from conveyor.model.endpoint import Endpoint
from conveyor.model.events import Subject
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.release import ObservedReplica, Release, ServiceRelease
from conveyor.model.stack import (
    ExposedPort,
    Healthcheck,
    Network,
    Routing,
    Service,
    ServiceNetwork,
    Stack,
)
from conveyor.plan.network import SubnetPool
from conveyor.runtime.docker_engine import published_tcp
from conveyor.runtime.protocol import ReplicaRun
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeContainer, FakeRouter, FakeRuntime

H2 = FleetHost(name="h2", address="10.9.0.12")
CHECK = Healthcheck(test=("CMD", "true"))


def observed(endpoint: Endpoint, published: dict[int, int]) -> ObservedReplica:
    return ObservedReplica(
        replica="db-1-1",
        service="db",
        container_id="c1",
        spec_hash="s",
        release=1,
        endpoint=endpoint,
        running=True,
        published_ports=published,
    )


def test_a_project_replica_is_reached_at_its_hosts_address_on_every_published_port() -> None:
    seen = reachable(
        H2, observed(Endpoint(host="10.213.0.7", port=5432), {5432: 32801, 9187: 32802})
    )
    assert (seen.host, seen.endpoint) == ("h2", Endpoint(host="10.9.0.12", port=32801))
    assert seen.published_ports == {5432: 32801, 9187: 32802}


def test_a_replica_whose_main_port_is_not_published_keeps_its_own_address() -> None:
    # (An internal-only network: Docker published nothing, or only another port.)
    seen = reachable(H2, observed(Endpoint(host="10.213.0.7", port=5432), {9187: 32802}))
    assert seen.endpoint == Endpoint(host="10.213.0.7", port=5432)
    assert seen.published_ports == {}  # its further ports are not at the host's address either


def test_a_host_networking_replica_is_reached_at_its_hosts_address() -> None:
    seen = reachable(H2, observed(Endpoint.loopback(24001), {}))
    assert seen.endpoint == Endpoint(host="10.9.0.12", port=24001)


class PublishingRuntime(FakeRuntime):
    """Reports replicas as a fleet's runtime does: at their host's address, every TCP port
    published on a host port of its own."""

    def _observed(self, cid: str, c: FakeContainer) -> ObservedReplica:
        mine = super()._observed(cid, c)
        n = int(cid[1:])
        published = {p: 32000 + 10 * n + i for i, p in enumerate(published_tcp(c.req))}
        return reachable(H2, mine.model_copy(update={"published_ports": published}))

    def run(self, req: Any, warn: Any = None) -> str:
        return super().run(req.model_copy(update={"publish_on": H2.address}), warn)


def two_port_release() -> Release:
    db = Service(
        name="db",
        image="postgres",
        healthcheck=CHECK,
        networking="project",
        networks={"default": ServiceNetwork()},
        expose=(ExposedPort(port=5432), ExposedPort(port=9187)),  # the server, an exporter
    )
    web = Service(name="web", image="web", routing=Routing())  # host networking
    services = {"db": db, "web": web}
    return Release(
        number=0,
        project="p",
        services={
            n: ServiceRelease(service=s, image_id=f"sha256:{n}", image_ref=n)
            for n, s in services.items()
        },
        stack=Stack(
            project="p",
            file="/x/compose.yaml",
            services=services,
            networks={"default": Network(name="default")},
        ),
    )


@pytest.fixture
def engine(tmp_path: Path) -> tuple[Engine, FakeRuntime, FakeRouter, list[set[int]]]:
    runtime, router = PublishingRuntime(), FakeRouter()
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    timeline = Timeline(Subject(project="p", environment="p"), store.events)
    asked: list[set[int]] = []

    def picker(replica: str, taken: set[int]) -> int:
        asked.append(set(taken))
        return 24242

    made = Engine(
        paths, runtime, router, store, timeline, pool=SubnetPool.parse("10.99.0.0/16"),
        port_picker=picker,
    )  # fmt: skip
    return made, runtime, router, asked


def test_the_router_gets_every_published_port_of_the_replica(
    engine: tuple[Engine, FakeRuntime, FakeRouter, list[set[int]]],
) -> None:
    up, runtime, router, _ = engine
    assert up.apply(two_port_release(), "up").status == "succeeded"
    [req] = runtime.running("db")
    assert published_tcp(req) == (5432, 9187)  # the main port first, then the exporter's
    server = router.backends["db"]["db-1-1"]
    assert server.endpoint == Endpoint(host="10.9.0.12", port=server.ports[5432])
    assert set(server.ports) == {5432, 9187}
    # the exporter's backend reaches it at its own published port, on its host's address
    assert server.reached_at(9187) == Endpoint(host="10.9.0.12", port=server.ports[9187])
    assert server.ports[9187] != server.ports[5432]


def test_a_host_networking_replica_takes_the_port_the_fleets_picker_gives(
    engine: tuple[Engine, FakeRuntime, FakeRouter, list[set[int]]],
) -> None:
    up, runtime, router, asked = engine
    assert up.apply(two_port_release(), "up").status == "succeeded"
    [web] = runtime.running("web")
    assert (web.port, web.env["PORT"]) == (24242, "24242")
    # told which ports are promised already: the stable frontends among them
    assert router.config is not None
    frontends = {f.port for f in router.config.frontends}
    assert asked and frontends and frontends <= asked[0]


def test_a_fleet_host_port_is_picked_among_those_the_host_does_not_listen_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lo, hi = REPLICA_RANGE
    busy = frozenset(range(lo, hi + 1)) - {25001, 25002}
    asked: list[str] = []

    def listening(host: FleetHost, known_hosts: Path | None = None) -> frozenset[int]:
        asked.append(host.name)
        return busy

    monkeypatch.setattr(fleet_runtime, "listening_ports", listening)
    engines = SimpleNamespace(fleet=Fleet(hosts=(H2,)), known_hosts=None)
    runtime = FleetRuntime(engines, SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    runtime._assigned["web-1-1"] = "h2"
    # 25001 is promised to another replica: only 25002 is left on h2
    assert runtime.pick_port("web-1-1", {25001}) == 25002
    assert asked == ["h2"]  # the host the replica was placed on was asked


def test_pick_port_honours_what_free_says() -> None:
    assert pick_port(set(), (30000, 30009), random.Random(3), free=lambda p: p == 30007) == 30007


class UnpublishedEngine:
    """An engine that started the replica but bound no host port (all its networks internal)."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def inspect(self, cid: str) -> ObservedReplica:
        return observed(Endpoint(host="10.213.0.7", port=5432), {}).model_copy(
            update={"container_id": cid}
        )

    def remove(self, cid: str) -> None:
        self.removed.append(cid)


def test_a_replica_docker_published_nothing_for_is_removed_and_its_step_fails() -> None:
    engines = SimpleNamespace(fleet=Fleet(hosts=(H2,)), known_hosts=None)
    runtime = FleetRuntime(engines, SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    req = ReplicaRun(
        project="p",
        replica="db-1-1",
        release=1,
        spec_hash="s",
        image_id="sha256:x",
        port=5432,
        service=two_port_release().services["db"].service,
        networks={"p_data": ()},
        publish_on=H2.address,
    )
    engine = UnpublishedEngine()
    with pytest.raises(RuntimeAdapterError) as caught:
        runtime._check_published("h2", engine, "c9", req)  # type: ignore[arg-type]
    assert engine.removed == ["c9"]  # unreachable from the other hosts: not kept
    message = str(caught.value)
    assert "replica db-1-1 on h2" in message and "5432/tcp, 9187/tcp" in message
    assert "internal" in message
