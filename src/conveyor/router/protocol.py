"""The seam between Conveyor and the traffic router (HAProxy)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import model_validator

from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.stack import Frozen

ServerState = Literal["ready", "drain", "maint"]


class ServerEntry(Frozen):
    name: str  # replica id
    endpoint: Endpoint  # where the replica answers
    state: ServerState = "ready"
    weight: int = 100

    @model_validator(mode="before")
    @classmethod
    def _legacy_port(cls, data: Any) -> Any:
        """Servers recorded by Conveyor 0.1 name a loopback port, not an endpoint."""
        if isinstance(data, dict) and "port" in data and "endpoint" not in data:
            data = dict(data)
            data["endpoint"] = {"host": LOOPBACK, "port": data.pop("port")}
        return data


class Frontend(Frozen):
    """One service's frontend (stable port on 127.0.0.1) and backend."""

    service: str
    port: int
    check_path: str | None = None  # HTTP check path; None means a TCP check
    check_interval: float = 0.25  # seconds
    check_fall: int = 2
    check_rise: int = 1
    balance: Literal["roundrobin", "leastconn"] = "roundrobin"
    servers: tuple[ServerEntry, ...] = ()


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


class Router(Protocol):
    def ensure(self, config: RouterConfig) -> None:
        """Make HAProxy run with exactly these frontends: start it, or reload hitlessly when the
        set of frontends differs from the running one. Servers in `config` are what a (re)start
        loads; servers already added at run time survive a reload."""
        ...

    def running(self) -> bool: ...

    def add_server(self, service: str, server: ServerEntry) -> None:
        """Add a server at run time (no reload), health checks on, in state `server.state`."""
        ...

    def set_state(self, service: str, server: str, state: ServerState) -> None: ...

    def set_weight(self, service: str, server: str, weight: int) -> None: ...

    def remove_server(self, service: str, server: str) -> None:
        """Put in maintenance and delete; a missing server is not an error."""
        ...

    def servers(self) -> list[ServerStatus]:
        """Every server of every Conveyor backend with its state and current sessions."""
        ...

    def stop(self) -> None: ...
