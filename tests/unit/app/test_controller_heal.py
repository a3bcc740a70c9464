"""The controller's heal pass, drift events and start after a crash (the interrupted pipelines,
what their shell jobs left running, the `on_interrupted` policy), without Docker: the
environments' reconcilers are stand-ins that record their ticks; the CI records are real."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conveyor.app.access import open_server_db
from conveyor.app.controller import Controller
from conveyor.app.hooks import settle_deliveries
from conveyor.ci.run.prepare import ci_store
from conveyor.gitops.sync import EnvProgress, decide
from conveyor.host.process_groups import identity
from conveyor.host.shell import ScriptProcess
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.events import Event, Subject
from conveyor.spec.conveyor_file import parse_conveyor

CONFIG = """\
environments:
  staging:
    branch: main
  production:
    branch: production
"""


class Ticks:
    def __init__(self) -> None:
        self.envs: list[str] = []

    def reconciler(self, spec: EnvironmentSpec, commit: str) -> Ticks.One:
        return Ticks.One(self, spec.name)

    class One:
        def __init__(self, ticks: Ticks, env: str) -> None:
            self.ticks, self.env = ticks, env

        def tick(self) -> None:
            self.ticks.envs.append(self.env)


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    c = Controller(str(tmp_path / "app.git"), tmp_path / "data", {})
    c.config = parse_conveyor(CONFIG)
    return c


def test_a_suspended_environment_is_not_corrected(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = Ticks()
    monkeypatch.setattr(controller, "_reconciler", ticks.reconciler)
    controller._save("staging", EnvProgress(deployed="a" * 40, suspended=True))
    controller._save("production", EnvProgress(deployed="b" * 40))
    controller.heal_all()
    assert ticks.envs == ["production"]
    controller._save("staging", EnvProgress(deployed="a" * 40))  # resumed
    controller.heal_all()
    assert ticks.envs == ["production", "staging", "production"]


def test_an_environment_serving_nothing_is_not_healed(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = Ticks()
    monkeypatch.setattr(controller, "_reconciler", ticks.reconciler)
    controller.heal_all()
    assert ticks.envs == []


def test_a_heal_is_recorded_and_told_as_drift_only(controller: Controller) -> None:
    heal = Event(
        kind="heal.succeeded",
        message="healed web",
        subject=Subject(project="app-staging", environment="staging"),
        data={"services": ["web"], "corrections": ["web: replica web-1-1 crashed: replaced"]},
    )
    controller._collect(heal)
    (recorded,) = controller.events(None, 10)
    assert recorded.kind == "drift.corrected"
    assert recorded.message == "staging: drift corrected: web: replica web-1-1 crashed: replaced"


def test_pipelines_a_crash_left_running_are_marked_interrupted(controller: Controller) -> None:
    work = controller._work_tree("staging")
    work.mkdir(parents=True)
    (work / ".gitlab-ci.yml").write_text("test:\n  script: [sleep 30]\n")
    store = ci_store(work)
    done = store.pipelines.create("main", "c" * 40, "push", ".gitlab-ci.yml", "shell")
    store.pipelines.finish(done, "success", {}, None)
    left = store.pipelines.create("main", "a" * 40, "push", ".gitlab-ci.yml", "shell")
    job = store.jobs.create(left, "test", "test", "running", "on_success", False)
    store.close()
    controller._save("staging", EnvProgress(deployed="c" * 40, syncing="a" * 40))

    controller.mark_interrupted()

    store = ci_store(work)
    left_row, done_row = store.pipelines.get(left), store.pipelines.get(done)
    assert left_row is not None and left_row.status == "interrupted"
    assert left_row.finished_at is not None
    assert done_row is not None and done_row.status == "success"
    (job_row,) = store.jobs.of(left)
    assert (job_row.id, job_row.status) == (job, "interrupted")
    assert job_row.failure_reason == "the server stopped while it ran"
    store.close()
    (event,) = controller.events(None, 10)
    assert event.kind == "pipeline.interrupted"
    assert (event.subject.environment, event.subject.pipeline) == ("staging", left)
    assert event.subject.commit == "a" * 40 and "brought in again" in event.message
    controller.mark_interrupted()  # a second start finds nothing left running
    assert len(controller.events(None, 10)) == 1


def test_a_pass_settles_only_the_deliveries_received_before_it_began(tmp_path: Path) -> None:
    sdb = open_server_db(tmp_path)
    started = time.time()
    sdb.deliveries.add("generic", "before", "refs/heads/main", "a" * 40, {}, at=started - 1)
    sdb.deliveries.add("generic", "during", "refs/heads/main", "b" * 40, {}, at=started + 1)
    assert settle_deliveries(sdb, started) == 1
    statuses = {d: sdb.deliveries.get("generic", d).status for d in ("before", "during")}  # type: ignore[union-attr]
    assert statuses == {"before": "done", "during": "pending"}
    sdb.close()


def test_a_bug_in_a_pass_is_reported_and_the_worker_goes_on(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopping = threading.Event()
    heals: list[int] = []

    def broken_sync() -> None:
        raise RuntimeError("a bug")

    def heal() -> None:
        heals.append(1)
        stopping.set()
        controller.wake()  # as the server does when it stops

    monkeypatch.setattr(controller, "sync_all", broken_sync)
    monkeypatch.setattr(controller, "heal_all", heal)
    controller.run(stopping)  # returns: the heal pass after the broken sync ran
    assert heals == [1]
    (event,) = controller.events(None, 10)
    assert (event.kind, event.message) == ("reconciler.error", "RuntimeError: a bug")


def test_on_interrupted_abandon_marks_the_commit_failed_and_the_job_left_is_stopped(
    tmp_path: Path,
) -> None:
    """`on_interrupted: abandon`: the interrupted commit is failed until the branch moves; the
    shell job's process group the crash left running is killed (its leader was recorded)."""
    c = Controller(str(tmp_path / "app.git"), tmp_path / "data", {})
    c.config = parse_conveyor(
        CONFIG.replace("branch: main", "branch: main\n    on_interrupted: abandon")
    )
    work = c._work_tree("staging")
    work.mkdir(parents=True)
    (work / ".gitlab-ci.yml").write_text("test:\n  script: [sleep 600]\n")
    left_behind = ScriptProcess(["sleep", "600"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    try:
        store = ci_store(work)
        left = store.pipelines.create("main", "a" * 40, "push", ".gitlab-ci.yml", "shell")
        job = store.jobs.create(left, "test", "test", "running", "on_success", False)
        store.jobs.update(
            job,
            executor="shell",
            process_group=left_behind.pid,
            process_start=identity(left_behind.pid),
        )
        store.close()
        c._save("staging", EnvProgress(deployed="c" * 40, desired="a" * 40, syncing="a" * 40))

        c.mark_interrupted()

        assert left_behind.stream(lambda _chunk: None, 30.0).exit_code == -9
    finally:
        left_behind.kill()
    progress = c._progress("staging")
    assert (progress.failed, progress.reason, progress.syncing) == (
        "a" * 40,
        "interrupted: abandoned by policy",
        None,
    )
    assert decide(c._spec("staging"), progress, "a" * 40) == "failed"  # until the branch moves
    assert decide(c._spec("staging"), progress, "b" * 40) == "sync"
    interrupted, failed = c.events(None, 10)
    assert interrupted.kind == "pipeline.interrupted"
    assert interrupted.data["stopped"] == [f"process group {left_behind.pid} of job test (#{job})"]
    assert "abandoned" in interrupted.message
    assert (failed.kind, failed.level, failed.subject.commit) == ("sync.failed", "error", "a" * 40)
    assert failed.message == f"staging: {'a' * 12} not deployed: interrupted: abandoned by policy"
