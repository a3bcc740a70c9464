"""`conveyor up` and `conveyor deploy` (the app layer the CLI and the server call) over three
real hosts (containers with their own sshd and dockerd): conveyor.yaml's `hosts:` makes the
project a fleet; replicas are placed by the planner and started on each host's engine over
SSH, every app host's HAProxy is configured over SSH and through its forwarded admin socket,
and the edge HAProxy (on this machine's 127.0.0.1: the inventory has no edge host) balances
the published port over the three hosts. A rolling deploy under a bounded load loop through
the edge fails no request.

One module-scoped fleet (copying the image into three engines is most of the time).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.app import deploy as app
from conveyor.app.project import Project
from conveyor.app.views import UpResult
from conveyor.deploy.engine import Engine
from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.host.process import wait_until
from conveyor.host.ssh_tunnel import tunnel
from conveyor.model.fleet import Fleet
from conveyor.model.release import ObservedReplica
from conveyor.router.fleet import FleetRouter
from conveyor.testing.fleet_hosts import FleetHostError, TestFleet, fleet_of_hosts
from conveyor.testing.net import free_port

pytestmark = pytest.mark.integration

IMAGE = "python:3.11-slim-bookworm"
PROJECT = "fleetup"

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


def _compose(port: int, version: str) -> str:
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
    return json.dumps({"name": PROJECT, "services": {"web": web}})


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


def _conveyor_yaml(fleet: TestFleet) -> str:
    hosts = {
        h.name: {"address": h.address, "user": h.user, "key": str(h.key), "roles": ["app"]}
        for h in fleet.hosts
    }
    return json.dumps({"hosts": hosts})


def _image_id() -> str:
    import subprocess

    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@dataclass
class Deployed:
    fleet: TestFleet
    workdir: Path
    environ: dict[str, str]
    port: int
    image_id: str
    up: UpResult | None = None
    seen: dict[str, Counter[str]] = field(default_factory=dict)
    compose: Callable[[int, str], str] = _compose

    def project(self) -> Project:
        return Project.open(None, None, self.environ, self.workdir)

    def write(self, version: str) -> None:
        (self.workdir / "compose.yaml").write_text(self.compose(self.port, version))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:  # refused, reset: no answer at all
        return 0, str(e)


def _stop_tunnels(deployed: Deployed) -> None:
    """Every SSH tunnel the deploys started (engines, HAProxies' admin sockets), by PID."""
    paths = deployed.project().paths()
    fleet = Fleet(hosts=tuple(h.fleet_host() for h in deployed.fleet.hosts))
    for host in fleet.hosts:
        tunnel(host, paths.run_dir / "fleet").stop(grace=5)
        tunnel(
            host, paths.run_dir / "fleet-haproxy", remote="/x", kind="haproxy", what="HAProxy"
        ).stop(grace=5)


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    with fleet_of_hosts(3, prefix="cvup") as fleet:
        for host in fleet.hosts:
            host.load_image(IMAGE)
        workdir = Path(tempfile.mkdtemp(prefix="cvu-", dir="/tmp"))
        environ = {
            "CONVEYOR_STATE_HOME": str(workdir / "state"),
            "CONVEYOR_CHECKS": "off",
            "PATH": __import__("os").environ["PATH"],
        }
        (workdir / "conveyor.yaml").write_text(_conveyor_yaml(fleet))
        state = Deployed(fleet, workdir, environ, free_port(), _image_id())
        state.write("v1")
        try:
            yield state
        finally:
            # The hosts' HAProxies and the edge, then the tunnels, by PID; the replicas go with
            # the hosts (stopping each first would only add minutes of vfs removals).
            try:
                state.project().engine().router.stop()
            finally:
                _stop_tunnels(state)
                shutil.rmtree(workdir, ignore_errors=True)


def _images(d: Deployed) -> dict[str, tuple[str, str]]:
    return {"web": (IMAGE, d.image_id), "db": (IMAGE, d.image_id)}


@pytest.fixture(scope="module")
def netted(deployed: Deployed) -> Iterator[Deployed]:
    """A second project on the same hosts (no second fleet: CI time), on project networks."""
    workdir = Path(tempfile.mkdtemp(prefix="cvn-", dir="/tmp"))
    environ = {**deployed.environ, "CONVEYOR_STATE_HOME": str(workdir / "state")}
    (workdir / "conveyor.yaml").write_text(_conveyor_yaml(deployed.fleet))
    state = Deployed(
        deployed.fleet, workdir, environ, free_port(), deployed.image_id, compose=_compose_net
    )
    state.write("v1")
    try:
        yield state
    finally:
        try:
            state.project().engine().router.stop()
        finally:
            _stop_tunnels(state)
            shutil.rmtree(workdir, ignore_errors=True)


def test_up_places_the_replicas_over_the_three_hosts(deployed: Deployed) -> None:
    project = deployed.project()
    engine = project.engine()
    assert isinstance(engine.runtime, FleetRuntime)
    assert isinstance(engine.router, FleetRouter)
    result = app.up(
        project, agent=False, images=_images(deployed), checks=False, metrics=False, logs=False
    )
    assert result.outcome.status == "succeeded", result.outcome.error
    deployed.up = result
    observed = project.engine().observe()
    running = [r for r in observed.replicas if r.running and r.service == "web"]
    # Spread: one replica per host, each in rotation on every host's HAProxy.
    assert sorted(r.host for r in running) == ["h1", "h2", "h3"]
    assert {r.router for r in running} == {"ready"}
    # Each host runs its own replica, as its engine says (not only as Conveyor records it).
    for host in deployed.fleet.hosts:
        names = host.exec("docker", "ps", "--format", "{{.Names}}").split()
        assert [n for n in names if n.startswith(f"{PROJECT}-web-")] == [
            f"{PROJECT}-{r.replica}" for r in running if r.host == host.name
        ]
    # The edge sends requests to every host; every host's HAProxy reaches every replica.
    answers = Counter(_get(deployed.url) for _ in range(30))
    assert sum(n for (status, _), n in answers.items() if status == 200) == 30, answers
    assert {body.split()[1] for (_, body) in answers} == {r.replica for r in running}


def test_a_rolling_deploy_across_the_hosts_fails_no_request(deployed: Deployed) -> None:
    assert deployed.up is not None, "up failed: nothing to deploy over"
    project = deployed.project()
    before = {r.replica: r.host for r in project.engine().observe().replicas if r.service == "web"}
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    bodies: Counter[str] = Counter()

    def load() -> None:
        # Bounded: one request at a time to the edge on 127.0.0.1, until the deploy ends.
        while not stop.is_set():
            status, body = _get(deployed.url)
            statuses[status] += 1
            if status == 200:
                bodies[body.split()[0]] += 1

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        deployed.write("v2")
        result = app.deploy(deployed.project(), [], images=_images(deployed))
    finally:
        stop.set()
        worker.join(timeout=30)
    assert result.outcome.status == "succeeded", result.outcome.error
    assert set(statuses) == {200}, statuses  # zero failed requests
    assert bodies["v1"] > 0 and bodies["v2"] > 0, bodies  # it served both during the roll
    after = [r for r in project.engine().observe().replicas if r.service == "web" and r.running]
    assert sorted(r.host for r in after) == ["h1", "h2", "h3"]
    assert not set(before) & {r.replica for r in after}  # every replica was replaced
    answers = {_get(deployed.url)[1].split()[0] for _ in range(9)}
    assert answers == {"v2"}


class Load:
    """A bounded load loop: one request at a time to the edge on 127.0.0.1, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.statuses[_get(self.url)[0]] += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


def _web(engine: Engine) -> list[ObservedReplica]:
    return [r for r in engine.observe().replicas if r.service == "web" and r.running]


@pytest.mark.parametrize("loss", ["dockerd killed", "link cut"])
def test_a_lost_host_is_replaced_on_the_others_and_cleaned_when_it_is_back(
    deployed: Deployed, loss: str
) -> None:
    """What the agent does on every tick (app.deploy.reconciler), run here in the test: the
    lost host is marked down, its replica is started on another host, the edge stops sending
    it requests; when it answers again its stale containers are removed and its HAProxy and
    the edge take it back."""
    assert deployed.up is not None, "up failed: nothing to lose a host from"
    reconciler = app.reconciler(deployed.project())
    engine = reconciler.engine
    runtime = engine.runtime
    assert isinstance(runtime, FleetRuntime)
    victim = "h3" if loss == "dockerd killed" else "h2"
    host = deployed.fleet.host(victim)
    assert victim in {r.host for r in _web(engine)}

    def state() -> str:
        return runtime.health.health(victim).status

    def replaced() -> bool:
        reconciler.tick()
        placed = sorted(r.host for r in _web(engine) if r.router == "ready")
        return state() == "down" and len(placed) == 3 and victim not in placed

    def back() -> bool:
        reconciler.tick()
        return state() == "up"

    with Load(deployed.url) as load:
        if loss == "dockerd killed":
            host.kill_dockerd()
        else:
            host.cut_link()
        try:
            assert wait_until(replaced, 180, 0.5), runtime.health.transitions
        finally:
            if loss == "dockerd killed":
                host.start_dockerd()
            else:
                host.restore_link()
        assert wait_until(back, 180, 0.5), runtime.health.transitions
        served_during = sum(load.statuses.values())
    # One request at a time: at most the one in flight when the host went can fail; the
    # edge retries the rest on another host.
    assert load.failed <= 1, load.statuses
    assert served_during > 0
    # Back: nothing of the project left on it; the replicas stay where they were moved.
    left = host.exec("docker", "ps", "-a", "--format", "{{.Names}}").split()
    assert [n for n in left if n.startswith(f"{PROJECT}-")] == []
    assert victim not in {r.host for r in _web(engine)}
    kinds = [(t.before, t.after) for t in runtime.health.transitions if t.host == victim]
    assert ("returning", "up") in kinds
    # Its HAProxy serves the fleet again: asked directly, it answers from another host's replica.
    said = host.exec("curl", "-fsS", f"http://127.0.0.1:{deployed.port}/")
    assert said.split()[1] in {r.replica for r in _web(engine)}
    assert [_get(deployed.url)[0] for _ in range(10)] == [200] * 10


def _project_containers(d: Deployed) -> dict[str, set[str]]:
    """Host -> names of the project's web containers running there, as each engine says
    (asked with `docker exec` into the host: a host whose dockerd is dead names none)."""
    out: dict[str, set[str]] = {}
    for host in d.fleet.hosts:
        try:
            names = host.exec("docker", "ps", "--format", "{{.Names}}", timeout=20).split()
        except FleetHostError:  # its dockerd is down: nothing known there
            names = []
        out[host.name] = {n for n in names if n.startswith(f"{PROJECT}-web-")}
    return out


def _converged(d: Deployed, version: str) -> None:
    """Three web replicas running and in rotation; the edge answers only `version`."""
    engine = d.project().engine()
    web = [r for r in _web(engine) if r.router == "ready"]
    assert len(web) == 3, web
    answers = {_get(d.url)[1].split()[0] for _ in range(9)}
    assert answers == {version}, answers


def test_dockerd_killed_mid_rollout_fails_no_request_routed_elsewhere(deployed: Deployed) -> None:
    """A host's dockerd is killed while a rolling deploy runs (once the deploy's first new
    replica runs, on a host that has none yet). The deploy may fail there (a step on the lost
    host) and roll back, or finish; either way the load loop may lose at most the one
    request in flight on the lost host (one request at a time: the edge retries every other
    one on another host). The reconciler replaces the lost host's replica, cleans the host
    when it is back, and deploying again converges to the new version."""
    assert deployed.up is not None, "up failed: nothing to deploy over"
    before = set().union(*_project_containers(deployed).values())
    reconciler = app.reconciler(deployed.project())
    runtime = reconciler.engine.runtime
    assert isinstance(runtime, FleetRuntime)
    outcome: list[str] = []

    def roll() -> None:
        result = app.deploy(deployed.project(), [], images=_images(deployed))
        outcome.append(result.outcome.status)

    with Load(deployed.url) as load:
        deployed.write("v3")
        deploying = threading.Thread(target=roll, daemon=True)
        deploying.start()
        victims: list[str] = []

        def first_new_runs() -> bool:
            now = _project_containers(deployed)
            fresh = {h for h, names in now.items() if names - before}
            if fresh:
                victims.extend(sorted(set(now) - fresh)[-1:])
            return bool(fresh) or not deploying.is_alive()

        assert wait_until(first_new_runs, 300, 0.3), "the deploy started no new replica"
        assert victims, "the deploy ended before the fault"
        victim = deployed.fleet.host(victims[0])
        mid_rollout = deploying.is_alive()
        victim.kill_dockerd()
        try:
            assert mid_rollout, "the deploy ended before the fault"
            deploying.join(timeout=600)
            assert not deploying.is_alive(), "the deploy did not end"

            def replaced() -> bool:
                reconciler.tick()
                placed = [r.host for r in _web(reconciler.engine) if r.router == "ready"]
                return runtime.health.health(victim.name).status == "down" and len(placed) == 3

            assert wait_until(replaced, 180, 0.5), runtime.health.transitions
        finally:
            victim.start_dockerd()

        def back() -> bool:
            reconciler.tick()
            return runtime.health.health(victim.name).status == "up"

        assert wait_until(back, 180, 0.5), runtime.health.transitions
        again = app.deploy(deployed.project(), [], images=_images(deployed))
    assert again.outcome.status == "succeeded", (outcome, again.outcome.error)
    assert load.failed <= 1, (outcome, load.statuses)
    assert sum(load.statuses.values()) > 0
    _converged(deployed, "v3")


# The deploying process SIGKILLs itself right after journaling the second `drain` step of its
# first deploy rollout (the crash suite's failpoint, tests/integration/deploy): mid-rollout,
# one new replica routed, old ones still serving.
KILL_AT_SECOND_DRAIN = """
import os, signal, sys
from conveyor.cli.main import main
from conveyor.store.rollouts import JournalRepository
begin, drains = JournalRepository.begin, []
def _begin(self, rid, seq, step):
    begin(self, rid, seq, step)
    if step.kind == "drain":
        drains.append(seq)
        if len(drains) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
JournalRepository.begin = _begin
sys.argv[0] = "conveyor"
main()
"""


def test_the_deploying_process_killed_mid_rollout_is_resumed_by_the_next_deploy(
    deployed: Deployed,
) -> None:
    """`conveyor deploy` SIGKILLed mid-rollout, then `conveyor deploy` again: the journal
    recovers the interrupted rollout (as on one host) and the deploy finishes. No request
    of the load loop fails: no host is lost, every replica drained before it stops."""
    import os
    import subprocess
    import sys

    assert deployed.up is not None, "up failed: nothing to deploy over"
    env = {**os.environ, **deployed.environ}

    def conveyor(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv, "deploy"],
            cwd=deployed.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    with Load(deployed.url) as load:
        deployed.write("v4")
        killed = conveyor("-c", KILL_AT_SECOND_DRAIN)
        assert killed.returncode == -9, killed.stderr
        mid = {_get(deployed.url)[1].split()[0] for _ in range(12)}
        again = conveyor("-m", "conveyor")
    assert again.returncode == 0, again.stderr
    assert "recover" in (again.stdout + again.stderr).lower(), again.stdout
    assert mid <= {"v3", "v4"}, mid
    assert set(load.statuses) == {200}, load.statuses
    _converged(deployed, "v4")


def test_project_networking_services_call_each_other_by_name_across_hosts(
    netted: Deployed,
) -> None:
    """web on h2 and h3 reaches db on h1 by name: /etc/hosts names db's service address on
    the caller's host, where that host's HAProxy listens (bound inside the address's
    namespace) and sends it to db's replica at h1's address and published port."""
    project = netted.project()
    result = app.up(
        project, agent=False, images=_images(netted), checks=False, metrics=False, logs=False
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
    answers = Counter(_get(url) for _ in range(20))
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
