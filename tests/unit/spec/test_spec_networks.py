"""Networks and ports from good/networks.yaml: what project networking runs on."""

from __future__ import annotations

from pathlib import Path

from conveyor.model.stack import Network, PortSpec, ServiceNetwork
from conveyor.spec import load_stack

GOOD = Path(__file__).parent / "good"


def test_networks_in_use_with_their_settings() -> None:
    stack = load_stack(GOOD / "networks.yaml", environ={})
    # `unused` is declared but no service is on it: Compose does not create it either
    assert stack.networks == {
        "backend": Network(
            name="backend",
            internal=True,
            subnet="10.213.250.0/24",
            labels={"com.example.tier": "data"},
            # Where `internal: true` is written (a fleet refuses to publish from there).
            file=str(GOOD / "networks.yaml"),
            line=37,
        ),
        "default": Network(name="default"),
    }


def test_attachments_aliases_and_host_networking() -> None:
    services = load_stack(GOOD / "networks.yaml", environ={}).services
    assert services["app"].networks == {"default": ServiceNetwork(), "backend": ServiceNetwork()}
    assert services["db"].networks == {"backend": ServiceNetwork(aliases=("database", "pg"))}
    assert services["dns"].networks == {"default": ServiceNetwork()}  # Compose's default
    assert services["worker"].networks == {"backend": ServiceNetwork()}
    agent = services["agent"]
    assert (agent.networking, agent.networks) == ("host", {})
    assert {s.networking for n, s in services.items() if n != "agent"} == {"project"}


def test_ports_short_long_ranges_and_host_ips() -> None:
    app = load_stack(GOOD / "networks.yaml", environ={}).services["app"]
    assert app.ports == (
        PortSpec(target=3000, published=3000),
        PortSpec(target=22, published=2222, host_ip="127.0.0.1"),
        PortSpec(target=3000, published=3001, host_ip="::1"),
        PortSpec(target=9100, published=9100, host_ip="127.0.0.1", app_protocol="http"),
        PortSpec(target=8000, published=8000),
        PortSpec(target=8001, published=8001),
        PortSpec(target=6060, host_ip="127.0.0.1"),  # host IP, no published port
    )
    assert app.served_ports() == (3000, 22, 9100, 8000, 8001, 6060)
    assert app.http_ports() == {3000, 9100}
    assert (app.routing.port, app.routing.public_port) == (3000, 3000)


def test_expose_and_udp() -> None:
    services = load_stack(GOOD / "networks.yaml", environ={}).services
    db = services["db"]
    assert db.exposed_tcp() == [5432, 9187]
    assert db.served_ports() == (5432, 9187)
    assert db.http_ports() == frozenset()
    dns = services["dns"]
    assert dns.udp_ports() == (
        PortSpec(target=53, published=5353, host_ip="127.0.0.1", protocol="udp"),
    )
    assert dns.served_ports() == (53,)  # TCP 53 goes through HAProxy, UDP 53 through Docker
