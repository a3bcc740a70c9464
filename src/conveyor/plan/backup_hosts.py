"""Which fleet host a service's backup or restore runs on (docs/backups.md, "On a fleet").
Pure: the hosts as the controller sees them now go in, a host's name (or a clear error)
comes out.

A named volume lives on the host of the replica that made it, and its service is pinned there
(plan.fleet_files.volume_pins; docs/fleet.md, "Files and volumes on a fleet"), so:

- a service whose named volumes are on a host is backed up and restored **there** (the
  volume's copy, the database's dump in its replica: both on that host), even when that
  host is down (then the backup fails naming the host: no other host has the data);
- a service with no volume anywhere (a database without a named volume) is dumped from a
  host where a replica of it runs (the first in inventory order);
- volumes of one service on several hosts are separate data (a service spread before its
  volume existed): refused, naming the hosts, rather than backing up one of them silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from conveyor.errors import BackupError


@dataclass(frozen=True)
class HostSeen:
    """One app host of the fleet as a backup sees it: whether it answers, the project's named
    volumes it holds (Compose keys: listed now when it answers, as remembered when not) and the
    services with a running replica there (only known when it answers)."""

    name: str
    up: bool
    volumes: frozenset[str] = frozenset()
    running: frozenset[str] = frozenset()
    error: str | None = None  # why it does not answer


def hosts_seen(
    inventory: Sequence[str],
    answered: Mapping[str, tuple[Iterable[str], Iterable[str]]],
    remembered: Mapping[str, Iterable[str]],
    errors: Mapping[str, str] | None = None,
) -> list[HostSeen]:
    """The app hosts (inventory order) from what each answered — host -> (its volumes' keys,
    the services running there) — and, for those that did not, the volume keys remembered
    (`fleet-volumes.json`, through plan.fleet_files.volumes_by_key)."""
    seen: list[HostSeen] = []
    for name in inventory:
        if name in answered:
            volumes, running = answered[name]
            seen.append(HostSeen(name, True, frozenset(volumes), frozenset(running)))
        else:
            why = (errors or {}).get(name)
            seen.append(HostSeen(name, False, frozenset(remembered.get(name, ())), error=why))
    return seen


def backup_host(service: str, volumes: Sequence[str], hosts: Sequence[HostSeen]) -> str:
    """The host `service`'s backup or restore runs on: the one holding its named volumes
    (`volumes`: Compose keys), else the first that runs a replica of it. Raises BackupError
    naming the host when that host is down, the hosts when the volumes are on several, and
    what to do when no host has either."""
    wanted = set(volumes)
    holders = [h for h in hosts if wanted & h.volumes]
    if len(holders) > 1:
        where = "; ".join(f"{h.name}: {', '.join(sorted(wanted & h.volumes))}" for h in holders)
        raise BackupError(
            f"service {service}'s volumes are on several hosts ({where}), each its own data: "
            "a backup copies one host's; remove the copies you do not want (docker volume rm "
            "on those hosts) so that one host holds them"
        )
    if holders:
        holder = holders[0]
        if not holder.up:
            volume = min(wanted & holder.volumes)
            why = f" ({holder.error})" if holder.error else ""
            raise BackupError(
                f"volume {volume} of service {service} is on host {holder.name}, which is "
                f"down{why}: its data is there only; back it up or restore it once the host "
                "answers again"
            )
        return holder.name
    running = [h for h in hosts if h.up and service in h.running]
    if running:
        return running[0].name
    silent = [h.name for h in hosts if not h.up]
    unknown = f" (not answering: {', '.join(silent)})" if silent else ""
    held = f"no volume ({', '.join(sorted(wanted))}) and " if wanted else ""
    raise BackupError(
        f"service {service} has {held}no running replica on any host that answers{unknown}: "
        "start it first (conveyor up), then back it up or restore it"
    )
