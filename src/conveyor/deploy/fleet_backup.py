"""Backups on a fleet (docs/backups.md, "On a fleet"): each service's backup or restore runs
on the Docker Engine of the host holding its named volumes, through that host's SSH tunnel
(deploy.fleet_engines); which host is plan.backup_hosts.

    backups = FleetBackups(engines, local, volumes_file)
    host = backups.host_of(project, service, volume_keys)     BackupError when it is down
    runtime = backups.runtime(host, project, service, image)  a DockerBackup on that host

`look` asks every app host at once (a host that does not answer costs one SSH connect
timeout, not one per service) for the project's volumes and running services; a host that
does not answer holds the volumes remembered for it in `fleet-volumes.json` (the file the
deploy's placement keeps), so a backup of a volume there fails naming the host instead of
looking elsewhere. Nothing is written to that file here: the next plan lists the hosts again.

A volume's helper container runs the service's image on that host: by its name when the host
has it, else the image of the service's own container there (the fleet copies images by id),
else copied from this machine's engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.deploy.fleet_runtime import read_volume_hosts
from conveyor.errors import BackupError, ConveyorError
from conveyor.plan.backup_hosts import HostSeen, backup_host, hosts_seen
from conveyor.plan.fleet_files import volumes_by_key
from conveyor.runtime.docker_backup import DockerBackup
from conveyor.runtime.docker_engine import DockerEngine

# (the project's volumes there, as Docker names; the services running there) or why not
_Answer = tuple[list[str], set[str]] | str


def _connect(url: str) -> DockerBackup:
    return DockerBackup(base_url=url)


class FleetBackups:
    def __init__(
        self,
        engines: FleetEngines,
        local: DockerEngine,
        volumes_file: Path | None = None,
        connect: Callable[[str], DockerBackup] = _connect,
    ) -> None:
        """`local`: this machine's engine (where images are built or pulled, copied from);
        `volumes_file`: the deploy's `fleet-volumes.json` (volumes remembered per host);
        `connect`: a backup runtime on an engine's URL (a seam for the tests)."""
        self.engines = engines
        self.local = local
        self.volumes_file = volumes_file
        self._connect = connect
        self._seen: dict[str, list[HostSeen]] = {}  # project -> its hosts, looked at once
        self._runtimes: dict[str, DockerBackup] = {}
        self._lock = threading.Lock()

    def look(self, project: str) -> list[HostSeen]:
        """Every app host as it answers now (in parallel), once per project."""
        with self._lock:
            if project in self._seen:
                return self._seen[project]
        inventory = [h.name for h in self.engines.fleet.with_role("app")]
        with ThreadPoolExecutor(max_workers=max(1, len(inventory))) as pool:
            asked = pool.map(lambda h: self._ask(h, project), inventory)
            answers = dict(zip(inventory, asked, strict=True))
        answered = {
            h: (list(volumes_by_key({h: a[0]}, project, [h])), a[1])
            for h, a in answers.items()
            if not isinstance(a, str)
        }
        errors = {h: a for h, a in answers.items() if isinstance(a, str)}
        remembered: dict[str, list[str]] = {}
        known = read_volume_hosts(self.volumes_file) if self.volumes_file is not None else {}
        for key, holders in volumes_by_key(known, project, errors).items():
            for holder in holders:
                remembered.setdefault(holder, []).append(key)
        seen = hosts_seen(inventory, answered, remembered, errors)
        with self._lock:
            self._seen[project] = seen
        return seen

    def _ask(self, host: str, project: str) -> _Answer:
        try:
            engine = self.engines.engine(host)
            if not engine.ping():
                return "its Docker Engine did not answer"
            volumes = engine.project_volumes(project)
            running = {r.service for r in engine.list_replicas(project) if r.running}
        except ConveyorError as e:  # no route, no sshd, a refused key, the engine gone
            return str(e).splitlines()[0] if str(e) else type(e).__name__
        return volumes, running

    def host_of(self, project: str, service: str, volumes: tuple[str, ...]) -> str:
        """The host `service`'s backup runs on (plan.backup_hosts.backup_host)."""
        return backup_host(service, volumes, self.look(project))

    def runtime(self, host: str, project: str, service: str, image: str | None) -> DockerBackup:
        """A backup runtime on `host`'s engine; with `image`, one whose helpers of that image
        run there (found on the host, or copied to it from this machine)."""
        url = self.engines.tunnel_up(host)
        with self._lock:
            runtime = self._runtimes.get(host)
            if runtime is None:
                runtime = self._runtimes[host] = self._connect(url)
        if image is not None:
            self._image_on(host, runtime, project, service, image)
        return runtime

    def _image_on(
        self, host: str, runtime: DockerBackup, project: str, service: str, image: str
    ) -> None:
        found = runtime.image_here(image, project, service)
        if found is None:
            local = self.local.local_image(image)
            if local is None:
                raise BackupError(
                    f"{service}: image {image} is neither on host {host} nor on this machine "
                    "(the volume's helper runs it): pull or build it here, or deploy the "
                    "service first"
                )
            self.local.copy_image_to(local, self.engines.engine(host))
            found = local
        if found != image:
            runtime.use_image(image, found)

    def close(self) -> None:
        """Close the backup clients (the tunnels stay: the deploy and the agent use them)."""
        with self._lock:
            runtimes = list(self._runtimes.values())
            self._runtimes.clear()
            self._seen.clear()
        for runtime in runtimes:
            runtime.close()
        self.engines.close_clients()
