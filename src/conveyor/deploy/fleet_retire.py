"""Taking the project off hosts that left the fleet (plan.fleet_retire; docs/fleet.md,
"Hosts that leave the fleet"): the engine's `Retirement` over the fleet runtime and router.

A deploy (not a heal) asks, at its observation, for the running replicas on every
remembered host that is no longer an app host (`left_replicas`, through the host's
remembered connection); the plan moves them like replicas a placement change excludes
(`moves`), start-first, so they are drained from the other hosts' HAProxies before they
stop. Before the rollout the edge is rendered without those hosts (`begin`); after it,
what is left of the project on each host that answered is removed and the host forgotten
(`finish`). A host that does not answer is left as it is and tried again at the next
deploy; `notes` says so in `conveyor plan`, `status` and the rollout's notes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.errors import ConveyorError
from conveyor.model.fleet import FleetHost
from conveyor.model.release import Observed, ObservedReplica, Release
from conveyor.plan.fleet_retire import LeftHost, retire_moves, retirement_notes
from conveyor.router.fleet import FleetRouter


class FleetRetirement:
    def __init__(self, runtime: FleetRuntime, router: FleetRouter) -> None:
        self.runtime = runtime
        self.router = router
        self._found: list[LeftHost] = []  # what the last `left_replicas` found
        self._hosts: dict[str, FleetHost] = {}
        self._volumes: dict[str, list[str]] = {}

    def left_replicas(self, project: str) -> list[ObservedReplica]:
        """The running replicas of `project` on the hosts that left the fleet and answer
        (asked now, in host order); what was found is kept for `moves`, `notes`, `finish`."""
        remembered = self.runtime.remembered()
        found: list[LeftHost] = []
        self._hosts, self._volumes = {}, {}
        out: list[ObservedReplica] = []
        for host in self.runtime.leaving():
            self._hosts[host.name] = host
            try:
                replicas, volumes = self.runtime.on_left_host(host, project)
            except ConveyorError as e:
                last = remembered[host.name].replicas if host.name in remembered else ()
                found.append(
                    LeftHost(name=host.name, answered=False, replicas=last, error=_short(e))
                )
                continue
            self._volumes[host.name] = volumes
            found.append(
                LeftHost(name=host.name, answered=True, replicas=tuple(r.replica for r in replicas))
            )
            out.extend(replicas)
        self._found = found
        return out

    def moves(
        self, release: Release, observed: Observed
    ) -> Mapping[str, Sequence[tuple[str, str]]]:
        """Service -> (replica, why) of the replicas found on hosts that left; refused
        (VolumesExcluded) for a replica whose host holds its service's named volumes."""
        answered = [h.name for h in self._found if h.answered]
        kept = None
        if any(self._volumes.get(h) for h in answered):
            kept = self.runtime.volumes_where(release.project)
        return retire_moves(release.stack, observed, answered, self._volumes, kept)

    def notes(self) -> list[str]:
        return retirement_notes(self._found)

    def begin(self) -> None:
        """Before the rollout: the edge without the hosts that left (it is rendered over the
        fleet's app hosts), so that it sends them no request while their replicas stop."""
        if any(h.answered for h in self._found):
            self.router.ensure_edge()

    def finish(self, project: str) -> list[tuple[str, str | None]]:
        """After the rollout (its replicas there moved): each host that left and answered
        loses its HAProxy, the project's containers, networks and files, and is forgotten.
        (host, None) for each done, (host, why) for each that failed (tried again at the
        next deploy)."""
        done: list[tuple[str, str | None]] = []
        for left in self._found:
            if not left.answered:
                continue
            host = self._hosts[left.name]
            try:
                self.router.retire_host(host)
                self.runtime.clear_host(host.name, project)
            except ConveyorError as e:
                done.append((host.name, _short(e)))
                continue
            done.append((host.name, None))
        self._found = [h for h in self._found if not h.answered]
        return done


def _short(error: Exception) -> str:
    """An error's first line, cut to what a note can say."""
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first if len(first) <= 160 else first[:157] + "..."
