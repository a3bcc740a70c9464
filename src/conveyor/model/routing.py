"""Routing as data: the frontends, backends and servers a traffic router is told to have, and
what it reports about them. Pure types; the router adapter (HAProxy) and the renderer of its
configuration share them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.stack import Frozen

ServerState = Literal["ready", "drain", "maint"]
# The weight Conveyor gives every server it routes to (HAProxy's default; no canary weights yet).
FULL_WEIGHT = 100


class ServerEntry(Frozen):
    name: str  # replica id
    endpoint: Endpoint  # where the replica answers
    state: ServerState = "ready"
    weight: int = FULL_WEIGHT
    # Where the replica answers each of its service's ports at `endpoint.host` when that is
    # not the port itself: the service's port -> the host port. A fleet's replicas are
    # reached at the host ports their engine published (docs/fleet.md, "Addresses"); empty
    # on one host, where every port is reached at itself.
    ports: dict[int, int] = Field(default_factory=dict)

    def reached_at(self, port: int | None) -> Endpoint:
        """Where the server answers the service's `port` (None: its own endpoint)."""
        if port is None:
            return self.endpoint
        return Endpoint(host=self.endpoint.host, port=self.ports.get(port, port))

    @model_validator(mode="before")
    @classmethod
    def _legacy_port(cls, data: Any) -> Any:
        """Servers recorded by Conveyor 0.1 name a loopback port, not an endpoint."""
        if isinstance(data, dict) and "port" in data and "endpoint" not in data:
            data = dict(data)
            data["endpoint"] = {"host": LOOPBACK, "port": data.pop("port")}
        return data


Mode = Literal["http", "tcp"]


class Bind(Frozen):
    """One more address HAProxy listens on for a port of a service: a published port on the
    host, or the service's port inside its service address's network namespace."""

    address: str = "0.0.0.0"  # noqa: S104 — Compose publishes on every interface by default
    port: int
    namespace: str | None = None  # a name under /var/run/netns (HAProxy's `namespace`)
    netns: str | None = None  # the namespace file that name must link to


class Listener(Frozen):
    """Another port of a service (project networking): its own frontend and backend, the same
    servers at this port."""

    port: int  # where replicas listen
    mode: Mode = "tcp"
    binds: tuple[Bind, ...] = ()


class Frontend(Frozen):
    """One service's frontend (stable port on 127.0.0.1) and backend, and under project
    networking its other binds and ports."""

    service: str
    port: int
    check_path: str | None = None  # HTTP check path; None means a TCP check
    check_interval: float = 0.25  # seconds
    check_fall: int = 2
    check_rise: int = 1
    balance: Literal["roundrobin", "leastconn"] = "roundrobin"
    servers: tuple[ServerEntry, ...] = ()
    address: str = LOOPBACK  # where `port` is bound
    mode: Mode = "http"
    target: int | None = None  # the replicas' port; None: each server's own endpoint port
    binds: tuple[Bind, ...] = ()  # more addresses for the main port
    listeners: tuple[Listener, ...] = ()  # the service's other ports

    def namespaces(self) -> dict[str, str]:
        """Namespace name -> the file it must link to, for every bind inside one."""
        binds = [*self.binds, *(b for listener in self.listeners for b in listener.binds)]
        return {b.namespace: b.netns for b in binds if b.namespace and b.netns}


class RouterConfig(Frozen):
    frontends: tuple[Frontend, ...] = ()
    stats_port: int | None = None  # HAProxy stats page + Prometheus exporter on 127.0.0.1


class ServerStatus(Frozen):
    backend: str  # service name
    server: str  # replica id
    endpoint: Endpoint
    admin_state: ServerState  # what Conveyor set
    operational: Literal["up", "down", "unknown"]  # what HAProxy's checks say
    sessions: int  # current sessions
    weight: int = FULL_WEIGHT  # HAProxy's weight of it now (`set weight` changes it)
