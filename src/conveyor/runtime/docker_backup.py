"""What backups ask of the Docker Engine (provision.backup.protocol.BackupRuntime).

A volume is read and written through the Engine's archive API on a helper container that
mounts it at /volume and never runs (`docker cp` semantics: a created container's volumes
are reachable), so no tar program is needed in any image. Dumps run with `exec` in a
replica; their output is streamed, never held whole.
"""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from conveyor.errors import EngineUnreachable, RuntimeAdapterError
from conveyor.runtime.docker_errors import translated as _translated
from conveyor.runtime.docker_errors import unreachable as _unreachable
from conveyor.runtime.protocol import LABEL_PROJECT, LABEL_SERVICE

MOUNT = "/volume"  # where the helper container mounts the volume
LABEL_BACKUP = "io.conveyor.backup"  # helper and throwaway containers carry it
_STDERR_TAIL = 2000  # characters of a failed command's standard error quoted


class DockerBackup:
    """BackupRuntime on a Docker Engine: the environment's, or `base_url`'s (a fleet host's
    engine brought here by its SSH tunnel, deploy.fleet_engines)."""

    def __init__(self, client: Any = None, base_url: str | None = None) -> None:
        self._client = client
        self._base_url = base_url
        # image ref -> what runs in its place on this engine (a fleet host has the service's
        # image by id, not always by the name the compose file gives it)
        self._images: dict[str, str] = {}

    def _docker(self) -> Any:
        if self._client is None:
            try:
                self._client = (
                    docker.DockerClient(base_url=self._base_url)
                    if self._base_url
                    else docker.from_env()
                )
            except docker.errors.DockerException as e:
                raise EngineUnreachable(_unreachable(e)) from e
        return self._client

    def _api(self) -> Any:
        return self._docker().api

    def close(self) -> None:
        """Close the client's connections (a later call makes a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the helper's image --

    def image_here(self, ref: str, project: str, service: str) -> str | None:
        """What a helper of `ref` runs from on this engine: `ref` itself when the engine has
        it by that name, else the image of one of the service's containers (running or not:
        the service's own image, as the fleet copied it here by id); None: neither."""
        with _translated(f"inspecting image {ref}"):
            try:
                self._api().inspect_image(ref)
                return ref
            except docker.errors.NotFound:
                pass
            found = self._api().containers(
                all=True,
                filters={"label": [f"{LABEL_PROJECT}={project}", f"{LABEL_SERVICE}={service}"]},
            )
        for c in sorted(found, key=lambda c: c.get("Created", 0), reverse=True):
            if c.get("ImageID"):
                return str(c["ImageID"])
        return None

    def use_image(self, ref: str, image: str) -> None:
        """Helpers and throwaway containers of `ref` run `image` (an id) on this engine."""
        self._images[ref] = image

    def _image(self, ref: str) -> str:
        return self._images.get(ref, ref)

    # -- replicas --

    def service_containers(self, project: str, service: str) -> list[str]:
        with _translated(f"listing the replicas of {service}"):
            found = self._api().containers(
                filters={"label": [f"{LABEL_PROJECT}={project}", f"{LABEL_SERVICE}={service}"]}
            )
        ordered = sorted(found, key=lambda c: c.get("Created", 0))
        return [str(c["Id"]) for c in ordered]

    def pause(self, container_id: str) -> None:
        with _translated(f"pausing {container_id[:12]}"):
            self._api().pause(container_id)

    def unpause(self, container_id: str) -> None:
        with _translated(f"unpausing {container_id[:12]}"):
            self._api().unpause(container_id)

    def stop(self, container_id: str, grace: float) -> None:
        with _translated(f"stopping {container_id[:12]}"):
            self._api().stop(container_id, timeout=max(1, round(grace)))

    def start(self, container_id: str) -> None:
        with _translated(f"starting {container_id[:12]}"):
            self._api().start(container_id)

    # -- volumes --

    def volume_exists(self, docker_volume: str) -> bool:
        with _translated(f"volume {docker_volume}"):
            try:
                self._api().inspect_volume(docker_volume)
            except docker.errors.NotFound:
                return False
        return True

    def export_volume(self, docker_volume: str, image: str) -> Iterator[bytes]:
        helper = self._helper(docker_volume, image, read_only=True)
        try:
            with _translated(f"reading volume {docker_volume}"):
                stream, _stat = self._api().get_archive(helper, MOUNT)
            yield from stream
        finally:
            self.remove(helper)

    def import_volume(
        self, project: str, docker_volume: str, image: str, tar: Iterable[bytes]
    ) -> None:
        with _translated(f"volume {docker_volume}"):
            if not self.volume_exists(docker_volume):
                self._api().create_volume(name=docker_volume, labels={LABEL_PROJECT: project})
        self._empty(docker_volume, image)
        helper = self._helper(docker_volume, image, read_only=False)
        try:
            with _translated(f"writing volume {docker_volume}"):
                # The archive holds `volume/...` (the mount's name): unpack at the root.
                if not self._api().put_archive(helper, "/", _Chunks(tar)):
                    raise RuntimeAdapterError(f"the Engine refused the archive for {docker_volume}")
        finally:
            self.remove(helper)

    def _helper(self, docker_volume: str, image: str, read_only: bool) -> str:
        with _translated(f"a helper container for {docker_volume}"):
            created = self._api().create_container(
                self._image(image),
                command=["true"],
                entrypoint=[],
                network_disabled=True,
                labels={LABEL_BACKUP: docker_volume},
                host_config=self._api().create_host_config(
                    binds={docker_volume: {"bind": MOUNT, "mode": "ro" if read_only else "rw"}},
                    network_mode="none",
                ),
                name=f"conveyor-backup-{uuid.uuid4().hex[:10]}",
            )
        return str(created["Id"])

    def _empty(self, docker_volume: str, image: str) -> None:
        """Delete what the volume holds (a restore replaces it, never merges)."""
        with _translated(f"emptying volume {docker_volume}"):
            container = self._docker().containers.run(
                self._image(image),
                ["sh", "-c", f"find {MOUNT} -mindepth 1 -delete"],
                entrypoint=[],
                user="0",
                network_mode="none",
                labels={LABEL_BACKUP: docker_volume},
                volumes={docker_volume: {"bind": MOUNT, "mode": "rw"}},
                detach=True,
            )
            try:
                result = container.wait(timeout=300)
                if result.get("StatusCode") != 0:
                    logs = container.logs().decode(errors="replace")[-_STDERR_TAIL:]
                    raise RuntimeAdapterError(f"emptying volume {docker_volume} failed: {logs}")
            finally:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)

    # -- exec and copies --

    def exec_output(
        self, container_id: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> Iterator[bytes]:
        api = self._api()
        with _translated(f"running {argv[0]} in {container_id[:12]}"):
            exec_id = api.exec_create(
                container_id, argv, stdout=True, stderr=True, environment=dict(env or {})
            )["Id"]
            output = api.exec_start(exec_id, stream=True, demux=True)
        errors = bytearray()
        for out, err in output:
            if err:
                errors += err
                del errors[:-_STDERR_TAIL]
            if out:
                yield out
        with _translated(f"running {argv[0]} in {container_id[:12]}"):
            code = api.exec_inspect(exec_id).get("ExitCode")
        if code != 0:
            message = errors.decode(errors="replace").strip()
            raise RuntimeAdapterError(f"{' '.join(argv[:3])} exited with {code}: {message}")

    def exec_run(
        self, container_id: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> str:
        return b"".join(self.exec_output(container_id, argv, env)).decode(errors="replace")

    def copy_out(self, container_id: str, path: str) -> Iterator[bytes]:
        with _translated(f"copying {path} out of {container_id[:12]}"):
            stream, _stat = self._api().get_archive(container_id, path)
        yield from stream

    def copy_in(self, container_id: str, directory: str, tar: Iterable[bytes]) -> None:
        with _translated(f"copying into {container_id[:12]}:{directory}"):
            if not self._api().put_archive(container_id, directory, _Chunks(tar)):
                raise RuntimeAdapterError(f"the Engine refused the archive for {directory}")

    def copy_file_in(self, container_id: str, directory: str, file: Path, name: str) -> None:
        # A tar of one file, spooled to disk: the Engine wants an archive, the dump may be big.
        with tempfile.TemporaryFile() as spool:
            with tarfile.open(fileobj=spool, mode="w") as archive:
                info = archive.gettarinfo(str(file), arcname=name)
                info.mode = 0o644
                info.uid = info.gid = 0
                with file.open("rb") as source:
                    archive.addfile(info, source)
            spool.seek(0)
            with _translated(f"copying {name} into {container_id[:12]}"):
                if not self._api().put_archive(container_id, directory, spool):
                    raise RuntimeAdapterError(f"the Engine refused {name}")

    def run_scratch(self, image: str, env: Mapping[str, str], labels: Mapping[str, str]) -> str:
        with _translated(f"a throwaway container of {image}"):
            container = self._docker().containers.run(
                self._image(image),
                environment=dict(env),
                labels={LABEL_BACKUP: "verify", **labels},
                network_mode="none",
                detach=True,
                name=f"conveyor-verify-{uuid.uuid4().hex[:10]}",
            )
        return str(container.id)

    def remove(self, container_id: str) -> None:
        with (
            _translated(f"removing {container_id[:12]}"),
            contextlib.suppress(docker.errors.NotFound),
        ):
            self._api().remove_container(container_id, force=True, v=True)


class _Chunks:
    """A file-like view of byte chunks: requests streams it as the request body."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            rest = self._buffer + b"".join(self._chunks)
            self._buffer = b""
            return rest
        while len(self._buffer) < size:
            data = next(self._chunks, None)
            if data is None:
                break
            self._buffer += data
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out
