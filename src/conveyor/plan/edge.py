"""Which ports the edge HAProxy serves, and over which app hosts (docs/fleet.md, "The edge").
Pure.

Every port a user reaches on one host is served by the edge, balanced over every app host
that is up at that port (each app host's HAProxy serves every service of the fleet):

- every TCP `ports:` entry with a published port;
- every routed service's stable frontend port: `x-conveyor.public_port`, or the port
  Conveyor assigned (`frontends`, from the router's shape). On one host it is bound on
  127.0.0.1; on a fleet each app host binds it on its fleet address as well
  (plan.fleet_routes.host_shape), which is where the edge reaches it.

One number, one listener: a frontend port that a `ports:` entry of the service also
publishes is that entry's listener (as on one host, where the stable frontend *is* the
published port, bound at its host IP), so it is listed once, as the `ports:` entry.

Where each listens: published ports and `public_port` on `listen_address`; a port Conveyor
assigned (not written in any file, loopback-only on one host) on `assigned_address`, which
an edge host sets to its own 127.0.0.1 so that internal services are not opened to whoever
reaches the edge host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conveyor.model.edge import EdgeConfig, EdgePort, EdgeTarget
from conveyor.model.fleet import FleetHost
from conveyor.model.routing import Mode
from conveyor.model.stack import Service, Stack


def edge_config(
    stack: Stack,
    app_hosts: Sequence[FleetHost],
    *,
    frontends: Mapping[str, int] | None = None,
    listen_address: str = "0.0.0.0",  # noqa: S104 — the edge serves the published ports
    assigned_address: str | None = None,
    check_interval: float = 1.0,
    stats_port: int | None = None,
) -> EdgeConfig:
    """The edge of `stack` over `app_hosts` (in inventory order). `frontends`: each routed
    service's stable frontend port (Engine.frontend_ports, as the router's shape has them);
    None: each service's `x-conveyor.public_port` (what the files say: provisioning's first
    edge file). A port's `host_ip` from the file is where the app hosts bind it; the edge
    listens on `listen_address`, and on `assigned_address` (default: the same) for a
    frontend port Conveyor assigned."""
    if frontends is None:
        frontends = {
            name: s.routing.public_port
            for name, s in stack.services.items()
            if s.routed and s.routing.public_port is not None
        }
    ports: list[EdgePort] = []
    taken: set[int] = set()

    def add(name: str, service: Service, port: int, address: str, mode: Mode) -> None:
        probe = service.routing.probe
        taken.add(port)
        ports.append(
            EdgePort(
                service=name,
                port=port,
                address=address,
                mode=mode,
                check_path=probe.path if probe is not None and mode == "http" else None,
                targets=tuple(
                    EdgeTarget(host=host.name, address=host.address, port=port)
                    for host in app_hosts
                ),
            )
        )

    services = sorted(stack.services.items())
    for name, service in services:
        for entry in service.ports:
            if entry.protocol == "tcp" and entry.published is not None:
                add(name, service, entry.published, listen_address, _mode(service, entry.target))
    for name, service in services:
        port = frontends.get(name)
        if port is None or port in taken or not service.routed:
            continue
        written = port == service.routing.public_port
        address = listen_address if written else (assigned_address or listen_address)
        add(name, service, port, address, _frontend_mode(service))
    ports.sort(key=lambda p: (p.service, p.port))
    return EdgeConfig(ports=tuple(ports), check_interval=check_interval, stats_port=stats_port)


def _mode(service: Service, target: int) -> Mode:
    """HTTP for what the app hosts serve in HTTP mode: every port of a host-networking
    service, the HTTP ports of a project-networking one."""
    if service.networking == "host" or target in service.http_ports():
        return "http"
    return "tcp"


def _frontend_mode(service: Service) -> Mode:
    """The mode of a service's stable frontend on the app hosts (plan.routes.frontend_for):
    its main port's."""
    main = service.app_port()
    return "http" if main is None else _mode(service, main)
