"""What HAProxy serves for a service, under host networking and under project networks."""

from __future__ import annotations

from conveyor.model.routing import Bind, Listener
from conveyor.model.stack import ExposedPort, PortSpec, Probe, Routing, Service, ServiceNetwork
from conveyor.plan.routes import Namespace, frontend_for

NS = Namespace(name="cv-p-db-0123", netns="/var/run/docker/netns/abc")
ON_DEFAULT = {"default": ServiceNetwork()}


def test_host_networking_frontend_is_todays() -> None:
    svc = Service(name="web", routing=Routing(port=8000, probe=Probe(path="/health")))
    fe = frontend_for("web", svc, 18100, NS)
    assert (fe.address, fe.port, fe.mode, fe.target) == ("127.0.0.1", 18100, "http", None)
    assert fe.check_path == "/health"
    assert fe.binds == () and fe.listeners == ()


def test_host_networking_honours_the_published_host_ip() -> None:
    svc = Service(
        name="web",
        routing=Routing(port=8000, public_port=8080),
        ports=(PortSpec(target=8000, published=8080, host_ip="0.0.0.0"),),
    )
    assert frontend_for("web", svc, 8080, None).address == "0.0.0.0"


def test_project_tcp_service_binds_in_its_namespace_and_on_published_ports() -> None:
    svc = Service(
        name="db",
        networking="project",
        networks=ON_DEFAULT,
        ports=(
            PortSpec(target=5432, published=15432, host_ip="127.0.0.1"),
            PortSpec(target=5432, published=25432),
            PortSpec(target=9187),  # not published: served by name only
        ),
        expose=(ExposedPort(port=5433),),
    )
    fe = frontend_for("db", svc, 18200, NS)
    # the stable frontend stays on loopback: no published port is the stable one
    assert (fe.address, fe.port, fe.mode, fe.target, fe.check_path) == (
        "127.0.0.1",
        18200,
        "tcp",
        5432,
        None,
    )
    inside = Bind(port=5432, namespace=NS.name, netns=NS.netns)
    assert fe.binds == (
        inside,
        Bind(address="127.0.0.1", port=15432),
        Bind(address="0.0.0.0", port=25432),
    )
    assert fe.listeners == (
        Listener(
            port=9187, mode="tcp", binds=(Bind(port=9187, namespace=NS.name, netns=NS.netns),)
        ),
        Listener(
            port=5433, mode="tcp", binds=(Bind(port=5433, namespace=NS.name, netns=NS.netns),)
        ),
    )
    assert fe.namespaces() == {NS.name: NS.netns}


def test_project_http_port_is_the_stable_frontend_when_published() -> None:
    svc = Service(
        name="web",
        networking="project",
        networks=ON_DEFAULT,
        routing=Routing(port=8000, public_port=8080, probe=Probe(path="/health")),
        ports=(
            PortSpec(target=8000, published=8080),
            PortSpec(target=9000, published=9000, app_protocol="http"),
        ),
    )
    fe = frontend_for("web", svc, 8080, NS)
    # Compose's default host IP: every interface; not bound twice
    assert (fe.address, fe.port, fe.mode, fe.check_path) == ("0.0.0.0", 8080, "http", "/health")
    assert fe.binds == (Bind(port=8000, namespace=NS.name, netns=NS.netns),)
    (metrics,) = fe.listeners
    assert (metrics.port, metrics.mode) == (9000, "http")
    assert metrics.binds[-1] == Bind(address="0.0.0.0", port=9000)


def test_probe_without_a_port_uses_the_default_app_port() -> None:
    svc = Service(
        name="api", networking="project", networks=ON_DEFAULT, routing=Routing(probe=Probe())
    )
    assert svc.app_port() == 8000
    fe = frontend_for("api", svc, 18300, None)
    assert (fe.target, fe.mode, fe.check_path, fe.binds) == (8000, "http", "/health", ())


def test_udp_ports_are_not_served_by_haproxy() -> None:
    svc = Service(
        name="dns",
        networking="project",
        networks=ON_DEFAULT,
        ports=(PortSpec(target=53, published=53, protocol="udp"), PortSpec(target=53)),
    )
    fe = frontend_for("dns", svc, 18400, NS)
    assert (fe.target, fe.mode) == (53, "tcp")
    assert fe.binds == (Bind(port=53, namespace=NS.name, netns=NS.netns),)
    assert svc.udp_ports() == (PortSpec(target=53, published=53, protocol="udp"),)
