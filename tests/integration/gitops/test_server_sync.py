"""git push → pipeline → release → rollout, by the real `conveyor server` process: a bare
repository holding a one-service compose app, its `.gitlab-ci.yml` (shell executor) and
`conveyor.yaml` (server_world.py). The server brings `staging` to `main` at start; a push
followed by a signed generic webhook brings the new commit in; a push whose pipeline fails is
not deployed and the previous release keeps serving; a wrong webhook secret gets 401.

The app's network is `internal`, its port published on 127.0.0.1; the fixture records the
server's PID, stops it with SIGTERM, and takes the environment down by its project name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.gitops.server_world import ServerWorld, conveyor


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    # the project is <name>-staging: unique per run
    w = ServerWorld(tmp_path_factory.mktemp("gitops"), base_image, f"app{uuid.uuid4().hex[:6]}")
    w.push("1")
    try:
        w.start()
        yield w
    finally:
        w.close(conveyor)


def test_the_server_brings_staging_to_main_at_start(world: ServerWorld) -> None:
    world.wait_for(lambda: world.serving() == "1", "version 1 to serve")


def test_a_push_and_its_webhook_bring_the_new_commit_in(world: ServerWorld) -> None:
    world.wait_for(lambda: world.serving() == "1", "version 1 to serve")
    sha = world.push("2")
    assert world.hook(sha, "sync-2-wrong", secret="wrong") == 401
    assert world.hook(sha, "sync-2") in (200, 202)
    world.wait_for(lambda: world.serving() == "2", "version 2 to serve")


def test_a_failed_pipeline_is_not_deployed_and_the_release_keeps_serving(
    world: ServerWorld,
) -> None:
    world.wait_for(lambda: world.serving() == "2", "version 2 to serve")
    token = world.token("viewer")
    sha = world.push("3", script="exit 1")
    assert world.hook(sha, "sync-3") in (200, 202)

    def failed() -> bool:
        envs = world.api("/environments", token)
        return any(e["name"] == "staging" and e["state"] == "failed" for e in envs)

    world.wait_for(failed, "staging to report the failed commit")
    assert world.serving() == "2"
    (staging,) = world.api("/environments", token)
    assert staging["commit"] != sha
    assert staging["release"] == 2


def test_the_environments_logs_are_collected_and_searchable(world: ServerWorld) -> None:
    world.wait_for(lambda: world.serving() == "2", "version 2 to serve")
    token = world.token("viewer")

    def collected() -> list[dict[str, object]] | None:
        records = world.api("/environments/staging/logs?grep=serving&service=web", token)
        versions = {r["message"] for r in records}
        return records if {"serving version 1", "serving version 2"} <= versions else None

    # release 1's replica is gone: its lines stay searchable
    records = world.wait_for(collected, "both releases' lines in the server's log store")
    by_message = {r["message"]: r for r in records}
    v2 = by_message["serving version 2"]["labels"]
    assert (v2["environment"], v2["service"], v2["release"]) == ("staging", "web", 2)
    assert by_message["serving version 1"]["labels"]["release"] == 1
