"""The `Runtime` seam over a fleet: each call goes to the Docker Engine of the host the
replica runs on (deploy.fleet_engines), so the executor drives a fleet exactly as it drives
one engine (docs/fleet.md, "Wiring").

- Where a new replica runs is decided with the plan (`assign`, plan.fleet_assign: stable,
  spread; `global_hosts`: a `deploy.mode: global` service's hosts, from the hosts' health);
  `run` starts it on that host, copying the image there first if the host lacks it.
- Observations merge every host that holds replicas (up or suspect); each observed replica
  names its host. A suspect host that does not answer keeps its last-seen replicas (a blip
  moves nothing); a down host's replicas are not observed, so the planner replaces them.
- Replicas must be reachable from the other hosts and from the controller (probes): a
  host-networking replica listens on its host's fleet address (`HOST`) on a port picked free
  on that host (`pick_port`), and is reached there; a project-networking one has every TCP
  port published on it (`publish_on`), and is reached at the host ports Docker picked
  (`published_ports`).
- Images are built or pulled on this machine (the controller) and copied to hosts on demand.
- A replica's files (secrets, configs, project bind mounts) are copied to its host before it
  starts (deploy.fleet_files). A named volume is made on the host of the replica that mounts
  it, and a service that mounts one is pinned to the hosts holding it (plan.fleet_files;
  where they are is remembered in `volumes_file`, so a host that is down still holds its
  service).
- Every app host the project runs on is remembered with its connection (`hosts_file`,
  deploy.fleet_hosts), so that a deploy can still reach one that left the fleet and take
  the project off it (`on_left_host`, `clear_host`; deploy.fleet_retire).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import queue
import shlex
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.deploy.fleet_files import FleetFiles
from conveyor.deploy.fleet_health import FleetHealth
from conveyor.deploy.fleet_hosts import read_hosts, write_hosts, write_snapshot
from conveyor.deploy.ports import pick_port
from conveyor.errors import ConveyorError, RuntimeAdapterError
from conveyor.host.listening import listening_ports
from conveyor.host.ssh_command import ssh_script
from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.fleet import FleetHost
from conveyor.model.release import (
    Observed,
    ObservedAddress,
    ObservedNetwork,
    ObservedReplica,
    Release,
)
from conveyor.model.stack import Service
from conveyor.plan.actions import Plan
from conveyor.plan.fleet_assign import assign_hosts, global_hosts, moves
from conveyor.plan.fleet_files import (
    FILES_ROOT,
    host_binds,
    named_volumes,
    split_volumes,
    volume_pins,
    volumes_by_key,
)
from conveyor.plan.fleet_retire import RememberedHost, leaving, remembered_now
from conveyor.plan.fleet_routes import check_publishable
from conveyor.plan.network import SubnetPool, namespace_name
from conveyor.plan.routes import Namespace
from conveyor.plan.service_steps import GlobalHosts
from conveyor.runtime.docker_engine import DockerEngine, published_tcp, volume_name
from conveyor.runtime.docker_networks import address_container_name
from conveyor.runtime.protocol import AddressRun, NetworkRun, Progress, ReplicaRun


class FleetRuntime:
    """`Runtime` over the app hosts of `engines.fleet`; `local` builds and pulls images."""

    def __init__(
        self,
        engines: FleetEngines,
        health: FleetHealth,
        local: DockerEngine,
        volumes_file: Path | None = None,
        files: FleetFiles | None = None,
        hosts_file: Path | None = None,
    ) -> None:
        """`volumes_file`: where the hosts holding each named volume are remembered (a
        JSON file in the project's state directory; None: only while this process runs).
        `hosts_file`: where the app hosts the project ran on are remembered (None: not
        remembered, so nothing is retired: a fleet learned from AWS, whose hosts that leave
        are terminated instances)."""
        self.engines = engines
        self.health = health
        self.local = local
        self.volumes_file = volumes_file
        self.files = files if files is not None else FleetFiles(engines.known_hosts)
        self._volume_args: dict[str, tuple[str, str, bool, str | None, dict[str, str]]] = {}
        self._volume_hosts: dict[str, list[str]] = {}  # host -> its volumes' Docker names
        self._assigned: dict[str, str] = {}  # replica -> host, from the plan being run
        self._where: dict[str, str] = {}  # container id -> host
        self._seen: dict[str, list[ObservedReplica]] = {}  # host -> its replicas, last seen
        self._address_of: dict[str, str] = {}  # address container id -> its service
        self._project: str | None = None  # the project whose addresses were last seen
        self._lock = threading.Lock()
        self._remembering = threading.Lock()  # fleet-volumes.json's read-modify-write in `run`
        self.hosts_file = hosts_file
        self._hosts_lock = threading.Lock()  # fleet-hosts.json's read-modify-write
        self._left: dict[str, FleetHost] = {}  # hosts that left, reached to retire them

    # ---- placement -------------------------------------------------------------------------

    def assign(self, plan: Plan, release: Release, observed: Observed) -> Plan:
        """`plan` with every `start` placed on a host (remembered for `run`)."""
        starting = {s.service for s in plan.steps if s.kind == "start"}
        check_publishable(release.stack, starting)
        services = release.stack.services
        pins = None
        if any(named_volumes(services[n], release.stack) for n in starting if n in services):
            pins = volume_pins(services, release.stack, self.volumes_where(release.project))
        placed = assign_hosts(
            plan,
            services,
            observed,
            self.health.placeable(),
            self.health.holding(),
            pins,
        )
        with self._lock:
            for step in placed.steps:
                if step.kind == "start" and step.host:
                    self._assigned[step.replica] = step.host
        notes = [
            *self._missing_host_paths(placed, release),
            *split_volumes(placed, release.stack, observed),
        ]
        return placed.model_copy(update={"notes": (*placed.notes, *notes)}) if notes else placed

    def _missing_host_paths(self, plan: Plan, release: Release) -> list[str]:
        """Warnings for bind mounts of the hosts' own paths that a host a replica starts on
        does not have (one SSH call per such host; a host that does not answer is skipped)."""
        wanted: dict[str, dict[str, set[str]]] = {}  # host -> path -> services
        for step in plan.steps:
            svc = release.stack.services.get(step.service)
            if step.kind != "start" or not step.host or svc is None:
                continue
            for path in host_binds(svc, release.stack):
                wanted.setdefault(step.host, {}).setdefault(path, set()).add(step.service)
        notes: list[str] = []
        for name, paths in sorted(wanted.items()):
            try:
                absent = self.files.missing(self._host(name), paths)
            except ConveyorError:
                continue
            notes.extend(
                f"{', '.join(sorted(paths[p]))}: bind mount {p} does not exist on host "
                f"{name} (a path outside the project is the host's own, not copied: the "
                "replica will not start there)"
                for p in absent
                if p in paths
            )
        return notes

    def volumes_where(self, project: str) -> dict[str, list[str]]:
        """Named volume (its Compose key) -> the hosts holding it: each serving host as it
        answers now, the others as last seen (a host that is down still holds its volumes)."""
        known = self._load_volume_hosts()
        inventory = {h.name for h in self.engines.fleet.hosts}
        for host in self.health.serving():
            with contextlib.suppress(ConveyorError):
                known[host.name] = self.engines.engine(host.name).project_volumes(project)
        known = {h: v for h, v in known.items() if h in inventory}
        self._save_volume_hosts(known)
        return volumes_by_key(known, project, inventory)

    def _load_volume_hosts(self) -> dict[str, list[str]]:
        with self._lock:
            known = {h: list(v) for h, v in self._volume_hosts.items()}
        if not known and self.volumes_file is not None:
            known = read_volume_hosts(self.volumes_file)
        return known

    def _remember_volumes(self, host: str, docker_names: list[str]) -> None:
        """`host` holds these volumes now (made there, or there already): remembered at once,
        not only at the next plan, so that a host lost right after its service's first start
        still holds the service (and names the host to a backup, deploy.fleet_backup)."""
        with self._remembering:  # two replicas starting at once: neither update is lost
            known = self._load_volume_hosts()
            have = known.setdefault(host, [])
            new = [n for n in docker_names if n not in have]
            if new:
                known[host] = sorted([*have, *new])
                self._save_volume_hosts(known)

    def _save_volume_hosts(self, known: dict[str, list[str]]) -> None:
        with self._lock:
            self._volume_hosts = {h: list(v) for h, v in known.items()}
        if self.volumes_file is not None:
            write_snapshot(self.volumes_file, known)

    def global_hosts(self, release: Release, observed: Observed) -> dict[str, GlobalHosts]:
        """The hosts of each `deploy.mode: global` service: the app hosts that take replicas
        and that its constraints allow, and the suspect ones that keep theirs (the health of
        the last probe: `observed` was made after it)."""
        return global_hosts(
            release.stack.services, observed, self.health.placeable(), self.health.holding()
        )

    def moves(self, release: Release, observed: Observed) -> dict[str, tuple[tuple[str, str], ...]]:
        """Service -> (replica, why) of the running replicas whose host `release`'s placement
        (and the inventory's labels now) no longer allows. Refused (VolumesExcluded) when
        such a replica's host holds the service's named volumes: its data would stay there."""
        services = release.stack.services
        specs = {name: sr.spec_hash for name, sr in release.services.items()}
        hosts, holding = self.health.placeable(), self.health.holding()
        found = moves(services, specs, observed, hosts, holding)
        if any(named_volumes(services[n], release.stack) for n in found):
            pins = volume_pins(services, release.stack, self.volumes_where(release.project))
            found = moves(services, specs, observed, hosts, holding, pins)
        return found

    def pick_port(self, replica: str, taken: set[int]) -> int:
        """A port for host-networking `replica`, free on the host it was placed on (not on
        this machine): none of the TCP ports that host listens on now (read over SSH,
        host.listening), nor `taken` (promised to other replicas). Like a pick on one host
        it can race with a process that binds the port before the replica does: the replica
        then fails to start and its step fails."""
        with self._lock:
            name = self._assigned.get(replica)
        if name is None:
            raise RuntimeAdapterError(f"replica {replica} was placed on no fleet host")
        busy = listening_ports(self._host(name), self.engines.known_hosts)
        return pick_port(taken, free=lambda port: port not in busy)

    def _host(self, name: str) -> FleetHost:
        host = self.engines.fleet.host(name)
        if host is None:
            raise ConveyorError(f"host {name!r} is not in the fleet's inventory")
        return host

    def _engine_of(self, container_id: str) -> tuple[str, DockerEngine | None]:
        """The container's host and its engine; None when the host left the fleet (an
        instance the Auto Scaling group terminated: its containers went with it)."""
        with self._lock:
            host = self._where.get(container_id)
        if host is None:
            raise RuntimeAdapterError(f"container {container_id[:12]} is on no known fleet host")
        if not self.health.known(host):
            with self._lock:
                left = host in self._left
            if not left:
                return host, None
        return host, self.engines.engine(host)

    # ---- images: on this machine ------------------------------------------------------------

    def build(self, project: str, service: Service, progress: Progress) -> tuple[str, str]:
        return self.local.build(project, service, progress)

    def ensure_image(self, ref: str, progress: Progress) -> str:
        return self.local.ensure_image(ref, progress)

    def pull(self, ref: str, progress: Progress) -> str:
        return self.local.pull(ref, progress)

    def local_image(self, ref: str) -> str | None:
        return self.local.local_image(ref)

    def tag(self, image_id: str, ref: str) -> None:
        self.local.tag(image_id, ref)

    def exposed_ports(self, image_id: str) -> tuple[int, ...]:
        return self.local.exposed_ports(image_id)

    # ---- volumes: on the host of the replica that mounts them ---------------------------------

    def ensure_volume(
        self,
        project: str,
        name: str,
        external: bool,
        driver: str | None = None,
        driver_opts: Mapping[str, str] | None = None,
    ) -> str:
        """The volume's Docker name; it is made by `run`, on the host of the replica that
        mounts it (each host has its own: a volume's data does not follow a replica to
        another host, so its service is pinned there; docs/fleet.md)."""
        docker_name = name if external else volume_name(project, name)
        with self._lock:
            self._volume_args[docker_name] = (
                project, name, external, driver, dict(driver_opts or {})
            )  # fmt: skip
        return docker_name

    def remove_volumes(self, project: str) -> list[str]:
        removed: set[str] = set()
        known = self._load_volume_hosts()
        with self._lock:
            left = list(self._left)
        for name in [*(h.name for h in self.health.serving()), *left]:
            removed.update(self.engines.engine(name).remove_volumes(project))
            known.pop(name, None)
        self._save_volume_hosts(known)
        return sorted(removed)

    # ---- replicas ----------------------------------------------------------------------------

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        with self._lock:
            name = self._assigned.get(req.replica)
        if name is None:
            raise RuntimeAdapterError(f"replica {req.replica} was placed on no fleet host")
        host = self._host(name)
        engine = self.engines.engine(name)
        if engine.local_image(req.image_id) is None:
            self.local.copy_image_to(req.image_id, engine)
        made: list[str] = []
        for docker_name in sorted(set(req.volume_names.values())):
            with self._lock:
                args = self._volume_args.get(docker_name)
            if args is not None:
                engine.ensure_volume(*args)
                if not args[2]:  # the project's own (an external one does not pin)
                    made.append(docker_name)
        if made:
            self._remember_volumes(name, made)
        if req.secret_files or req.files:
            req = self.files.ship(host, req, engine.mount_sources(req.project), warn)
        if req.service.networking == "host":
            # Reached from the other hosts' HAProxies and the controller's probes.
            req = req.model_copy(update={"env": {**req.env, "HOST": host.address}})
        else:
            req = req.model_copy(update={"publish_on": host.address})
        cid = engine.run(req, warn)
        self.remember(name)
        with self._lock:
            self._where[cid] = name
        if req.publish_on is not None:
            self._check_published(name, engine, cid, req)
        return cid

    def _check_published(self, host: str, engine: DockerEngine, cid: str, req: ReplicaRun) -> None:
        """Every TCP port of the replica has a host port: Docker publishes nothing for a
        container whose networks are all `internal` (plan time refuses the file's own such
        services, plan.fleet_routes.unpublishable; an external network can be one too)."""
        seen = engine.inspect(cid)
        missing = [p for p in published_tcp(req) if seen is None or p not in seen.published_ports]
        if seen is not None and seen.running and missing:
            with contextlib.suppress(ConveyorError):  # useless to keep: unreachable
                engine.remove(cid)
            raise RuntimeAdapterError(
                f"replica {req.replica} on {host}: Docker published no host port for "
                f"{', '.join(f'{p}/tcp' for p in missing)} on {req.publish_on}, so the other "
                "hosts cannot reach it (are all its networks `internal`? Docker publishes no "
                "port of a container only on internal networks)"
            )

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        for moved in self.health.probe():
            if moved.before == "down":
                # Back after its replicas were placed elsewhere: what it still runs is stale
                # (dockerd restarts containers with a restart policy). Removed before the
                # host serves or takes replicas again.
                self.remove_stale(moved.host, project)
        out: list[ObservedReplica] = []
        answered: dict[str, list[str]] = {}  # host -> its running replicas, as it says now
        for host in self.health.serving():
            status = self.health.health(host.name).status
            try:
                found = [
                    reachable(host, r)
                    for r in self.engines.engine(host.name).list_replicas(project)
                ]
                answered[host.name] = [r.replica for r in found if r.running]
            except ConveyorError:
                if status != "suspect":
                    raise
                with self._lock:  # a blip: its replicas still count where they were
                    found = list(self._seen.get(host.name, []))
            with self._lock:
                self._seen[host.name] = found
                for r in found:
                    self._where[r.container_id] = host.name
            out.extend(found)
        self._seen_running(answered)
        return out

    def inspect(self, container_id: str) -> ObservedReplica | None:
        name, engine = self._engine_of(container_id)
        if engine is None:
            return None
        seen = engine.inspect(container_id)
        return None if seen is None else reachable(self._host(name), seen)

    def stop(self, container_id: str, signal: str, grace: float) -> int | None:
        host, engine = self._engine_of(container_id)
        if engine is None:
            return None
        try:
            return engine.stop(container_id, signal, grace)
        except ConveyorError:
            if self.health.health(host).status == "up":
                raise
            return None  # its host does not answer: removed as stale when it is back

    def remove(self, container_id: str) -> None:
        with self._lock:
            service = self._address_of.get(container_id)
        if service is not None:
            self._remove_address(service)
            return
        host, engine = self._engine_of(container_id)
        if engine is None:
            return
        try:
            engine.remove(container_id)
        except ConveyorError:
            if self.health.health(host).status == "up":
                raise

    def logs(
        self, project: str, service: str, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str]]:
        """(`replica@host`, line) of the service's replicas on every serving host (what
        `conveyor logs SERVICE` shows before any log store exists; the store is the usual
        way, docs/logs.md). Without `follow` each host's lines, merged by time on that host,
        come host after host; with `follow` every host's as they arrive. The replicas are
        listed now, so a host that does not answer raises here."""
        found = [
            (host.name, self.engines.engine(host.name).logs(project, service, follow, tail))
            for host in self.health.serving()
        ]
        if not follow:
            return ((f"{replica}@{name}", line) for name, lines in found for replica, line in lines)
        return _as_they_arrive(found)

    # ---- project networks and service addresses: on every app host -------------------------

    def list_networks(self, project: str, names: Iterable[str] = ()) -> list[ObservedNetwork]:
        """The networks every serving host has (as the first one reports them)."""
        wanted = tuple(names)
        seen: dict[str, ObservedNetwork] | None = None
        for host in self.health.serving():
            try:
                listed = self.engines.engine(host.name).list_networks(project, wanted)
            except ConveyorError:
                if self.health.health(host.name).status != "suspect":
                    raise
                continue  # a blip: judged by the hosts that answer
            found = {n.docker_name: n for n in listed}
            seen = found if seen is None else {k: v for k, v in seen.items() if k in found}
        return sorted((seen or {}).values(), key=lambda n: n.docker_name)

    def ensure_network(self, req: NetworkRun) -> ObservedNetwork:
        """The network on every host that takes replicas, with the first host's subnet on the
        others (a fixed one-subnet pool: the same spec hash as a network from the pool)."""
        hosts = self.health.placeable()
        if not hosts:
            raise RuntimeAdapterError("no app host of the fleet is up to create networks on")
        first = self.engines.engine(hosts[0].name).ensure_network(req)
        self.remember(hosts[0].name)
        same = req
        if first.subnet and not req.network.external:
            prefix = ipaddress.IPv4Network(first.subnet).prefixlen
            same = req.model_copy(
                update={"pool": SubnetPool(ranges=(first.subnet,), prefix=prefix)}
            )
        for host in hosts[1:]:
            made = self.engines.engine(host.name).ensure_network(same)
            self.remember(host.name)
            if made.subnet != first.subnet and not req.network.external:
                raise RuntimeAdapterError(
                    f"network {made.docker_name} on host {host.name} has subnet {made.subnet}, "
                    f"on {hosts[0].name} {first.subnet}: a fleet's project network needs one "
                    f"subnet on every host (remove the one on {host.name})"
                )
        return first

    def remove_network(self, docker_name: str) -> None:
        for host in self.health.serving():
            try:
                self.engines.engine(host.name).remove_network(docker_name)
            except ConveyorError:
                if self.health.health(host.name).status == "up":
                    raise

    def _addresses_on(self, host: str, project: str) -> list[ObservedAddress]:
        found = self.engines.engine(host).list_addresses(project)
        with self._lock:
            self._project = project
            for a in found:
                self._address_of[a.container_id] = a.service
        return found

    def list_addresses(self, project: str) -> list[ObservedAddress]:
        """One per service, the first serving host's; not running unless it runs (with the
        same spec) on every serving host, so the planner starts it again everywhere."""
        merged: dict[str, ObservedAddress] = {}
        for host in self.health.serving():
            try:
                here = {a.service: a for a in self._addresses_on(host.name, project)}
            except ConveyorError:
                if self.health.health(host.name).status != "suspect":
                    raise
                continue  # a blip: judged by the hosts that answer
            for service in set(merged) - set(here):
                merged[service] = merged[service].model_copy(update={"running": False})
            for service, a in here.items():
                seen = merged.get(service)
                if seen is None:
                    merged[service] = a
                elif not a.running or a.spec_hash != seen.spec_hash:
                    merged[service] = seen.model_copy(update={"running": False})
        return sorted(merged.values(), key=lambda a: a.service)

    def run_address(self, req: AddressRun) -> ObservedAddress:
        """The address (re)started on every host that takes replicas; the first host's is
        returned (its container id names the namespace in the executor's configuration;
        each host's HAProxy binds in its own host's, `address_netns`)."""
        hosts = self.health.placeable()
        if not hosts:
            raise RuntimeAdapterError("no app host of the fleet is up to start addresses on")
        made = []
        for host in hosts:
            engine = self.engines.engine(host.name)
            if engine.local_image(req.image) is None:  # the base image, by its name
                image_id = self.local.local_image(req.image)
                if image_id is None:
                    raise RuntimeAdapterError(
                        f"image {req.image} (service addresses) is not on this machine"
                    )
                self.local.copy_image_to(image_id, engine)
                engine.tag(image_id, req.image)
            made.append(engine.run_address(req))
            self.remember(host.name)
        with self._lock:
            self._project = req.project
            for a in made:
                self._address_of[a.container_id] = a.service
        return made[0]

    def address_netns(self, host: str) -> dict[str, Namespace]:
        """Where each running service address of the project is on `host`: what that host's
        HAProxy binds into (router.fleet)."""
        with self._lock:
            project = self._project
        if project is None:
            return {}
        return {
            a.service: Namespace(
                name=namespace_name(project, a.service, a.container_id), netns=a.netns
            )
            for a in self._addresses_on(host, project)
            if a.running and a.netns
        }

    def _remove_address(self, service: str) -> None:
        """An address goes on every serving host (the executor names the first host's)."""
        with self._lock:
            project = self._project
        if project is None:
            return
        name = address_container_name(project, service)
        for host in self.health.serving():
            try:
                self.engines.engine(host.name).remove(name)
            except ConveyorError:
                if self.health.health(host.name).status == "up":
                    raise

    # ---- hosts that come back -----------------------------------------------------------------

    def remove_stale(self, host: str, project: str) -> list[str]:
        """Remove every container of `project` on `host` (a host back from down: its replicas
        were replaced elsewhere); the replica names removed."""
        engine = self.engines.engine(host)
        gone: list[str] = []
        for r in engine.list_replicas(project):
            with contextlib.suppress(ConveyorError):
                engine.remove(r.container_id)
                gone.append(r.replica)
        return gone

    # ---- the hosts the project ran on, and those that left (plan.fleet_retire) ---------------

    def remembered(self) -> dict[str, RememberedHost]:
        """The app hosts the project ran on, as remembered in `hosts_file`."""
        return read_hosts(self.hosts_file) if self.hosts_file is not None else {}

    def remember(self, name: str, replicas: Iterable[str] | None = None) -> None:
        """App host `name` runs something of the project (and `replicas`, when given, are
        what runs there now): remembered with its connection, written only on a change."""
        host = self.engines.fleet.host(name)
        if self.hosts_file is None or host is None or not host.has_role("app"):
            return
        with self._hosts_lock:
            changed = remembered_now(self.remembered(), host, replicas)
            if changed is not None:
                write_hosts(self.hosts_file, changed)

    def _seen_running(self, answered: Mapping[str, list[str]]) -> None:
        """What each host that answered runs now: a host running replicas is remembered,
        a remembered one's replicas follow (what `status` says of it if it leaves and stops
        answering); one written only on a change."""
        if self.hosts_file is None:
            return
        with self._hosts_lock:
            known = self.remembered()
            changed = False
            for name, replicas in answered.items():
                host = self.engines.fleet.host(name)
                if host is None or not (replicas or name in known):
                    continue
                now = remembered_now(known, host, replicas)
                if now is not None:
                    known, changed = now, True
            if changed:
                write_hosts(self.hosts_file, known)

    def forget_host(self, name: str) -> None:
        """Host `name` runs nothing of the project any more (it was retired)."""
        if self.hosts_file is None:
            return
        with self._hosts_lock:
            known = self.remembered()
            if known.pop(name, None) is not None:
                write_hosts(self.hosts_file, known)

    def leaving(self) -> tuple[FleetHost, ...]:
        """The remembered hosts that are not app hosts of the fleet now."""
        if self.hosts_file is None:
            return ()
        return leaving(self.remembered(), self.engines.fleet)

    def on_left_host(
        self, host: FleetHost, project: str
    ) -> tuple[list[ObservedReplica], list[str]]:
        """The running replicas of `project` on `host`, which left the fleet (reached
        through `host`, its remembered connection, from now on: `stop` and `remove` act
        there), and the Docker names of the project's volumes it holds. Raises
        ConveyorError when it does not answer."""
        self.engines.adopt(host)
        engine = self.engines.engine(host.name)
        found = [reachable(host, r) for r in engine.list_replicas(project) if r.running]
        volumes = engine.project_volumes(project)
        with self._lock:
            self._left[host.name] = host
            for r in found:
                self._where[r.container_id] = host.name
        return found, volumes

    def clear_host(self, name: str, project: str) -> None:
        """Take what is left of `project` off host `name`, which left the fleet (its
        replicas were moved by the rollout): every container of the project (replicas,
        service addresses), its networks, its copied files; then it is forgotten and its
        tunnel stopped. Named volumes stay (`remove_volumes` deletes them). Raises
        ConveyorError when the host does not answer (tried again at the next deploy)."""
        engine = self.engines.engine(name)
        for r in engine.list_replicas(project):
            engine.remove(r.container_id)
        for a in engine.list_addresses(project):
            engine.remove(a.container_id)
        for n in engine.list_networks(project):
            engine.remove_network(n.docker_name)
        with self._lock:
            host = self._left.get(name) or self.engines.fleet.host(name)
        if host is not None:
            files = shlex.quote(str(FILES_ROOT / project))
            ssh_script(host, f"rm -rf {files}", known_hosts=self.engines.known_hosts, timeout=60)
        self.forget_host(name)
        self.engines.forget(name)

    def close(self) -> None:
        self.engines.close()


def read_volume_hosts(path: Path) -> dict[str, list[str]]:
    """Host -> the Docker names of the volumes it held when last listed, as remembered in
    `path` (`fleet-volumes.json` in the project's state directory); empty when there is no
    such file, or it cannot be read."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(h): [str(v) for v in vs] for h, vs in raw.items()}
    return {}


def _as_they_arrive(
    hosts: Sequence[tuple[str, Iterator[tuple[str, str]]]],
) -> Iterator[tuple[str, str]]:
    """Every host's followed lines, `replica@host`, in the order they come (a thread per
    host), until every host's end."""
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def pump(name: str, found: Iterator[tuple[str, str]]) -> None:
        try:
            for replica, line in found:
                lines.put((f"{replica}@{name}", line))
        except ConveyorError:
            pass  # the host went away: its lines end there
        finally:
            lines.put(None)

    for name, found in hosts:
        threading.Thread(target=pump, args=(name, found), name=f"logs-{name}", daemon=True).start()
    open_hosts = len(hosts)
    while open_hosts:
        item = lines.get()
        if item is None:
            open_hosts -= 1
        else:
            yield item


def reachable(host: FleetHost, replica: ObservedReplica) -> ObservedReplica:
    """The replica as the controller and the other hosts reach it, naming its host: at
    its host's fleet address, on the host ports its engine published (its main port's is
    the endpoint's; `published_ports` keeps every port's, for the HAProxies' further
    backends). A replica whose main port is not published keeps the address it has on
    its host, and no published ports (its servers then fail on the other hosts)."""
    endpoint = replica.endpoint
    published = replica.published_ports
    if endpoint.host == LOOPBACK:  # host networking: it listens on the fleet address
        endpoint = Endpoint(host=host.address, port=endpoint.port)
    elif endpoint.port in published:
        endpoint = Endpoint(host=host.address, port=published[endpoint.port])
    else:
        published = {}
    return replica.model_copy(
        update={"host": host.name, "endpoint": endpoint, "published_ports": published}
    )
