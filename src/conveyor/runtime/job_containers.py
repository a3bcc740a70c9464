"""`JobContainers` on the local Docker Engine (docker SDK, low-level API).

A job container is created, attached and only then started, as `docker run` does: no output is
missed and no separate logs request waits behind the start. One client serves a whole pipeline
(a connection and a ping cost more than a job's container start); its read timeout is long
because an attached job may stay silent for minutes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import suppress
from typing import Any

import docker
import docker.errors

from conveyor.errors import RuntimeAdapterError
from conveyor.runtime.docker_errors import explain, translated, unreachable
from conveyor.runtime.images import exposed_tcp_ports
from conveyor.runtime.job_protocol import LABEL_CI, ContainerState, JobContainer

_CLIENT_TIMEOUT = 600  # seconds an attached stream may stay silent


class DockerJobContainers:
    """`JobContainers` on a local Docker Engine; connects on first use."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    client = docker.from_env(timeout=_CLIENT_TIMEOUT)
                    client.ping()
                except Exception as e:  # the SDK raises transport errors of several kinds
                    raise RuntimeAdapterError(unreachable(e)) from e
                self._client = client
            return self._client.api

    def connect(self) -> None:
        self._api()

    def ensure_image(self, ref: str) -> None:
        api = self._api()
        with translated(f"inspecting image {ref}"):
            try:
                api.inspect_image(ref)
                return
            except docker.errors.ImageNotFound:
                pass
        try:
            api.pull(ref)
        except docker.errors.APIError as e:
            raise RuntimeAdapterError(
                f"image {ref} is not present and cannot be pulled: {explain(e)}; check the "
                "name and tag, or build or pull it on this host first"
            ) from e

    def exposed_tcp_ports(self, image: str) -> list[int]:
        with translated(f"inspecting image {image}"):
            return exposed_tcp_ports(self._api().inspect_image(image))

    def create(self, spec: JobContainer) -> str:
        api = self._api()
        with translated(f"creating a {spec.role} container of {spec.image}"):
            host_config = api.create_host_config(
                network_mode="host",
                binds={
                    host: {"bind": b.target, "mode": "ro" if b.read_only else "rw"}
                    for host, b in spec.binds.items()
                }
                or None,
                extra_hosts=dict(spec.extra_hosts) or None,
            )
            kwargs: dict[str, Any] = {
                "command": list(spec.command) if spec.command is not None else None,
                "entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
                "environment": dict(spec.environment),
                "labels": {**spec.labels, LABEL_CI: spec.role},
                "host_config": host_config,
            }
            if spec.working_dir is not None:
                kwargs["working_dir"] = spec.working_dir
            try:
                created = api.create_container(spec.image, **kwargs)
            except docker.errors.ImageNotFound:
                self.ensure_image(spec.image)  # pulled on demand, as `docker run` does
                created = api.create_container(spec.image, **kwargs)
        return str(created["Id"])

    def attach(self, container_id: str) -> Iterator[bytes]:
        with translated(f"attaching to {container_id[:12]}"):
            stream = self._api().attach(
                container_id, stdout=True, stderr=True, stream=True, logs=True
            )
        return (bytes(chunk) for chunk in stream)

    def start(self, container_id: str) -> None:
        with translated(f"starting {container_id[:12]}"):
            self._api().start(container_id)

    def wait(self, container_id: str) -> int:
        with translated(f"waiting for {container_id[:12]}"):
            return int(self._api().wait(container_id).get("StatusCode", -1))

    def state(self, container_id: str) -> ContainerState:
        with translated(f"inspecting {container_id[:12]}"):
            state = self._api().inspect_container(container_id)["State"]
        code = state.get("ExitCode")
        return ContainerState(bool(state.get("Running")), None if code is None else int(code))

    def tail(self, container_id: str, lines: int) -> str:
        with translated(f"reading the output of {container_id[:12]}"):
            raw: bytes = self._api().logs(container_id, tail=lines)
        return raw.decode(errors="replace")

    def kill(self, container_id: str) -> None:
        with translated(f"killing {container_id[:12]}"):
            try:
                self._api().kill(container_id)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:  # not running (any more): what the caller wanted
                    raise

    def remove(self, container_id: str) -> None:
        with translated(f"removing {container_id[:12]}"), suppress(docker.errors.NotFound):
            self._api().remove_container(container_id, force=True)

    def remove_labelled(self, labels: Mapping[str, str]) -> list[str]:
        """Remove every container (running or not) carrying all of `labels`: the job and
        service containers a runner that died left behind. Their names, sorted."""
        api = self._api()
        wanted = [f"{k}={v}" for k, v in sorted(labels.items())]
        with translated(f"listing containers labelled {', '.join(wanted)}"):
            found = api.containers(all=True, filters={"label": wanted})
        removed: list[str] = []
        for c in found:
            names = c.get("Names") or [c["Id"][:12]]
            self.remove(str(c["Id"]))
            removed.append(str(names[0]).lstrip("/"))
        return sorted(removed)
