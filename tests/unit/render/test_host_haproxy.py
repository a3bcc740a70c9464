"""render.host_haproxy: the HAProxy configuration provisioning installs on each host (the
router's base on app hosts, the edge's on edge hosts), each passing `haproxy -c`, and the
refusal of a host that is both app and edge."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.host.validate import check
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.stack import PortSpec, Probe, Routing, Service, Stack
from conveyor.render.edge_haproxy import VALIDATOR
from conveyor.render.host_haproxy import app_haproxy_cfg, edge_haproxy_cfg, edge_role_conflicts

HAPROXY = shutil.which("haproxy")
FLEET = Fleet(
    hosts=(
        FleetHost(name="edge1", address="10.9.0.10", roles=("edge",)),
        FleetHost(name="h1", address="10.9.0.11"),
        FleetHost(name="h2", address="10.9.0.12", roles=("app", "monitor")),
        FleetHost(name="mon", address="10.9.0.13", roles=("monitor",)),
    )
)
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
    },
)


def test_the_edge_balances_published_ports_over_the_app_hosts_only() -> None:
    text = edge_haproxy_cfg(STACK, FLEET)
    assert "frontend fe_web_8080\n    bind 0.0.0.0:8080\n" in text
    servers = [line.split()[1:] for line in text.splitlines() if line.startswith("    server ")]
    assert servers == [["h1", "10.9.0.11:8080"], ["h2", "10.9.0.12:8080"]]
    assert "option httpchk GET /healthz" in text
    # the run directory and user every provisioned host's HAProxy shares with the router
    assert "stats socket /run/haproxy/admin.sock" in text
    assert "    user haproxy\n    group haproxy\n" in text
    assert "bind 127.0.0.1:8404" in text


def test_without_a_compose_file_the_edge_serves_nothing_yet() -> None:
    text = edge_haproxy_cfg(None, FLEET)
    assert "frontend fe_" not in text and "bind 127.0.0.1:8404" in text


def test_app_hosts_get_the_routers_configuration_without_routes() -> None:
    text = app_haproxy_cfg()
    assert "stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners" in text
    assert "pidfile /run/haproxy/haproxy.pid" in text
    assert "frontend fe_" not in text and "bind 127.0.0.1:8404" in text
    assert "    user haproxy\n" in text


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
@pytest.mark.parametrize(
    "text",
    [app_haproxy_cfg(), edge_haproxy_cfg(STACK, FLEET), edge_haproxy_cfg(None, FLEET)],
    ids=["app", "edge", "edge without a stack"],
)
def test_each_passes_haproxy_check(text: str, tmp_path: Path) -> None:
    file = tmp_path / "haproxy.cfg"
    file.write_text(text)
    verdict = check(VALIDATOR, file)
    assert verdict.ok, verdict.output


def test_a_host_both_app_and_edge_is_refused_at_its_line() -> None:
    both = FleetHost(name="web1", address="10.9.0.5", roles=("app", "edge"), line=3)
    errors = edge_role_conflicts(Fleet(hosts=(*FLEET.hosts, both)), "conveyor.yaml")
    where = [e.render().split(": a host")[0] for e in errors]
    assert where == ["conveyor.yaml:3: hosts.web1.roles"]
    assert edge_role_conflicts(FLEET, "conveyor.yaml") == []
