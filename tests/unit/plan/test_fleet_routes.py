"""plan.fleet_routes: each app host's HAProxy lists every replica fleet-wide (its own by their
local address, the others by host address and published port), rendered by the router's
own renderer, which `haproxy -c` accepts."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from conveyor.host.validate import check
from conveyor.model.endpoint import Endpoint
from conveyor.model.routing import Bind, Frontend, Listener, RouterConfig
from conveyor.plan.fleet_routes import FleetReplica, fleet_router_config, host_shape
from conveyor.plan.routes import Namespace
from conveyor.render.haproxy import VALIDATOR, render

CONFIG = RouterConfig(
    frontends=(
        Frontend(service="db", port=18432, mode="tcp", target=5432),
        Frontend(service="web", port=18080),
    )
)
REPLICAS = [
    FleetReplica(
        service="db",
        replica="db-1-1",
        host="h2",
        local=Endpoint(host="10.213.0.7", port=5432),
        remote=Endpoint(host="10.9.0.12", port=32801),
    ),
    FleetReplica(
        service="web",
        replica="web-1-1",
        host="h1",
        local=Endpoint.loopback(20001),
        remote=Endpoint(host="10.9.0.11", port=20001),
    ),
    FleetReplica(
        service="web",
        replica="web-1-2",
        host="h2",
        local=Endpoint.loopback(20002),
        remote=Endpoint(host="10.9.0.12", port=20002),
    ),
    # Publishes nothing: reachable on its own host only.
    FleetReplica(service="web", replica="web-1-3", host="h2", local=Endpoint.loopback(20003)),
]


def servers(config: RouterConfig) -> dict[str, list[str]]:
    return {f.service: [f"{s.name} {s.endpoint}" for s in f.servers] for f in config.frontends}


def test_each_host_lists_every_replica_its_own_way() -> None:
    assert servers(fleet_router_config(CONFIG, REPLICAS, "h1")) == {
        "db": ["db-1-1 10.9.0.12:32801"],
        "web": ["web-1-1 127.0.0.1:20001", "web-1-2 10.9.0.12:20002"],
    }
    assert servers(fleet_router_config(CONFIG, REPLICAS, "h2")) == {
        "db": ["db-1-1 10.213.0.7:5432"],
        "web": ["web-1-1 10.9.0.11:20001", "web-1-2 127.0.0.1:20002", "web-1-3 127.0.0.1:20003"],
    }


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
@pytest.mark.parametrize("host", ["h1", "h2"])
def test_the_routers_renderer_renders_it_and_haproxy_accepts_it(host: str) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="cvf-", dir="/tmp"))
    try:
        text = render(fleet_router_config(CONFIG, REPLICAS, host), run_dir)
        if host == "h1":
            assert "server db-1-1 10.9.0.12:32801 check" in text
        file = run_dir / "haproxy.cfg"
        file.write_text(text)
        verdict = check(VALIDATOR, file)
        assert verdict.ok, verdict.output
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _binds(config: RouterConfig, service: str) -> list[str]:
    [frontend] = [f for f in config.frontends if f.service == service]
    return [f"{frontend.address}:{frontend.port}"] + [
        f"{b.address}:{b.port}" + (f" in {b.namespace}" if b.namespace else "")
        for b in frontend.binds
    ]


def test_a_host_binds_what_one_host_binds_on_loopback_on_its_fleet_address_too() -> None:
    """The stable frontend (public_port or assigned) and a port published on 127.0.0.1 get a
    twin on the host's fleet address, where the edge reaches them; what is bound on every
    address, or inside a namespace, is left as it is."""
    config = RouterConfig(
        frontends=(
            Frontend(
                service="web",
                port=8080,
                binds=(Bind(address="127.0.0.1", port=9090), Bind(port=80, namespace="cv-w")),
                listeners=(Listener(port=9000, binds=(Bind(address="127.0.0.1", port=19000),)),),
            ),
            Frontend(service="shop", port=8081, address="0.0.0.0"),  # `ports: ["8081:8000"]`
        )
    )
    shaped = host_shape(
        config, {"web": Namespace(name="cv-w2", netns="/proc/1/ns/net")}, "10.9.0.11"
    )
    assert _binds(shaped, "web") == [
        "127.0.0.1:8080",
        "10.9.0.11:8080",
        "127.0.0.1:9090",
        "0.0.0.0:80 in cv-w2",
        "10.9.0.11:9090",
    ]
    [web] = [f for f in shaped.frontends if f.service == "web"]
    [listener] = web.listeners
    assert [f"{b.address}:{b.port}" for b in listener.binds] == [
        "127.0.0.1:19000",
        "10.9.0.11:19000",
    ]
    assert _binds(shaped, "shop") == ["0.0.0.0:8081"]
    # No address (as before), or a host whose fleet address is this machine's loopback.
    for address in (None, "127.0.0.1"):
        assert _binds(host_shape(config, {}, address), "web") == [
            "127.0.0.1:8080",
            "127.0.0.1:9090",
        ]
    render(shaped, Path("/run/r"))  # the renderer's own checks accept both addresses of a port
