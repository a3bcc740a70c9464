"""Opening a project: the compose file, its stack, where its state lives, and an engine wired
to the real Docker Engine, HAProxy and state database. Entry points (CLI, server) build one
`Project` and pass it to the use cases; the use cases compose the layers."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.deploy.engine import Engine
from conveyor.deploy.fleet_source import FleetSource, StaticFleet
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import ConveyorError, NoComposeFile
from conveyor.model.environment import Environment
from conveyor.model.events import Subject
from conveyor.model.fleet import Fleet, FleetChange
from conveyor.model.stack import Stack
from conveyor.plan.network import SubnetPool
from conveyor.spec.compose import COMPOSE_FILES as DEFAULT_FILES
from conveyor.store.db import Store
from conveyor.store.timeline import Subscriber, Timeline

if TYPE_CHECKING:
    from conveyor.model.host_health import HostTransition
    from conveyor.router.fleet import FleetRouter
    from conveyor.spec.compose import Loaded
    from conveyor.spec.yamlpos import SpecWarning


OVERRIDE_FILES = tuple(name.replace("compose.", "compose.override.") for name in DEFAULT_FILES)


def find_compose_file(given: Path | None, cwd: Path) -> Path:
    """The file Docker Compose would pick: -f, else the first default name present."""
    files = find_compose_files([given] if given is not None else [], {}, cwd)
    return (cwd / files[0]).resolve()


def find_compose_files(given: Sequence[Path], environ: Mapping[str, str], cwd: Path) -> list[Path]:
    """The files Docker Compose reads, as the user named them (relative to `cwd`): every
    -f; else COMPOSE_FILE (separated by COMPOSE_PATH_SEPARATOR, ':' by default); else the
    first default name present in `cwd`, with its override file when there is one."""
    files = list(given)
    if not files and environ.get("COMPOSE_FILE"):
        separator = environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = [Path(p) for p in environ["COMPOSE_FILE"].split(separator) if p]
    if files:
        for file in files:
            if not (cwd / file).exists():
                raise NoComposeFile(f"{file}: no such file")
        return files
    for name, override in zip(DEFAULT_FILES, OVERRIDE_FILES, strict=True):
        if (cwd / name).exists():
            found = [Path(name)]
            # Compose pairs compose.yaml with compose.override.yaml (and the same for the
            # other spellings); the first present override is read after the file.
            overrides = [override, *(o for o in OVERRIDE_FILES if o != override)]
            extra = next((Path(o) for o in overrides if (cwd / o).exists()), None)
            return found if extra is None else [*found, extra]
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
    compose_file: Path  # absolute path of the first file: state lives next to it
    project_name: str | None
    environ: Mapping[str, str]
    origin: Origin = Origin()
    subscribers: list[Subscriber] = field(default_factory=list)
    # Every file read, merged in order, as the user named them (relative to `cwd`).
    compose_files: tuple[Path, ...] = ()
    profiles: tuple[str, ...] = ()  # --profile (COMPOSE_PROFILES otherwise)
    cwd: Path | None = None
    actor: str = "cli"  # who its rollouts and events are by, unless told (the server: "server")
    _loaded: Loaded | None = None

    @classmethod
    def open(
        cls,
        file: Path | Sequence[Path] | None,
        project_name: str | None,
        environ: Mapping[str, str],
        cwd: Path,
        profiles: Sequence[str] = (),
    ) -> Project:
        given = [file] if isinstance(file, Path) else list(file or [])
        files = find_compose_files(given, environ, cwd)
        return cls(
            compose_file=(cwd / files[0]).resolve(),
            project_name=project_name,
            environ=environ,
            origin=Origin.from_environ(environ),
            compose_files=tuple(files),
            profiles=tuple(profiles),
            cwd=cwd,
        )

    def subscribe(self, fn: Subscriber) -> None:
        """Every event of the commands run on this project also goes to `fn`."""
        self.subscribers.append(fn)

    def loaded(self) -> Loaded:
        """The files read once: the stack and what Conveyor accepts but does not do."""
        if self._loaded is None:
            from conveyor.spec.compose import load_compose

            self._loaded = load_compose(
                list(self.compose_files or (self.compose_file,)),
                project_name=self.project_name,
                environ=self.environ,
                profiles=self.profiles,
                cwd=self.cwd,
            )
        return self._loaded

    def stack(self) -> Stack:
        return self.loaded().stack

    def warnings(self) -> list[SpecWarning]:
        """What the files ask that Conveyor accepts but does not do, in file and line order:
        the loader's, and on one host (no app host in conveyor.yaml) placement too."""
        loaded = self.loaded()
        found = list(loaded.warnings)
        if loaded.one_host and not self.fleet().with_role("app"):
            found += loaded.one_host
        return sorted(found, key=lambda w: (w.file, w.line or 0, w.field))

    def file_paths(self) -> list[Path]:
        """Every file read, as absolute paths (what a background agent is given)."""
        if not self.compose_files:
            return [self.compose_file]
        base = self.cwd or self.compose_file.parent
        return [(base / f).resolve() for f in self.compose_files]

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

    def timeline(self, store: Store, actor: str | None = None) -> Timeline:
        env = self.environment(store)
        subject = Subject(
            project=env.target.project, environment=env.name, commit=self.origin.commit
        )
        return Timeline(subject, store.events, actor or self.actor, self.subscribers)

    def engine(self, actor: str | None = None) -> Engine:
        from conveyor.router.haproxy import HAProxyRouter
        from conveyor.runtime.docker_engine import DockerEngine

        paths = self.paths()
        pool = SubnetPool.parse(
            self.environ.get("CONVEYOR_SUBNET_POOL"), self.environ.get("CONVEYOR_SUBNET_PREFIX")
        )
        source = self.fleet_source()
        store = Store.open(paths.state_dir)
        if source.current().is_fleet:
            return self._fleet_engine(source, store, actor, pool)
        return Engine(
            paths=paths,
            runtime=DockerEngine(),
            router=HAProxyRouter(paths.router_dir),
            store=store,
            timeline=self.timeline(store, actor),
            pool=pool,
        )

    def fleet(self) -> Fleet:
        """conveyor.yaml's inventory (`hosts:`, `inventory:` read by Ansible, or the hosts of
        the project's AWS stack for `hosts_from: aws`), from CONVEYOR_FILE or the conveyor.yaml
        beside the first compose file; empty: this machine runs every replica
        (docs/fleet.md)."""
        return self.fleet_source().current()

    def conveyor_file(self) -> tuple[Path, str]:
        """The project's conveyor.yaml (CONVEYOR_FILE, or the one beside the first compose
        file; it may not exist), and the name errors give it."""
        named = self.environ.get("CONVEYOR_FILE")
        path = Path(named) if named else self.compose_file.parent / "conveyor.yaml"
        if not path.is_absolute():
            path = (self.cwd or Path.cwd()) / path
        return path, named or "conveyor.yaml"

    def fleet_source(self) -> FleetSource:
        """Where the fleet's hosts come from: written down (read again only when the file, or
        the inventory file it names, changed: app.fleet_file), or learned from AWS again while
        a server runs (deploy.fleet_source)."""
        from conveyor.app.fleet_file import read_fleet

        path, name = self.conveyor_file()
        read = read_fleet(path, name)
        if read.hosts_from == "aws":
            from conveyor.app.aws_hosts import aws_fleet_source

            return aws_fleet_source(path, name, self.stack().project, self.environ)
        return StaticFleet(read)

    def _fleet_engine(
        self, source: FleetSource, store: Store, actor: str | None, pool: SubnetPool
    ) -> Engine:
        """The deploy engine over the fleet's app hosts (docs/fleet.md, "Wiring"). With hosts
        from AWS the stack's load balancer is the edge: no edge HAProxy is run."""
        from conveyor.deploy.fleet_engines import FleetEngines
        from conveyor.deploy.fleet_files import release_digests
        from conveyor.deploy.fleet_health import FleetHealth
        from conveyor.deploy.fleet_retire import FleetRetirement
        from conveyor.deploy.fleet_runtime import FleetRuntime
        from conveyor.router.fleet import FleetRouter
        from conveyor.runtime.docker_engine import DockerEngine

        paths = self.paths()
        fleet = source.current()
        engines = FleetEngines(source, paths.run_dir / "fleet")
        health = FleetHealth(engines)
        learned = fleet.hosts_from is not None
        runtime = FleetRuntime(
            engines,
            health,
            DockerEngine(),
            volumes_file=paths.state_dir / "fleet-volumes.json",
            # A learned fleet's hosts that leave are terminated: nothing to take the project off.
            hosts_file=None if learned else paths.state_dir / "fleet-hosts.json",
        )
        router = FleetRouter(
            fleet,
            paths.run_dir / "fleet-haproxy",
            self.stack(),
            health.driven,
            edge_address=self.environ.get("CONVEYOR_EDGE_ADDRESS", "127.0.0.1"),
            netns_on=runtime.address_netns,
            external_edge=fleet.hosts_from == "aws",
            on_push=runtime.remember,
        )
        timeline = self.timeline(store, actor)
        health.subscribe(functools.partial(_host_changed, router, timeline))
        health.subscribe_fleet(functools.partial(_fleet_changed, router, source, timeline))
        return Engine(
            paths=paths,
            runtime=runtime,
            router=router,
            store=store,
            timeline=timeline,
            pool=pool,
            placer=runtime,
            file_digests=release_digests,
            port_picker=runtime.pick_port,  # host networking: free on the replica's host
            retirement=None if learned else FleetRetirement(runtime, router),
        )


def _fleet_changed(
    router: FleetRouter, source: FleetSource, timeline: Timeline, change: FleetChange
) -> None:
    """Hosts joined or left a fleet learned from AWS (or AWS did not answer): recorded, and
    the HAProxies follow. A host that joined gets its HAProxy once it is up (`_host_changed`);
    the replicas of one that left are no longer observed, so the plan replaces them."""
    if change.joined or change.left:
        joined = [h.name for h in change.joined]
        left = [h.name for h in change.left]
        said = ", ".join(
            part
            for part in (
                f"joined: {', '.join(joined)}" if joined else "",
                f"left: {', '.join(left)}" if left else "",
            )
            if part
        )
        timeline.emit(
            "fleet.changed",
            f"the fleet's hosts changed ({said})",
            level="warning" if left else "info",
            data={"joined": joined, "left": left},
        )
        router.follow(source.current())
        if left:
            try:
                router.ensure_edge()
            except ConveyorError as e:  # the next transition, or the next rollout, tries again
                timeline.emit(
                    "fleet.changed", f"the edge could not follow: {e}", level="error", data={}
                )
    if change.error:
        timeline.emit(
            "fleet.changed",
            f"the fleet's hosts could not be learned: {change.error}",
            level="warning",
            data={"error": change.error},
        )


def _host_changed(router: FleetRouter, timeline: Timeline, moved: HostTransition) -> None:
    """A fleet host's state changed (found by the probes each observation makes): recorded,
    and the HAProxies follow: a host up again gets the fleet's configuration, the edge sends
    requests only to the hosts that are up."""
    lost = moved.after in ("suspect", "down")
    timeline.emit(
        "host.changed",
        f"host {moved.host}: {moved.before} -> {moved.after} ({moved.reason})",
        level="warning" if lost else "info",
        data={"host": moved.host, "before": moved.before, "after": moved.after},
    )
    try:
        if moved.after == "up":
            router.resync(moved.host)
        else:
            router.ensure_edge()
    except ConveyorError as e:  # the next transition, or the next rollout, tries again
        timeline.emit(
            "host.changed",
            f"host {moved.host}: the HAProxies could not follow: {e}",
            level="error",
            data={"host": moved.host, "before": moved.before, "after": moved.after},
        )
