"""Rolling back to a chosen release (`Engine.rollback(to=N)`, what the server's rollback
--to uses), and releases made from given images (a promotion runs the source's images)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import NothingToRollBack
from conveyor.model.stack import Service, Stack
from tests.unit.gitops.engine_world import World


def test_rollback_to_a_release_older_than_the_previous_one(tmp_path: Path) -> None:
    world = World(tmp_path)
    for version in ("1", "2", "3"):
        assert world.deploy(version).status == "succeeded"
    o = world.engine.rollback(to=1)
    assert o.status == "succeeded" and o.release == 1
    current = world.store.current_release()
    assert current is not None and current.number == 1
    running = {
        c.req.service.environment["V"] for c in world.runtime.containers.values() if c.running
    }
    assert running == {"1"}
    previous = world.store.previous_release()
    assert previous is not None and previous.number == 3
    rollout = world.store.rollouts.latest(1)[0]
    assert (rollout.kind, rollout.from_release, rollout.to_release) == ("rollback", 3, 1)


def test_rollback_to_the_serving_or_an_unknown_release_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.deploy("1")
    world.deploy("2")
    with pytest.raises(NothingToRollBack, match="release 2 is the one running"):
        world.engine.rollback(to=2)
    with pytest.raises(NothingToRollBack, match="there is no release 9"):
        world.engine.rollback(to=9)


def test_given_images_are_used_instead_of_a_pull(tmp_path: Path) -> None:
    world = World(tmp_path)
    svc = Service(name="web", image="web:latest")
    stack = Stack(project="shop", file=str(tmp_path / "compose.yaml"), services={"web": svc})
    pulled = world.engine.build_release(stack)
    assert pulled.services["web"].image_id == "sha256:web:latest"  # the fake's pull
    given = world.engine.build_release(stack, images={"web": ("web:latest", "sha256:from-qa")})
    assert given.services["web"].image_id == "sha256:from-qa"
    assert given.services["web"].image_ref == "web:latest"


def test_on_a_fleet_a_changed_file_is_a_new_release_and_an_unchanged_one_is_not(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    digests = {"/p/nginx.conf": "a" * 64}
    world.engine.file_digests = lambda svc, stack: dict(digests)
    svc = Service(name="web", image="web:latest", environment={"V": "1"})
    stack = Stack(project="shop", file=str(tmp_path / "compose.yaml"), services={"web": svc})
    first = world.engine.build_release(stack)
    assert first.services["web"].files == digests
    assert world.engine.apply(first, "deploy").status == "succeeded"
    assert world.engine.build_release(stack).number == 1  # the current release itself
    digests["/p/nginx.conf"] = "b" * 64
    changed = world.engine.build_release(stack)
    assert changed.number == 0 and changed.services["web"].files == digests
    assert changed.services["web"].spec_hash != first.services["web"].spec_hash
