"""A project on the in-memory runtime and router fakes, driven by the real deploy engine: the
events and rollout records the notifications and DORA tests read are the engine's own."""

from __future__ import annotations

from pathlib import Path

from conveyor.deploy.engine import Engine, Outcome
from conveyor.deploy.project import ProjectPaths
from conveyor.model.events import Event, Subject
from conveyor.model.release import Release, ReplicaHealth, ServiceRelease
from conveyor.model.stack import Healthcheck, Routing, Service, Stack, UpdateConfig
from conveyor.runtime.protocol import ReplicaRun
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.fakes import FakeRouter, FakeRuntime


def release(version: str, commit: str | None = None, **update: object) -> Release:
    svc = Service(
        name="web",
        image="web",
        environment={"V": version},
        healthcheck=Healthcheck(test=("CMD", "true")),
        replicas=2,
        routing=Routing(port=8000),
        update_config=UpdateConfig(parallelism=1, **update),  # type: ignore[arg-type]
        rollback_config=UpdateConfig(parallelism=0),
    )
    return Release(
        number=0,
        project="shop",
        services={
            "web": ServiceRelease(service=svc, image_id=f"sha256:{version}", image_ref="web")
        },
        stack=Stack(project="shop", file="/x/compose.yaml", services={"web": svc}),
        commit=commit,
    )


class World:
    """`bad` versions never become healthy; `events` is everything the timeline said."""

    def __init__(self, tmp: Path, environment: str = "staging") -> None:
        self.bad: set[str] = set()
        self.runtime = FakeRuntime(health_of=self._health)
        self.router = FakeRouter()
        self.events: list[Event] = []
        paths = ProjectPaths(tmp / "compose.yaml", "shop")
        self.store = Store.open(paths.state_dir)
        self.store.environment.rename(environment)  # as Project.environment does for CI jobs
        self.timeline = Timeline(
            Subject(project="shop", environment=environment), self.store.events
        )
        self.timeline.subscribe(self.events.append)
        self.engine = Engine(paths, self.runtime, self.router, self.store, self.timeline)

    def _health(self, req: ReplicaRun) -> ReplicaHealth:
        return "unhealthy" if req.service.environment["V"] in self.bad else "healthy"

    def deploy(self, version: str, commit: str | None = None, **update: object) -> Outcome:
        return self.engine.apply(release(version, commit, **update), "deploy")

    def kill_a_replica(self) -> None:
        cid = next(iter(self.runtime.containers))
        self.runtime.remove(cid)
