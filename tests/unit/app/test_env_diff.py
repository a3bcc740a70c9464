"""The desired stack of `diff` is loaded from a scratch checkout: its paths (build context,
bind mounts) are read as if it sat in the environment's work tree, so an unchanged file shows
no difference."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.env_diff import relocated
from conveyor.app.project import Project
from conveyor.gitops.diff import spec_fields
from conveyor.model.stack import Stack

COMPOSE = """\
services:
  web:
    build: .
    volumes: ["./data:/data"]
    environment: {V: "1"}
"""


def load(directory: Path) -> Stack:
    directory.mkdir(parents=True)
    (directory / "compose.yaml").write_text(COMPOSE)
    (directory / "Dockerfile").write_text("FROM scratch\n")
    return Project.open(Path("compose.yaml"), None, {}, cwd=directory).stack()


def test_paths_of_the_scratch_checkout_read_as_the_work_tree(tmp_path: Path) -> None:
    scratch, work = tmp_path / "diff-x1" / "shop", tmp_path / "staging" / "shop"
    desired, running = load(scratch), load(work)
    # loaded where they are, the same file differs by its paths alone
    assert spec_fields(desired.services["web"], running.services["web"]) == ["volumes"]
    assert desired.services["web"].build != running.services["web"].build
    moved = relocated(desired, scratch, work)
    assert spec_fields(moved.services["web"], running.services["web"]) == []
    assert moved.services["web"].build == running.services["web"].build
