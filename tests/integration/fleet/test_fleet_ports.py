"""Every port of a service crosses hosts (docs/fleet.md, "Addresses"), on the worker's shared
fleet (conftest.py): `db` serves two ports (8001, and an admin/exporter port 9001) from its
one replica on h1; a replica on h2 calls both by name. Each goes to h2's HAProxy (bound in
db's service address on h2), whose backend for that port lists db's replica at h1's address
and the host port h1's engine published *that* port on. And the ports a host listens on, as
a host-networking replica's port is picked free there, are read from the host itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conveyor.app import deploy as app
from conveyor.host.listening import listening_ports
from conveyor.testing.fleet_hosts import TestFleet
from tests.integration.fleet.support import IMAGE, Deployed, get, project_on

pytestmark = pytest.mark.integration

PROJECT = "fleetports"

# Answers "<port> <replica>" on its main port (PORT) and on 9001.
TWO_PORTS = """
import os, signal, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
def serve(port):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        def do_GET(self):
            body = f"{port} {os.environ['CONVEYOR_REPLICA']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    ThreadingHTTPServer((os.environ["HOST"], port), H).serve_forever()
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # PID 1 ignores it otherwise
threading.Thread(target=serve, args=(9001,), daemon=True).start()
serve(int(os.environ["PORT"]))
"""
# Runs until stopped: the replica the calls are made from.
IDLE = "import os, signal; signal.signal(signal.SIGTERM, lambda *_: os._exit(0)); signal.pause()"


def _compose(port: int, version: str) -> str:
    db = {
        "image": IMAGE,
        "command": ["python", "-c", TWO_PORTS],
        "expose": ["8001", "9001"],
        "deploy": {"replicas": 1, "placement": {"constraints": ["node.hostname==h1"]}},
        "stop_grace_period": "2s",
        # A stable frontend port and no `ports:`: served by the edge on this machine.
        "x-conveyor": {"port": 8001, "probe": "/health", "public_port": port},
    }
    caller = {
        "image": IMAGE,
        "command": ["python", "-c", IDLE],
        "environment": {"VERSION": version},
        "deploy": {"replicas": 1, "placement": {"constraints": ["node.hostname==h2"]}},
        "stop_grace_period": "2s",
    }
    return json.dumps({"name": PROJECT, "services": {"db": db, "caller": caller}})


@pytest.fixture(scope="module")
def ported(shared_fleet: TestFleet) -> Iterator[Deployed]:
    with project_on(shared_fleet, PROJECT, _compose) as state:
        yield state


def test_a_replica_on_another_host_reaches_both_ports_of_a_service(ported: Deployed) -> None:
    project = ported.project()
    images = {s: (IMAGE, ported.image_id) for s in ("db", "caller")}
    result = app.up(project, agent=False, images=images, checks=False, metrics=False, logs=False)
    assert result.outcome.status == "succeeded", result.outcome.error
    running = {r.service: r for r in project.engine().observe().replicas if r.running}
    db, caller = running["db"], running["caller"]
    assert (db.host, caller.host) == ("h1", "h2")
    # Both ports published on h1's fleet address; the main one is db's endpoint.
    h1 = ported.fleet.host("h1")
    assert set(db.published_ports) == {8001, 9001}, db.published_ports
    assert (db.endpoint.host, db.endpoint.port) == (h1.address, db.published_ports[8001])
    # From the caller's own namespace on h2, by name, on each port.
    h2 = ported.fleet.host("h2")
    said = h2.exec(
        "docker", "exec", f"{PROJECT}-{caller.replica}", "python", "-c",
        "import urllib.request as u\n"
        "for p in (8001, 9001):\n"
        "    print(u.urlopen(f'http://db:{p}/', timeout=10).read().decode())",
    )  # fmt: skip
    assert said.split("\n")[:2] == [f"8001 {db.replica}", f"9001 {db.replica}"], said
    # What a host-networking replica's port is picked against: h2's own sockets, read over
    # SSH (its sshd, and its HAProxy's stable frontend for db on 127.0.0.1).
    frontend = project.engine().store.ports.frontend_ports()["db"]
    busy = listening_ports(h2.fleet_host())
    assert {h2.fleet_host().port, frontend} <= busy, (frontend, sorted(busy))


def test_a_public_port_without_ports_answers_through_the_edge(ported: Deployed) -> None:
    """db's `x-conveyor.public_port` (no `ports:` entry): `up` printed the edge's URL, and
    right after `up` the edge on 127.0.0.1 answers there, through h2's and h3's HAProxies
    too (bound on their fleet address), from db's one replica on h1."""
    project = ported.project()
    if not project.engine().observe().replicas:  # run alone: the test above did the `up`
        images = {s: (IMAGE, ported.image_id) for s in ("db", "caller")}
        app.up(project, agent=False, images=images, checks=False, metrics=False, logs=False)
    urls = {u.name: u.url for u in app.urls(project.engine())}
    assert urls["db"] == ported.url, urls
    [db] = [r for r in project.engine().observe().replicas if r.service == "db"]
    answers = {get(ported.url) for _ in range(6)}
    assert answers == {(200, f"8001 {db.replica}")}, answers
    # Every app host serves it at its fleet address (the edge's servers), not just h1.
    for host in ported.fleet.hosts:
        said = host.exec("curl", "-sS", "--max-time", "10", f"http://{host.address}:{ported.port}/")
        assert said == f"8001 {db.replica}", (host.name, said)
