"""What backups need from the container runtime (runtime.docker_backup implements it; the
app layer hands it in, since provision does not import runtime)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol


class BackupRuntime(Protocol):
    def service_containers(self, project: str, service: str) -> list[str]:
        """The ids of the service's running replicas, oldest first."""
        ...

    def pause(self, container_id: str) -> None: ...

    def unpause(self, container_id: str) -> None: ...

    def stop(self, container_id: str, grace: float) -> None: ...

    def start(self, container_id: str) -> None: ...

    def volume_exists(self, docker_volume: str) -> bool: ...

    def export_volume(self, docker_volume: str, image: str) -> Iterator[bytes]:
        """A tar of the volume's contents (entries under `volume/`), streamed."""
        ...

    def import_volume(
        self, project: str, docker_volume: str, image: str, tar: Iterable[bytes]
    ) -> None:
        """Create the volume when it is gone, empty it, and unpack `tar` (as exported) in it."""
        ...

    def exec_output(
        self, container_id: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> Iterator[bytes]:
        """The standard output of `argv` run in the container, streamed; raises
        RuntimeAdapterError (with the end of its standard error) when it exits non-zero."""
        ...

    def exec_run(
        self, container_id: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> str:
        """Run `argv` to the end; its output. Raises RuntimeAdapterError when it fails."""
        ...

    def copy_out(self, container_id: str, path: str) -> Iterator[bytes]:
        """A tar of `path` in the container (a file or a directory), streamed."""
        ...

    def copy_in(self, container_id: str, directory: str, tar: Iterable[bytes]) -> None:
        """Unpack `tar` into `directory` of the container (running or stopped)."""
        ...

    def copy_file_in(self, container_id: str, directory: str, file: Path, name: str) -> None:
        """Put the host's `file` into the container as `directory/name`."""
        ...

    def run_scratch(self, image: str, env: Mapping[str, str], labels: Mapping[str, str]) -> str:
        """Start a throwaway container of `image` (no network); its id."""
        ...

    def remove(self, container_id: str) -> None: ...
