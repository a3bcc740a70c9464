"""Noticing that HAProxy changed, between heal passes: HAProxy has no event stream to follow,
so the server compares what it shows now with what it showed before the last heal.

`router_mark` reads a project's HAProxy through its runtime API (a few commands on its admin
socket; nothing is started or changed): whether it runs, and each server's address, admin
state, weight and check verdict. Sessions are left out: they change all the time. Two marks
that differ mean something changed — a server deleted, put in maintenance, drained or given
another weight, its checks failing, HAProxy stopped — or Conveyor changed it itself (a
rollout): the reconciler it wakes acts only on what differs from the release.
`changes` says what differs between two marks, in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from conveyor.errors import ConveyorError
from conveyor.router.protocol import Router

RouterLife = Literal["running", "not running", "unreadable"]
# (service, server) -> (address, admin state, weight, checks)
ServerMark = tuple[str, str, int, str]


_BECAME: dict[RouterLife, str] = {
    "running": "running again",
    "not running": "stopped",
    "unreadable": "not answering on its admin socket",
}


@dataclass(frozen=True)
class RouterMark:
    life: RouterLife
    servers: tuple[tuple[tuple[str, str], ServerMark], ...] = ()  # sorted by (service, server)


def router_mark(router: Router) -> RouterMark:
    """What `router` shows now. An HAProxy that does not answer is `unreadable` whatever the
    error says, so a lasting failure is one change, not one per look."""
    try:
        if not router.running():
            return RouterMark("not running")
        servers = router.servers()
    except ConveyorError:
        return RouterMark("unreadable")
    marks = {
        (s.backend, s.server): (str(s.endpoint), s.admin_state, s.weight, s.operational)
        for s in servers
    }
    return RouterMark("running", tuple(sorted(marks.items())))


def changes(before: RouterMark, after: RouterMark) -> list[str]:
    """What differs, one phrase each: `stopped`, `web-2-1 deleted`, `web-2-1 ready -> maint`,
    `web-2-1 weight 100 -> 10`, `web-2-1 checks up -> down`."""
    if before.life != after.life:
        return [_BECAME[after.life]]
    old, new = dict(before.servers), dict(after.servers)
    said: list[str] = []
    for key in sorted(old.keys() | new.keys()):
        server = key[1]
        if key not in new:
            said.append(f"{server} deleted")
            continue
        if key not in old:
            said.append(f"{server} added")
            continue
        (addr0, state0, weight0, checks0), (addr1, state1, weight1, checks1) = old[key], new[key]
        if addr0 != addr1:
            said.append(f"{server} address {addr0} -> {addr1}")
        if state0 != state1:
            said.append(f"{server} {state0} -> {state1}")
        if weight0 != weight1:
            said.append(f"{server} weight {weight0} -> {weight1}")
        if checks0 != checks1:
            said.append(f"{server} checks {checks0} -> {checks1}")
    return said
