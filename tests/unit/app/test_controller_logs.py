"""The controller's log collectors, one per deployed environment, without Docker: the
collector is a stand-in that records starts and stops; the projects and stores are real."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.app import logs as logs_app
from conveyor.app.controller import Controller
from conveyor.app.project import Project
from conveyor.errors import UnknownEnvironment
from conveyor.gitops.sync import EnvProgress
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.logs import LogLabels, LogQuery
from conveyor.observe.logs.store import LogStore
from conveyor.spec.conveyor_file import parse_conveyor

CONFIG = "environments:\n  staging:\n    branch: main\n"


class FakeCollector:
    def __init__(self, project: Project, env: str | None, shipping: object = None) -> None:
        self.project, self.env, self.stopped = project, env, False
        self.shipping = shipping

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    c = Controller(str(tmp_path / "app.git"), tmp_path / "data", {})
    c.config = parse_conveyor(CONFIG)
    work = c._work_tree("staging")
    work.mkdir(parents=True)
    started: list[FakeCollector] = []

    def start(
        project: Project, env: str | None, report: Any, shipping: Any, events: Any
    ) -> FakeCollector | None:
        collector = FakeCollector(project, env, shipping)
        started.append(collector)
        return collector

    def project(spec: EnvironmentSpec, commit: str) -> Project:
        return Project.open(None, None, {}, cwd=work)

    monkeypatch.setattr(logs_app, "start_collector", start)
    monkeypatch.setattr(c, "_project", project)
    return {"controller": c, "work": work, "started": started}


def compose(work: Path, extra: str = "") -> None:
    (work / "compose.yaml").write_text(
        f"name: app-staging\n{extra}services:\n  web:\n    image: web\n"
    )


def test_one_collector_per_deployed_environment_kept_across_commits(world: dict[str, Any]) -> None:
    c: Controller = world["controller"]
    started: list[FakeCollector] = world["started"]
    compose(world["work"])
    c.collect_logs()
    assert started == []  # nothing deployed yet
    c._save("staging", EnvProgress(deployed="a" * 40))
    c.collect_logs()
    c.collect_logs()
    assert [s.env for s in started] == ["staging"]
    c._save("staging", EnvProgress(deployed="b" * 40))  # same settings: the same collector
    c.collect_logs()
    assert len(started) == 1 and not started[0].stopped
    compose(world["work"], "x-conveyor:\n  logs:\n    retention: 2d\n")
    c._save("staging", EnvProgress(deployed="c" * 40))  # new settings: restarted
    c.collect_logs()
    assert len(started) == 2 and started[0].stopped
    compose(world["work"], "x-conveyor:\n  logs: false\n")
    c._save("staging", EnvProgress(deployed="d" * 40))  # turned off: stopped, none started
    c.collect_logs()
    assert len(started) == 2 and started[1].stopped
    c.close()


def test_a_new_logs_section_in_conveyor_yaml_restarts_the_collector_with_it(
    world: dict[str, Any],
) -> None:
    c: Controller = world["controller"]
    started: list[FakeCollector] = world["started"]
    compose(world["work"])
    c._save("staging", EnvProgress(deployed="a" * 40))
    c.collect_logs()
    assert [s.shipping.empty for s in started] == [True]  # nothing to ship to
    c.config = parse_conveyor(
        CONFIG + "logs:\n  ship:\n    - loki: {url: 'http://127.0.0.1:3100'}\n"
    )
    c._save("staging", EnvProgress(deployed="b" * 40))
    c.collect_logs()
    assert len(started) == 2 and started[0].stopped
    assert [d.kind for d in started[1].shipping.ship] == ["loki"]
    c.close()


def test_the_api_reads_the_environments_store(world: dict[str, Any]) -> None:
    c: Controller = world["controller"]
    compose(world["work"])
    c._save("staging", EnvProgress(deployed="a" * 40))
    c.collect_logs()
    assert c.logs("staging", LogQuery()) == []  # nothing collected yet
    assert c.log_tail("staging", LogQuery(), None, 10).records == []
    path = world["work"] / ".conveyor" / "app-staging" / "logs.db"
    store = LogStore.open(path)
    src = store.source(LogLabels(project="app-staging", service="web", container="c1"))
    store.write([(src, int(time.time() * 1e9), 2, "hello from staging", None)])
    store.close()
    assert [r.message for r in c.logs("staging", LogQuery(services=("web",)))] == [
        "hello from staging"
    ]
    tail = c.log_tail("staging", LogQuery(), 0, 10)
    assert [r.message for r in tail.records] == ["hello from staging"]
    assert tail.position == tail.records[0].id
    with pytest.raises(UnknownEnvironment):
        c.logs("nope", LogQuery())
    c.close()
