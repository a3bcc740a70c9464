"""Where a service's replicas may run on a fleet: Compose's `deploy.mode` and
`deploy.placement` (Swarm's constraint syntax), kept with the file and line each was written
at so a placement that cannot be met names them (plan.placement, docs/fleet.md).

On one host these are read but not used: every replica runs on that host.
"""

from __future__ import annotations

from typing import Literal

from conveyor.model.fleet import FleetHost
from conveyor.model.frozen import Frozen

DeployMode = Literal["replicated", "global"]
ConstraintOp = Literal["==", "!="]
# What a constraint compares: node.hostname (and node.id), node.role, or a label
# (node.labels.NAME, engine.labels.NAME).
Attribute = Literal["hostname", "role", "label"]


class Constraint(Frozen):
    """One `deploy.placement.constraints` entry, e.g. `node.labels.zone==a`."""

    attribute: Attribute
    label: str | None = None  # the label's name when attribute is "label"
    op: ConstraintOp
    value: str
    text: str  # as written, for messages
    file: str
    line: int

    def matches(self, host: FleetHost) -> bool:
        if self.attribute == "hostname":
            found = self.value == host.name
        elif self.attribute == "role":
            found = self.value in host.roles
        else:
            found = host.labels.get(self.label or "") == self.value
        return found if self.op == "==" else not found


class SpreadPreference(Frozen):
    """`deploy.placement.preferences: [{spread: node.labels.NAME}]`: replicas spread over the
    values of the label first (hosts without it form one group of their own)."""

    label: str
    file: str
    line: int


class ServicePlacement(Frozen):
    """A service's placement rules; the default (no instance) is replicated, anywhere."""

    mode: DeployMode = "replicated"
    constraints: tuple[Constraint, ...] = ()
    preferences: tuple[SpreadPreference, ...] = ()
    max_replicas_per_node: int | None = None
    # Where each part was written: the service's `deploy` (or the service) for the mode,
    # and `max_replicas_per_node` itself.
    file: str = ""
    line: int | None = None
    max_replicas_line: int | None = None

    def allows(self, host: FleetHost) -> bool:
        return all(c.matches(host) for c in self.constraints)
