"""In-memory stand-ins for the runtime and router seams, for unit tests of the deploy engine's
policies (failure_action, max_failure_ratio, recovery). They follow the Protocols in
runtime/protocol.py and router/protocol.py; the real adapters are tested against dockerd and
HAProxy in tests/integration."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from conveyor.errors import EngineUnreachable, RuntimeAdapterError
from conveyor.model.endpoint import Endpoint
from conveyor.model.release import ObservedAddress, ObservedNetwork, ObservedReplica, ReplicaHealth
from conveyor.model.stack import Service
from conveyor.router.protocol import RouterConfig, ServerEntry, ServerState, ServerStatus
from conveyor.runtime.protocol import AddressRun, NetworkRun, Progress, ReplicaRun


@dataclass
class FakeContainer:
    req: ReplicaRun
    running: bool = True
    exit_code: int | None = None
    health: ReplicaHealth = "healthy"


@dataclass
class FakeRuntime:
    """Containers in a dict. `health_of(req)` decides how a new replica turns out."""

    health_of: Callable[[ReplicaRun], ReplicaHealth] = lambda _req: "healthy"
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    networks: dict[str, ObservedNetwork] = field(default_factory=dict)  # by Docker name
    addresses: dict[str, ObservedAddress] = field(default_factory=dict)  # by container id
    away: bool = False  # the engine does not answer (stopped, restarting)
    # Docker volume name -> (driver, driver options) it was created with.
    volumes: dict[str, tuple[str | None, dict[str, str]]] = field(default_factory=dict)
    image_ports: dict[str, tuple[int, ...]] = field(default_factory=dict)  # EXPOSE, by image id
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _answer(self) -> None:
        if self.away:
            raise EngineUnreachable("cannot reach the Docker Engine (fake)")

    def build(self, project: str, service: Service, progress: Progress) -> tuple[str, str]:
        return f"{project}-{service.name}:fake", f"sha256:{service.name}"

    def ensure_image(self, ref: str, progress: Progress) -> str:
        return f"sha256:{ref}"

    def pull(self, ref: str, progress: Progress) -> str:
        return f"sha256:{ref}"

    def local_image(self, ref: str) -> str | None:
        return f"sha256:{ref}"

    def tag(self, image_id: str, ref: str) -> None:
        return None

    def exposed_ports(self, image_id: str) -> tuple[int, ...]:
        return self.image_ports.get(image_id, ())

    def ensure_volume(
        self,
        project: str,
        name: str,
        external: bool,
        driver: str | None = None,
        driver_opts: Mapping[str, str] | None = None,
    ) -> str:
        docker_name = name if external else f"{project}_{name}"
        self.volumes[docker_name] = (driver, dict(driver_opts or {}))
        return docker_name

    def remove_volumes(self, project: str) -> list[str]:
        mine = sorted(name for name in self.volumes if name.startswith(f"{project}_"))
        for name in mine:
            del self.volumes[name]
        return mine

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        cid = f"c{next(self._ids):04d}"
        self.containers[cid] = FakeContainer(req, health=self.health_of(req))
        return cid

    def _observed(self, cid: str, c: FakeContainer) -> ObservedReplica:
        # On project networks every replica listens on the same port at its own address.
        host = f"10.213.0.{int(cid[1:]) % 250 + 2}" if c.req.networks else "127.0.0.1"
        return ObservedReplica(
            replica=c.req.replica,
            service=c.req.service.name,
            container_id=cid,
            spec_hash=c.req.spec_hash,
            release=c.req.release,
            endpoint=Endpoint(host=host, port=c.req.port),
            running=c.running,
            exit_code=c.exit_code,
            health=c.health,
            started_at=1.0,
        )

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        self._answer()
        return [
            self._observed(cid, c) for cid, c in self.containers.items() if c.req.project == project
        ]

    def inspect(self, container_id: str) -> ObservedReplica | None:
        self._answer()
        c = self.containers.get(container_id)
        return None if c is None else self._observed(container_id, c)

    def stop(self, container_id: str, signal: str, grace: float) -> int | None:
        c = self.containers.get(container_id)
        if c is None:
            return None
        c.running, c.exit_code = False, 0
        return 0

    def remove(self, container_id: str) -> None:
        self.containers.pop(container_id, None)
        self.addresses.pop(container_id, None)

    def logs(
        self, project: str, service: str, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str]]:
        return iter(())

    def list_networks(self, project: str, names: Iterable[str] = ()) -> list[ObservedNetwork]:
        self._answer()
        return sorted(self.networks.values(), key=lambda n: n.docker_name)

    def ensure_network(self, req: NetworkRun) -> ObservedNetwork:
        net = req.network
        if net.docker_name not in self.networks:
            if net.external:
                raise RuntimeAdapterError(f"external network {net.docker_name} does not exist")
            used = [n.subnet for n in self.networks.values() if n.subnet]
            subnet = net.subnet or next(req.pool.candidates(used))
            self.networks[net.docker_name] = ObservedNetwork(
                docker_name=net.docker_name, spec_hash=net.spec_hash, subnet=subnet
            )
        return self.networks[net.docker_name]

    def remove_network(self, docker_name: str) -> None:
        self.networks.pop(docker_name, None)

    def list_addresses(self, project: str) -> list[ObservedAddress]:
        self._answer()
        return sorted(self.addresses.values(), key=lambda a: a.service)

    def run_address(self, req: AddressRun) -> ObservedAddress:
        for cid, a in list(self.addresses.items()):
            if a.service == req.address.service:
                del self.addresses[cid]
        cid = f"a{next(self._ids):04d}"
        self.addresses[cid] = ObservedAddress(
            service=req.address.service,
            container_id=cid,
            spec_hash=req.address.spec_hash,
            running=True,
            netns=f"/var/run/docker/netns/{cid}",
        )
        return self.addresses[cid]

    # what a test asks -------------------------------------------------------------------------

    def running(self, service: str) -> list[ReplicaRun]:
        return sorted(
            (
                c.req
                for c in self.containers.values()
                if c.running and c.req.service.name == service
            ),
            key=lambda r: r.replica,
        )


@dataclass
class FakeRouter:
    """Backends as dicts; every server's checks pass and it has no sessions."""

    config: RouterConfig | None = None
    backends: dict[str, dict[str, ServerEntry]] = field(default_factory=dict)

    def ensure(self, config: RouterConfig) -> None:
        self.config = config
        for fe in config.frontends:
            self.backends.setdefault(fe.service, {})

    def running(self) -> bool:
        return self.config is not None

    def shape(self) -> RouterConfig | None:
        if self.config is None:
            return None
        frontends = sorted(self.config.frontends, key=lambda f: f.service)
        return self.config.model_copy(
            update={"frontends": tuple(f.model_copy(update={"servers": ()}) for f in frontends)}
        )

    def add_server(self, service: str, server: ServerEntry) -> None:
        self.backends.setdefault(service, {})[server.name] = server

    def set_state(self, service: str, server: str, state: ServerState) -> None:
        s = self.backends[service][server]
        self.backends[service][server] = s.model_copy(update={"state": state})

    def set_weight(self, service: str, server: str, weight: int) -> None:
        s = self.backends[service][server]
        self.backends[service][server] = s.model_copy(update={"weight": weight})

    def remove_server(self, service: str, server: str, *, cut_sessions: bool = True) -> None:
        self.backends.get(service, {}).pop(server, None)

    def servers(self) -> list[ServerStatus]:
        return [
            ServerStatus(
                backend=b,
                server=s.name,
                endpoint=s.endpoint,
                admin_state=s.state,
                operational="up",
                sessions=0,
                weight=s.weight,
            )
            for b, servers in self.backends.items()
            for s in servers.values()
        ]

    def stop(self) -> None:
        self.config = None
        self.backends.clear()

    def ready(self, service: str) -> list[str]:
        return sorted(n for n, s in self.backends.get(service, {}).items() if s.state == "ready")
