"""Port assignment: replicas get a fresh free port (on 127.0.0.1 here, or on a fleet host:
FleetRuntime.pick_port), frontends a stable one."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Collection

from conveyor.errors import PortsExhausted

REPLICA_RANGE = (20000, 29999)
FRONTEND_RANGE = (18100, 18999)
_PURPOSE = {REPLICA_RANGE: "replicas", FRONTEND_RANGE: "frontends"}


def port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(
    taken: Collection[int],
    lo_hi: tuple[int, int] = REPLICA_RANGE,
    rng: random.Random | None = None,
    free: Callable[[int], bool] = port_free,
) -> int:
    """A free port in the range that is not in `taken` (ports promised but not yet bound).
    `free` says whether a port is free where the replica runs (default: a bind on this
    machine; a fleet's host: not among the ports it listens on, deploy.fleet_runtime).
    Raises PortsExhausted, naming the range, when every port of it is taken."""
    r = rng or random.Random()  # noqa: S311 — spreading ports, not secrets
    lo, hi = lo_hi
    for _ in range(500):
        p = r.randint(lo, hi)
        if p not in taken and free(p):
            return p
    for p in range(lo, hi + 1):  # the range is nearly full: scan it
        if p not in taken and free(p):
            return p
    raise PortsExhausted(_PURPOSE.get(lo_hi, "ports"), lo, hi)
