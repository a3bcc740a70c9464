"""Faults mid-rollout on the worker's shared fleet of three hosts (conftest.py), under a
bounded load loop through the edge (docs/fleet.md, "Faults mid-rollout"): a host's dockerd
killed while a rolling deploy runs; the deploying process SIGKILLed mid-rollout and resumed
from the journal by the next deploy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from conveyor.app import deploy as app
from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.host.process import wait_until
from conveyor.testing.fleet_hosts import TestFleet
from tests.integration.fleet.support import (
    Deployed,
    Load,
    converged,
    get,
    project_containers,
    project_on,
    web,
)

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


def test_dockerd_killed_mid_rollout_fails_no_request_routed_elsewhere(deployed: Deployed) -> None:
    """A host's dockerd is killed while a rolling deploy runs (once the deploy's first new
    replica runs, on a host that has none yet). The deploy may fail there (a step on the lost
    host) and roll back, or finish; either way the load loop may lose at most the one
    request in flight on the lost host (one request at a time: the edge retries every other
    one on another host). The reconciler replaces the lost host's replica, cleans the host
    when it is back, and deploying again converges to the new version."""
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
        deployed.write("v3")
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
        victim.kill_dockerd()
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
            victim.start_dockerd()

        def back() -> bool:
            reconciler.tick()
            return runtime.health.health(victim.name).status == "up"

        assert wait_until(back, 180, 0.5), runtime.health.transitions
        again = app.deploy(deployed.project(), [], images=deployed.images())
    assert again.outcome.status == "succeeded", (outcome, again.outcome.error)
    assert load.failed <= 1, (outcome, load.statuses)
    assert sum(load.statuses.values()) > 0
    converged(deployed, "v3")


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
