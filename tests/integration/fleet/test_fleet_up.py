"""`conveyor up` and `conveyor deploy` (the app layer the CLI and the server call) over three
real hosts (containers with their own sshd and dockerd; the worker's shared fleet, conftest.py):
conveyor.yaml's `hosts:` makes the project a fleet; replicas are placed by the planner and
started on each host's engine over SSH, every app host's HAProxy is configured over SSH and
through its forwarded admin socket, and the edge HAProxy (on this machine's 127.0.0.1: the
inventory has no edge host) balances the published port over the three hosts. A rolling deploy
under a bounded load loop through the edge fails no request; a host lost (dockerd killed, link
cut) is replaced on the others and cleaned when it is back; a host taken out of conveyor.yaml
is left by the next deploy (its replica moved, its HAProxy and files removed).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from conveyor.app import deploy as app
from conveyor.deploy.fleet_hosts import read_hosts
from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.host.process import wait_until
from conveyor.model.endpoint import Endpoint
from conveyor.model.routing import ServerEntry
from conveyor.router.fleet import FleetRouter
from conveyor.testing.fleet_hosts import TestFleet
from tests.integration.fleet.support import (
    Deployed,
    Load,
    conveyor_yaml,
    get,
    inventory,
    project_containers,
    project_on,
    web,
    web_compose,
)

pytestmark = pytest.mark.integration

PROJECT = "fleetup"


@pytest.fixture(scope="module")
def deployed(shared_fleet: TestFleet) -> Iterator[Deployed]:
    with project_on(shared_fleet, PROJECT) as state:
        yield state


def test_up_places_the_replicas_over_the_three_hosts(deployed: Deployed) -> None:
    project = deployed.project()
    engine = project.engine()
    assert isinstance(engine.runtime, FleetRuntime)
    assert isinstance(engine.router, FleetRouter)
    # host networking: each replica's port is picked free on the host it goes to
    assert engine.port_picker == engine.runtime.pick_port
    result = app.up(
        project, agent=False, images=deployed.images(), checks=False, metrics=False, logs=False
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
    answers = Counter(get(deployed.url) for _ in range(30))
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
            status, body = get(deployed.url)
            statuses[status] += 1
            if status == 200:
                bodies[body.split()[0]] += 1

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        deployed.write("v2")
        result = app.deploy(deployed.project(), [], images=deployed.images())
    finally:
        stop.set()
        worker.join(timeout=30)
    assert result.outcome.status == "succeeded", result.outcome.error
    assert set(statuses) == {200}, statuses  # zero failed requests
    assert bodies["v1"] > 0 and bodies["v2"] > 0, bodies  # it served both during the roll
    after = [r for r in project.engine().observe().replicas if r.service == "web" and r.running]
    assert sorted(r.host for r in after) == ["h1", "h2", "h3"]
    assert not set(before) & {r.replica for r in after}  # every replica was replaced
    answers = {get(deployed.url)[1].split()[0] for _ in range(9)}
    assert answers == {"v2"}


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
    assert victim in {r.host for r in web(engine)}

    def state() -> str:
        return runtime.health.health(victim).status

    def replaced() -> bool:
        reconciler.tick()
        placed = sorted(r.host for r in web(engine) if r.router == "ready")
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
    assert victim not in {r.host for r in web(engine)}
    kinds = [(t.before, t.after) for t in runtime.health.transitions if t.host == victim]
    assert ("returning", "up") in kinds
    # Its HAProxy serves the fleet again: asked directly, it answers from another host's replica.
    said = host.exec("curl", "-fsS", f"http://127.0.0.1:{deployed.port}/")
    assert said.split()[1] in {r.replica for r in web(engine)}
    assert [get(deployed.url)[0] for _ in range(10)] == [200] * 10


def test_an_app_hosts_reload_keeps_its_checks_and_gives_a_drained_server_its_weight_back(
    deployed: Deployed,
) -> None:
    """A push that reloads a driven app host's HAProxy (what a shape change does): its file
    renders a drained server at weight 0. After it, a server that was drained and is set
    ready again serves with its weight on that host (read with the runtime API). And the new
    worker got the old one's checks' verdicts: the server state saved on the host before the
    reload (what its `server-state-file` loads) has a dead server down."""
    assert deployed.up is not None, "up failed: no HAProxy to reload"
    router = deployed.project().engine().router
    assert isinstance(router, FleetRouter)
    h1 = router.hosts["h1"]
    replica = next(s for s in h1.api.servers() if s.backend == "web")
    assert replica.weight > 0 and replica.admin_state == "ready"
    # A server nobody answers for (port 9 of h1's address), drained: checked, never routed.
    address = deployed.fleet.host("h1").address
    dead = ServerEntry(name="dead-1", endpoint=Endpoint(host=address, port=9), state="drain")
    router.add_server("web", dead)
    try:

        def dead_is_down() -> bool:
            return {s.server: s.operational for s in h1.api.servers()}.get("dead-1") == "down"

        assert wait_until(dead_is_down, 30, 0.2), h1.api.servers()
        router.set_state("web", replica.server, "drain")
        shape = router.shape()
        assert shape is not None
        before = h1.worker_pid()
        router.push(h1, shape)  # reloaded: a new worker answers when this returns
        assert h1.worker_pid() != before
        saved = deployed.fleet.host("h1").exec("cat", f"{router.app_dir}/servers.state")
        header = saved.splitlines()[1].removeprefix("# ").split()
        rows = [dict(zip(header, line.split(), strict=False)) for line in saved.splitlines()[2:]]
        assert {r["srv_op_state"] for r in rows if r.get("srv_name") == "dead-1"} == {"0"}, saved
        assert {s.server: s for s in h1.api.servers()}[replica.server].admin_state == "drain"
        router.set_state("web", replica.server, "ready")
        back = {s.server: s for s in h1.api.servers()}[replica.server]
        assert (back.admin_state, back.weight) == ("ready", replica.weight)
    finally:
        router.remove_server("web", "dead-1")
        router.set_state("web", replica.server, "ready")
    assert [get(deployed.url)[0] for _ in range(6)] == [200] * 6


def test_a_new_constraint_moves_the_replicas_it_excludes_at_the_deploy_failing_no_request(
    deployed: Deployed,
) -> None:
    """Only the placement changes (the release's specs do not): the deploy starts each
    excluded replica's replacement on an allowed host, routes it, then drains and stops the
    old one; the replicas on allowed hosts stay where they are."""
    assert deployed.up is not None, "up failed: nothing to move"
    engine = deployed.project().engine()
    before = {r.replica: r.host for r in web(engine)}
    excluded = Counter(before.values()).most_common(1)[0][0]
    staying = {replica for replica, host in before.items() if host != excluded}
    unconstrained = deployed.compose

    def constrained(port: int, version: str) -> str:
        data = json.loads(unconstrained(port, version))
        placement = {"constraints": [f"node.hostname!={excluded}"]}
        data["services"]["web"]["deploy"]["placement"] = placement
        return json.dumps(data)

    deployed.compose = constrained
    version = get(deployed.url)[1].split()[0]
    deployed.write(version)
    with Load(deployed.url) as load:
        result = app.deploy(deployed.project(), [], images=deployed.images())
    assert result.outcome.status == "succeeded", result.outcome.error
    assert load.failed == 0, load.failures
    assert sum(load.statuses.values()) > 0
    after = web(deployed.project().engine())
    assert len(after) == 3 and {r.router for r in after} == {"ready"}
    assert excluded not in {r.host for r in after}
    assert staying <= {r.replica for r in after}  # only what had to move moved
    assert not project_containers(deployed)[excluded]  # as the host's own engine says
    # The next deploy finds nothing to move.
    again = app.deploy(deployed.project(), [], images=deployed.images())
    assert again.outcome.status == "unchanged"


def test_a_host_taken_out_of_the_inventory_is_left_by_the_next_deploy_failing_no_request(
    deployed: Deployed,
) -> None:
    """conveyor.yaml stops naming a host that runs a replica: the deploy moves that replica
    to the other hosts (start-first, under load), then stops the project's HAProxy there and
    removes its containers and files; the host is forgotten, and the next deploy is
    unchanged (docs/fleet.md, "Hosts that leave the fleet")."""
    assert deployed.up is not None, "up failed: nothing to leave"
    deployed.compose = web_compose(PROJECT)  # whatever placement an earlier test left
    engine = deployed.project().engine()
    gone = sorted({r.host for r in web(engine)})[-1]
    host = next(h for h in deployed.fleet.hosts if h.name == gone)
    haproxy, files = f"/run/conveyor/{PROJECT}/haproxy", f"/var/lib/conveyor/{PROJECT}"
    # What a copied file leaves there (this project mounts none).
    host.exec("mkdir", "-p", f"{files}/files/0000")
    running = f"pgrep -af '[/]run/conveyor/{PROJECT}/haproxy' || true"
    assert host.exec("sh", "-c", running).strip(), "no HAProxy of the project to stop there"
    state = deployed.project().paths().state_dir / "fleet-hosts.json"
    assert gone in read_hosts(state)
    deployed.write(get(deployed.url)[1].split()[0])  # the version it serves: no new spec
    kept = {name: h for name, h in inventory(deployed.fleet).items() if name != gone}
    conf = deployed.workdir / "conveyor.yaml"
    conf.write_text(json.dumps({"hosts": kept}))
    try:
        said = app.plan(deployed.project(), []).notes
        assert any(n.startswith(f"{gone} left the fleet: web-") for n in said), said
        with Load(deployed.url) as load:
            result = app.deploy(deployed.project(), [], images=deployed.images())
        assert result.outcome.status == "succeeded", result.outcome.error
        assert load.failed == 0, load.failures
        assert sum(load.statuses.values()) > 0
        after = web(deployed.project().engine())
        assert len(after) == 3 and {r.router for r in after} == {"ready"}
        assert gone not in {r.host for r in after}
        # As the host itself says: nothing of the project left there.
        names = host.exec("docker", "ps", "-a", "--format", "{{.Names}}", timeout=20).split()
        assert not [n for n in names if n.startswith(f"{PROJECT}-")], names
        assert not host.exec("sh", "-c", running).strip()
        assert not host.exec("sh", "-c", f"ls -d {haproxy} {files} 2>/dev/null || true").strip()
        assert gone not in read_hosts(state)
        again = app.deploy(deployed.project(), [], images=deployed.images())
        assert again.outcome.status == "unchanged"
    finally:
        conf.write_text(conveyor_yaml(deployed.fleet))
