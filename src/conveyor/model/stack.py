"""The application as the files describe it: a Stack of Services (Compose meanings).

All types are frozen pydantic models: immutable, hashable by value where needed, and
serialisable to JSON for the state database. Durations are seconds (float).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.container import ContainerSettings

# Re-exported (`as`): model types have always imported Frozen from here.
from conveyor.model.frozen import Frozen as Frozen  # noqa: PLC0414


class BuildSpec(Frozen):
    context: str  # absolute path
    dockerfile: str = "Dockerfile"  # relative to context
    args: dict[str, str] = Field(default_factory=dict)
    target: str | None = None


class Healthcheck(Frozen):
    """Compose `healthcheck`, passed to the Docker Engine as the container's health check."""

    test: tuple[str, ...]  # Docker form: ("CMD", ...), ("CMD-SHELL", "...") or ("NONE",)
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0


class Probe(Frozen):
    """The HTTP probe Conveyor runs itself before a replica gets traffic (x-conveyor.probe)."""

    path: str = "/health"
    interval: float = 0.2  # between attempts while waiting
    timeout: float = 1.0  # one attempt
    # how long a new replica may take to become healthy before the rollout fails
    start_timeout: float = 60.0
    # HAProxy's own check of a replica in rotation
    check_interval: float = 0.25
    check_fall: int = 2
    check_rise: int = 1


FailureAction = Literal["rollback", "pause", "continue"]
UpdateOrder = Literal["start-first", "stop-first"]


class UpdateConfig(Frozen):
    """Compose `deploy.update_config` / `deploy.rollback_config`."""

    parallelism: int = 1  # 0 means all at once
    delay: float = 0.0
    failure_action: FailureAction = "rollback"
    monitor: float = 0.0
    max_failure_ratio: float = 0.0
    order: UpdateOrder = "start-first"


class Resources(Frozen):
    cpus: float | None = None
    memory: int | None = None  # bytes
    pids: int | None = None


class DependsOn(Frozen):
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"] = (
        "service_started"
    )
    required: bool = True
    restart: bool = False


class VolumeMount(Frozen):
    type: Literal["volume", "bind", "tmpfs"] = "volume"
    source: str | None = None  # volume name (project-scoped) or absolute host path
    target: str
    read_only: bool = False


class SecretMount(Frozen):
    source: str
    target: str  # absolute path in the container


class ConfigMount(Frozen):
    """A Compose config in a replica: a host file bind-mounted read-only at `target`. A
    config written as `content` or `environment` carries its text, which the deploy layer
    writes to a file (so a change of text is a change of spec)."""

    source: str  # the top-level config's name
    target: str  # absolute path in the container
    file: str | None = None  # absolute host path (`file:` configs)
    content: str | None = None  # `content:` and `environment:` configs
    mode: int | None = None  # file mode of written content (default 0o444)


RestartCondition = Literal["no", "always", "on-failure", "unless-stopped"]


class Restart(Frozen):
    """When a replica that exited is started again: Compose `restart` or
    `deploy.restart_policy` (its `none` is "no", `any` is "always")."""

    condition: RestartCondition = "always"
    max_attempts: int | None = None  # on-failure: give up after this many restarts
    delay: float = 0.0  # deploy.restart_policy.delay (seconds)
    window: float = 0.0  # deploy.restart_policy.window (seconds)

    def restarts(self, exit_code: int | None) -> bool:
        """Whether a replica that exited with `exit_code` is replaced."""
        if self.condition == "no":
            return False
        if self.condition == "on-failure":
            return exit_code != 0
        return True


class ExposedPort(Frozen):
    """A port the service listens on for other services, not published (`expose`)."""

    port: int
    protocol: Literal["tcp", "udp"] = "tcp"


class Secret(Frozen):
    name: str
    file: str | None = None  # absolute host path
    environment: str | None = None  # name of a host environment variable


class Volume(Frozen):
    name: str
    external: bool = False
    driver: str | None = None
    # Options for the volume driver (`local` with type/o/device binds a host directory).
    driver_opts: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Config(Frozen):
    """A top-level Compose config: a file, or text (`content`, or an `environment` value)."""

    name: str
    file: str | None = None  # absolute host path
    content: str | None = None


class Routing(Frozen):
    """x-conveyor: what Compose cannot say about how traffic reaches the service."""

    port: int | None = None  # the HTTP port the app listens on when run alone (documentation)
    public_port: int | None = None  # stable frontend port on 127.0.0.1 (None: Conveyor assigns)
    probe: Probe | None = None
    balance: Literal["roundrobin", "leastconn"] = "roundrobin"


PullPolicy = Literal["build", "always", "missing", "never"]


class Service(Frozen):
    name: str
    image: str | None = None
    build: BuildSpec | None = None
    # With both `image` and `build`: `build` (Conveyor's default) builds and also tags the
    # result as `image`; `always`/`missing` pull `image` (missing: only when absent), falling
    # back to a build when it cannot be pulled; `never` uses the local `image` only.
    pull_policy: PullPolicy | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: dict[str, str] = Field(default_factory=dict)  # env_file merged in, file first
    healthcheck: Healthcheck | None = None
    depends_on: dict[str, DependsOn] = Field(default_factory=dict)
    replicas: int = 1
    update_config: UpdateConfig = UpdateConfig()
    rollback_config: UpdateConfig = UpdateConfig(parallelism=0)
    limits: Resources = Resources()
    stop_grace_period: float = 10.0
    stop_signal: str = "SIGTERM"
    volumes: tuple[VolumeMount, ...] = ()
    secrets: tuple[SecretMount, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    user: str | None = None
    working_dir: str | None = None
    routing: Routing = Routing()
    configs: tuple[ConfigMount, ...] = ()
    # None: not written in the file; Conveyor then replaces every replica that exits.
    restart: Restart | None = None
    reservations: Resources = Resources()  # deploy.resources.reservations
    expose: tuple[ExposedPort, ...] = ()
    container: ContainerSettings = ContainerSettings()

    @property
    def restart_policy(self) -> Restart:
        """The policy that applies: the file's, or Conveyor's default of always healing."""
        return self.restart or Restart()

    @property
    def routed(self) -> bool:
        """True when the service answers HTTP and so gets an HAProxy frontend."""
        return self.routing.probe is not None or self.routing.port is not None


class Stack(Frozen):
    """One Compose project."""

    project: str
    file: str  # absolute path of the compose file
    services: dict[str, Service]
    volumes: dict[str, Volume] = Field(default_factory=dict)
    secrets: dict[str, Secret] = Field(default_factory=dict)
    configs: dict[str, Config] = Field(default_factory=dict)

    def oneshots(self) -> set[str]:
        """One-shot services: something waits on them with `service_completed_successfully`,
        so they run to completion (a migration, a seed) instead of serving. ("Job" means a CI
        job in Conveyor's words.)"""
        return {
            dep
            for svc in self.services.values()
            for dep, cond in svc.depends_on.items()
            if cond.condition == "service_completed_successfully"
        }

    def order(self) -> list[str]:
        """Service names with every dependency before its dependents (stable by name)."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in sorted(self.services[name].depends_on):
                if dep in self.services:
                    visit(dep)
            done.append(name)

        for name in sorted(self.services):
            visit(name)
        return done
