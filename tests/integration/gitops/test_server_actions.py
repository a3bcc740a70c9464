"""Promotion with gates, approvals, rollback recorded in git, and diff, through the real
`conveyor server` process and its HTTP API: a bare repository holding a one-service compose
app, a `.gitlab-ci.yml` (shell executor) and a `conveyor.yaml` with two environments,
`staging` (branch main) and `production` (promoted from staging, behind an approval; its
published port moved by an override).

The tests run in order on one server: promotion refused without an approval (409 naming the
gate), approved then promoted (production serves the staging commit); a push reaches staging
only; `rollback` of staging serves the previous version at once and pushes a pin commit to main
in the bare repository, which the next pass honours; while staging is suspended a push that
deletes the pin shows up in `diff`; on resume it is deployed.

The world is `ServerWorld` (server_world.py) with a second environment: the app's network is
`internal`, its ports are published on 127.0.0.1; it records the server's PID, stops it with
SIGTERM, and takes both environments down by their project names (`<repository>-staging`,
`<repository>-production`, the repository named uniquely per run).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conveyor.testing.net import free_port
from tests.integration.gitops.server_world import ServerWorld, conveyor, git

PIN = ".conveyor/pins/staging.json"

CONVEYOR = """\
environments:
  staging:
    branch: main
    poll_interval: 1h   # webhooks make it immediate
  production:
    promote_from: staging
    protected: true
    gates:
      soak: 0s
      approval: true
    overrides:
      web:
        ports:
          "{staging}": {production}
"""


@dataclass
class World:
    """The server world, a deployer's token and the production environment's port."""

    server: ServerWorld
    token: str
    production_port: int

    @property
    def staging_port(self) -> int:
        return self.server.port

    def commit(self, version: str, *, remove_pin: bool = False) -> str:
        if remove_pin:  # the pin commit the server pushed comes first
            git(self.server.repo, "pull", "-q", "--ff-only", "origin", "main")
            git(self.server.repo, "rm", "-q", PIN)
        return self.server.push(version)

    def hook(self, sha: str) -> str:
        """A signed generic delivery; returns its id."""
        delivery = f"d-{sha[:12]}-{time.monotonic_ns()}"
        assert self.server.hook(sha, delivery) == 202
        return delivery

    def delivery_done(self, delivery: str) -> bool:
        """The server marks a delivery done after the fetch-and-sync pass that covered it."""
        return self.server.delivery_status(delivery) == "done"

    def serving(self, port: int) -> str | None:
        return self.server.serving(port)

    def get(self, path: str) -> Any:
        return self.server.api(path, self.token)

    def act(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        # Actions run the rollout before answering.
        return httpx.post(
            f"{self.server.url}/api/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=300,
        )

    def wait_for(self, pred: Any, what: str) -> Any:
        return self.server.wait_for(pred, what)

    def env(self, name: str) -> dict[str, Any]:
        return dict(self.get(f"/environments/{name}"))

    def commit_of(self, name: str) -> str | None:
        """The commit serving once the sync that brought it in has finished."""
        summary = self.env(name)["environment"]
        return summary["commit"] if summary["state"] == "serving" else None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gitops-actions")
    # The projects are named after the repository (<name>-staging): a name of its own keeps
    # them apart from other test runs on the same Docker Engine.
    server = ServerWorld(root, base_image, f"acts{uuid.uuid4().hex[:8]}")
    production_port = free_port()
    (server.repo / "conveyor.yaml").write_text(
        CONVEYOR.format(staging=server.port, production=production_port)
    )
    server.push("1")
    w = World(server, server.token("deployer"), production_port)
    server.start()
    try:
        yield w
    finally:
        server.close(conveyor)


def test_promotion_is_refused_until_its_gates_hold(world: World) -> None:
    world.wait_for(lambda: world.serving(world.staging_port) == "1", "version 1 in staging")
    assert world.env("production")["environment"]["state"] == "empty"
    # only along promote_from
    wrong = world.act("/environments/staging/promote", {"from": "production"})
    assert wrong.status_code == 409 and "not promoted into" in wrong.json()["detail"]
    refused = world.act("/environments/production/promote", {"from": "staging"})
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "approval: nobody approved release 1 of staging" in detail
    assert "soak" not in detail and "pipeline_passed" not in detail  # those gates hold
    assert world.serving(world.production_port) is None


def test_an_approved_release_is_promoted_with_its_commit(world: World) -> None:
    staging = world.env("staging")["environment"]
    assert world.act("/environments/production/approve", {"release": 99}).status_code == 404
    approved = world.act("/environments/production/approve", {"release": staging["release"]})
    assert approved.status_code == 200, approved.text
    assert world.env("production")["approvals"] == [staging["release"]]
    promoted = world.act("/environments/production/promote", {"from": "staging"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["release"] == 1  # production's own first release
    assert world.serving(world.production_port) == "1"
    production = world.env("production")
    assert production["environment"]["commit"] == staging["commit"]
    assert production["environment"]["state"] == "serving"
    kinds = [e["kind"] for e in world.get("/events?limit=1000")]
    assert "promotion.succeeded" in kinds


def test_a_push_reaches_staging_only(world: World) -> None:
    sha = world.commit("2")
    world.hook(sha)
    world.wait_for(lambda: world.commit_of("staging") == sha, "staging to report version 2")
    assert world.serving(world.staging_port) == "2"
    assert world.serving(world.production_port) == "1"
    diff = world.get("/environments/staging/diff")
    assert diff["in_sync"] is True and diff["services"] == []
    assert diff["desired_commit"] == diff["running_commit"] == sha


def test_rollback_serves_the_previous_release_and_pins_it_in_git(world: World) -> None:
    first = world.get("/environments/staging/releases")[-1]
    head_before = git(world.server.bare, "rev-parse", "main")
    unknown = world.act("/environments/staging/rollback", {"to_release": 99})
    assert unknown.status_code == 404 and "no release 99" in unknown.json()["detail"]
    serving = world.act("/environments/staging/rollback", {"to_release": first["number"] + 1})
    assert serving.status_code == 409 and "is the one serving" in serving.json()["detail"]
    assert git(world.server.bare, "rev-parse", "main") == head_before  # nothing pinned for those
    rolled = world.act("/environments/staging/rollback")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["release"] == first["number"]
    assert world.serving(world.staging_port) == "1"  # at once: no waiting for a poll
    # git records it: a pin commit on main, on top of what was there
    head = git(world.server.bare, "rev-parse", "main")
    assert git(world.server.bare, "rev-parse", "main~1") == head_before
    pin = json.loads(git(world.server.bare, "show", f"main:{PIN}"))
    assert pin["commit"] == first["commit"] and pin["release"] == first["number"]
    assert pin["by"] == "deployer-1"
    # the next pass (a webhook for the pin commit) keeps the rollback
    delivery = world.hook(head)
    world.wait_for(lambda: world.delivery_done(delivery), "the pass after the rollback")
    assert world.serving(world.staging_port) == "1"
    staging = world.env("staging")
    assert staging["pinned_commit"] == first["commit"]
    assert staging["desired_commit"] == first["commit"]
    assert staging["environment"]["state"] == "serving"
    # production has one release: nothing earlier to roll back to
    nothing = world.act("/environments/production/rollback")
    assert nothing.status_code == 409 and "no previous release" in nothing.json()["detail"]


def test_a_push_deleting_the_pin_shows_in_diff_then_moves_on(world: World) -> None:
    assert world.act("/environments/staging/suspend").status_code == 200
    sha = world.commit("3", remove_pin=True)
    delivery = world.hook(sha)
    world.wait_for(lambda: world.delivery_done(delivery), "the pass that sees version 3")
    assert world.serving(world.staging_port) == "1"  # suspended: nothing deployed
    diff = world.get("/environments/staging/diff")
    assert diff["desired_commit"] == sha and diff["in_sync"] is False
    (web,) = diff["services"]
    assert web["service"] == "web" and "spec: environment" in web["differences"]
    assert world.act("/environments/staging/resume").status_code == 200
    world.wait_for(lambda: world.commit_of("staging") == sha, "staging to report version 3")
    assert world.serving(world.staging_port) == "3"
    assert world.env("staging")["pinned_commit"] is None
