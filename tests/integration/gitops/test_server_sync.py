"""git push → pipeline → release → rollout, by the real `conveyor server` process: a bare
repository holding a one-service compose app, its `.gitlab-ci.yml` (shell executor) and
`conveyor.yaml` (server_world.py). The server brings `staging` to `main` at start; a push
followed by a signed generic webhook brings the new commit in; a push whose pipeline fails is
not deployed and the previous release keeps serving; a wrong webhook secret gets 401.

The app's network is `internal`, its port published on 127.0.0.1; the fixture records the
server's PID, stops it with SIGTERM, and takes the environment down by its project name.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.gitops.server_world import ServerWorld, conveyor


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    # the project is <name>-staging: unique per run
    w = ServerWorld(tmp_path_factory.mktemp("gitops"), base_image, f"app{uuid.uuid4().hex[:6]}")
    w.env["CONVEYOR_METRICS"] = "1"  # the suite turns metrics off; the last test reads them
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


def _prometheus(world: ServerWorld, path: str) -> Any:
    ports = json.loads((world.data / "metrics" / "ports.json").read_text())
    url = f"http://127.0.0.1:{ports['prometheus']}{path}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())["data"]


def test_the_server_runs_one_metrics_stack_for_its_environments(world: ServerWorld) -> None:
    def scraped() -> bool:
        try:
            targets = _prometheus(world, "/api/v1/targets?state=active")["activeTargets"]
        except OSError:
            return False
        up = {
            (t["labels"]["job"], t["labels"].get("project")) for t in targets if t["health"] == "up"
        }
        return ("haproxy", world.project) in up and ("conveyor", None) in up

    world.wait_for(scraped, "Prometheus to scrape the environment's HAProxy and the server")
    # the environment has no stack of its own: the server's watches it
    env_state = world.work / ".conveyor" / world.project
    assert not (env_state / "metrics" / "prometheus.pid").exists()

    def webhooks() -> dict[str, float]:
        q = urllib.parse.quote(
            'sum by (result) (conveyor_webhook_deliveries_total{source="generic"})'
        )
        result = _prometheus(world, f"/api/v1/query?query={q}")["result"]
        return {r["metric"]["result"]: float(r["value"][1]) for r in result}

    # an earlier test sent a webhook with a wrong secret and good ones
    counted = world.wait_for(
        lambda: (w := webhooks()) and w.get("rejected", 0) >= 1 and w.get("accepted", 0) >= 1 and w,
        "the server's webhook deliveries in Prometheus",
    )
    assert counted["rejected"] >= 1
    rollouts = _prometheus(
        world,
        "/api/v1/query?query="
        + urllib.parse.quote(
            f'sum(conveyor_service_replicas_running{{project="{world.project}"}})'
        ),
    )["result"]
    assert rollouts and float(rollouts[0]["value"][1]) >= 1
    assert Path(world.data / "metrics" / "prometheus" / "prometheus.yml").exists()
