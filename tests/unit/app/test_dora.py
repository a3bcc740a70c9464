"""`conveyor dora`'s adapter over a real state database written by the real engine (on the
in-memory runtime), with commit times from a real git checkout."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from conveyor.app.dora import dora_report, parse_window
from conveyor.app.project import Project
from conveyor.errors import StoreError
from conveyor.store.database import DB_NAME
from tests.unit.gitops.engine_world import World

COMPOSE = "name: shop\nservices:\n  web:\n    image: web\n"


@pytest.fixture(autouse=True)
def _no_machine_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def commit(repo: Path, message: str, when: int) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": f"@{when}", "GIT_COMMITTER_DATE": f"@{when}"}

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    if not (repo / ".git").exists():
        git("init", "-q", "-b", "main")
        git("config", "user.name", "Jane Doe")
        git("config", "user.email", "jane@example.com")
        git("config", "commit.gpgSign", "false")
    (repo / "version").write_text(message)
    git("add", "-A")
    git("commit", "-q", "-m", message)
    return git("rev-parse", "HEAD")


def open_project(tmp_path: Path) -> Project:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    return Project.open(None, None, environ={}, cwd=tmp_path)


def test_metrics_from_the_store_with_commit_times_from_git(tmp_path: Path) -> None:
    project = open_project(tmp_path)
    hour_ago = int(time.time()) - 3600
    first = commit(tmp_path, "v1", hour_ago)
    second = commit(tmp_path, "v2", hour_ago + 600)
    world = World(tmp_path, environment="staging")
    world.deploy("1", commit=first)
    world.deploy("2", commit=second)
    world.deploy("3", commit="ab" * 20)  # a commit this checkout does not have
    world.bad.add("4")
    world.deploy("4", commit=second)  # fails and is rolled back

    now = time.time()
    view = dora_report(project, since="7d", now=now)
    assert (view.project, view.environment, view.since) == ("shop", "staging", "7d")
    m = view.metrics
    assert (m.deployments, m.successful, m.failed) == (4, 3, 1)
    assert m.change_failure_rate == 0.25
    assert m.commit_times == {"git": 2, "release": 1}
    rows = {r.id: r for r in world.store.rollouts.latest()}
    one, two, three, four = m.records
    assert one.lead_time == pytest.approx(rows[one.rollout].finished_at - hour_ago)  # type: ignore[operator]
    assert two.lead_time == pytest.approx(rows[two.rollout].finished_at - (hour_ago + 600))  # type: ignore[operator]
    assert three.commit_time_source == "release"
    created = world.store.releases.get(three.release).created_at  # type: ignore[union-attr]
    assert three.lead_time == pytest.approx(rows[three.rollout].finished_at - created)  # type: ignore[operator]
    assert four.outcome == "rolled_back" and four.lead_time is None
    assert rows[four.restored_by].kind == "rollback"  # type: ignore[index]
    assert m.time_to_restore.count == 1 and m.unrestored == 0
    # --env names the project (until the server maps environments to projects)
    assert dora_report(project, env="shop", since="7d", now=now).metrics == m


def test_outside_git_every_commit_time_is_the_release_time(tmp_path: Path) -> None:
    project = open_project(tmp_path)  # no git repository here
    world = World(tmp_path)
    world.deploy("1", commit="cd" * 20)
    world.deploy("2")  # no commit at all
    m = dora_report(project).metrics
    assert m.commit_times == {"git": 0, "release": 2}
    assert all(d.lead_time is not None and d.lead_time >= 0 for d in m.records)


def test_an_unknown_environment_names_the_known_ones(tmp_path: Path) -> None:
    project = open_project(tmp_path)
    World(tmp_path).deploy("1")
    with pytest.raises(StoreError, match=r"no environment 'prod'.*environments here: shop"):
        dora_report(project, env="prod")


def test_nothing_deployed_yet_is_an_empty_history_and_creates_nothing(tmp_path: Path) -> None:
    project = open_project(tmp_path)
    m = dora_report(project).metrics
    assert m.deployments == 0 and m.change_failure_rate is None
    assert not (tmp_path / ".conveyor" / "shop" / DB_NAME).exists()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400.0), ("2w", 14 * 86400.0), ("12h", 43200.0), ("1h30m", 5400.0),
     ("90", 90.0), ("0.5d", 43200.0)],
)  # fmt: skip
def test_windows(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["0d", "-1h", "soon", "3y"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)
