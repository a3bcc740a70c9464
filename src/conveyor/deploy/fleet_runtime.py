"""The `Runtime` seam over a fleet: each call goes to the Docker Engine of the host the
replica runs on (deploy.fleet_engines), so the executor drives a fleet exactly as it drives
one engine (docs/fleet.md, "Wiring").

- Where a new replica runs is decided with the plan (`assign`, plan.fleet_assign: stable,
  spread); `run` starts it on that host, copying the image there first if the host lacks it.
- Observations merge every host that holds replicas (up or suspect); each observed replica
  names its host. A suspect host that does not answer keeps its last-seen replicas (a blip
  moves nothing); a down host's replicas are not observed, so the planner replaces them.
- Replicas must be reachable from the other hosts and from the controller (probes): a
  host-networking replica listens on its host's fleet address (`HOST`), and is reached there;
  a project-networking one would be published on it (`publish_on`), but project networks are
  not wired on a fleet yet (refused with the services named).
- Images are built or pulled on this machine (the controller) and copied to hosts on demand.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from collections.abc import Iterable, Iterator, Mapping

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.deploy.fleet_health import FleetHealth
from conveyor.errors import ConveyorError, RuntimeAdapterError
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
from conveyor.plan.fleet_assign import assign_hosts
from conveyor.plan.network import SubnetPool, namespace_name
from conveyor.plan.routes import Namespace
from conveyor.runtime.docker_engine import DockerEngine
from conveyor.runtime.docker_networks import address_container_name
from conveyor.runtime.protocol import AddressRun, NetworkRun, Progress, ReplicaRun


class FleetRuntime:
    """`Runtime` over the app hosts of `engines.fleet`; `local` builds and pulls images."""

    def __init__(self, engines: FleetEngines, health: FleetHealth, local: DockerEngine) -> None:
        self.engines = engines
        self.health = health
        self.local = local
        self._assigned: dict[str, str] = {}  # replica -> host, from the plan being run
        self._where: dict[str, str] = {}  # container id -> host
        self._seen: dict[str, list[ObservedReplica]] = {}  # host -> its replicas, last seen
        self._address_of: dict[str, str] = {}  # address container id -> its service
        self._project: str | None = None  # the project whose addresses were last seen
        self._lock = threading.Lock()

    # ---- placement -------------------------------------------------------------------------

    def assign(self, plan: Plan, release: Release, observed: Observed) -> Plan:
        """`plan` with every `start` placed on a host (remembered for `run`)."""
        placed = assign_hosts(
            plan,
            release.stack.services,
            observed,
            self.health.placeable(),
            self.health.holding(),
        )
        with self._lock:
            for step in placed.steps:
                if step.kind == "start" and step.host:
                    self._assigned[step.replica] = step.host
        return placed

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

    # ---- volumes: on every host that runs replicas --------------------------------------------

    def ensure_volume(
        self,
        project: str,
        name: str,
        external: bool,
        driver: str | None = None,
        driver_opts: Mapping[str, str] | None = None,
    ) -> str:
        """Made on every host that takes replicas (each host has its own: a volume's data
        does not follow a replica to another host; docs/fleet.md)."""
        made = ""
        for host in self.health.placeable():
            made = self.engines.engine(host.name).ensure_volume(
                project, name, external, driver, driver_opts
            )
        return made

    def remove_volumes(self, project: str) -> list[str]:
        removed: set[str] = set()
        for host in self.health.serving():
            removed.update(self.engines.engine(host.name).remove_volumes(project))
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
        if req.service.networking == "host":
            # Reached from the other hosts' HAProxies and the controller's probes.
            req = req.model_copy(update={"env": {**req.env, "HOST": host.address}})
        else:
            req = req.model_copy(update={"publish_on": host.address})
        cid = engine.run(req, warn)
        with self._lock:
            self._where[cid] = name
        return cid

    def _reachable(self, host: FleetHost, replica: ObservedReplica) -> ObservedReplica:
        """The replica as the controller and the other hosts reach it, naming its host."""
        endpoint = replica.endpoint
        if endpoint.host == LOOPBACK:  # host networking: it listens on the fleet address
            endpoint = Endpoint(host=host.address, port=endpoint.port)
        elif replica.published_port is not None:
            endpoint = Endpoint(host=host.address, port=replica.published_port)
        return replica.model_copy(update={"host": host.name, "endpoint": endpoint})

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        for moved in self.health.probe():
            if moved.before == "down":
                # Back after its replicas were placed elsewhere: what it still runs is stale
                # (dockerd restarts containers with a restart policy). Removed before the
                # host serves or takes replicas again.
                self.remove_stale(moved.host, project)
        out: list[ObservedReplica] = []
        for host in self.health.serving():
            status = self.health.health(host.name).status
            try:
                found = [
                    self._reachable(host, r)
                    for r in self.engines.engine(host.name).list_replicas(project)
                ]
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
        return out

    def inspect(self, container_id: str) -> ObservedReplica | None:
        name, engine = self._engine_of(container_id)
        if engine is None:
            return None
        seen = engine.inspect(container_id)
        return None if seen is None else self._reachable(self._host(name), seen)

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
        """Each serving host's lines in turn (not interleaved across hosts; `follow` follows
        the first host only: partial, docs/fleet.md)."""
        for host in self.health.serving():
            yield from self.engines.engine(host.name).logs(project, service, follow, tail)

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
        same = req
        if first.subnet and not req.network.external:
            prefix = ipaddress.IPv4Network(first.subnet).prefixlen
            same = req.model_copy(
                update={"pool": SubnetPool(ranges=(first.subnet,), prefix=prefix)}
            )
        for host in hosts[1:]:
            made = self.engines.engine(host.name).ensure_network(same)
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

    def close(self) -> None:
        self.engines.close()
