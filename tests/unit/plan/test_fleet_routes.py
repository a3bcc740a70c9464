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
from conveyor.model.routing import Frontend, RouterConfig
from conveyor.plan.fleet_routes import FleetReplica, fleet_router_config
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
