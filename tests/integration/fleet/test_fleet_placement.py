"""A stack placed over two real hosts (containers with their own sshd and dockerd): the planner
decides, replicas start on each host's engine over SSH, a replica on one host reaches a service
on the other by name through its host's HAProxy (the router's renderer, fleet-wide servers), and
the edge HAProxy (here on 127.0.0.1; its configuration is what is under test) serves the
published port over both hosts and keeps answering when one host's replica, then the host's
HAProxy, goes away.

Not exercised here (next, docs/fleet.md): host loss detection and rescheduling, fault tests
under load, `conveyor up` driving a fleet.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.host.process import Daemon, DaemonSpec, wait_until
from conveyor.model.endpoint import Endpoint
from conveyor.model.fleet import Fleet
from conveyor.model.routing import Frontend, RouterConfig
from conveyor.model.stack import Service, Stack
from conveyor.plan.edge import edge_config
from conveyor.plan.fleet_routes import FleetReplica, fleet_router_config
from conveyor.plan.network import DesiredNetwork
from conveyor.plan.placement import FleetPlacement, place
from conveyor.plan.routes import frontend_for
from conveyor.render.edge_haproxy import render_edge
from conveyor.render.haproxy import render
from conveyor.runtime.protocol import NetworkRun, ReplicaRun
from conveyor.spec.compose import load_stack
from conveyor.testing.fleet_hosts import FleetHostError, TestFleet, TestHost
from conveyor.testing.net import free_port
from tests.integration.fleet.support import IMAGE, get, image_id

pytestmark = pytest.mark.integration

PROJECT = "fleetshop"
DB_PORT = 15432  # db's frontend on each host's loopback: what `db:15432` reaches
HOST_RUN = "/run/conveyor"

# web: HTTP; GET /db asks `db` (by name) over TCP and returns its answer.
WEB_APP = """
import os, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/db":
            with socket.create_connection(("db", int(os.environ["DB_PORT"])), timeout=5) as s:
                s.sendall(b"ping\\n")
                body = s.recv(200)
        else:
            body = (os.environ["REPLICA"] + "@" + os.environ["FLEET_HOST"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""
# db: a TCP service answering one line with who it is.
DB_APP = """
import os, socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        me = os.environ["REPLICA"] + "@" + os.environ["FLEET_HOST"]
        self.wfile.write(("pong from " + me).encode())
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""


@dataclass
class Running:
    fleet: TestFleet
    stack: Stack
    placement: FleetPlacement
    engines: FleetEngines
    containers: dict[str, tuple[str, str]]  # replica -> (host, container id)
    replicas: list[FleetReplica]
    web_port: int  # published: each app host's HAProxy and the edge serve it
    edge_run: Path

    def host(self, name: str) -> TestHost:
        return self.fleet.host(name)


def _compose(web_port: int) -> str:
    services = {
        "web": {
            "image": IMAGE,
            "network_mode": "host",
            "command": ["python", "-c", WEB_APP],
            "deploy": {"replicas": 3},
            "ports": [f"0.0.0.0:{web_port}:{web_port}"],
            "x-conveyor": {"probe": {"path": "/health"}},
        },
        "db": {"image": IMAGE, "network_mode": "host", "command": ["python", "-c", DB_APP]},
    }
    return json.dumps({"services": services})  # JSON is YAML


def _start_host_haproxy(host: TestHost, text: str) -> None:
    """The host's HAProxy, as provisioning installs it (here started directly: no systemd)."""
    host.exec("mkdir", "-p", HOST_RUN)
    host.exec("sh", "-c", f"cat > {HOST_RUN}/haproxy.cfg", input=text.encode())
    host.exec("haproxy", "-c", "-q", "-f", f"{HOST_RUN}/haproxy.cfg")
    host.exec("haproxy", "-D", "-f", f"{HOST_RUN}/haproxy.cfg")


def _edge_stats(run_dir: Path) -> dict[str, int]:
    """Requests each app host got from the edge (server -> stot), from its admin socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(run_dir / "admin.sock"))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    out: dict[str, int] = {}
    header: list[str] = []
    for line in data.decode().splitlines():
        if line.startswith("# "):
            header = line[2:].split(",")
            continue
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname", "").startswith("be_web") and row.get("svname") not in (
            "BACKEND",
            "FRONTEND",
        ):
            out[row["svname"]] = int(row["stot"])
    return out


@pytest.fixture(scope="module")
def running(shared_fleet: TestFleet) -> Iterator[Running]:
    # Two of the worker's shared hosts (conftest.py); what this module starts on them (its
    # replicas, each host's HAProxy) is stopped at the end, by id and PID file.
    fleet = shared_fleet
    hosts = fleet.hosts[:2]
    web_port = free_port()
    # Short: the unix sockets of the tunnels and of the edge live under it.
    workdir = Path(tempfile.mkdtemp(prefix="cvp-", dir="/tmp"))
    (workdir / "compose.yaml").write_text(_compose(web_port))
    stack = load_stack(workdir / "compose.yaml", project_name=PROJECT, environ={})
    inventory = Fleet(
        hosts=tuple(h.fleet_host(roles=("app",), labels={"zone": h.name}) for h in hosts)
    )
    placement = place(stack.services, inventory.with_role("app"))
    the_image = image_id()
    engines = FleetEngines(inventory, workdir / "tunnels")
    edge: Daemon | None = None
    containers: dict[str, tuple[str, str]] = {}
    try:
        replicas: list[FleetReplica] = []
        port = 20000
        for name, plan in placement.services.items():
            for n, on in enumerate(plan.start, start=1):
                port += 1
                replica = f"{name}-1-{n}"
                address = fleet.host(on).address
                req = ReplicaRun(
                    project=PROJECT,
                    replica=replica,
                    release=1,
                    spec_hash="test",
                    image_id=the_image,
                    port=port,
                    service=stack.services[name],
                    env={
                        "PORT": str(port),
                        "REPLICA": replica,
                        "FLEET_HOST": on,
                        "DB_PORT": str(DB_PORT),
                    },
                    # Host networking: a peer by name is this host's HAProxy.
                    extra_hosts={"db": "127.0.0.1"},
                )
                containers[replica] = (on, engines.engine(on).run(req))
                replicas.append(
                    FleetReplica(
                        service=name,
                        replica=replica,
                        host=on,
                        local=Endpoint.loopback(port),
                        remote=Endpoint(host=address, port=port),
                    )
                )
        # Every app host's HAProxy: the one-host frontends, fleet-wide servers.
        router = RouterConfig(
            frontends=(
                frontend_for("web", stack.services["web"], web_port, None),
                Frontend(service="db", port=DB_PORT, mode="tcp"),
            )
        )
        for host in hosts:
            text = render(fleet_router_config(router, replicas, host.name), Path(HOST_RUN))
            _start_host_haproxy(host, text)
        # The edge, on this machine's loopback.
        edge_run = workdir / "edge"
        edge_run.mkdir()
        config_file = edge_run / "edge.cfg"
        config = edge_config(stack, inventory.with_role("app"), listen_address="127.0.0.1")
        config_file.write_text(render_edge(config, edge_run))
        edge = Daemon(
            DaemonSpec(
                name="edge HAProxy",
                argv=("haproxy", "-f", str(config_file)),
                pid_file=edge_run / "edge-daemon.pid",
                log_file=edge_run / "edge.log",
                ready=lambda: get(f"http://127.0.0.1:{web_port}/")[0] == 200,
                readiness=f"serving 127.0.0.1:{web_port}",
                start_timeout=60,
                markers=(str(config_file),),
            )
        )
        edge.ensure()
        yield Running(fleet, stack, placement, engines, containers, replicas, web_port, edge_run)
    finally:
        if edge is not None:
            edge.stop(grace=5)
        for host in hosts:  # the HAProxy -D left (its PID file: the config's `pidfile`)
            host.exec("sh", "-c", f"kill $(cat {HOST_RUN}/haproxy.pid) 2>/dev/null || true")
        for on, cid in containers.values():
            with contextlib.suppress(Exception):
                engines.engine(on).remove(cid)
        engines.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_replicas_run_where_the_planner_placed_them(running: Running) -> None:
    counts = {name: dict(plan.hosts()) for name, plan in running.placement.services.items()}
    # spread: web over both hosts; db on the host with fewer replicas overall
    assert counts == {"web": {"h1": 2, "h2": 1}, "db": {"h2": 1}}
    for host in ("h1", "h2"):
        found = running.engines.engine(host).list_replicas(PROJECT)
        placed = Counter(r.service for r in found if r.running and r.service in counts)
        assert placed == Counter({name: n for name, c in counts.items() if (n := c.get(host, 0))})


def test_a_replica_reaches_a_service_on_another_host_by_name(running: Running) -> None:
    h1 = running.host("h1")
    web_on_h1 = next(r for r in running.replicas if r.service == "web" and r.host == "h1")

    def answered() -> bool:
        try:
            said = h1.exec("curl", "-fsS", f"http://127.0.0.1:{web_on_h1.local.port}/db")
        except FleetHostError:  # not up yet: the wait tries again
            return False
        return said == "pong from db-1-1@h2"

    assert wait_until(answered, 60, 0.5), "web on h1 did not reach db on h2 by name"


def test_the_edge_serves_the_published_port_over_both_hosts(running: Running) -> None:
    before = _edge_stats(running.edge_run)
    answers = [get(f"http://127.0.0.1:{running.web_port}/") for _ in range(10)]
    assert all(status == 200 for status, _ in answers), answers
    after = _edge_stats(running.edge_run)
    assert {host: after[host] - before.get(host, 0) for host in after} == {"h1": 5, "h2": 5}


def test_the_edge_keeps_answering_when_a_host_loses_its_replica_then_its_haproxy(
    running: Running,
) -> None:
    url = f"http://127.0.0.1:{running.web_port}/"
    h2_web = next(r for r in running.replicas if r.service == "web" and r.host == "h2")
    host, cid = running.containers[h2_web.replica]
    running.engines.engine(host).stop(cid, "SIGKILL", 5)
    answers = [get(url) for _ in range(20)]
    assert [status for status, _ in answers] == [200] * 20
    assert not any(body.startswith(h2_web.replica + "@") for _, body in answers)
    # h2's HAProxy goes too: the edge retries on h1 what it sent to h2.
    running.host("h2").exec("sh", "-c", f"kill $(cat {HOST_RUN}/haproxy.pid)")
    answers = [get(url) for _ in range(20)]
    assert [status for status, _ in answers] == [200] * 20


def test_a_project_network_replica_is_reached_from_another_host_at_its_published_port(
    running: Running,
) -> None:
    """Project networking on a fleet: the replica answers on its own network, and its engine
    publishes its port on an ephemeral port of its host's fleet address, which is where the
    other hosts' HAProxies list it (plan.fleet_routes)."""
    h1, h2 = running.host("h1"), running.host("h2")
    engine = running.engines.engine("h1")
    network = engine.ensure_network(
        NetworkRun(
            project=PROJECT,
            network=DesiredNetwork(name="default", docker_name=f"{PROJECT}_default"),
        )
    )
    service = Service(name="api", networking="project", command=("python", "-c", WEB_APP))
    req = ReplicaRun(
        project=PROJECT,
        replica="api-1-1",
        release=1,
        spec_hash="test",
        image_id=image_id(),
        port=8000,
        service=service,
        env={"PORT": "8000", "REPLICA": "api-1-1", "FLEET_HOST": "h1", "DB_PORT": str(DB_PORT)},
        networks={network.docker_name: ()},
        publish_on=h1.address,
    )
    seen = engine.inspect(engine.run(req))
    assert seen is not None
    assert 8000 in seen.published_ports
    assert seen.endpoint.port == 8000  # on its network, its own port
    url = f"http://{h1.address}:{seen.published_ports[8000]}/"

    def answered() -> bool:
        try:
            return h2.exec("curl", "-fsS", url) == "api-1-1@h1"
        except FleetHostError:  # not listening yet: the wait tries again
            return False

    assert wait_until(answered, 60, 0.5), f"h2 did not reach api on h1 at {url}"
