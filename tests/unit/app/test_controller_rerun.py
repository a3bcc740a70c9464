"""The controller's retry and play of a job: refused at once with the reason (HTTP 409), run
in a thread of its own, and a refused commit whose pipeline turns green is rolled out (the
rollout itself is a stand-in here: no Docker). The pipeline runs with the shell executor in
the environment's real work tree (a git checkout)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from conveyor.app import ci as ci_app
from conveyor.app.controller import Controller
from conveyor.errors import ActionRefused, NotFound
from conveyor.model.access import Principal
from conveyor.model.environments import EnvironmentSpec
from conveyor.spec.conveyor_file import parse_conveyor

PIPELINE = """
stages: [test, deploy]
test:
  stage: test
  script: ["test -f flag"]
ship:
  stage: deploy
  rules:
    - when: manual
  script: ["echo shipped"]
"""
BOB = Principal(name="bob", role="deployer")


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    c = Controller(
        str(tmp_path / "app.git"), tmp_path / "data", {}, executor="shell", registry=False
    )
    c.config = parse_conveyor("environments:\n  staging:\n    branch: main\n")
    work = c._work_tree("staging")
    work.mkdir(parents=True)
    (work / ".gitlab-ci.yml").write_text(PIPELINE)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return c


def finish(kind: str) -> None:
    """Wait for the controller's rerun threads (they are named after what they run)."""
    for t in threading.enumerate():
        if t.name.startswith(f"{kind}-staging-"):
            t.join()


def test_retry_then_play_roll_out_the_commit_the_pipeline_held_back(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = controller
    work = c._work_tree("staging")
    first = ci_app.run(work / ".gitlab-ci.yml", executor="shell", registry=False).pipeline
    assert first is not None and first.status == "failed"
    sha = first.sha
    assert sha is not None
    # what the sync recorded when it refused the commit (app/controller.py `_sync`)
    c._update("staging", desired=sha, failed=sha, reason="pipeline 1 failed")
    rolled: list[str] = []

    def roll_out(spec: EnvironmentSpec, head: str) -> str:
        rolled.append(head)
        return ""

    monkeypatch.setattr(c, "_roll_out", roll_out)
    ids = {j.name: j.id for j in first.jobs}
    with pytest.raises(ActionRefused, match="ship is skipped"):
        c.retry_job("staging", ids["ship"], BOB)
    with pytest.raises(NotFound):
        c.retry_job("staging", 999, BOB)

    (work / "flag").write_text("")
    result = c.retry_job("staging", ids["test"], BOB)
    assert result.action == "retry" and "retry started" in result.message
    finish("retry")
    after = ci_app.show(work / ".gitlab-ci.yml", first.id)
    # the retry passed; the manual deploy job now waits (blocking): not green yet
    assert after.status == "manual" and rolled == []
    assert c._progress("staging").failed == sha

    c.play_job("staging", ids["ship"], BOB)
    finish("play")
    assert ci_app.show(work / ".gitlab-ci.yml", first.id).status == "success"
    assert rolled == [sha]
    progress = c._progress("staging")
    assert progress.deployed == sha and progress.failed is None and progress.syncing is None
    kinds = [e.kind for e in c.events(None, 1000)]
    assert kinds[-2:] == ["sync.started", "sync.succeeded"]
    with pytest.raises(ActionRefused, match="not a manual job"):
        c.play_job("staging", ids["ship"], BOB)


def test_a_green_pipeline_of_a_commit_not_refused_changes_nothing(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = controller
    work = c._work_tree("staging")
    first = ci_app.run(work / ".gitlab-ci.yml", executor="shell", registry=False).pipeline
    assert first is not None
    c._update("staging", desired="f" * 40, failed="f" * 40)  # another commit is the news
    monkeypatch.setattr(c, "_roll_out", lambda spec, head: pytest.fail("no rollout"))
    (work / "flag").write_text("")
    test = next(j for j in first.jobs if j.name == "test")
    c.retry_job("staging", test.id, BOB)
    finish("retry")
    assert ci_app.show(work / ".gitlab-ci.yml", first.id).status == "manual"  # it ran
    c.play_job("staging", next(j.id for j in first.jobs if j.name == "ship"), BOB)
    finish("play")
    assert ci_app.show(work / ".gitlab-ci.yml", first.id).status == "success"
    assert c._progress("staging").failed == "f" * 40
