"""Crash safety (issue 9, item 9): the real `conveyor server` is SIGKILLed mid-pipeline and
mid-rollout, and started again on the same data directory.

Mid-pipeline: the pipeline's job blocks (the first time only) and a second webhook for the
commit arrives meanwhile (202: persisted, not yet covered). After the kill and a restart the
interrupted pipeline is marked `interrupted`, the commit is brought in again (a new pipeline,
then the rollout) and the webhook that got 202 is marked done. Mid-rollout: the new release's
replica waits for a gate file in its probe; the server is killed while the rollout waits; the
old release keeps serving meanwhile (HAProxy is not the server's child); after the restart the
deploy engine recovers the interrupted rollout and the new release serves.

The blocked job's process (its own process group, left behind by the kill) is stopped by the
PID it wrote.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.gitops.server_world import ServerWorld, conveyor


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    w = ServerWorld(tmp_path_factory.mktemp("crash"), base_image, "crashy")
    w.push("1")
    w.start()
    try:
        yield w
    finally:
        w.close(conveyor)


def _stop_group(pid_file: Path) -> None:
    """The blocked job's process group, which the SIGKILLed server left running."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)


def test_killed_mid_pipeline_the_pipeline_is_interrupted_and_the_commit_synced_again(
    world: ServerWorld,
) -> None:
    w = world
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve")
    token = w.token("viewer")
    pid_file = w.root / "job.pid"
    # Blocks the first time it runs (and says its PID); passes when run again.
    script = f"if [ -e {pid_file} ]; then echo again; else echo $$ > {pid_file}; sleep 600; fi"
    sha = w.push("2", script=script)
    try:
        assert w.hook(sha, "push-2") == 202
        w.wait_for(pid_file.exists, "the pipeline's job to start")
        # Accepted while the server is busy with the pipeline: persisted, not yet covered.
        assert w.hook(sha, "push-2-again") == 202
        assert w.delivery_status("push-2-again") == "pending"
        w.kill()
    finally:
        _stop_group(pid_file)
    assert w.serving() == "1"  # the previous release serves while the server is down

    w.start()
    w.wait_for(lambda: w.serving() == "2", "version 2 to serve after the restart")
    pipelines = w.api("/environments/staging/pipelines", token)
    mine = sorted((p for p in pipelines if p["sha"] == sha), key=lambda p: p["id"])
    assert [p["status"] for p in mine] == ["interrupted", "success"]
    jobs = w.api(f"/environments/staging/pipelines/{mine[0]['id']}/jobs", token)
    assert [j["status"] for j in jobs] == ["interrupted"]
    events = w.api("/events?limit=1000", token)
    interrupted = [e for e in events if e["kind"] == "pipeline.interrupted"]
    assert [e["subject"]["pipeline"] for e in interrupted] == [mine[0]["id"]]
    assert interrupted[0]["subject"]["environment"] == "staging"
    w.wait_for(lambda: w.delivery_status("push-2-again") == "done", "the delivery to be settled")


def test_killed_mid_rollout_the_rollout_is_recovered(world: ServerWorld) -> None:
    w = world
    w.wait_for(lambda: w.serving() == "2", "version 2 to serve")
    token = w.token("viewer")
    gate = w.root / "gate"
    gate.mkdir()
    before = {r["id"] for r in w.api("/environments/staging/rollouts", token)}
    sha = w.push("3", gate=gate)
    assert w.hook(sha, "push-3") == 202

    def rollout_running() -> dict[str, object] | None:
        rollouts = w.api("/environments/staging/rollouts", token)
        return next(
            (r for r in rollouts if r["id"] not in before and r["status"] == "running"), None
        )

    killed = w.wait_for(rollout_running, "the rollout of version 3 to start")
    w.kill()
    assert w.serving() == "2"  # HAProxy and the old replica outlive the server

    w.start()
    (gate / "open").touch()
    w.wait_for(lambda: w.serving() == "3", "version 3 to serve after the restart")

    def settled() -> dict[int, dict[str, object]] | None:
        """The rollouts once none runs (the old replica is drained after the new serves)."""
        found = {r["id"]: r for r in w.api("/environments/staging/rollouts", token)}
        return None if any(r["status"] == "running" for r in found.values()) else found

    rollouts = w.wait_for(settled, "the recovery to finish")
    assert rollouts[killed["id"]]["status"] == "interrupted"
    recovered = [r for r in rollouts.values() if r["kind"] == "recover"]
    assert [(r["status"], r["to_release"]) for r in recovered] == [
        ("succeeded", killed["to_release"])
    ]

    def synced() -> bool:
        (staging,) = w.api("/environments", token)
        return bool((staging["state"], staging["commit"]) == ("serving", sha))

    w.wait_for(synced, "staging to report the commit serving")
