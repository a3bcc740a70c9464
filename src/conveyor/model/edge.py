"""The edge of a fleet as data: on hosts with the `edge` role, one HAProxy balances each
published port over the app hosts, which serve it through their own HAProxy (docs/fleet.md).
Pure types; plan.edge builds them from a stack and a fleet, render.edge_haproxy renders them."""

from __future__ import annotations

from conveyor.model.frozen import Frozen
from conveyor.model.routing import Mode


class EdgeTarget(Frozen):
    """An app host serving a published port: its HAProxy's frontend for that port."""

    host: str  # FleetHost.name: the server's name in the edge's backend
    address: str  # where the edge reaches it (the host's fleet address)
    port: int


class EdgePort(Frozen):
    """One published port, balanced over the app hosts."""

    service: str
    port: int  # what the edge listens on: the port `ports:` publishes
    address: str = "0.0.0.0"  # noqa: S104 — published ports listen on every interface
    mode: Mode = "tcp"
    check_path: str | None = None  # HTTP mode: the service's health path; None: a TCP check
    targets: tuple[EdgeTarget, ...] = ()


class EdgeConfig(Frozen):
    ports: tuple[EdgePort, ...] = ()
    # How the edge checks app hosts: a host that fails `fall` checks in a row leaves rotation
    # (requests in flight to it are retried on another host), and returns after `rise`.
    check_interval: float = 1.0  # seconds
    check_fall: int = 2
    check_rise: int = 2
    stats_port: int | None = None  # HAProxy's stats page on 127.0.0.1, when set
