"""The log collector's engines on a fleet (docs/logs.md, "On a fleet"): one `ContainerLogs`
per app host, through the SSH tunnel the fleet runtime uses (deploy.fleet_engines), and this
machine's own engine for the CI job containers that run here (only those: should this machine
be an app host too, its replicas are read once, as that host's).

Only a listing (the collector's discovery of that host, in a thread of its own, with back-off
while the host does not answer) starts a tunnel that does not run; a follower's requests use
the tunnel as it is and fail at once while it is down (the follower retries from its cursor),
so a host that is lost costs an SSH connect timeout once per listing, not once per container.
"""

from __future__ import annotations

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.errors import ConveyorError, EngineUnreachable
from conveyor.runtime.docker_logs import DockerLogs
from conveyor.runtime.job_protocol import LABEL_CI
from conveyor.runtime.log_protocol import ContainerLogs, ContainerRun, LogContainer, LogReading


class FleetHostLogs:
    """`ContainerLogs` of one fleet host's Docker Engine."""

    def __init__(self, engines: FleetEngines, host: str) -> None:
        self.engines = engines
        self.host = host
        self.docker = DockerLogs(base_url=engines.engine_url(host))

    def log_containers(self, project: str) -> list[LogContainer]:
        try:
            self.engines.tunnel_up(self.host)
        except ConveyorError as e:
            raise EngineUnreachable(
                f"cannot reach {self.host}'s Docker Engine: its SSH tunnel does not start ({e})"
            ) from e
        return self.docker.log_containers(project)

    def container_run(self, container_id: str) -> ContainerRun | None:
        return self.docker.container_run(container_id)

    def read_logs(
        self, container_id: str, since: int, follow: bool, tty: bool, idle: float | None = None
    ) -> LogReading:
        return self.docker.read_logs(container_id, since, follow, tty, idle)

    def close(self) -> None:
        """The client's connections; the tunnel outlives it (`conveyor down` stops it)."""
        self.docker.close()


class LocalJobLogs:
    """`ContainerLogs` of this machine's engine, listing only CI job and service containers."""

    def __init__(self, local: ContainerLogs) -> None:
        self.local = local

    def log_containers(self, project: str) -> list[LogContainer]:
        return [c for c in self.local.log_containers(project) if LABEL_CI in c.labels]

    def container_run(self, container_id: str) -> ContainerRun | None:
        return self.local.container_run(container_id)

    def read_logs(
        self, container_id: str, since: int, follow: bool, tty: bool, idle: float | None = None
    ) -> LogReading:
        return self.local.read_logs(container_id, since, follow, tty, idle)

    def close(self) -> None:
        close = getattr(self.local, "close", None)
        if close is not None:
            close()


def fleet_log_engines(
    engines: FleetEngines, local: ContainerLogs
) -> dict[str | None, ContainerLogs]:
    """What the collector follows on a fleet: this machine's engine (host None: CI job
    containers) and every app host's, by name."""
    found: dict[str | None, ContainerLogs] = {None: LocalJobLogs(local)}
    for host in engines.fleet.with_role("app"):
        found[host.name] = FleetHostLogs(engines, host.name)
    return found
