"""What the controller believes about each fleet host's health, as data (docs/fleet.md, "Host
loss"). `plan.host_health` moves it from probe to probe; the fleet controller acts on the
transitions (a host down: its replicas are placed elsewhere; a host back: its stale containers
are removed before it takes replicas again)."""

from __future__ import annotations

from typing import Literal

from conveyor.model.frozen import Frozen

# up: answers. suspect: a probe failed, not yet long enough to act (a blip moves nothing).
# down: silent for `down_after` seconds; its replicas count as lost. returning: answers again
# after being down, not yet for `up_after` probes in a row (a flapping link is not trusted).
HostStatus = Literal["up", "suspect", "down", "returning"]


class HostHealthSettings(Frozen):
    """How quickly a host is given up on and trusted again."""

    interval: float = 2.0  # seconds between probes of one host
    probe_timeout: float = 3.0  # seconds a probe (the Engine's /_ping over SSH) may take
    down_after: float = 8.0  # seconds without an answer before the host counts as down
    up_after: int = 3  # answers in a row before a host that was down takes replicas again


class HostHealth(Frozen):
    """One host's state at the controller."""

    host: str
    status: HostStatus = "up"
    since: float = 0.0  # when it entered this status (monotonic seconds)
    last_ok: float | None = None  # the newest answer
    failures: int = 0  # probes failed in a row
    successes: int = 0  # probes answered in a row
    error: str | None = None  # what the newest failed probe said

    @property
    def takes_replicas(self) -> bool:
        """Whether placement may put new replicas here: only a host that answers steadily."""
        return self.status == "up"

    @property
    def holds_replicas(self) -> bool:
        """Whether its replicas still count as running: a suspect host keeps them (not moved
        for a blip), a down or returning one does not (moved; removed once it is back)."""
        return self.status in ("up", "suspect")


class HostTransition(Frozen):
    """A change the controller acts on and records in the timeline."""

    host: str
    before: HostStatus
    after: HostStatus
    at: float
    reason: str

    @property
    def lost(self) -> bool:
        return self.after == "down"

    @property
    def returned(self) -> bool:
        return self.after == "up" and self.before == "returning"
