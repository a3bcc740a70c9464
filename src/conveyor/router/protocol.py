"""The seam between Conveyor and the traffic router (HAProxy)."""

from __future__ import annotations

from typing import Protocol

from conveyor.model.routing import (
    Frontend,
    RouterConfig,
    ServerEntry,
    ServerState,
    ServerStatus,
)

__all__ = ["Frontend", "Router", "RouterConfig", "ServerEntry", "ServerState", "ServerStatus"]


class Router(Protocol):
    def ensure(self, config: RouterConfig) -> None:
        """Make HAProxy run with exactly these frontends: start it, or reload hitlessly when the
        set of frontends differs from the running one. Servers in `config` are what a (re)start
        loads; servers already added at run time survive a reload."""
        ...

    def running(self) -> bool: ...

    def shape(self) -> RouterConfig | None:
        """The frontends HAProxy runs (servers left out); None when it does not run."""
        ...

    def add_server(self, service: str, server: ServerEntry) -> None:
        """Add a server at run time (no reload), health checks on, in state `server.state`."""
        ...

    def set_state(self, service: str, server: str, state: ServerState) -> None: ...

    def set_weight(self, service: str, server: str, weight: int) -> None: ...

    def remove_server(self, service: str, server: str, *, cut_sessions: bool = True) -> None:
        """Put in maintenance and delete; a missing server is not an error. `cut_sessions`
        ends the sessions it still has at once (what a drain left past its grace period);
        without it they are left to end or be retried elsewhere (a dead replica's, stuck
        connecting) before the server is deleted."""
        ...

    def servers(self) -> list[ServerStatus]:
        """Every server of every Conveyor backend with its state and current sessions."""
        ...

    def stop(self) -> None: ...
