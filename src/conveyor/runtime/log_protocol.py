"""The seam between the log collector (observe.logs) and the Docker Engine's logs API
(`runtime.docker_logs`): which containers a project has, their state, and their output with
the engine's timestamps."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

STDOUT = 1  # the Docker stream numbers of multiplexed output
STDERR = 2

# One entry of a container's output: (stream, timestamp in ns, text without its newline,
# complete). `complete` is False for the leading pieces of a line the engine split (it keeps
# lines of more than 16 KiB as several entries); the last piece is complete.
Frame = tuple[int, int, str, bool]


@dataclass(frozen=True)
class LogContainer:
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    running: bool = False


@dataclass(frozen=True)
class ContainerRun:
    """What the collector needs of one container's state (from an inspect)."""

    running: bool
    tty: bool  # a TTY's output is one stream (stdout), not multiplexed
    started_at: str
    finished_at: str


class LogReading(Protocol):
    """Batches of frames as they arrive, in the engine's order, until the output ends
    (`follow`: the container stops, or the engine goes away); an empty batch after each
    `idle` seconds without output, when asked for. `close` from another thread ends the
    iteration. After it, `complete` says whether the engine ended the output as it does at
    its end, rather than the reading breaking off (a transport error, the engine going away,
    a close): only a complete reading of a stopped container is all it wrote. `idle` is the
    quiet asked for; the reader may change it between batches (the collector shortens it
    while a batch of its own waits to be handed on)."""

    complete: bool
    idle: float | None

    def __iter__(self) -> Iterator[list[Frame]]: ...

    def close(self) -> None: ...


class ContainerLogs(Protocol):
    def log_containers(self, project: str) -> list[LogContainer]:
        """Every container (running or not) labelled with the project."""
        ...

    def container_run(self, container_id: str) -> ContainerRun | None:
        """None when the container does not exist (any more)."""
        ...

    def read_logs(
        self, container_id: str, since: int, follow: bool, tty: bool, idle: float | None = None
    ) -> LogReading:
        """The container's stdout and stderr with timestamps, from `since` (nanoseconds
        since the epoch, inclusive; 0: from the start). Raises RuntimeAdapterError
        (EngineUnreachable when the engine does not answer)."""
        ...
