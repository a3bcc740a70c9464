"""Service addresses across a fleet's hosts (docs/fleet.md, "Addresses"). Pure.

Every app host runs its own HAProxy with the same frontends the router gives one host
(plan.routes, render.haproxy: reused as they are). Only the servers differ: each host's
backends list every replica of the service fleet-wide, its own by the address it answers at
on this host (container address or 127.0.0.1:PORT), the others by their host's fleet address
and the host port their engine publishes the replica's port on. A replica on host A calls
`db` by name as on one host; A's HAProxy sends it to db's replica on host B.

Every port of a service crosses hosts: a remote replica is listed, in the backend of each
of its service's ports (the main one and every Listener), at the host port its engine
published that port on (`ServerEntry.ports`). Docker publishes no port of a container whose
networks are all `internal`: `check_publishable` refuses such a service on a fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pydantic import Field

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.frozen import Frozen
from conveyor.model.routing import Bind, Frontend, RouterConfig, ServerEntry
from conveyor.model.stack import Stack
from conveyor.plan.routes import Namespace


class FleetReplica(Frozen):
    """A replica somewhere in the fleet, as the hosts' HAProxies reach it."""

    service: str
    replica: str
    host: str  # FleetHost.name of the host it runs on
    local: Endpoint  # where it answers on its own host
    # Where other hosts reach it: its host's fleet address and the published host port of
    # its main port. None: not reachable from other hosts (it publishes nothing).
    remote: Endpoint | None = None
    # Its service's ports -> the host ports they are published on (the further ports'
    # backends reach it there); a port not named here is reached at itself.
    remote_ports: dict[int, int] = Field(default_factory=dict)


def fleet_servers(
    service: str, replicas: Sequence[FleetReplica], on_host: str
) -> tuple[ServerEntry, ...]:
    """The servers of `service`'s backend in the HAProxy of host `on_host`."""
    out: list[ServerEntry] = []
    for replica in replicas:
        if replica.service != service:
            continue
        if replica.host == on_host:
            out.append(ServerEntry(name=replica.replica, endpoint=replica.local))
        elif replica.remote is not None:
            out.append(
                ServerEntry(
                    name=replica.replica, endpoint=replica.remote, ports=replica.remote_ports
                )
            )
    return tuple(sorted(out, key=lambda s: s.name))


def fleet_router_config(
    config: RouterConfig, replicas: Sequence[FleetReplica], on_host: str
) -> RouterConfig:
    """`config` (one host's frontends, as plan.routes makes them) for host `on_host` of a
    fleet: every frontend's servers are the service's replicas fleet-wide."""
    frontends: list[Frontend] = []
    for frontend in config.frontends:
        servers = fleet_servers(frontend.service, replicas, on_host)
        frontends.append(
            frontend.model_copy(
                # Each server names its own port: remote replicas answer on host ports, not
                # on the port the service's replicas listen on (`target`).
                update={
                    "servers": tuple(_with_target(s, frontend, on_host, replicas) for s in servers),
                    "target": None,
                }
            )
        )
    return config.model_copy(update={"frontends": tuple(frontends)})


def _with_target(
    server: ServerEntry, frontend: Frontend, on_host: str, replicas: Sequence[FleetReplica]
) -> ServerEntry:
    """A local server at the frontend's `target` port when it has one (project networking:
    the replica listens there, whatever its recorded endpoint's port)."""
    local = any(r.replica == server.name and r.host == on_host for r in replicas)
    if local and frontend.target is not None:
        endpoint = Endpoint(host=server.endpoint.host, port=frontend.target)
        return server.model_copy(update={"endpoint": endpoint})
    return server


def host_shape(
    config: RouterConfig, namespaces: Mapping[str, Namespace], address: str | None = None
) -> RouterConfig:
    """The frontends (`config`, as the executor gives them) for one fleet host's HAProxy:

    - every server is reached at its own endpoint (`target` cleared): on a fleet a replica is
      listed at its host's fleet address and published port, the host's own replicas too;
    - a bind inside a service address's namespace uses this host's address (`namespaces`,
      service -> the namespace of its address container on this host); a service whose
      address does not run on this host yet loses those binds until it does (its published
      ports and stable frontend still serve);
    - what one host binds on its loopback (the stable frontend port: `public_port` or the one
      Conveyor assigned; a `ports:` entry published on 127.0.0.1) is bound on the host's
      fleet `address` too, where the edge (or the AWS load balancer) reaches it. The
      loopback bind stays: replicas under host networking call services there.
    """

    def fleet_bind(bound: str, port: int) -> tuple[Bind, ...]:
        if address is None or bound != LOOPBACK or address == LOOPBACK:
            return ()
        return (Bind(address=address, port=port),)

    def binds(service: str, given: tuple[Bind, ...]) -> tuple[Bind, ...]:
        out: list[Bind] = []
        for bind in given:
            if bind.namespace is None:
                out.append(bind)
                continue
            here = namespaces.get(service)
            if here is not None:
                out.append(bind.model_copy(update={"namespace": here.name, "netns": here.netns}))
        return tuple(out)

    def outside(given: tuple[Bind, ...]) -> tuple[Bind, ...]:
        """The fleet-address twin of every loopback bind on the host."""
        return tuple(
            twin for b in given if b.namespace is None for twin in fleet_bind(b.address, b.port)
        )

    frontends = tuple(
        f.model_copy(
            update={
                "target": None,
                "binds": (
                    *fleet_bind(f.address, f.port),
                    *binds(f.service, f.binds),
                    *outside(f.binds),
                ),
                "listeners": tuple(
                    x.model_copy(update={"binds": (*binds(f.service, x.binds), *outside(x.binds))})
                    for x in f.listeners
                ),
            }
        )
        for f in config.frontends
    )
    return config.model_copy(update={"frontends": frontends})


def unpublishable(stack: Stack, services: Iterable[str]) -> list[SpecError]:
    """A problem for the services among `services` that serve ports on project networks that
    are all `internal: true` (declared so in the file): one per set of such networks, naming
    each service and its ports. On a fleet every replica is reached at the host ports its
    engine publishes (the other hosts' HAProxies, the controller's probes), even one only
    called through HAProxy, and Docker publishes no port of a container only on internal
    networks: its replicas could never be reached, nor pass a probe. Named at the first
    network's `internal:` line. A network that is `external` is Docker's to describe: the
    runtime finds out when it starts the replica (FleetRuntime.run)."""
    groups: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for name in sorted(set(services)):
        service = stack.services.get(name)
        if service is None or service.networking != "project" or not service.served_ports():
            continue
        networks = [stack.networks.get(key) for key in sorted(service.networks)]
        internal = [n for n in networks if n is not None and n.internal and not n.external]
        if not internal or len(internal) != len(networks):
            continue
        ports = ", ".join(str(p) for p in service.served_ports())
        groups.setdefault(tuple(n.name for n in internal), []).append((name, ports))
    out: list[SpecError] = []
    for names, found in groups.items():
        first = stack.networks[names[0]]
        if len(found) == 1:
            [(name, ports)] = found
            who = f"service '{name}' serves port(s) {ports}"
        else:
            who = "services " + ", ".join(f"'{n}' ({p})" for n, p in found) + " serve ports"
        them = "it" if len(found) == 1 else "them"
        out.append(
            SpecError(
                first.file or stack.file,
                first.line,
                f"networks.{first.name}.internal",
                f"{who} only on internal network(s) ({', '.join(names)}): on a fleet every "
                "replica is reached at ports its host publishes (by the other hosts' HAProxies "
                "and the controller's probes, even when only HAProxy calls it), and Docker "
                "publishes no port of a container only on internal networks. Remove "
                f"`internal: true` (its containers then have a route out), or attach {them} to "
                "a network that is not internal too (ports are published there; the internal "
                "one keeps its isolation)",
            )
        )
    return out


def check_publishable(stack: Stack, services: Iterable[str]) -> None:
    """Raise the problems `unpublishable` finds (SpecError, or SpecErrors for several)."""
    problems = unpublishable(stack, services)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SpecErrors(problems)
