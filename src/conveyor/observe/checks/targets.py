"""What Nagios checks for a project, derived from its serving release (pure).

Per routed service, from the frontends HAProxy serves for it (`plan.routes.frontend_for`, the
same function the router's configuration comes from):

- its stable frontend on the host (HTTP with the service's probe path, or TCP), and every
  port it publishes (`ports:`), as a client on this host reaches them;
- its service address (project networks), at the address's IP on each project network and
  each port the service serves there. The address's network namespace holds HAProxy's
  listening socket; the IP answers from the host as well (the host has its gateway address on
  each bridge), so the check reaches the very socket other services call, without entering
  the namespace. That keeps Nagios unprivileged (entering a namespace needs CAP_SYS_ADMIN)
  and the checks stable when the address container is recreated (its IP is its slot's);
- its HAProxy backend (servers up, through the stats CSV);
- the certificate of each published port the file marks as TLS (`app_protocol: https` or
  `tls`).

And for the host: the Docker daemon, each disk path of the settings, the load and the memory.

On a fleet (`through_edge`) Nagios runs on the controller, where the project's ports are the
edge's: the frontend and published checks go to the edge's address; the service-address and
HAProxy-backend checks are left out (the addresses are on each app host's networks, and each
host's HAProxy has its stats on its own loopback), and the host checks watch the controller
(the fleet's hosts are Nagios's remote hosts, checked through NRPE: plan.fleet_checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conveyor.model.checks import Check, ChecksSettings, Scope
from conveyor.model.endpoint import LOOPBACK
from conveyor.model.release import Release
from conveyor.model.routing import Bind, Mode
from conveyor.model.stack import Service, Stack
from conveyor.plan.network import desired_address, slot_address
from conveyor.plan.routes import ALL_INTERFACES, frontend_for
from conveyor.render.haproxy import backend_name

TLS_PROTOCOLS = frozenset({"https", "tls"})
_WILDCARDS = {ALL_INTERFACES: LOOPBACK, "::": "::1", "": LOOPBACK}


def reach(address: str) -> str:
    """Where a client on this host connects to a socket bound to `address`."""
    return _WILDCARDS.get(address, address)


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _port_check(
    service: str, mode: Mode, address: str, port: int, path: str | None, scope: Scope
) -> Check:
    where = _endpoint(address, port)
    label = f"{service} address {mode}" if scope == "address" else f"{service} {mode}"
    return Check(
        name=f"{label} {where}",
        kind=mode,
        service=service,
        address=address,
        port=port,
        path=(path or "/") if mode == "http" else None,
        scope=scope,
    )


def service_checks(
    name: str,
    service: Service,
    port: int,
    addresses: Sequence[str],
    stats_port: int | None,
) -> list[Check]:
    """The checks of one routed service whose stable frontend port is `port`."""
    frontend = frontend_for(name, service, port, None)
    checks = [
        _port_check(
            name,
            frontend.mode,
            reach(frontend.address),
            frontend.port,
            frontend.check_path,
            "frontend",
        )
    ]
    # Host binds of the main port reach the same backend as the frontend: same probe path.
    published: list[tuple[Mode, Bind, str | None]] = [
        (frontend.mode, b, frontend.check_path) for b in frontend.binds
    ]
    published += [(x.mode, b, None) for x in frontend.listeners for b in x.binds]
    for mode, bind, path in published:
        if bind.namespace is None:
            address = reach(bind.address)
            checks.append(_port_check(name, mode, address, bind.port, path, "published"))
    if addresses and frontend.target is not None:
        served: list[tuple[Mode, int, str | None]] = [
            (frontend.mode, frontend.target, frontend.check_path)
        ]
        served += [(x.mode, x.port, None) for x in frontend.listeners]
        for ip in addresses:
            for mode, served_port, path in served:
                checks.append(_port_check(name, mode, ip, served_port, path, "address"))
    for entry in service.ports:
        protocol = (entry.app_protocol or "").lower()
        if protocol in TLS_PROTOCOLS and entry.published is not None and entry.protocol == "tcp":
            address = reach(entry.host_ip or ALL_INTERFACES)
            checks.append(
                Check(
                    name=f"{name} certificate {_endpoint(address, entry.published)}",
                    kind="certificate",
                    service=name,
                    address=address,
                    port=entry.published,
                    scope="published",
                )
            )
    if stats_port is not None:
        checks.append(
            Check(
                name=f"{name} haproxy backend",
                kind="haproxy",
                service=name,
                port=stats_port,
                backend=backend_name(name),
                scope="host",
            )
        )
    return _unique(checks)


def host_checks(settings: ChecksSettings) -> list[Check]:
    checks = [
        Check(name="docker", kind="docker"),
        Check(name="load", kind="load"),
        Check(name="memory", kind="memory"),
    ]
    checks += [Check(name=f"disk {path}", kind="disk", path=path) for path in settings.disk_paths]
    return checks


def project_checks(
    release: Release | None,
    ports: Mapping[str, int],
    stats_port: int | None,
    addresses: Mapping[str, Sequence[str]],
    settings: ChecksSettings,
) -> tuple[Check, ...]:
    """Every check of a project serving `release`: its routed services' (those with a stable
    port in `ports`), then the host's. `addresses`: each service's service-address IPs."""
    checks: list[Check] = []
    if release is not None:
        for name in release.order():
            service = release.services[name].service
            port = ports.get(name)
            if not service.routed or port is None:
                continue
            checks += service_checks(name, service, port, addresses.get(name, ()), stats_port)
    checks += host_checks(settings)
    return tuple(_unique(checks))


def _unique(checks: list[Check]) -> list[Check]:
    """One check per name: a published port that is also the stable frontend is one socket."""
    seen: dict[str, Check] = {}
    for check in checks:
        seen.setdefault(check.name, check)
    return list(seen.values())


def through_edge(
    checks: Sequence[Check], edge: str | None, assigned: Mapping[int, str | None]
) -> tuple[Check, ...]:
    """`checks` (`project_checks`) for a fleet's controller: each frontend and published
    port check at `edge` (where the edge serves every such port; None: a load balancer
    outside Conveyor is the edge and the port is not checked from here), or for a port
    Conveyor assigned, at `assigned[port]` (an edge host serves those on its own loopback
    only: None). Service-address and HAProxy-backend checks are left out: what they watch
    is on the app hosts."""
    out: list[Check] = []
    for check in checks:
        if check.kind == "haproxy" or check.scope == "address":
            continue
        if check.scope not in ("frontend", "published") or check.port is None:
            out.append(check)
            continue
        address = assigned.get(check.port, edge)
        if address is not None:
            old = _endpoint(check.address or LOOPBACK, check.port)
            new = _endpoint(address, check.port)
            out.append(
                check.model_copy(update={"address": address, "name": check.name.replace(old, new)})
            )
    return tuple(_unique(out))


def address_ips(
    stack: Stack, slots: Mapping[str, int], subnets: Mapping[str, str]
) -> dict[str, list[str]]:
    """Each service address's IP on every project network Conveyor made (`subnets`: Docker
    network -> its subnet) at its stable slot. On an external network Docker places the
    address, so it has no slot address and is not checked there."""
    out: dict[str, list[str]] = {}
    for name in stack.order():
        address = desired_address(stack, name, slots.get(name))
        if address is None or address.slot is None:
            continue
        ips = [
            slot_address(subnets[network], address.slot)
            for network in sorted(address.networks)
            if network in subnets
        ]
        if ips:
            out[name] = ips
    return out
