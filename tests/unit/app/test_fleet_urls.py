"""What `up` prints as the services' URLs: on one host where HAProxy binds each port, on a
fleet the edge's address (every published and stable frontend port is served there), and
nothing that would point at a port nobody serves."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from conveyor.app.deploy import urls
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import PortSpec, Probe, Routing, Service, Stack
from conveyor.router.fleet import FleetRouter
from conveyor.router.haproxy import HAProxyRouter

STACK = Stack(
    project="shop",
    file="compose.yaml",
    services={
        "gateway": Service(
            name="gateway",
            networking="project",
            routing=Routing(port=8000, public_port=8080, probe=Probe(path="/health")),
        ),
        "catalog": Service(
            name="catalog", networking="project", routing=Routing(port=8000, probe=Probe())
        ),
        "admin": Service(
            name="admin",
            networking="project",
            ports=(PortSpec(target=9000, published=9090, app_protocol="http"),),
        ),
    },
)
RELEASE = Release(
    number=1,
    project="shop",
    stack=STACK,
    services={
        n: ServiceRelease(service=s, image_id="sha256:1", image_ref=n)
        for n, s in STACK.services.items()
    },
)
APP = (FleetHost(name="h1", address="10.0.0.1"), FleetHost(name="h2", address="10.0.0.2"))


def _engine(router: Any) -> Any:
    ports = SimpleNamespace(
        frontend_ports=lambda: {"gateway": 8080, "catalog": 21001, "admin": 21002},
        stats_port=lambda: 21000,
    )
    store = SimpleNamespace(current_release=lambda: RELEASE, ports=ports)
    return SimpleNamespace(store=store, router=router)


def _urls(router: Any) -> dict[str, str]:
    return {u.name: u.url for u in urls(_engine(router))}


def test_one_host_shows_each_port_where_haproxy_binds_it(tmp_path: Path) -> None:
    assert _urls(HAProxyRouter(tmp_path)) == {
        "gateway": "http://127.0.0.1:8080/",
        "catalog": "http://127.0.0.1:21001/",
        "admin": "http://127.0.0.1:9090/",
        "haproxy stats": "http://127.0.0.1:21000/stats",
    }


def test_a_fleet_shows_the_edges_address(tmp_path: Path) -> None:
    local = FleetRouter(
        Fleet(hosts=APP), tmp_path / "a", STACK, lambda: (), edge_address="10.0.0.9"
    )
    assert _urls(local) == {
        "gateway": "http://10.0.0.9:8080/",
        "catalog": "http://10.0.0.9:21001/",
        "admin": "http://10.0.0.9:9090/",
        # No stats page on this machine: each app host has its own, on its loopback.
    }
    edge = FleetHost(name="e1", address="10.0.1.1", roles=("edge",))
    hosts = FleetRouter(Fleet(hosts=(*APP, edge)), tmp_path / "b", STACK, lambda: ())
    # catalog's assigned port is on the edge host's loopback only: not shown.
    assert _urls(hosts) == {"gateway": "http://10.0.1.1:8080/", "admin": "http://10.0.1.1:9090/"}
    alb = FleetRouter(Fleet(hosts=APP), tmp_path / "c", STACK, lambda: (), external_edge=True)
    assert _urls(alb) == {}  # the load balancer's DNS name is the AWS stack's output
