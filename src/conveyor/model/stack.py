"""The application as the files describe it: a Stack of Services (Compose meanings).

All types are frozen pydantic models: immutable, hashable by value where needed, and
serialisable to JSON for the state database. Durations are seconds (float).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field

from conveyor.model.alert_thresholds import AlertThresholds
from conveyor.model.autoscale import Autoscale
from conveyor.model.backup import ServiceBackup
from conveyor.model.canary import CanarySpec
from conveyor.model.container import ContainerSettings

# Re-exported (`as`): model types have always imported Frozen from here.
from conveyor.model.frozen import Frozen as Frozen  # noqa: PLC0414
from conveyor.model.logs import LogSettings
from conveyor.model.placement import ServicePlacement
from conveyor.model.slo import ServiceSLO


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


class MetricsEndpoint(Frozen):
    """x-conveyor.metrics: where each replica serves its Prometheus metrics."""

    path: str = "/metrics"
    port: int | None = None  # None: the replica's main port


PullPolicy = Literal["build", "always", "missing", "never"]
Networking = Literal["host", "project"]
PortProtocol = Literal["tcp", "udp"]

# The port a twelve-factor app in its own network namespace is told to listen on (PORT) when
# the file names none but asks for a probe: any fixed number works, each replica has its own.
DEFAULT_APP_PORT = 8000


class PortSpec(Frozen):
    """One Compose `ports:` entry, a range already expanded to single ports."""

    target: int  # the port the replica listens on
    published: int | None = None  # on the host; None: not published (served by name only)
    host_ip: str | None = None  # None: Compose's default (all interfaces)
    protocol: PortProtocol = "tcp"
    app_protocol: str | None = None  # `http` asks for HTTP mode on this port


class ServiceNetwork(Frozen):
    """A service's attachment to one project network (Compose `services.X.networks.Y`)."""

    aliases: tuple[str, ...] = ()  # more names the service answers to on that network


class Network(Frozen):
    """A Compose network of the project: a Docker bridge network Conveyor owns (unless
    `external`), with a subnet from Conveyor's pool unless the file fixes one."""

    name: str  # the key under top-level `networks` ("default" when implicit)
    docker_name: str | None = None  # `name:` in the file; default `<project>_<key>`
    external: bool = False
    internal: bool = False
    subnet: str | None = None  # ipam.config[0].subnet
    labels: dict[str, str] = Field(default_factory=dict)
    # Where `internal: true` is written, for errors about it (a fleet cannot publish the
    # ports of a service only on internal networks: plan.fleet_routes.unpublishable).
    file: str = ""
    line: int | None = None


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
    # "host": replicas share the host's network and get a PORT each (Conveyor 0.1's only mode,
    # and the default of releases recorded then); "project": each replica in its own network
    # namespace on the project networks, reached by name through its service address.
    networking: Networking = "host"
    networks: dict[str, ServiceNetwork] = Field(default_factory=dict)  # project networking
    ports: tuple[PortSpec, ...] = ()  # every `ports:` entry (published or not)
    configs: tuple[ConfigMount, ...] = ()
    # None: not written in the file; Conveyor then replaces every replica that exits.
    restart: Restart | None = None
    reservations: Resources = Resources()  # deploy.resources.reservations
    expose: tuple[ExposedPort, ...] = ()
    container: ContainerSettings = ContainerSettings()
    slo: ServiceSLO | None = None  # x-conveyor.slo: burn-rate alerts (docs/alerts.md)
    # x-conveyor.alerts over conveyor.yaml's environment defaults; None: the built-in ones.
    alerts: AlertThresholds | None = None
    metrics: MetricsEndpoint | None = None  # scraped by Prometheus when set
    backup: ServiceBackup | None = None  # x-conveyor.backup (docs/backups.md); None: defaults
    # deploy.mode and deploy.placement: used on a fleet (plan.placement); None: replicated,
    # on any host. Not part of the spec hash: moving replicas is placement's job.
    placement: ServicePlacement | None = None
    canary: CanarySpec | None = None  # x-conveyor.canary: a Flagger Canary on Kubernetes
    autoscale: Autoscale | None = None  # x-conveyor.autoscale (rendered for Kubernetes only)

    @property
    def restart_policy(self) -> Restart:
        """The policy that applies: the file's, or Conveyor's default of always healing."""
        return self.restart or Restart()

    @property
    def routed(self) -> bool:
        """True when HAProxy serves the service: it answers HTTP (host networking), or has a
        port anyone can reach it on (project networks)."""
        return (
            self.routing.probe is not None
            or self.routing.port is not None
            or bool(self.served_ports())
        )

    def app_port(self) -> int | None:
        """The port replicas listen on for their main traffic (project networking): the HTTP
        port, else the first port the file names; None under host networking, where Conveyor
        assigns one per replica."""
        if self.networking == "host":
            return None
        if self.routing.port is not None:
            return self.routing.port
        tcp = [p.target for p in self.ports if p.protocol == "tcp"]
        exposed = self.exposed_tcp()
        if tcp or exposed:
            return (tcp or exposed)[0]
        return DEFAULT_APP_PORT if self.routing.probe is not None else None

    def exposed_tcp(self) -> list[int]:
        return [e.port for e in self.expose if e.protocol == "tcp"]

    def with_image_ports(self, ports: Iterable[int]) -> Service:
        """This service with its image's EXPOSEd TCP ports added to `expose` (project
        networking): `db:5432` then works for a PostgreSQL image whose compose entry names
        no port, as it does under Compose, where every port of a container is reachable."""
        if self.networking == "host":
            return self
        known = set(self.served_ports()) | set(self.exposed_tcp())
        more = tuple(ExposedPort(port=p) for p in ports if p not in known)
        return self.model_copy(update={"expose": self.expose + more}) if more else self

    def served_ports(self) -> tuple[int, ...]:
        """Every TCP port HAProxy serves for the service under project networking, main port
        first: `x-conveyor.port`, `ports:` targets, `expose`."""
        if self.networking == "host":
            return ()
        main = self.app_port()
        found = [main] if main is not None else []
        for port in [p.target for p in self.ports if p.protocol == "tcp"] + self.exposed_tcp():
            if port not in found:
                found.append(port)
        return tuple(found)

    def http_ports(self) -> frozenset[int]:
        """Ports served in HTTP mode: the HTTP port (x-conveyor.port, or the port a probe
        checks) and any `ports:` entry with `app_protocol: http`; others are TCP."""
        http = {p.target for p in self.ports if (p.app_protocol or "").lower() == "http"}
        if self.routing.port is not None or self.routing.probe is not None:
            main = self.app_port()
            if main is not None:
                http.add(main)
        return frozenset(http)

    def udp_ports(self) -> tuple[PortSpec, ...]:
        """UDP entries: Docker publishes them from the one replica (HAProxy carries TCP only)."""
        return tuple(p for p in self.ports if p.protocol == "udp")


class Stack(Frozen):
    """One Compose project."""

    project: str
    file: str  # absolute path of the compose file
    services: dict[str, Service]
    volumes: dict[str, Volume] = Field(default_factory=dict)
    secrets: dict[str, Secret] = Field(default_factory=dict)
    # Project networks the services use ("default" among them unless every service runs on the
    # host's network); empty in files loaded before project networking existed.
    networks: dict[str, Network] = Field(default_factory=dict)
    configs: dict[str, Config] = Field(default_factory=dict)
    # The top-level `x-conveyor.logs`: collecting the containers' output, its retention.
    logs: LogSettings = Field(default_factory=LogSettings)

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
