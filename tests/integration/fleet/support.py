"""What the fleet modules share: the test app, a project on the shared fleet (conftest.py), the
bounded load loop through the edge, and what each host's engine says."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from conveyor.app import deploy as app
from conveyor.app.project import Project
from conveyor.app.views import UpResult
from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.host.ssh_tunnel import tunnel
from conveyor.model.fleet import Fleet
from conveyor.model.release import ObservedReplica
from conveyor.testing.fleet_hosts import FleetHostError, TestFleet
from conveyor.testing.net import free_port

IMAGE = "python:3.11-slim-bookworm"

# Listens where Conveyor says (HOST, PORT); GET / answers "<version> <replica>".
APP = """
import os, signal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = (os.environ["VERSION"] + " " + os.environ["CONVEYOR_REPLICA"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # PID 1 ignores it otherwise
ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""


def web_compose(name: str | None) -> Callable[[int, str], str]:
    """Project `name` (None: named as Compose names it, after its directory): web, 3 replicas
    under host networking, rolled one at a time."""

    def compose(port: int, version: str) -> str:
        web = {
            "image": IMAGE,
            "network_mode": "host",
            "command": ["python", "-c", APP],
            "environment": {"VERSION": version},
            "ports": [f"0.0.0.0:{port}:{port}"],
            "deploy": {
                "replicas": 3,
                "update_config": {"parallelism": 1, "order": "start-first"},
            },
            "stop_grace_period": "5s",
            "x-conveyor": {"probe": {"path": "/health"}},
        }
        named = {} if name is None else {"name": name}
        return json.dumps({**named, "services": {"web": web}})

    return compose


def inventory(fleet: TestFleet) -> dict[str, dict[str, object]]:
    """conveyor.yaml's `hosts:` for the fleet: every host an app host."""
    return {
        h.name: {"address": h.address, "user": h.user, "key": str(h.key), "roles": ["app"]}
        for h in fleet.hosts
    }


def conveyor_yaml(fleet: TestFleet) -> str:
    return json.dumps({"hosts": inventory(fleet)})


def image_id() -> str:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@dataclass
class Deployed:
    """A project on the shared fleet: its directory, environment and published port."""

    name: str
    fleet: TestFleet
    workdir: Path
    environ: dict[str, str]
    port: int
    image_id: str
    compose: Callable[[int, str], str]
    up: UpResult | None = None

    def project(self) -> Project:
        return Project.open(None, None, self.environ, self.workdir)

    def write(self, version: str) -> None:
        (self.workdir / "compose.yaml").write_text(self.compose(self.port, version))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def images(self) -> dict[str, tuple[str, str]]:
        """Every service's image, resolved here (no build, no pull)."""
        return {s: (IMAGE, self.image_id) for s in ("web", "db")}


@contextlib.contextmanager
def project_on(
    fleet: TestFleet, name: str, compose: Callable[[int, str], str] | None = None
) -> Iterator[Deployed]:
    """Project `name` on the fleet, written at v1; `conveyor down` at the end (the next module
    on the shared fleet finds none of its containers, HAProxies or ports), then its tunnels
    stopped by PID."""
    workdir = Path(tempfile.mkdtemp(prefix=f"cv{name[:6]}-", dir="/tmp"))  # short: unix sockets
    environ = {
        "CONVEYOR_STATE_HOME": str(workdir / "state"),
        "CONVEYOR_CHECKS": "off",
        "PATH": os.environ["PATH"],
    }
    (workdir / "conveyor.yaml").write_text(conveyor_yaml(fleet))
    state = Deployed(
        name, fleet, workdir, environ, free_port(), image_id(), compose or web_compose(name)
    )
    state.write("v1")
    try:
        yield state
    finally:
        try:
            app.down(state.project())
        finally:
            stop_tunnels(state.project().paths(), fleet)
            shutil.rmtree(workdir, ignore_errors=True)


def stop_tunnels(paths: ProjectPaths, test_fleet: TestFleet) -> None:
    """Every SSH tunnel a project's deploys started (engines, HAProxies' admin sockets), by
    the PIDs in their files."""
    fleet = Fleet(hosts=tuple(h.fleet_host() for h in test_fleet.hosts))
    for host in fleet.hosts:
        tunnel(host, paths.run_dir / "fleet").stop(grace=5)
        tunnel(
            host, paths.run_dir / "fleet-haproxy", remote="/x", kind="haproxy", what="HAProxy"
        ).stop(grace=5)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:  # refused, reset: no answer at all
        return 0, str(e)


class Load:
    """A bounded load loop: one request at a time to the edge on 127.0.0.1, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self.bodies: Counter[str] = Counter()  # first word (the version) of each 200 answer
        # Every answer but a 200: (when, as time.time(), status, what came back).
        self.failures: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = get(self.url)
            self.statuses[status] += 1
            if status == 200:
                self.bodies[body.split()[0]] += 1
            else:
                self.failures.append((round(time.time(), 3), status, body[:200]))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


def web(engine: Engine) -> list[ObservedReplica]:
    return [r for r in engine.observe().replicas if r.service == "web" and r.running]


def project_containers(d: Deployed) -> dict[str, set[str]]:
    """Host -> names of the project's web containers running there, as each engine says
    (asked with `docker exec` into the host: a host whose dockerd is dead names none)."""
    out: dict[str, set[str]] = {}
    for host in d.fleet.hosts:
        try:
            names = host.exec("docker", "ps", "--format", "{{.Names}}", timeout=20).split()
        except FleetHostError:  # its dockerd is down: nothing known there
            names = []
        out[host.name] = {n for n in names if n.startswith(f"{d.name}-web-")}
    return out


def converged(d: Deployed, version: str) -> None:
    """Three web replicas running and in rotation; the edge answers only `version`."""
    engine = d.project().engine()
    ready = [r for r in web(engine) if r.router == "ready"]
    assert len(ready) == 3, ready
    answers = {get(d.url)[1].split()[0] for _ in range(9)}
    assert answers == {version}, answers
