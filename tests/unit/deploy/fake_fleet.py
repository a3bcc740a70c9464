"""An in-memory fleet for engine tests: the runtime fake with containers on named hosts,
and the engine's placer over plan.fleet_assign, as deploy.fleet_runtime.FleetRuntime wires
it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from conveyor.model.fleet import FleetHost
from conveyor.model.release import Observed, ObservedReplica, Release
from conveyor.plan.actions import Plan
from conveyor.plan.fleet_assign import assign_hosts, global_hosts, moves
from conveyor.plan.service_steps import GlobalHosts
from conveyor.runtime.protocol import Progress, ReplicaRun
from conveyor.testing.fakes import FakeRuntime

HOSTS = [FleetHost(name=n, address=f"{n}.test") for n in ("h1", "h2", "h3")]


@dataclass
class FakeFleet(FakeRuntime):
    """Containers on named hosts; a host in `down`, or no longer in `hosts`, is not
    observed. Also the engine's placer."""

    hosts: list[FleetHost] = field(default_factory=lambda: list(HOSTS))  # conveyor.yaml's
    down: set[str] = field(default_factory=set)
    on: dict[str, str] = field(default_factory=dict)  # container id -> host
    assigned: dict[str, str] = field(default_factory=dict)  # replica -> host
    most: int = 0  # the most running replicas one host had at any moment

    def up(self) -> list[FleetHost]:
        return [h for h in self.hosts if h.name not in self.down]

    def assign(self, plan: Plan, release: Release, observed: Observed) -> Plan:
        placed = assign_hosts(plan, release.stack.services, observed, self.up())
        self.assigned.update({s.replica: s.host for s in placed.steps if s.kind == "start"})
        return placed

    def global_hosts(self, release: Release, observed: Observed) -> dict[str, GlobalHosts]:
        return global_hosts(release.stack.services, observed, self.up())

    def moves(self, release: Release, observed: Observed) -> dict[str, tuple[tuple[str, str], ...]]:
        specs = {name: sr.spec_hash for name, sr in release.services.items()}
        return moves(release.stack.services, specs, observed, self.up())

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        cid = super().run(req, warn)
        self.on[cid] = self.assigned[req.replica]
        self.most = max(self.most, *self.per_host().values())
        return cid

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        """The replicas on the app hosts that answer (not on a host that left `hosts`)."""
        names = {h.name for h in self.hosts}
        return [
            r.model_copy(update={"host": self.on[r.container_id]})
            for r in super().list_replicas(project)
            if self.on[r.container_id] not in self.down and self.on[r.container_id] in names
        ]

    def per_host(self) -> Counter[str]:
        return Counter(self.on[cid] for cid, c in self.containers.items() if c.running)

    def versions(self) -> dict[str, str]:
        return {
            self.on[cid]: c.req.service.environment["V"]
            for cid, c in self.containers.items()
            if c.running
        }
