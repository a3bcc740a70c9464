"""Faults mid-rollout on the worker's shared fleet of three hosts (conftest.py), under a
bounded load loop through the edge (docs/fleet.md, "Faults mid-rollout"): a host's dockerd
killed, or its link cut, while a rolling deploy runs; the deploying process SIGKILLed
mid-rollout and resumed from the journal by the next deploy; the GitOps server SIGKILLed
mid-rollout and recovering it when started again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor.app import deploy as app
from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.deploy.project import ProjectPaths
from conveyor.host.process import wait_until
from conveyor.testing.fleet_hosts import TestFleet, TestHost
from tests.integration.fleet.support import (
    IMAGE,
    Deployed,
    Load,
    converged,
    get,
    inventory,
    project_containers,
    project_on,
    stop_tunnels,
    web,
    web_compose,
)
from tests.integration.gitops.server_world import ServerWorld, conveyor

pytestmark = pytest.mark.integration

PROJECT = "fleetfault"


@pytest.fixture(scope="module")
def deployed(shared_fleet: TestFleet) -> Iterator[Deployed]:
    """The project up at v1 over the three hosts (each test then rolls it further)."""
    with project_on(shared_fleet, PROJECT) as state:
        result = app.up(
            state.project(), agent=False, images=state.images(), checks=False, metrics=False,
            logs=False,
        )  # fmt: skip
        assert result.outcome.status == "succeeded", result.outcome.error
        state.up = result
        yield state


@dataclass(frozen=True)
class Fault:
    """How a host is lost mid-rollout, and how it comes back."""

    name: str
    lose: Callable[[TestHost], None]
    repair: Callable[[TestHost], None]


FAULTS = {
    "dockerd killed": Fault("dockerd killed", TestHost.kill_dockerd, TestHost.start_dockerd),
    "link cut": Fault("link cut", TestHost.cut_link, TestHost.restore_link),
}


def _lose_a_host_mid_rollout(deployed: Deployed, fault: Fault, version: str) -> None:
    """Deploy `version` in a thread; as soon as its first new replica runs on some host, lose
    a host that has no new replica yet (`fault`). The deploy may fail there (a step on the
    lost host) and roll back, or finish; either way the load loop may lose at most the one
    request in flight on the lost host (one request at a time: the edge retries every other
    one on another host). The reconciler replaces the lost host's replica, cleans the host
    when it is back, and deploying again converges to `version`."""
    assert deployed.up is not None, "up failed: nothing to deploy over"
    before = set().union(*project_containers(deployed).values())
    reconciler = app.reconciler(deployed.project())
    runtime = reconciler.engine.runtime
    assert isinstance(runtime, FleetRuntime)
    outcome: list[str] = []

    def roll() -> None:
        result = app.deploy(deployed.project(), [], images=deployed.images())
        outcome.append(result.outcome.status)

    with Load(deployed.url) as load:
        deployed.write(version)
        deploying = threading.Thread(target=roll, daemon=True)
        deploying.start()
        victims: list[str] = []

        def first_new_runs() -> bool:
            now = project_containers(deployed)
            fresh = {h for h, names in now.items() if names - before}
            if fresh:
                victims.extend(sorted(set(now) - fresh)[-1:])
            return bool(fresh) or not deploying.is_alive()

        assert wait_until(first_new_runs, 300, 0.3), "the deploy started no new replica"
        assert victims, "the deploy ended before the fault"
        victim = deployed.fleet.host(victims[0])
        mid_rollout = deploying.is_alive()
        fault.lose(victim)
        try:
            assert mid_rollout, "the deploy ended before the fault"
            deploying.join(timeout=600)
            assert not deploying.is_alive(), "the deploy did not end"

            def replaced() -> bool:
                reconciler.tick()
                placed = [r.host for r in web(reconciler.engine) if r.router == "ready"]
                return runtime.health.health(victim.name).status == "down" and len(placed) == 3

            assert wait_until(replaced, 180, 0.5), runtime.health.transitions
        finally:
            fault.repair(victim)

        def back() -> bool:
            reconciler.tick()
            return runtime.health.health(victim.name).status == "up"

        assert wait_until(back, 180, 0.5), runtime.health.transitions
        again = app.deploy(deployed.project(), [], images=deployed.images())
    assert again.outcome.status == "succeeded", (outcome, again.outcome.error)
    assert load.failed <= 1, (outcome, load.failures)
    assert sum(load.statuses.values()) > 0
    converged(deployed, version)
    # Cleaned when it came back: every container of the project that runs is a replica the
    # engine knows (nothing stale on the host that was lost).
    running = set().union(*project_containers(deployed).values())
    known = {f"{deployed.name}-{r.replica}" for r in web(deployed.project().engine())}
    assert running == known, (running, known)


def test_dockerd_killed_mid_rollout_fails_no_request_routed_elsewhere(deployed: Deployed) -> None:
    """A host's dockerd is killed while a rolling deploy runs (_lose_a_host_mid_rollout)."""
    _lose_a_host_mid_rollout(deployed, FAULTS["dockerd killed"], "v2")


def test_link_cut_mid_rollout_fails_no_request_routed_elsewhere(deployed: Deployed) -> None:
    """A host drops off the network while a rolling deploy runs: every call on it (engine
    through its SSH tunnel, HAProxy's admin socket, files over SSH) must end in bounded time
    for the deploy to end and the reconciler to act (_lose_a_host_mid_rollout)."""
    _lose_a_host_mid_rollout(deployed, FAULTS["link cut"], "v3")


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
        mid = {get(deployed.url)[1].split()[0] for _ in range(12)}
        again = conveyor("-m", "conveyor")
    assert again.returncode == 0, again.stderr
    assert "recover" in (again.stdout + again.stderr).lower(), again.stdout
    assert mid <= {"v3", "v4"}, mid
    assert set(load.statuses) == {200}, load.statuses
    converged(deployed, "v4")


def test_the_server_killed_mid_rollout_recovers_it_when_started_again(
    shared_fleet: TestFleet, tmp_path: Path
) -> None:
    """The real `conveyor server` (GitOps: a bare repository, a webhook, a shell pipeline)
    manages an environment on the fleet. It SIGKILLs itself right after journaling the second
    `drain` step of the rollout of v2 (KILL_AT_SECOND_DRAIN, wrapped around the server's own
    `main`); the edge keeps answering meanwhile (HAProxies and replicas are not the server's
    children). Started again on the same data directory, it recovers the rollout from the
    journal and v2 serves on all three hosts. No request of the load loop fails."""
    config = {
        "environments": {"staging": {"branch": "main", "poll_interval": "1h"}},
        "hosts": inventory(shared_fleet),
    }
    world = ServerWorld(
        tmp_path, IMAGE, "fleetsrv", conveyor_yaml=json.dumps(config),
        compose=web_compose(None), env={"CONVEYOR_CHECKS": "off"},
    )  # fmt: skip
    token: str | None = None
    try:
        world.push("v1")
        world.start(code=KILL_AT_SECOND_DRAIN)
        world.wait_for(lambda: (world.serving() or "").startswith("v1 "), "v1 to serve")
        token = world.token("viewer")
        url = f"http://127.0.0.1:{world.port}/"
        with Load(url) as load:
            assert world.hook(world.push("v2"), "push-v2") == 202
            proc = world.proc
            assert proc is not None
            assert wait_until(lambda: proc.poll() is not None, 600, 0.3), "not killed"
            assert proc.returncode == -9, world.log.read_text()[-3000:]
            mid = {get(url)[1].split()[0] for _ in range(12)}
            world.start()

            def settled() -> list[dict[str, Any]] | None:
                # The killed rollout shows `interrupted` as soon as the server is back, before
                # its recovery starts (and v2 already answers from the replicas it started):
                # wait for the recovery itself to be recorded and to end.
                found = world.api("/environments/staging/rollouts", token or "")
                recovered = any(r["kind"] == "recover" for r in found)
                running = any(r["status"] == "running" for r in found)
                return found if recovered and not running else None

            rollouts = world.wait_for(settled, "the recovery to finish", 600)
        assert mid <= {"v1", "v2"}, mid
        seen = [(r["kind"], r["status"], r.get("error")) for r in rollouts]
        assert [r["status"] for r in rollouts if r["kind"] == "recover"] == ["succeeded"], seen
        assert "interrupted" in {r["status"] for r in rollouts}, seen
        assert set(load.statuses) == {200}, load.failures
        assert {get(url)[1].split()[0] for _ in range(9)} == {"v2"}
        names = {
            h.name: h.exec("docker", "ps", "--format", "{{.Names}}", timeout=20).split()
            for h in shared_fleet.hosts
        }
        web_on = {h: [n for n in found if n.startswith(f"{world.project}-web-")]
                  for h, found in names.items()}  # fmt: skip
        assert sorted(len(found) for found in web_on.values()) == [1, 1, 1], web_on
    finally:
        world.close(conveyor)
        stop_tunnels(ProjectPaths(world.work / "compose.yaml", world.project), shared_fleet)
