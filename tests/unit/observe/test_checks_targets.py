"""observe.checks.targets: what Nagios checks for a project, from its release."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.model.checks import Check, ChecksSettings
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import PortSpec, Probe, Routing, Service, ServiceNetwork, Stack
from conveyor.observe.checks.targets import host_checks, project_checks, through_edge

ON_DEFAULT = {"default": ServiceNetwork()}
SETTINGS = ChecksSettings()


def release(*services: Service) -> Release:
    stack = Stack(project="p", file="/p/compose.yaml", services={s.name: s for s in services})
    return Release(
        number=3,
        project="p",
        stack=stack,
        services={
            s.name: ServiceRelease(service=s, image_id="sha256:0", image_ref=f"p-{s.name}:1")
            for s in services
        },
    )


def names(checks: Sequence[Check]) -> list[str]:
    return [c.name for c in checks]


def of(checks: Sequence[Check], service: str) -> list[Check]:
    return [c for c in checks if c.service == service]


def test_a_host_network_service_has_its_frontend_and_backend_checked() -> None:
    web = Service(name="web", routing=Routing(port=8000, probe=Probe(path="/health")))
    checks = project_checks(release(web), {"web": 18080}, 18999, {}, SETTINGS)
    assert of(checks, "web") == [
        Check(
            name="web http 127.0.0.1:18080",
            kind="http",
            service="web",
            address="127.0.0.1",
            port=18080,
            path="/health",
            scope="frontend",
        ),
        Check(
            name="web haproxy backend", kind="haproxy", service="web", port=18999, backend="be_web"
        ),
    ]


def test_a_project_service_is_checked_where_clients_reach_it() -> None:
    api = Service(
        name="api",
        networking="project",
        networks=ON_DEFAULT,
        routing=Routing(port=8000, probe=Probe(path="/ready")),
        ports=(
            PortSpec(target=8000, published=8080),  # published on every interface
            PortSpec(target=9090, published=19090, host_ip="127.0.0.1"),  # another, TCP
        ),
    )
    checks = project_checks(
        release(api), {"api": 18100}, None, {"api": ["10.213.0.128", "10.213.1.128"]}, SETTINGS
    )
    got = [(c.name, c.kind, c.address, c.port, c.path, c.scope) for c in of(checks, "api")]
    assert got == [
        # the stable frontend on loopback, then what it publishes, reached on loopback
        ("api http 127.0.0.1:18100", "http", "127.0.0.1", 18100, "/ready", "frontend"),
        ("api http 127.0.0.1:8080", "http", "127.0.0.1", 8080, "/ready", "published"),
        ("api tcp 127.0.0.1:19090", "tcp", "127.0.0.1", 19090, None, "published"),
        # its service address on each project network, at every port it serves
        ("api address http 10.213.0.128:8000", "http", "10.213.0.128", 8000, "/ready", "address"),
        ("api address tcp 10.213.0.128:9090", "tcp", "10.213.0.128", 9090, None, "address"),
        ("api address http 10.213.1.128:8000", "http", "10.213.1.128", 8000, "/ready", "address"),
        ("api address tcp 10.213.1.128:9090", "tcp", "10.213.1.128", 9090, None, "address"),
    ]


def test_a_published_port_that_is_the_stable_one_is_checked_once() -> None:
    api = Service(
        name="api",
        networking="project",
        networks=ON_DEFAULT,
        routing=Routing(port=8000, public_port=8080),
        ports=(PortSpec(target=8000, published=8080),),
    )
    checks = project_checks(release(api), {"api": 8080}, None, {}, SETTINGS)
    assert names(of(checks, "api")) == ["api http 127.0.0.1:8080"]


def test_a_tcp_service_gets_tcp_checks() -> None:
    db = Service(
        name="db",
        networking="project",
        networks=ON_DEFAULT,
        ports=(PortSpec(target=5432),),
    )
    checks = project_checks(release(db), {"db": 18200}, None, {"db": ["10.213.0.129"]}, SETTINGS)
    assert [(c.kind, c.address, c.port) for c in of(checks, "db")] == [
        ("tcp", "127.0.0.1", 18200),
        ("tcp", "10.213.0.129", 5432),
    ]


def test_tls_ports_get_a_certificate_check() -> None:
    edge = Service(
        name="edge",
        networking="project",
        networks=ON_DEFAULT,
        routing=Routing(port=8000),
        ports=(
            PortSpec(target=8000),
            PortSpec(target=8443, published=443, app_protocol="https"),
            PortSpec(target=8444, published=8444, host_ip="127.0.0.2", app_protocol="TLS"),
        ),
    )
    checks = project_checks(release(edge), {"edge": 18300}, None, {}, SETTINGS)
    certs = [(c.name, c.address, c.port) for c in checks if c.kind == "certificate"]
    assert certs == [
        ("edge certificate 127.0.0.1:443", "127.0.0.1", 443),
        ("edge certificate 127.0.0.2:8444", "127.0.0.2", 8444),
    ]


def test_services_without_a_frontend_are_not_checked_and_the_host_always_is() -> None:
    worker = Service(name="worker")  # not routed
    web = Service(name="web", routing=Routing(port=8000))
    checks = project_checks(release(worker, web), {}, 18999, {}, SETTINGS)  # web: no port yet
    assert names(checks) == ["docker", "load", "memory", "disk /"]
    assert project_checks(None, {}, None, {}, SETTINGS) == tuple(host_checks(SETTINGS))


def test_disk_paths_from_the_settings() -> None:
    settings = SETTINGS.model_copy(update={"disk_paths": ("/", "/var/lib/docker")})
    disks = [(c.name, c.path) for c in host_checks(settings) if c.kind == "disk"]
    assert disks == [("disk /", "/"), ("disk /var/lib/docker", "/var/lib/docker")]


def test_ipv6_wildcards_are_reached_on_loopback() -> None:
    web = Service(
        name="web",
        networking="project",
        networks=ON_DEFAULT,
        routing=Routing(port=8000),
        ports=(PortSpec(target=8000), PortSpec(target=8000, published=8081, host_ip="::")),
    )
    checks = project_checks(release(web), {"web": 18400}, None, {}, SETTINGS)
    assert "web http [::1]:8081" in names(checks)


def test_on_a_fleet_the_controller_checks_the_ports_at_the_edge() -> None:
    """What examples/shop showed on three test hosts: the service-address checks reached
    whatever had that IP on the controller (a 426 from something else), the backend checks
    asked for stats on the controller's loopback (refused). On a fleet the ports are checked
    at the edge, and what is only on the app hosts is left out."""
    gateway = Service(
        name="gateway",
        networking="project",
        networks=ON_DEFAULT,
        routing=Routing(port=8000, public_port=8080, probe=Probe(path="/health")),
    )
    catalog = Service(
        name="catalog",
        networking="project",
        networks=ON_DEFAULT,
        ports=(PortSpec(target=9000, published=9090),),
        routing=Routing(port=8000, probe=Probe(path="/health")),
    )
    ports = {"gateway": 8080, "catalog": 21001}
    addresses = {"gateway": ["10.213.0.130"], "catalog": ["10.213.0.128"]}
    checks = project_checks(release(gateway, catalog), ports, None, addresses, SETTINGS)
    assert any(c.scope == "address" for c in checks)  # one host checks the addresses
    local = through_edge(checks, "127.0.0.1", {})
    assert names(local) == [
        "catalog http 127.0.0.1:21001",
        "catalog tcp 127.0.0.1:9090",
        "gateway http 127.0.0.1:8080",
        *names(host_checks(SETTINGS)),
    ]
    hosts = through_edge(checks, "10.0.1.1", {21001: None})  # edge hosts: assigned on loopback
    assert names(hosts)[:2] == ["catalog tcp 10.0.1.1:9090", "gateway http 10.0.1.1:8080"]
    assert [c.address for c in hosts if c.service] == ["10.0.1.1", "10.0.1.1"]
    assert names(through_edge(checks, None, {})) == names(host_checks(SETTINGS))  # AWS ALB
