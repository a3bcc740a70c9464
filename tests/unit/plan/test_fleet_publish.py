"""plan.fleet_routes: every port of a service crosses hosts (a remote replica is listed in
each port's backend at the host port its engine published that port on, and haproxy -c
accepts the file), and a service only on `internal: true` networks, whose ports Docker never
publishes, is refused on a fleet at the line that makes it so."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.host.validate import check
from conveyor.model.endpoint import Endpoint
from conveyor.model.routing import Frontend, Listener, RouterConfig
from conveyor.plan.fleet_routes import (
    FleetReplica,
    check_publishable,
    fleet_router_config,
    unpublishable,
)
from conveyor.render.haproxy import VALIDATOR, render
from conveyor.spec import load_stack

CONFIG = RouterConfig(
    frontends=(
        Frontend(
            service="app",
            port=18000,
            target=8000,
            listeners=(Listener(port=9000, mode="http"),),  # its admin port
        ),
    )
)
REPLICAS = [
    FleetReplica(
        service="app",
        replica="app-1-1",
        host="h1",
        local=Endpoint(host="10.213.0.5", port=8000),
        remote=Endpoint(host="10.9.0.11", port=32771),
        remote_ports={8000: 32771, 9000: 32772},
    ),
    FleetReplica(
        service="app",
        replica="app-1-2",
        host="h2",
        local=Endpoint(host="10.213.0.6", port=8000),
        remote=Endpoint(host="10.9.0.12", port=32790),
        remote_ports={8000: 32790, 9000: 32791},
    ),
]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_a_remote_replica_is_listed_at_its_published_port_in_every_ports_backend() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="cvf-", dir="/tmp"))
    try:
        text = render(fleet_router_config(CONFIG, REPLICAS, "h1"), run_dir)
        main, admin = text.split("backend be_app_9000")
        # h1's own replica at its container address, on each port; h2's at h2's ports
        assert "server app-1-1 10.213.0.5:8000 check" in main
        assert "server app-1-2 10.9.0.12:32790 check" in main
        assert "server app-1-1 10.213.0.5:9000 check" in admin
        assert "server app-1-2 10.9.0.12:32791 check" in admin
        file = run_dir / "haproxy.cfg"
        file.write_text(text)
        verdict = check(VALIDATOR, file)
        assert verdict.ok, verdict.output
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


COMPOSE = """\
services:
  db:
    image: postgres
    expose: ["5432"]
    networks: [data]
  cache:
    image: redis
    expose: ["6379"]
    networks: [data, default]
  metrics:
    image: exporter
    expose: ["9187"]
    networks: [data, audit]
  worker:
    image: worker
    networks: [data]
  web:
    image: web
    ports: ["8080:8000"]
networks:
  data:
    internal: true
  audit:
    internal: true
"""


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(COMPOSE)
    return path


def test_a_service_only_on_internal_networks_is_named_at_the_internal_line(
    stack_file: Path,
) -> None:
    stack = load_stack(stack_file, environ={})
    problems = unpublishable(stack, stack.services)
    # cache has a network that is not internal (Docker publishes through it); worker serves
    # no port; web is on the default network.
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(stack_file), 22, "networks.data.internal"),  # db
        (str(stack_file), 24, "networks.audit.internal"),  # metrics: the first of its two
    ]
    assert "service 'db' serves port(s) 5432 only on internal network(s) (data)" in str(problems[0])
    assert "(audit, data)" in str(problems[1])
    with pytest.raises(SpecErrors):
        check_publishable(stack, stack.services)
    with pytest.raises(SpecError, match=r"compose.yaml:22: networks.data.internal: service 'db'"):
        check_publishable(stack, ["db", "web"])  # only the services the plan starts count
    check_publishable(stack, ["cache", "worker", "web"])  # nothing to say


def test_services_on_the_same_internal_networks_are_one_problem(tmp_path: Path) -> None:
    """examples/shop: every service on its one `internal: true` default network."""
    path = tmp_path / "compose.yaml"
    path.write_text(
        "services:\n"
        "  gateway: {image: g, x-conveyor: {port: 8000, public_port: 8080}}\n"
        "  catalog: {image: c, x-conveyor: {port: 8000}}\n"
        "networks:\n"
        "  default:\n"
        "    internal: true\n"
    )
    stack = load_stack(path, environ={})
    [problem] = unpublishable(stack, stack.services)
    assert (problem.line, problem.field) == (6, "networks.default.internal")
    said = str(problem)
    assert "services 'catalog' (8000), 'gateway' (8000) serve ports only on internal" in said
    assert "Remove `internal: true`" in said and "attach them to a network" in said
