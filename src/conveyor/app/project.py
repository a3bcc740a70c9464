"""Opening a project: the compose file, its stack, where its state lives, and an engine wired
to the real Docker Engine, HAProxy and state database. Entry points (CLI, server) build one
`Project` and pass it to the use cases; the use cases compose the layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import NoComposeFile
from conveyor.model.environment import Environment
from conveyor.model.events import Subject
from conveyor.model.stack import Stack
from conveyor.plan.network import SubnetPool
from conveyor.spec.compose import COMPOSE_FILES as DEFAULT_FILES
from conveyor.store.db import Store
from conveyor.store.timeline import Subscriber, Timeline


def find_compose_file(given: Path | None, cwd: Path) -> Path:
    """The file Docker Compose would pick: -f, else the first default name present."""
    if given is not None:
        if not given.exists():
            raise NoComposeFile(f"{given}: no such file")
        return given.resolve()
    for name in DEFAULT_FILES:
        p = cwd / name
        if p.exists():
            return p.resolve()
    raise NoComposeFile(
        f"no compose file in {cwd} (looked for {', '.join(DEFAULT_FILES)}); pass -f FILE"
    )


@dataclass(frozen=True)
class Origin:
    """Who asks for a change: a CI job deploying names its pipeline, job, commit and
    environment (GitLab's CI_* variables); a person at a terminal names none."""

    commit: str | None = None
    pipeline: int | None = None
    job: int | None = None
    environment: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Origin:
        def num(key: str) -> int | None:
            v = environ.get(key, "")
            return int(v) if v.isdigit() else None

        return cls(
            commit=environ.get("CI_COMMIT_SHA") or None,
            pipeline=num("CI_PIPELINE_ID"),
            job=num("CI_JOB_ID"),
            environment=environ.get("CI_ENVIRONMENT_NAME") or None,
        )


@dataclass
class Project:
    compose_file: Path
    project_name: str | None
    environ: Mapping[str, str]
    origin: Origin = Origin()
    subscribers: list[Subscriber] = field(default_factory=list)
    _stack: Stack | None = None

    @classmethod
    def open(
        cls,
        file: Path | None,
        project_name: str | None,
        environ: Mapping[str, str],
        cwd: Path,
    ) -> Project:
        return cls(
            compose_file=find_compose_file(file, cwd),
            project_name=project_name,
            environ=environ,
            origin=Origin.from_environ(environ),
        )

    def subscribe(self, fn: Subscriber) -> None:
        """Every event of the commands run on this project also goes to `fn`."""
        self.subscribers.append(fn)

    def stack(self) -> Stack:
        if self._stack is None:
            from conveyor.spec import load_stack

            self._stack = load_stack(
                self.compose_file, project_name=self.project_name, environ=self.environ
            )
        return self._stack

    def paths(self) -> ProjectPaths:
        home = self.environ.get("CONVEYOR_STATE_HOME")
        return ProjectPaths(self.compose_file, self.stack().project, Path(home) if home else None)

    def environment(self, store: Store) -> Environment:
        """The environment this project is: named by the CI job deploying it (and remembered
        in its database), else by what the database remembers, else after the project."""
        project = self.paths().project
        if self.origin.environment and store.environment.name != self.origin.environment:
            store.environment.rename(self.origin.environment)
        return Environment.local(project, name=store.environment.name)

    def timeline(self, store: Store, actor: str = "cli") -> Timeline:
        env = self.environment(store)
        subject = Subject(
            project=env.target.project, environment=env.name, commit=self.origin.commit
        )
        return Timeline(subject, store.events, actor, self.subscribers)

    def engine(self, actor: str = "cli") -> Engine:
        from conveyor.router.haproxy import HAProxyRouter
        from conveyor.runtime.docker_engine import DockerEngine

        paths = self.paths()
        pool = SubnetPool.parse(
            self.environ.get("CONVEYOR_SUBNET_POOL"), self.environ.get("CONVEYOR_SUBNET_PREFIX")
        )
        store = Store.open(paths.state_dir)
        return Engine(
            paths=paths,
            runtime=DockerEngine(),
            router=HAProxyRouter(paths.router_dir),
            store=store,
            timeline=self.timeline(store, actor),
            pool=pool,
        )
