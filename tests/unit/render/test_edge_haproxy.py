"""The edge HAProxy: which ports it serves over which app hosts (plan.edge), the rendered
sections (render.edge_haproxy), and every rendered file passes `haproxy -c`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import RouterError
from conveyor.host.validate import check
from conveyor.model.edge import EdgeConfig, EdgePort, EdgeTarget
from conveyor.model.fleet import FleetHost
from conveyor.model.stack import ExposedPort, PortSpec, Probe, Routing, Service, Stack
from conveyor.plan.edge import edge_config
from conveyor.render.edge_haproxy import VALIDATOR, render_edge

HAPROXY = shutil.which("haproxy")
HOSTS = [
    FleetHost(name="h1", address="10.9.0.11"),
    FleetHost(name="h2", address="10.9.0.12"),
]
STACK = Stack(
    project="shop",
    file="/srv/shop/compose.yaml",
    services={
        "web": Service(
            name="web",
            networking="project",
            ports=(PortSpec(target=8000, published=8080),),
            routing=Routing(port=8000, probe=Probe(path="/healthz")),
        ),
        "db": Service(
            name="db",
            networking="project",
            ports=(PortSpec(target=5432, published=15432), PortSpec(target=9, protocol="udp")),
        ),
        "worker": Service(name="worker", networking="project"),
        "legacy": Service(name="legacy", ports=(PortSpec(target=3000, published=3000),)),
    },
)


def sections(text: str) -> dict[str, list[str]]:
    """Section header -> its lines, stripped; comments and blank lines left out."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            current.append(line.strip())
        else:
            current = result.setdefault(line, [])
    return result


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cve-", dir="/tmp"))  # short: socket path limit
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_every_published_tcp_port_over_every_app_host() -> None:
    config = edge_config(STACK, HOSTS, listen_address="127.0.0.1")
    assert [(p.service, p.port, p.mode, p.check_path) for p in config.ports] == [
        ("db", 15432, "tcp", None),
        ("legacy", 3000, "http", None),
        ("web", 8080, "http", "/healthz"),
    ]
    web = config.ports[2]
    assert web.address == "127.0.0.1"
    assert web.targets == (
        EdgeTarget(host="h1", address="10.9.0.11", port=8080),
        EdgeTarget(host="h2", address="10.9.0.12", port=8080),
    )


CHECKS = "inter 1000ms fastinter 50ms fall 2 rise 2 observe layer4 error-limit 1 on-error fastinter"


def test_render_sections() -> None:
    rendered = sections(render_edge(edge_config(STACK, HOSTS, stats_port=18099), Path("/run/e")))
    assert rendered["global"] == [
        "stats socket /run/e/admin.sock mode 600 level admin expose-fd listeners",
        "pidfile /run/e/haproxy.pid",
        # Dumped before each reload: app hosts keep their checks' verdicts across it.
        "server-state-file /run/e/servers.state",
        "hard-stop-after 30s",
    ]
    assert rendered["defaults"] == [
        "mode http",
        "retries 3",
        "option redispatch 1",
        "retry-on conn-failure empty-response 503",
        "timeout connect 1s",
        "timeout client 30s",
        "timeout server 30s",
        "timeout check 3s",
        "load-server-state-from-file global",
    ]
    assert rendered["frontend fe_web_8080"] == [
        "bind 0.0.0.0:8080",
        "option forwardfor",
        "default_backend be_web_8080",
    ]
    assert rendered["backend be_web_8080"] == [
        "balance roundrobin",
        "option httpchk GET /healthz",
        "http-check expect status 200-399",
        f"default-server check {CHECKS}",
        "server h1 10.9.0.11:8080",
        "server h2 10.9.0.12:8080",
    ]
    assert rendered["frontend fe_db_15432"] == [
        "bind 0.0.0.0:15432",
        "mode tcp",
        "timeout client 1h",
        "default_backend be_db_15432",
    ]
    assert rendered["backend be_db_15432"] == [
        "mode tcp",
        "timeout server 1h",
        "balance roundrobin",
        f"default-server check {CHECKS}",
        "server h1 10.9.0.11:15432",
        "server h2 10.9.0.12:15432",
    ]
    assert rendered["frontend stats"] == [
        "bind 127.0.0.1:18099",
        "stats enable",
        "stats uri /stats",
    ]
    # Ports in order; the worker publishes nothing.
    assert [s for s in rendered if s.startswith("frontend fe_")] == [
        "frontend fe_legacy_3000",
        "frontend fe_web_8080",
        "frontend fe_db_15432",
    ]


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
@pytest.mark.parametrize("hosts", [HOSTS, HOSTS[:1], []], ids=["two hosts", "one", "none"])
def test_rendered_edge_passes_haproxy_check(hosts: list[FleetHost], run_dir: Path) -> None:
    config = edge_config(STACK, hosts, listen_address="127.0.0.1", stats_port=18099)
    file = run_dir / "edge.cfg"
    file.write_text(render_edge(config, run_dir))
    verdict = check(VALIDATOR, file)
    assert verdict.ok, verdict.output


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
def test_haproxy_check_can_fail(run_dir: Path) -> None:
    """The check above means something: HAProxy rejects a broken edge file."""
    file = run_dir / "edge.cfg"
    file.write_text(render_edge(EdgeConfig(), run_dir) + "\nbackend x\n    server a nowhere:0:0\n")
    assert not check(VALIDATOR, file).ok


def _port(service: str, port: int, **more: object) -> EdgePort:
    return EdgePort.model_validate({"service": service, "port": port, **more})


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ((_port("web", 80), _port("api", 80)), "published port 80 is used by both"),
        ((_port("my web", 80),), "service name 'my web'"),
        ((_port("web", 80, targets=[{"host": "a;b", "address": "x", "port": 1}]),), "server"),
        ((_port("web", 80, mode="http", check_path="/a b"),), "check path"),
    ],
    ids=["same port", "space in service", "semicolon in host", "space in path"],
)
def test_invalid_edge_is_refused(ports: tuple[EdgePort, ...], message: str) -> None:
    with pytest.raises(RouterError, match=message):
        render_edge(EdgeConfig(ports=ports), Path("/run/e"))


FRONTENDS = Stack(
    project="shop",
    file="/srv/shop/compose.yaml",
    services={
        # x-conveyor.public_port, no `ports:` (examples/shop's gateway).
        "gateway": Service(
            name="gateway",
            networking="project",
            routing=Routing(port=8000, public_port=8080, probe=Probe(path="/health")),
        ),
        # A port Conveyor assigns (Engine.frontend_ports), no file names it.
        "catalog": Service(
            name="catalog",
            networking="project",
            routing=Routing(port=8000, probe=Probe(path="/ready")),
        ),
        # TCP: served as TCP, checked by a connect.
        "db": Service(name="db", networking="project", expose=(ExposedPort(port=5432),)),
        # Host networking: its stable port is served in HTTP mode.
        "legacy": Service(name="legacy", routing=Routing(port=3000, probe=Probe(path="/ok"))),
        # public_port and a `ports:` entry for the same number: one listener, the entry's.
        "web": Service(
            name="web",
            networking="project",
            ports=(PortSpec(target=8000, published=8090),),
            routing=Routing(port=8000, public_port=8090, probe=Probe(path="/healthz")),
        ),
        "worker": Service(name="worker", networking="project"),  # not routed
    },
)
ASSIGNED = {"gateway": 8080, "catalog": 21001, "db": 21002, "legacy": 21003, "web": 8090}


def test_every_routed_services_frontend_port_over_every_app_host() -> None:
    config = edge_config(FRONTENDS, HOSTS, frontends=ASSIGNED, listen_address="127.0.0.1")
    assert [(p.service, p.port, p.mode, p.check_path, p.address) for p in config.ports] == [
        ("catalog", 21001, "http", "/ready", "127.0.0.1"),
        ("db", 21002, "tcp", None, "127.0.0.1"),
        ("gateway", 8080, "http", "/health", "127.0.0.1"),
        ("legacy", 21003, "http", "/ok", "127.0.0.1"),
        ("web", 8090, "http", "/healthz", "127.0.0.1"),  # once
    ]
    assert config.ports[2].targets == (
        EdgeTarget(host="h1", address="10.9.0.11", port=8080),
        EdgeTarget(host="h2", address="10.9.0.12", port=8080),
    )


def test_an_edge_host_serves_assigned_ports_on_its_own_loopback_only() -> None:
    """What no file names is on 127.0.0.1 on one host: an edge host does not open it to
    whoever reaches it; public_port and published ports are served on every address."""
    config = edge_config(FRONTENDS, HOSTS, frontends=ASSIGNED, assigned_address="127.0.0.1")
    assert {p.service: p.address for p in config.ports} == {
        "catalog": "127.0.0.1",
        "db": "127.0.0.1",
        "gateway": "0.0.0.0",
        "legacy": "127.0.0.1",
        "web": "0.0.0.0",
    }


def test_without_the_routers_ports_the_files_public_ports_are_served() -> None:
    """Provisioning's first edge file has no router yet: public_port is in the file."""
    config = edge_config(FRONTENDS, HOSTS)
    assert [(p.service, p.port) for p in config.ports] == [("gateway", 8080), ("web", 8090)]


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
def test_an_edge_with_frontend_ports_passes_haproxy_check(run_dir: Path) -> None:
    config = edge_config(FRONTENDS, HOSTS, frontends=ASSIGNED, assigned_address="127.0.0.1")
    file = run_dir / "edge.cfg"
    file.write_text(render_edge(config, run_dir))
    verdict = check(VALIDATOR, file)
    assert verdict.ok, verdict.output
