"""Compose `restart` on the engine (in-memory runtime and router): a `restart: "no"` replica
that finished is neither a failed rollout nor something to heal; without `restart` every
replica that exits is replaced."""

from __future__ import annotations

from pathlib import Path

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Subject
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Restart, Service, Stack
from conveyor.runtime.protocol import Progress, ReplicaRun
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime


class ExitingRuntime(FakeRuntime):
    """Replicas of services named in `finish` exit 0 as soon as they start (a run-once job
    nobody waits on, such as a cache warm-up)."""

    finish: frozenset[str] = frozenset({"warmup"})

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        cid = super().run(req, warn)
        if req.service.name in self.finish:
            container = self.containers[cid]
            container.running, container.exit_code = False, 0
        return cid


def release(restart: Restart | None) -> Release:
    warmup = Service(name="warmup", image="warmup", restart=restart)
    return Release(
        number=0,
        project="p",
        services={"warmup": ServiceRelease(service=warmup, image_id="sha256:w", image_ref="w")},
        stack=Stack(project="p", file="/x/compose.yaml", services={"warmup": warmup}),
    )


def engine(tmp_path: Path, runtime: FakeRuntime) -> Engine:
    paths = ProjectPaths(tmp_path / "compose.yaml", "p")
    store = Store.open(paths.state_dir)
    timeline = Timeline(Subject(project="p", environment="p"), store.events)
    return Engine(paths, runtime, FakeRouter(), store, timeline)


def test_a_restart_no_replica_that_finished_is_done(tmp_path: Path) -> None:
    runtime = ExitingRuntime()
    e = engine(tmp_path, runtime)
    assert e.apply(release(Restart(condition="no")), "up").status == "succeeded"
    assert e.heal_plan().empty  # the exited container is the service's replica
    assert len(runtime.containers) == 1


def test_without_restart_an_exited_replica_fails_the_rollout_and_is_replaced(
    tmp_path: Path,
) -> None:
    runtime = ExitingRuntime()
    e = engine(tmp_path, runtime)
    assert e.apply(release(None), "up").status != "succeeded"
    runtime.finish = frozenset()  # once it stays up, healing brings it back
    assert e.apply(release(None), "up").status == "succeeded"
    (cid,) = [cid for cid, c in runtime.containers.items() if c.running]
    runtime.containers[cid].running, runtime.containers[cid].exit_code = False, 0
    assert [s.kind for s in e.heal_plan().steps] == ["remove", "start", "await"]
