"""The seam between the CI engine and whatever runs job containers (`runtime.job_containers`
on the Docker Engine). Job and service containers use the host's network."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

# Every job or service container carries this label, with its role as the value.
LABEL_CI = "io.conveyor.ci"
# And, to find what a runner that died left behind: the CI store it records into (its
# directory) and the job's id there.
LABEL_STORE = "io.conveyor.ci.store"
LABEL_JOB = "io.conveyor.ci.job"


@dataclass(frozen=True)
class Bind:
    """A host path mounted into a container."""

    target: str
    read_only: bool = False


@dataclass(frozen=True)
class JobContainer:
    """One container of a CI job (`role` job: runs its script) or of a job's service."""

    image: str
    role: Literal["job", "service"]
    command: tuple[str, ...] | None = None  # None: the image's
    entrypoint: tuple[str, ...] | None = None  # None: the image's; (): none at all
    environment: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    binds: Mapping[str, Bind] = field(default_factory=dict)  # host path -> mount
    extra_hosts: Mapping[str, str] = field(default_factory=dict)  # name -> address
    # More labels (the job's id, the project its output belongs to: docs/logs.md); LABEL_CI
    # is always set.
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerState:
    running: bool
    exit_code: int | None = None


class JobContainers(Protocol):
    """Create, run and remove job containers. Failures raise RuntimeAdapterError."""

    def connect(self) -> None:
        """Reach the engine (the first call; later ones cost nothing)."""
        ...

    def ensure_image(self, ref: str) -> None:
        """Pull `ref` unless it is present."""
        ...

    def exposed_tcp_ports(self, image: str) -> list[int]:
        """The TCP ports the image declares (`EXPOSE`)."""
        ...

    def create(self, spec: JobContainer) -> str:
        """Create, not start, a container (pulling its image when missing); its id."""
        ...

    def attach(self, container_id: str) -> Iterator[bytes]:
        """The container's output (stdout and stderr), from its start until it ends. Attach
        before `start` so nothing is missed."""
        ...

    def start(self, container_id: str) -> None: ...

    def wait(self, container_id: str) -> int:
        """Block until the container ends; its exit code."""
        ...

    def state(self, container_id: str) -> ContainerState: ...

    def tail(self, container_id: str, lines: int) -> str:
        """The last `lines` lines of its output."""
        ...

    def kill(self, container_id: str) -> None:
        """SIGKILL; a container that has stopped or is gone is fine."""
        ...

    def remove(self, container_id: str) -> None:
        """Remove it, running or not; a container that is gone is fine."""
        ...
