"""Service addresses across a fleet's hosts (docs/fleet.md, "Addresses"). Pure.

Every app host runs its own HAProxy with the same frontends the router gives one host
(plan.routes, render.haproxy: reused as they are). Only the servers differ: each host's
backends list every replica of the service fleet-wide, its own by the address it answers at
on this host (container address or 127.0.0.1:PORT), the others by their host's fleet address
and the host port their engine publishes the replica's port on. A replica on host A calls
`db` by name as on one host; A's HAProxy sends it to db's replica on host B.

Only a service's main port crosses hosts for now: a further port of a service (a Listener)
is served by this host's replicas only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conveyor.model.endpoint import Endpoint
from conveyor.model.frozen import Frozen
from conveyor.model.routing import Bind, Frontend, RouterConfig, ServerEntry
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


def fleet_servers(
    service: str, replicas: Sequence[FleetReplica], on_host: str
) -> tuple[ServerEntry, ...]:
    """The servers of `service`'s backend in the HAProxy of host `on_host`."""
    out: list[ServerEntry] = []
    for replica in replicas:
        if replica.service != service:
            continue
        endpoint = replica.local if replica.host == on_host else replica.remote
        if endpoint is not None:
            out.append(ServerEntry(name=replica.replica, endpoint=endpoint))
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


def host_shape(config: RouterConfig, namespaces: Mapping[str, Namespace]) -> RouterConfig:
    """The frontends (`config`, as the executor gives them) for one fleet host's HAProxy:

    - every server is reached at its own endpoint (`target` cleared): on a fleet a replica is
      listed at its host's fleet address and published port, the host's own replicas too;
    - a bind inside a service address's namespace uses this host's address (`namespaces`,
      service -> the namespace of its address container on this host); a service whose
      address does not run on this host yet loses those binds until it does (its published
      ports and stable frontend still serve).
    """

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

    frontends = tuple(
        f.model_copy(
            update={
                "target": None,
                "binds": binds(f.service, f.binds),
                "listeners": tuple(
                    x.model_copy(update={"binds": binds(f.service, x.binds)}) for x in f.listeners
                ),
            }
        )
        for f in config.frontends
    )
    return config.model_copy(update={"frontends": frontends})
