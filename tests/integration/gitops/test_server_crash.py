"""Crash safety (issue 9, item 9): the real `conveyor server` is SIGKILLed mid-pipeline and
mid-rollout, and started again on the same data directory.

Mid-pipeline (shell executor): the pipeline's job blocks (the first time only) and a second
webhook for the commit arrives meanwhile (202: persisted, not yet covered). The kill leaves the
job's process group running; after a restart the server stops it, the interrupted pipeline is
marked `interrupted`, the commit is brought in again (`on_interrupted: rerun`, the default: a
new pipeline, then the rollout) and the webhook that got 202 is marked done. Mid-rollout: the
new release's replica waits for a gate file in its probe; the server is killed while the
rollout waits; the old release keeps serving meanwhile (HAProxy is not the server's child);
after the restart the deploy engine recovers the interrupted rollout and the new release
serves. Mid-job in a container (docker executor) with `on_interrupted: abandon`: the kill
leaves the job's container running; after a restart the server removes it, marks the pipeline
`interrupted` and the commit failed, and brings it in no more, until the branch moves.

What the kills leave is also stopped by the test (the job's process group by the PID it wrote,
the container by its id) whatever the server did.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from conveyor.runtime.job_protocol import LABEL_CI, LABEL_STORE
from tests.integration.gitops.server_world import CONVEYOR, ServerWorld, conveyor


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
    """The blocked job's process group, if the SIGKILLed server left it running."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)


def _runs(pid: int) -> bool:
    """Process `pid` exists and is not a zombie (a killed process whose new parent has not
    reaped it yet runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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
        job_pid = int(pid_file.read_text().split()[0])
        assert _runs(job_pid)  # the kill left the job's script running
        assert w.serving() == "1"  # the previous release serves while the server is down

        w.start()
        w.wait_for(lambda: not _runs(job_pid), "the restarted server to stop the job left")
    finally:
        _stop_group(pid_file)
    w.wait_for(lambda: w.serving() == "2", "version 2 to serve after the restart")
    pipelines = w.api("/environments/staging/pipelines", token)
    mine = sorted((p for p in pipelines if p["sha"] == sha), key=lambda p: p["id"])
    assert [p["status"] for p in mine] == ["interrupted", "success"]
    jobs = w.api(f"/environments/staging/pipelines/{mine[0]['id']}/jobs", token)
    assert [j["status"] for j in jobs] == ["interrupted"]
    events = w.events(token)
    interrupted = [e for e in events if e["kind"] == "pipeline.interrupted"]
    assert [e["subject"]["pipeline"] for e in interrupted] == [mine[0]["id"]]
    assert interrupted[0]["subject"]["environment"] == "staging"
    assert interrupted[0]["data"]["stopped"] == [
        f"process group {job_pid} of job test (#{jobs[0]['id']})"
    ]
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


DOCKER_JOB = """\
test:
  tags: [docker]
  image: {image}
  script:
    - sleep 600
"""


def _job_containers(client: docker.DockerClient, w: ServerWorld) -> list[Container]:
    """The CI job containers of this world's server (their store lies in its data directory)."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL_CI}=job"})
    data = str(w.data.resolve())
    return [c for c in found if c.labels.get(LABEL_STORE, "").startswith(data + "/")]


def test_killed_mid_docker_job_its_container_is_removed_and_the_commit_abandoned(
    world: ServerWorld,
) -> None:
    w = world
    w.wait_for(lambda: w.serving() == "3", "version 3 to serve")
    token = w.token("viewer")
    (w.repo / "conveyor.yaml").write_text(CONVEYOR + "    on_interrupted: abandon\n")
    sha = w.push("4", pipeline=DOCKER_JOB.format(image=w.image))
    client = docker.from_env()
    left: list[str] = []
    try:
        assert w.hook(sha, "push-4") == 202

        def job_running() -> Container | None:
            running = [c for c in _job_containers(client, w) if c.status == "running"]
            return running[0] if running else None

        container = w.wait_for(job_running, "the docker job's container to run")
        left.append(container.id)
        w.kill()
        container.reload()
        assert container.status == "running"  # the kill left it
        assert w.serving() == "3"

        w.start()

        def removed() -> bool:
            try:
                client.containers.get(container.id)
            except docker.errors.NotFound:
                return True
            return False

        w.wait_for(removed, "the restarted server to remove the job's container")
    finally:
        for cid in left:
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(cid).remove(force=True)
    # A delivery after the restart is settled by a pass that began after it: that pass has
    # seen the commit and, by policy, not brought it in again.
    assert w.hook(sha, "push-4-after-restart") == 202
    w.wait_for(lambda: w.delivery_status("push-4-after-restart") == "done", "a pass to settle")
    pipelines = [p for p in w.api("/environments/staging/pipelines", token) if p["sha"] == sha]
    assert [p["status"] for p in pipelines] == ["interrupted"]
    (job,) = w.api(f"/environments/staging/pipelines/{pipelines[0]['id']}/jobs", token)
    assert job["status"] == "interrupted"
    # The server keeps its events across restarts: those of this commit.
    events = [e for e in w.events(token) if e["subject"]["commit"] == sha]
    (interrupted,) = [e for e in events if e["kind"] == "pipeline.interrupted"]
    assert interrupted["subject"]["pipeline"] == pipelines[0]["id"]
    (stopped,) = interrupted["data"]["stopped"]
    assert stopped.startswith("container ") and stopped.endswith(f" of job test (#{job['id']})")
    assert "abandoned (on_interrupted: abandon)" in interrupted["message"]
    (failed,) = [e for e in events if e["kind"] == "sync.failed"]
    assert failed["message"].endswith("not deployed: interrupted: abandoned by policy")
    detail = w.api("/environments/staging", token)
    assert (detail["environment"]["state"], detail["failed_commit"], detail["reason"]) == (
        "failed",
        sha,
        "interrupted: abandoned by policy",
    )
    assert w.serving() == "3"

    moved = w.push("5")  # the branch moves: brought in as usual
    assert w.hook(moved, "push-5") == 202
    w.wait_for(lambda: w.serving() == "5", "version 5 to serve")
