"""`auto_promote`: the real server promotes staging's serving release into production by
itself once production's gates hold (a soak), with no `conveyor promote`; until then
`env status` says what the promotion waits for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor.testing.net import free_port
from tests.integration.gitops.server_world import ServerWorld, conveyor

PRODUCTION_PORT = free_port()

CONVEYOR = """\
environments:
  staging:
    branch: main
    poll_interval: 1h
  production:
    promote_from: staging
    auto_promote: true
    gates:
      soak: 8s
    overrides:
      web:
        ports: {{"{staging}": {production}}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    root = tmp_path_factory.mktemp("autopromote")
    w = ServerWorld(root, base_image, "autoprom")
    (w.repo / "conveyor.yaml").write_text(
        CONVEYOR.format(staging=w.port, production=PRODUCTION_PORT)
    )
    w.push("1")
    w.start()
    try:
        yield w
    finally:
        w.close(conveyor)


def test_each_new_staging_release_reaches_production_after_its_soak(world: ServerWorld) -> None:
    w = world
    token = w.token("viewer")
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve in staging")
    w.wait_for(lambda: w.serving(PRODUCTION_PORT) == "1", "version 1 to reach production")

    sha = w.push("2")
    assert w.hook(sha, "auto-2") == 202
    w.wait_for(lambda: w.serving() == "2", "version 2 to serve in staging")
    # production keeps version 1 while staging's release soaks, and says why
    w.wait_for(
        lambda: "soak" in w.api("/environments/production", token)["waiting"],
        "production to say it waits for the soak",
    )
    assert w.serving(PRODUCTION_PORT) == "1"
    w.wait_for(lambda: w.serving(PRODUCTION_PORT) == "2", "version 2 to reach production")
    # (a new replica serves before the rollout has ended and the promotion is recorded)
    w.wait_for(
        lambda: w.api("/environments/production", token)["environment"]["commit"] == sha,
        "the promotion to be recorded",
    )
    assert w.api("/environments/production", token)["waiting"] == ""

    def promotions() -> list[dict[str, object]]:
        events = w.events(token)
        return [e for e in events if e["kind"] == "promotion.succeeded"]

    promoted = w.wait_for(lambda: len(promotions()) == 2 and promotions(), "two promotions")
    events = w.events(token)
    assert all("server (auto_promote)" in e["message"] for e in promoted)
    # not before the soak: 8 s after staging began serving the release
    (served,) = [
        e
        for e in events
        if e["kind"] == "sync.succeeded"
        and e["subject"]["environment"] == "staging"
        and e["subject"]["commit"] == sha
    ]
    assert promoted[-1]["ts"] - served["ts"] >= 8
