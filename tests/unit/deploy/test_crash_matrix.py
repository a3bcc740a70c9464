"""The whole journal crash matrix of a rollout, on the in-memory runtime and router fakes.

A rollout is stopped dead at step k, either right after the step is journaled `started`
(`begun`) or once its action is done but before `done` is written (`acted`), as the
integration tests' failpoints do with SIGKILL (tests/integration/deploy/test_crash_points.py).
A new engine on the same database and the same (fake) containers and router then recovers:
the project must end on the rollout's target with exactly its replicas routed, and history
must keep the killed rollout `interrupted` beside the `recover` that finished it.

Every point runs here in milliseconds; the integration matrix runs a sample of them on the
real dockerd and HAProxy by default (crash_sample.py there).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Subject
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack, UpdateConfig
from conveyor.store.db import Store
from conveyor.store.rollouts import JournalRepository, RolloutRepository
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime

Phase = Literal["begun", "acted"]
PHASES: tuple[Phase, ...] = ("begun", "acted")

# start-first, parallelism 1, two replicas (as the integration stack)
DEPLOY_STEPS = ("start", "await", "route", "drain", "unroute", "stop") * 2
# rollback_config parallelism 0: start both, await and route each, then retire each old one
ROLLBACK_STEPS = ("start", "start", "await", "route", "await", "route")
ROLLBACK_STEPS += ("drain", "unroute", "stop") * 2


class Killed(BaseException):
    """The process died here: no handler of the engine's runs (they catch Exception)."""


def release(version: str) -> Release:
    svc = Service(
        name="web",
        image="web",
        environment={"V": version},
        healthcheck=Healthcheck(test=("CMD", "true")),
        replicas=2,
        routing=Routing(port=8000),
        update_config=UpdateConfig(parallelism=1, order="start-first"),
        rollback_config=UpdateConfig(parallelism=0, order="start-first"),
    )
    return Release(
        number=0,
        project="p",
        services={
            "web": ServiceRelease(service=svc, image_id=f"sha256:{version}", image_ref="web")
        },
        stack=Stack(project="p", file="/x/compose.yaml", services={"web": svc}),
    )


class Host:
    """The containers and HAProxy outlive the process; the database is reopened."""

    def __init__(self, tmp: Path) -> None:
        self.paths = ProjectPaths(tmp / "compose.yaml", "p")
        self.runtime = FakeRuntime()
        self.router = FakeRouter()
        self.stores: list[Store] = []

    def engine(self) -> Engine:
        """A new process's engine."""
        store = Store.open(self.paths.state_dir)
        self.stores.append(store)
        return Engine(
            self.paths,
            self.runtime,
            self.router,
            store,
            Timeline(Subject(project="p", environment="p"), store.events),
        )

    def versions(self) -> list[str]:
        return [r.service.environment["V"] for r in self.runtime.running("web")]

    def assert_converged(self, version: str) -> None:
        """Exactly two replicas of `version`, no other container, and HAProxy holds exactly
        them, ready."""
        assert self.versions() == [version, version]
        assert all(c.running for c in self.runtime.containers.values()), self.runtime.containers
        running = {r.replica: r for r in self.runtime.running("web")}
        servers = {s.server: s for s in self.router.servers() if s.backend == "web"}
        assert set(servers) == set(running), (servers, running)
        assert {s.admin_state for s in servers.values()} == {"ready"}, servers


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    engine = h.engine()
    assert engine.apply(release("1"), "up").status == "succeeded"
    h.assert_converged("1")
    yield h
    for store in h.stores:
        store.close()


def kill_at(monkeypatch: pytest.MonkeyPatch, kind: str, k: int, phase: Phase) -> list[int]:
    """Kill the first `kind` rollout started from now on at its step k (1-based), in `phase`.
    Returns a list that receives that rollout's id."""
    seq_k, first = k - 1, []
    start, begin, end = RolloutRepository.start, JournalRepository.begin, JournalRepository.end

    def _start(self: RolloutRepository, kind_: str, *a: object, **kw: object) -> int:
        rid = start(self, kind_, *a, **kw)  # type: ignore[arg-type]
        if kind_ == kind and not first:
            first.append(rid)
        return rid

    def _begin(self: JournalRepository, rid: int, seq: int, step: object) -> None:
        begin(self, rid, seq, step)  # type: ignore[arg-type]
        if phase == "begun" and first == [rid] and seq == seq_k:
            raise Killed

    def _end(
        self: JournalRepository, rid: int, seq: int, status: str, detail: object = None
    ) -> None:
        if phase == "acted" and first == [rid] and seq == seq_k and status == "done":
            raise Killed
        end(self, rid, seq, status, detail)  # type: ignore[arg-type]

    monkeypatch.setattr(RolloutRepository, "start", _start)
    monkeypatch.setattr(JournalRepository, "begin", _begin)
    monkeypatch.setattr(JournalRepository, "end", _end)
    return first


def assert_recovered(engine: Engine, killed: int, k: int, outcome_status: str) -> None:
    store = engine.store
    row = store.rollouts.get(killed)
    assert row is not None and row.status == "interrupted", row
    assert len(store.journal.of(killed)) == k, "the killed rollout's journal lost rows"
    recovers = [r for r in store.rollouts.latest(100) if r.kind == "recover"]
    assert [(r.recovers, r.status) for r in recovers] == [(killed, outcome_status)], recovers
    assert store.rollouts.running() == []


def _points(steps: tuple[str, ...]) -> list[object]:
    return [
        pytest.param(k, phase, id=f"{k:02d}-{steps[k - 1]}-{phase}")
        for k in range(1, len(steps) + 1)
        for phase in PHASES
    ]


def test_the_plans_are_the_ones_the_matrix_assumes(host: Host) -> None:
    engine = host.engine()
    deploy = engine.plan(release("2"))
    assert tuple(s.kind for s in deploy.steps) == DEPLOY_STEPS
    assert engine.apply(release("2"), "deploy").status == "succeeded"
    back = engine.plan(engine.store.releases.get(1) or release("1"), mode="rollback")
    assert tuple(s.kind for s in back.steps) == ROLLBACK_STEPS


@pytest.mark.parametrize(("k", "phase"), _points(DEPLOY_STEPS))
def test_a_deploy_killed_at_any_step_is_finished_by_the_next_process(
    host: Host, monkeypatch: pytest.MonkeyPatch, k: int, phase: Phase
) -> None:
    first = kill_at(monkeypatch, "deploy", k, phase)
    with pytest.raises(Killed):
        host.engine().apply(release("2"), "deploy")
    monkeypatch.undo()

    engine = host.engine()
    [outcome] = engine.recover()
    assert outcome.status == "succeeded", outcome
    assert outcome.finishes is not None and outcome.finishes.id == first[0]
    host.assert_converged("2")
    assert_recovered(engine, first[0], k, "succeeded")


@pytest.mark.parametrize(("k", "phase"), _points(ROLLBACK_STEPS))
def test_a_rollback_killed_at_any_step_is_finished_as_a_rollback(
    host: Host, monkeypatch: pytest.MonkeyPatch, k: int, phase: Phase
) -> None:
    assert host.engine().apply(release("2"), "deploy").status == "succeeded"
    first = kill_at(monkeypatch, "rollback", k, phase)
    with pytest.raises(Killed):
        host.engine().rollback()
    monkeypatch.undo()

    engine = host.engine()
    [outcome] = engine.recover()
    assert outcome.status == "succeeded", outcome
    assert outcome.finished_rollback  # the CLI's `rollback` then does not go forward again
    host.assert_converged("1")
    assert_recovered(engine, first[0], k, "succeeded")
