"""Where the controller learns a fleet's hosts (docs/fleet.md, "Hosts learned from AWS").

    source = StaticFleet(fleet)                 # conveyor.yaml's hosts: or inventory:
    source = LearnedFleet(fetch, ttl=30.0)      # hosts_from: aws — fetch asks AWS
    source.current()                            # the hosts known now (no I/O once learned)
    source.refresh()                            # learned again when due; an error's text

A learned fleet is asked again at most every `ttl` seconds, at the start of an observation
(deploy.fleet_health), so a long-running server sees new hosts and loses terminated ones
without asking AWS at every look. When asking fails, the last hosts known are kept (and asked
for again one period later): the hosts are driven over SSH, which does not need AWS's API.
With no hosts known yet, the error is raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from conveyor.errors import ConveyorError
from conveyor.model.fleet import Fleet

LEARN_EVERY = 30.0  # seconds between two questions to the source of a learned fleet


class FleetSource(Protocol):
    def current(self) -> Fleet:
        """The hosts known now."""
        ...

    def refresh(self) -> str | None:
        """Learn the hosts again if it is time; what went wrong (the last hosts are kept)."""
        ...


class StaticFleet:
    """A fleet written down: it changes when conveyor.yaml does (a new command, a new commit)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def current(self) -> Fleet:
        return self.fleet

    def refresh(self) -> str | None:
        return None


class LearnedFleet:
    """Hosts `fetch` returns, asked at most every `ttl` seconds. `fetch` raises ConveyorError
    (AwsError) with a message that says what failed."""

    def __init__(
        self,
        fetch: Callable[[], Fleet],
        ttl: float = LEARN_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._clock = clock
        self._fleet: Fleet | None = None
        self._asked: float | None = None  # when the source was last asked (answered or not)
        self._lock = threading.Lock()

    def current(self) -> Fleet:
        """The hosts learned last; asked now if never (raises when that fails)."""
        with self._lock:
            if self._fleet is None:
                self._learn()
            assert self._fleet is not None
            return self._fleet

    def refresh(self) -> str | None:
        with self._lock:
            now = self._clock()
            if self._fleet is not None and self._asked is not None and now - self._asked < self.ttl:
                return None
            try:
                self._learn()
            except ConveyorError as e:
                if self._fleet is None:
                    raise
                return f"{e} (keeping the {len(self._fleet.hosts)} host(s) known)"
            return None

    def _learn(self) -> None:
        self._asked = self._clock()
        self._fleet = self._fetch()
