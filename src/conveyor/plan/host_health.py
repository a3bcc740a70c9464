"""From probe results to host health (pure: the caller probes and keeps the clock).

    up --fail--> suspect --silent down_after s--> down --answer--> returning --up_after--> up
       <--answer--                                      <--fail--

A suspect host that answers again is up at once (nothing was moved for it). Silence is measured
from the newest answer, not from the first failure, so a slow probe loop cannot make a host
look down sooner than `down_after`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from conveyor.model.host_health import (
    HostHealth,
    HostHealthSettings,
    HostStatus,
    HostTransition,
)


def first_seen(host: str, now: float) -> HostHealth:
    """A host the controller has not probed yet: trusted like a returning one (it must answer
    `up_after` times before it takes replicas), since nothing says its containers are current."""
    return HostHealth(host=host, status="returning", since=now)


def observe(
    health: HostHealth,
    answered: bool,
    now: float,
    settings: HostHealthSettings,
    error: str | None = None,
) -> tuple[HostHealth, HostTransition | None]:
    """The host's health after one probe, and the transition it made (None: no change)."""
    if answered:
        updated = health.model_copy(
            update={
                "last_ok": now,
                "failures": 0,
                "successes": health.successes + 1,
                "error": None,
            }
        )
        if health.status == "suspect":
            return _move(updated, "up", now, "answers again")
        if health.status == "down":
            if settings.up_after <= 1:
                return _move(updated, "up", now, "answers again")
            return _move(updated, "returning", now, "answers again")
        if health.status == "returning" and updated.successes >= settings.up_after:
            return _move(updated, "up", now, f"answered {updated.successes} probes in a row")
        return updated, None
    updated = health.model_copy(
        update={"failures": health.failures + 1, "successes": 0, "error": error}
    )
    silent_since = health.last_ok if health.last_ok is not None else health.since
    silent = now - silent_since
    why = f"no answer for {silent:.1f} s" + (f": {error}" if error else "")
    if health.status in ("up", "suspect") and silent >= settings.down_after:
        return _move(updated, "down", now, why)
    if health.status == "up":
        return _move(updated, "suspect", now, why)
    if health.status == "returning":
        return _move(updated, "down", now, why)
    return updated, None


def _move(
    health: HostHealth, status: HostStatus, now: float, reason: str
) -> tuple[HostHealth, HostTransition]:
    moved = health.model_copy(update={"status": status, "since": now})
    return moved, HostTransition(
        host=health.host, before=health.status, after=moved.status, at=now, reason=reason
    )


def placeable(healths: Mapping[str, HostHealth], hosts: Iterable[str]) -> tuple[str, ...]:
    """The hosts (in the order given) placement may put new replicas on."""
    return tuple(h for h in hosts if h in healths and healths[h].takes_replicas)


def holding(healths: Mapping[str, HostHealth], hosts: Iterable[str]) -> tuple[str, ...]:
    """The hosts whose replicas still count as running (up or merely suspect)."""
    return tuple(h for h in hosts if h in healths and healths[h].holds_replicas)
