"""The deploy engine on project networks, with in-memory runtime and router fakes: networks
and service addresses made before replicas, HAProxy bound inside each address's namespace,
replicas told where their peers are by name, heals of a lost address, and `down`. The same
paths run on dockerd and HAProxy in tests/integration/deploy/test_project_networks.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Subject
from conveyor.model.release import ObservedAddress, Release, ServiceRelease
from conveyor.model.routing import Bind
from conveyor.model.stack import (
    ExposedPort,
    Healthcheck,
    Network,
    PortSpec,
    Routing,
    Service,
    ServiceNetwork,
    Stack,
)
from conveyor.plan.network import SubnetPool
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime

CHECK = Healthcheck(test=("CMD", "true"))


def release(version: str = "1") -> Release:
    db = Service(
        name="db",
        image="postgres",
        healthcheck=CHECK,
        networking="project",
        networks={"backend": ServiceNetwork(aliases=("database",))},
        expose=(ExposedPort(port=5432),),
    )
    web = Service(
        name="web",
        image="web",
        environment={"V": version},
        healthcheck=CHECK,
        replicas=2,
        networking="project",
        networks={"default": ServiceNetwork(), "backend": ServiceNetwork()},
        routing=Routing(port=8000, public_port=8080),  # as the spec derives it from `ports:`
        ports=(PortSpec(target=8000, published=8080, host_ip="127.0.0.1"),),
    )
    services = {"db": db, "web": web}
    return Release(
        number=0,
        project="p",
        services={
            n: ServiceRelease(service=s, image_id=f"sha256:{n}{version}", image_ref=n)
            for n, s in services.items()
        },
        stack=Stack(
            project="p",
            file="/x/compose.yaml",
            services=services,
            networks={
                "default": Network(name="default"),
                "backend": Network(name="backend", internal=True),
            },
        ),
    )


@pytest.fixture
def world(tmp_path: Path) -> tuple[Engine, FakeRuntime, FakeRouter]:
    runtime, router = FakeRuntime(), FakeRouter()
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    timeline = Timeline(Subject(project="p", environment="p"), store.events)
    pool = SubnetPool.parse("10.99.0.0/16")
    engine = Engine(paths, runtime, router, store, timeline, pool=pool)
    assert engine.apply(release(), "up").status == "succeeded"
    return engine, runtime, router


def address_of(runtime: FakeRuntime, service: str) -> ObservedAddress:
    return next(a for a in runtime.addresses.values() if a.service == service)


def test_up_creates_networks_from_the_pool(world: tuple[Engine, FakeRuntime, FakeRouter]) -> None:
    _, runtime, _ = world
    assert {n: net.subnet for n, net in runtime.networks.items()} == {
        "p_backend": "10.99.0.0/24",
        "p_default": "10.99.1.0/24",
    }


def test_replicas_run_in_their_own_namespaces_and_find_peers_by_name(
    world: tuple[Engine, FakeRuntime, FakeRouter],
) -> None:
    _, runtime, _ = world
    (db,) = runtime.running("db")
    web = runtime.running("web")
    # the service's name belongs to its address: replicas get no alias
    assert db.networks == {"p_backend": ()}
    assert {w.replica: w.networks for w in web} == {
        "web-1-1": {"p_backend": (), "p_default": ()},
        "web-1-2": {"p_backend": (), "p_default": ()},
    }
    assert (db.port, db.env["PORT"], db.env["HOST"]) == (5432, "5432", "0.0.0.0")
    assert all(w.port == 8000 and w.env["PORT"] == "8000" for w in web)
    # web shares `backend` with db: told to call db:5432; db shares nothing with web's
    # default network, but web is on backend too
    assert (web[0].env["DB_SERVICE_HOST"], web[0].env["DB_SERVICE_PORT"]) == ("db", "5432")
    assert db.env["WEB_SERVICE_HOST"] == "web"
    # names resolve from /etc/hosts to each service address's stable slot (db got slot 0 in
    # p_backend, 10.99.0.0/24: static half from .128; web slot 1), with no Docker DNS
    assert web[0].extra_hosts == {
        "db": "10.99.0.128",
        "database": "10.99.0.128",
        "web": "10.99.0.129",
    }
    assert db.extra_hosts == {"db": "10.99.0.128", "database": "10.99.0.128", "web": "10.99.0.129"}


def test_haproxy_listens_inside_each_service_address(
    world: tuple[Engine, FakeRuntime, FakeRouter],
) -> None:
    _, runtime, router = world
    assert router.config is not None
    fes = {f.service: f for f in router.config.frontends}
    db_address, web_address = address_of(runtime, "db"), address_of(runtime, "web")
    assert db_address.spec_hash and web_address.netns
    db_ns = f"cv-p-db-{db_address.container_id}"
    assert fes["db"].mode == "tcp" and fes["db"].target == 5432
    assert fes["db"].binds == (
        Bind(port=5432, namespace=db_ns, netns=f"/var/run/docker/netns/{db_address.container_id}"),
    )
    # the published port is the stable frontend, on the host IP it names
    assert (fes["web"].mode, fes["web"].address, fes["web"].port) == ("http", "127.0.0.1", 8080)
    assert [(b.address, b.port, b.namespace is not None) for b in fes["web"].binds] == [
        ("0.0.0.0", 8000, True)
    ]
    # servers are the replicas' own addresses
    assert {s.endpoint.host for s in router.backends["web"].values()} <= {
        f"10.213.0.{i}" for i in range(2, 252)
    }


def test_rolling_update_keeps_the_address_and_haproxy_shape(
    world: tuple[Engine, FakeRuntime, FakeRouter],
) -> None:
    engine, runtime, _ = world
    before = address_of(runtime, "web").container_id
    plan = engine.plan(engine.build_release(release("2").stack))
    kinds = {s.kind for s in plan.steps}
    assert kinds == {"start", "await", "route", "drain", "unroute", "stop"}
    assert engine.apply(release("2"), "deploy").status == "succeeded"
    assert address_of(runtime, "web").container_id == before
    assert {r.env["V"] for r in runtime.running("web")} == {"2"}


def test_a_lost_service_address_is_restarted_and_haproxy_rebound(
    world: tuple[Engine, FakeRuntime, FakeRouter],
) -> None:
    engine, runtime, router = world
    lost = address_of(runtime, "db")
    runtime.addresses[lost.container_id] = lost.model_copy(update={"running": False})
    steps = [s.kind for s in engine.heal_plan().steps]
    assert steps == ["address", "frontends"]
    outcome = engine.heal()
    assert outcome is not None and outcome.status == "succeeded"
    new = address_of(runtime, "db")
    assert new.container_id != lost.container_id
    assert router.config is not None
    (db,) = (f for f in router.config.frontends if f.service == "db")
    assert db.binds[0].namespace == f"cv-p-db-{new.container_id}"
    assert engine.heal_plan().empty


def test_down_removes_addresses_and_networks(
    world: tuple[Engine, FakeRuntime, FakeRouter],
) -> None:
    engine, runtime, _ = world
    assert engine.down().status == "succeeded"
    assert runtime.containers == {}
    assert runtime.addresses == {}
    assert runtime.networks == {}


def test_image_exposed_ports_are_served_when_the_file_names_none(tmp_path: Path) -> None:
    runtime, router = FakeRuntime(), FakeRouter()
    runtime.image_ports["sha256:pg"] = (5432,)
    runtime.image_ports["sha256:web"] = (8000, 9090)
    runtime.image_ports["sha256:legacy"] = (7000,)
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    engine = Engine(paths, runtime, router, store, Timeline(Subject(project="p"), store.events))
    on = {"default": ServiceNetwork()}
    stack = Stack(
        project="p",
        file=str(tmp_path / "compose.yaml"),
        services={
            # an image you did not write: the compose entry names no port (as for postgres)
            "db": Service(name="db", image="pg", networking="project", networks=on),
            "web": Service(
                name="web",
                image="web",
                networking="project",
                networks=on,
                routing=Routing(port=8000),
            ),
            "legacy": Service(name="legacy", image="legacy"),  # host networking: as written
        },
        networks={"default": Network(name="default")},
    )
    built = engine.build_release(stack)
    served = {n: sr.service.served_ports() for n, sr in built.services.items()}
    assert served == {"db": (5432,), "web": (8000, 9090), "legacy": ()}
    # the release's stack is what plans read (service addresses, HAProxy binds)
    assert built.stack.services["db"].served_ports() == (5432,)
    assert list(built.stack.services) == ["db", "web", "legacy"]
