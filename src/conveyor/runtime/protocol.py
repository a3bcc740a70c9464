"""The seam between Conveyor and whatever runs containers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from pydantic import Field

from conveyor.model.release import ObservedReplica
from conveyor.model.stack import Frozen, Service

Progress = Callable[[str], None]

# Labels every container Conveyor owns carries; `list_replicas` finds them by these.
LABEL_PROJECT = "io.conveyor.project"
LABEL_SERVICE = "io.conveyor.service"
LABEL_REPLICA = "io.conveyor.replica"
LABEL_RELEASE = "io.conveyor.release"
LABEL_SPEC = "io.conveyor.spec-hash"
LABEL_PORT = "io.conveyor.port"


class ReplicaRun(Frozen):
    """Everything needed to start one replica; computed by the deploy layer."""

    project: str
    replica: str  # replica id; the container is named f"{project}-{replica}"
    release: int
    spec_hash: str
    image_id: str
    port: int  # assigned host port (host networking), passed as PORT
    service: Service
    env: dict[str, str] = Field(default_factory=dict)  # full environment, PORT included
    extra_hosts: dict[str, str] = Field(default_factory=dict)  # name -> 127.0.0.1
    secret_files: dict[str, str] = Field(default_factory=dict)  # target path -> host file
    # volume key (VolumeMount.source) -> Docker volume name, as `ensure_volume` returned it;
    # needed for external volumes, whose names are not project-scoped. Keys missing here
    # get the project-scoped name `<project>_<key>`.
    volume_names: dict[str, str] = Field(default_factory=dict)


class Runtime(Protocol):
    def build(self, project: str, service: Service, progress: Progress) -> tuple[str, str]:
        """Build the service's image; return (tag, image id)."""
        ...

    def ensure_image(self, ref: str, progress: Progress) -> str:
        """Return the image id of `ref`, pulling it when it is not present."""
        ...

    def pull(self, ref: str, progress: Progress) -> str:
        """Pull `ref` even when present; return its image id."""
        ...

    def local_image(self, ref: str) -> str | None:
        """The id of `ref` when it is present locally."""
        ...

    def tag(self, image_id: str, ref: str) -> None:
        """Give an image another name (`repo:tag`)."""
        ...

    def ensure_volume(
        self,
        project: str,
        name: str,
        external: bool,
        driver: str | None = None,
        driver_opts: Mapping[str, str] | None = None,
    ) -> str:
        """Create the project's named volume if missing (with `driver` and its options);
        return the Docker volume name. An existing volume is used as it is."""
        ...

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        """Start a replica; return its container id. `warn` hears what a user should fix
        (a replica running as root).

        Replaces a stopped container of the same name."""
        ...

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        """Every container of the project (running or not), router state left as 'absent'."""
        ...

    def inspect(self, container_id: str) -> ObservedReplica | None:
        """One container's state (None when it does not exist); cheaper than list_replicas."""
        ...

    def stop(self, container_id: str, signal: str, grace: float) -> int | None:
        """Send `signal`, wait up to `grace` seconds, then SIGKILL; return the exit code."""
        ...

    def remove(self, container_id: str) -> None:
        """Remove the container (stopped or not); a missing container is not an error."""
        ...

    def logs(
        self, project: str, service: str, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str]]:
        """(replica id, line) pairs of the service's replicas, interleaved by timestamp."""
        ...
