"""Which ports the edge HAProxy serves, and over which app hosts: every TCP port a service
publishes (`ports:` with a published port), balanced over every app host that is up, since
each app host's HAProxy serves every service of the fleet (docs/fleet.md). Pure."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.model.edge import EdgeConfig, EdgePort, EdgeTarget
from conveyor.model.fleet import FleetHost
from conveyor.model.routing import Mode
from conveyor.model.stack import Service, Stack


def edge_config(
    stack: Stack,
    app_hosts: Sequence[FleetHost],
    *,
    listen_address: str = "0.0.0.0",  # noqa: S104 — the edge serves the published ports
    check_interval: float = 1.0,
    stats_port: int | None = None,
) -> EdgeConfig:
    """The edge of `stack` over `app_hosts` (in inventory order). A port's `host_ip` from
    the file is where the app hosts bind it; the edge listens on `listen_address`."""
    ports: list[EdgePort] = []
    for name, service in sorted(stack.services.items()):
        for entry in service.ports:
            if entry.protocol != "tcp" or entry.published is None:
                continue
            mode = _mode(service, entry.target)
            probe = service.routing.probe
            ports.append(
                EdgePort(
                    service=name,
                    port=entry.published,
                    address=listen_address,
                    mode=mode,
                    check_path=probe.path if probe is not None and mode == "http" else None,
                    targets=tuple(
                        EdgeTarget(host=host.name, address=host.address, port=entry.published)
                        for host in app_hosts
                    ),
                )
            )
    return EdgeConfig(ports=tuple(ports), check_interval=check_interval, stats_port=stats_port)


def _mode(service: Service, target: int) -> Mode:
    """HTTP for what the app hosts serve in HTTP mode: every port of a host-networking
    service, the HTTP ports of a project-networking one."""
    if service.networking == "host" or target in service.http_ports():
        return "http"
    return "tcp"
