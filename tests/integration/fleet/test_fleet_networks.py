"""Compose services on project networks over the worker's shared fleet (conftest.py;
docs/fleet.md, "Project networks on a fleet"): web on two hosts calls db on the third by name.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from conveyor.app import deploy as app
from conveyor.testing.fleet_hosts import TestFleet
from tests.integration.fleet.support import APP, IMAGE, Deployed, get, project_on

pytestmark = pytest.mark.integration

# Project networking (docs/fleet.md, "Project networks"): GET /db asks `db` by name (its
# service address on the caller's host, that host's HAProxy, db's replica on another host).
APP_NET = """
import os, signal, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        me = os.environ["VERSION"] + " " + os.environ["CONVEYOR_REPLICA"]
        if self.path == "/db":
            with urllib.request.urlopen("http://db:8001/", timeout=10) as answer:
                me += " via " + answer.read().decode()
        body = me.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""
NET_PROJECT = "fleetnet"


def _compose_net(port: int, version: str) -> str:
    """web (2 replicas, kept off h1) calls db (1 replica, on h1) by name: every call crosses
    hosts. Both on the project's default network."""
    web = {
        "image": IMAGE,
        "command": ["python", "-c", APP_NET],
        "environment": {"VERSION": version},
        "ports": [f"0.0.0.0:{port}:8000"],
        "deploy": {
            "replicas": 2,
            "placement": {"constraints": ["node.hostname!=h1"]},
            "update_config": {"parallelism": 1, "order": "start-first"},
        },
        "stop_grace_period": "5s",
        "x-conveyor": {"probe": {"path": "/health"}},
    }
    db = {
        "image": IMAGE,
        "command": ["python", "-c", APP],
        "environment": {"VERSION": "db"},
        "expose": ["8001"],
        "deploy": {"replicas": 1, "placement": {"constraints": ["node.hostname==h1"]}},
        "stop_grace_period": "5s",
    }
    return json.dumps({"name": NET_PROJECT, "services": {"db": db, "web": web}})


@pytest.fixture(scope="module")
def netted(shared_fleet: TestFleet) -> Iterator[Deployed]:
    with project_on(shared_fleet, NET_PROJECT, _compose_net) as state:
        yield state


def test_project_networking_services_call_each_other_by_name_across_hosts(
    netted: Deployed,
) -> None:
    """web on h2 and h3 reaches db on h1 by name: /etc/hosts names db's service address on
    the caller's host, where that host's HAProxy listens (bound inside the address's
    namespace) and sends it to db's replica at h1's address and published port."""
    project = netted.project()
    result = app.up(
        project, agent=False, images=netted.images(), checks=False, metrics=False, logs=False
    )
    assert result.outcome.status == "succeeded", result.outcome.error
    running = [r for r in project.engine().observe().replicas if r.running]
    where = {r.replica: (r.service, r.host) for r in running}
    assert sorted(h for s, h in where.values() if s == "web") == ["h2", "h3"], where
    assert [h for s, h in where.values() if s == "db"] == ["h1"], where
    # Every app host has the project's network and both service addresses.
    for host in netted.fleet.hosts:
        nets = host.exec("docker", "network", "ls", "--format", "{{.Name}}").split()
        assert f"{NET_PROJECT}_default" in nets, (host.name, nets)
        names = host.exec("docker", "ps", "--format", "{{.Names}}").split()
        assert {f"{NET_PROJECT}-db-address", f"{NET_PROJECT}-web-address"} <= set(names), (
            host.name,
            names,
        )
    # Through the edge: each answer names the web replica and the db replica it reached.
    url = f"{netted.url}db"
    answers = Counter(get(url) for _ in range(20))
    assert sum(n for (status, _), n in answers.items() if status == 200) == 20, answers
    webs = {body.split()[1] for (_, body) in answers}
    assert webs == {r for r, (s, _) in where.items() if s == "web"}, answers
    dbs = {body.split(" via ")[1] for (_, body) in answers}
    assert dbs == {f"db {r}" for r, (s, _) in where.items() if s == "db"}, answers
    # And from a web replica's own namespace on h3, by name (its /etc/hosts line).
    h3 = netted.fleet.host("h3")
    web_on_h3 = next(r for r, (s, h) in where.items() if s == "web" and h == "h3")
    said = h3.exec(
        "docker", "exec", f"{NET_PROJECT}-{web_on_h3}", "python", "-c",
        "import urllib.request; print(urllib.request.urlopen('http://db:8001/').read().decode())",
    )  # fmt: skip
    assert said.split()[0] == "db"
