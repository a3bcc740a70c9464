"""The controller's view of which fleet hosts answer (docs/fleet.md, "Host loss"): each app
host's Docker Engine is pinged through its SSH tunnel, and plan.host_health turns the answers
into up / suspect / down / returning.

A host this process has not probed yet starts `up`: a fresh `conveyor up` trusts the inventory,
and its first failed probe makes the host suspect, then down after `down_after` seconds of
silence. A learned fleet (deploy.fleet_source: `hosts_from: aws`) is followed at each probe:
a host that joins later starts `returning` (it takes replicas once it has answered `up_after`
probes: a new instance is still configuring itself), a host that left is forgotten (its
replicas are no longer observed, so the plan replaces them); `subscribe_fleet` hears of both.
A host that was down is probed again at most every twice `interval` seconds, so a lost host
costs each observation one SSH connect timeout at most that often, not every time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.errors import ConveyorError
from conveyor.model.fleet import FleetChange, FleetHost
from conveyor.model.host_health import HostHealth, HostHealthSettings, HostTransition
from conveyor.plan.host_health import first_seen, observe

FAST_FAILURE = 1.0  # seconds: a ping failing sooner is asked again once
RETRY_PAUSE = 0.5  # seconds before that second ping


class FleetHealth:
    def __init__(
        self,
        engines: FleetEngines,
        settings: HostHealthSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engines = engines
        self.settings = settings or HostHealthSettings()
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self.hosts = engines.fleet.with_role("app")
        self._health = {h.name: HostHealth(host=h.name, status="up", since=now) for h in self.hosts}
        self._probed: dict[str, float] = {}
        self.transitions: list[HostTransition] = []  # every change, oldest first
        self._listeners: list[Callable[[HostTransition], None]] = []
        self._fleet_listeners: list[Callable[[FleetChange], None]] = []

    def subscribe_fleet(self, listener: Callable[[FleetChange], None]) -> None:
        """`listener` hears of hosts joining or leaving a learned fleet (and of failures to
        learn it), before the probe that follows."""
        self._fleet_listeners.append(listener)

    def known(self, name: str) -> bool:
        """Whether `name` is an app host of the fleet (a host that left is not)."""
        with self._lock:
            return name in self._health

    def follow(self) -> FleetChange:
        """The fleet's hosts learned again when it is time (deploy.fleet_source): hosts that
        joined start `returning`, hosts that left are forgotten (their tunnels stopped)."""
        error = self.engines.source.refresh()
        now_hosts = self.engines.fleet.with_role("app")
        now = self._clock()
        with self._lock:
            names = {h.name for h in now_hosts}
            joined = tuple(h for h in now_hosts if h.name not in self._health)
            left = tuple(h for h in self.hosts if h.name not in names)
            for host in joined:
                self._health[host.name] = first_seen(host.name, now)
            for host in left:
                self._health.pop(host.name, None)
                self._probed.pop(host.name, None)
            self.hosts = now_hosts
        for host in left:
            self.engines.forget(host.name)
        change = FleetChange(joined=joined, left=left, error=error)
        if change:
            for listener in self._fleet_listeners:
                listener(change)
        return change

    def subscribe(self, listener: Callable[[HostTransition], None]) -> None:
        """`listener` hears every transition, after the probe that made it."""
        self._listeners.append(listener)

    def health(self, name: str) -> HostHealth:
        """`name`'s health; a host that is not (or no longer) in the fleet counts as down."""
        with self._lock:
            known = self._health.get(name)
        return known or HostHealth(host=name, status="down", error="not in the fleet")

    def probe(self, *, force: bool = False) -> list[HostTransition]:
        """Ping every app host due a probe (all of them with `force`), in parallel: a lost
        host costs one SSH connect timeout, not one per host. A learned fleet is followed
        first (`follow`). The transitions made."""
        self.follow()
        now = self._clock()
        due: list[FleetHost] = []
        with self._lock:
            for host in self.hosts:
                last = self._probed.get(host.name)
                quiet = self._health[host.name].status in ("down", "returning")
                # A lost host's probe waits for an SSH connect timeout: not at every look.
                if quiet and not force and last is not None and now - last < self.quiet_for:
                    continue
                due.append(host)
        if not due:
            return []
        with ThreadPoolExecutor(max_workers=len(due)) as pool:
            answers = list(pool.map(self._ping, due))
        made: list[HostTransition] = []
        now = self._clock()
        with self._lock:
            for host, (answered, error) in zip(due, answers, strict=True):
                if host.name not in self._health:
                    continue  # it left the fleet meanwhile
                self._probed[host.name] = now
                updated, moved = observe(
                    self._health[host.name], answered, now, self.settings, error
                )
                self._health[host.name] = updated
                if moved is not None:
                    self.transitions.append(moved)
                    made.append(moved)
        for moved in made:
            for listener in self._listeners:
                listener(moved)
        return made

    @property
    def quiet_for(self) -> float:
        """Seconds between probes of a host that is down or returning."""
        return self.settings.interval * 2

    def _ping(self, host: FleetHost) -> tuple[bool, str | None]:
        try:
            engine = self.engines.engine(host.name)
        except ConveyorError as e:  # the tunnel could not be (re)started: no route, no sshd
            return False, str(e)
        started = time.monotonic()
        if engine.ping():
            return True, None
        # A ping refused at once (a tunnel just started whose SSH channel is not open yet,
        # a connection reset) is asked once more before the host counts as silent: otherwise
        # a fresh controller under load could find every host suspect at its first look and
        # place nothing. A ping that timed out is not repeated (a lost host costs one wait).
        # Kept here rather than in the tunnel's readiness (host.ssh_tunnel: the local socket
        # accepts): that readiness serves every forwarded socket (engines, HAProxy admin
        # sockets) and cannot tell an open channel from a pending one without speaking the
        # far end's protocol (the engine sends nothing first), which host/ does not; and the
        # second ask also covers a refusal on a tunnel that was up long before (a reset).
        # A refused sync that still happens is retried by the server (gitops.deferrals).
        if time.monotonic() - started < FAST_FAILURE:
            time.sleep(RETRY_PAUSE)
            if engine.ping():
                return True, None
        return False, "the Docker Engine did not answer /_ping"

    def placeable(self) -> tuple[FleetHost, ...]:
        """App hosts that take new replicas (inventory order)."""
        with self._lock:
            return tuple(h for h in self.hosts if self._health[h.name].takes_replicas)

    def holding(self) -> tuple[FleetHost, ...]:
        """App hosts that keep their replicas but take none (suspect)."""
        with self._lock:
            return tuple(h for h in self.hosts if self._health[h.name].status == "suspect")

    def driven(self) -> tuple[FleetHost, ...]:
        """App hosts whose HAProxy is driven and which the edge sends requests to: those that
        are up (a suspect one is brought up to date when it is up again); when none is, every
        app host (the edge needs somewhere to send requests)."""
        return self.placeable() or self.hosts

    def serving(self) -> tuple[FleetHost, ...]:
        """App hosts whose replicas count as running and whose HAProxy is driven: up or
        suspect; when none is, every app host (the edge needs somewhere to send requests)."""
        with self._lock:
            found = tuple(h for h in self.hosts if self._health[h.name].holds_replicas)
        return found or self.hosts
