"""What HAProxy must serve for a release (pure): one frontend per routed service.

Host networking (Conveyor 0.1's mode): one HTTP frontend on the service's stable port on
127.0.0.1 (or the host IP its `ports:` entry names), servers at each replica's own port.

Project networking: the same stable frontend for the service's main port, plus a bind on every
port the service serves inside its service address's network namespace (where its name
resolves), plus every published port on the host; HTTP mode for HTTP ports, TCP otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from conveyor.model.endpoint import LOOPBACK
from conveyor.model.release import Release
from conveyor.model.routing import Bind, Frontend, Listener, Mode, RouterConfig
from conveyor.model.stack import Frozen, PortSpec, Service

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 — Compose's default for a published port


class Namespace(Frozen):
    """Where a service's address lives: the name HAProxy binds into and its namespace file."""

    name: str
    netns: str


def _published(service: Service) -> list[PortSpec]:
    return [p for p in service.ports if p.protocol == "tcp" and p.published is not None]


def _bind(entry: PortSpec, default_host: str) -> Bind:
    assert entry.published is not None
    return Bind(address=entry.host_ip or default_host, port=entry.published)


def frontend_for(name: str, service: Service, port: int, namespace: Namespace | None) -> Frontend:
    """The frontend of one routed service whose stable port is `port`."""
    probe = service.routing.probe
    base = Frontend(
        service=name,
        port=port,
        check_path=probe.path if probe else None,
        check_interval=probe.check_interval if probe else 0.25,
        check_fall=probe.check_fall if probe else 2,
        check_rise=probe.check_rise if probe else 1,
        balance=service.routing.balance,
    )
    published = _published(service)
    if service.networking == "host":
        # The stable port is the published one when `ports:` names it: honour its host IP.
        same = next((p for p in published if p.published == port), None)
        address = (same.host_ip if same else None) or LOOPBACK
        return base.model_copy(update={"address": address})
    main = service.app_port()
    if main is None:  # routed without a port cannot happen under project networking
        return base
    http = service.http_ports()
    address = LOOPBACK
    extra: dict[int, list[Bind]] = {}
    for entry in published:
        if entry.target == main and entry.published == port and address == LOOPBACK:
            address = entry.host_ip or ALL_INTERFACES  # the stable port is this published one
            continue
        extra.setdefault(entry.target, []).append(_bind(entry, ALL_INTERFACES))

    def binds(target: int) -> tuple[Bind, ...]:
        inside = []
        if namespace is not None:
            inside.append(
                Bind(
                    address=ALL_INTERFACES,
                    port=target,
                    namespace=namespace.name,
                    netns=namespace.netns,
                )
            )
        return (*inside, *extra.get(target, []))

    def mode(target: int) -> Mode:
        return "http" if target in http else "tcp"

    return base.model_copy(
        update={
            "address": address,
            "mode": mode(main),
            # An HTTP check only means something on an HTTP port.
            "check_path": base.check_path if main in http else None,
            "target": main,
            "binds": binds(main),
            "listeners": tuple(
                Listener(port=p, mode=mode(p), binds=binds(p))
                for p in service.served_ports()
                if p != main
            ),
        }
    )


def router_config(
    release: Release,
    services: Iterable[str],
    ports: Mapping[str, int],
    namespaces: Mapping[str, Namespace],
    stats_port: int | None,
) -> RouterConfig:
    """HAProxy's frontends for `services` of `release` (those with a stable port in `ports`);
    services of an older release that are still being retired keep a bare frontend."""
    fes: list[Frontend] = []
    for name in services:
        port = ports.get(name)
        if port is None:
            continue
        sr = release.services.get(name)
        if sr is None:
            fes.append(Frontend(service=name, port=port))
            continue
        fes.append(frontend_for(name, sr.service, port, namespaces.get(name)))
    return RouterConfig(frontends=tuple(fes), stats_port=stats_port)
