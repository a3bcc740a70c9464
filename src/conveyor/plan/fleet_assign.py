"""A rollout plan placed over a fleet (docs/fleet.md, "Wiring"). Pure.

The rollout planner (plan.rollout) decides which replicas start and stop; this gives every
`start` step its host with plan.placement's `place`: the replicas the plan keeps stay where
they run (stable), new ones spread over the app hosts that take replicas. A replica on a
host that is not observed (down, or its link cut) is not in `observed`, so the rollout
planner starts its replacement and `place` puts it on a host that is up.

A service pinned to the hosts holding its named volumes (`pins`, plan.fleet_files) whose
hosts take no replica now (down, suspect) waits: every step of its replicas is left out of
the plan (nothing of it starts elsewhere, nothing of it stops), and a note says why.

A `deploy.mode: global` service is planned host by host (plan.global_service) from
`global_hosts`, so its `start` steps come with their host and are left as they are.

At a deploy (not a heal), `moves` lists the running replicas a placement change excludes
(a constraint, `max_replicas_per_node`, a host's labels): the rollout planner replaces them,
and `assign_hosts` puts their replacements on allowed hosts. A heal moves nothing of the
kind (`keep_global`): it only replaces what was lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.fleet import FleetHost
from conveyor.model.placement import ServicePlacement
from conveyor.model.release import Observed
from conveyor.model.stack import Service
from conveyor.plan.actions import Plan, Step
from conveyor.plan.placement import (
    NoAppHostUp,
    PlacedReplica,
    PlacementError,
    VolumesExcluded,
    misplaced,
    place,
    volumes_way_out,
)
from conveyor.plan.service_steps import GlobalHosts, sort_key

# Steps after which a replica no longer runs.
_GOING = frozenset({"stop", "remove"})
# Steps of one replica (or of a service's rollout pace): a waiting service's are left out.
_REPLICA_STEPS = frozenset(
    {"start", "await", "route", "drain", "unroute", "stop", "remove", "sleep", "monitor"}
)


def assign_hosts(
    plan: Plan,
    services: Mapping[str, Service],
    observed: Observed,
    hosts: Sequence[FleetHost],
    holding: Sequence[FleetHost] = (),
    pins: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """`plan` with each `start` step's `host` set. `hosts`: the app hosts that take new
    replicas (inventory order); `holding`: hosts that keep theirs but take none; `pins`:
    service -> the only hosts it may run on. Raises
    SpecError(s) naming file:line when a service's placement cannot be met, PlacementError
    when no host can take a replica."""
    starting = [s for s in plan.steps if s.kind == "start" and not s.host]
    if not starting:
        return plan
    going = {s.replica for s in plan.steps if s.kind in _GOING}
    # What keeps running: observed replicas on a known host that the plan does not stop. Old
    # replicas a rolling update replaces are stopped by it, so they do not hold their host.
    current = [
        PlacedReplica(service=r.service, replica=r.replica, host=r.host)
        for r in observed.replicas
        if r.running and r.host and r.replica not in going and r.service in services
    ]
    wanted = {s.service for s in starting}
    placement = place(
        {n: svc for n, svc in services.items() if n in wanted}, hosts, current, holding, pins
    )
    waiting = {name: p.waiting for name, p in placement.services.items() if p.waiting}
    # Per service, the hosts `place` chose for its new replicas, in order; a plan that starts
    # more than `place` counted (a one-shot run again, a replica replacing a settled one) puts
    # the rest on the allowed host with the fewest replicas of the service.
    queues = {name: list(p.start) for name, p in placement.services.items()}
    load = {name: Counter(p.hosts()) for name, p in placement.services.items()}
    steps: list[Step] = []
    for step in plan.steps:
        if step.service in waiting and step.kind in _REPLICA_STEPS:
            continue
        if step.kind == "start" and not step.host:
            queue = queues.setdefault(step.service, [])
            counts = load.setdefault(step.service, Counter())
            if queue:
                host = queue.pop(0)
            else:
                host = _least_loaded(services[step.service], hosts, counts)
                counts[host] += 1
            steps.append(step.model_copy(update={"host": host}))
        else:
            steps.append(step)
    notes = tuple(
        f"{name}: not started: its volumes are on {', '.join(where)}, which takes no replica "
        "now (down or not answering); it starts there when that host is back"
        for name, where in waiting.items()
    )
    return plan.model_copy(update={"steps": tuple(steps), "notes": (*plan.notes, *notes)})


def global_hosts(
    services: Mapping[str, Service],
    observed: Observed,
    hosts: Sequence[FleetHost],
    holding: Sequence[FleetHost] = (),
) -> dict[str, GlobalHosts]:
    """Where each `deploy.mode: global` service of `services` runs: one replica on every
    host of `hosts` (the app hosts that take replicas) its constraints allow, and it keeps
    the one on a `holding` host (missed a probe) that has one. Raises SpecError(s) naming
    file:line when no app host that is up is allowed, PlacementError when none is up."""
    glob = {
        name: svc
        for name, svc in services.items()
        if svc.placement is not None and svc.placement.mode == "global"
    }
    if not glob:
        return {}
    current = [
        PlacedReplica(service=r.service, replica=r.replica, host=r.host)
        for r in observed.replicas
        if r.running and r.host and r.service in glob
    ]
    placement = place(glob, hosts, current, holding)
    out: dict[str, GlobalHosts] = {}
    for name, planned in placement.services.items():
        where = planned.hosts()
        out[name] = GlobalHosts(
            hosts=tuple(h.name for h in hosts if where[h.name]),
            holding=tuple(h.name for h in holding if where[h.name]),
        )
    return out


def moves(
    services: Mapping[str, Service],
    specs: Mapping[str, str],
    observed: Observed,
    hosts: Sequence[FleetHost],
    holding: Sequence[FleetHost] = (),
    pins: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Service -> (replica, why) of its running, healthy replicas of the target spec (`specs`:
    service -> spec hash) that must move: their host (up or holding) no longer meets the
    service's constraints, or has more than `max_replicas_per_node` of it. Replicas of another
    spec are replaced by the rollout anyway. `pins`: service -> the hosts holding its named
    volumes; moving a replica off such a host would leave its data behind, so that is
    refused: VolumesExcluded naming the rule's file and line, and the way out."""
    current = [
        PlacedReplica(service=r.service, replica=r.replica, host=r.host)
        for r in sorted(observed.replicas, key=sort_key)
        if r.running
        and r.host
        and not r.failing
        and r.service in services
        and r.spec_hash == specs.get(r.service)
    ]
    found = misplaced(services, hosts, current, holding)
    problems: list[SpecError] = []
    for name, wrong in found.items():
        held = set((pins or {}).get(name, ()))
        stuck = [m for m in wrong if m.replica.host in held]
        if stuck:
            first = stuck[0]
            where = sorted({m.replica.host for m in stuck})
            problems.append(
                VolumesExcluded(
                    first.file,
                    first.line,
                    first.field,
                    f"{', '.join(m.replica.replica for m in stuck)} would move "
                    f"({first.reason}), but its volumes are on {', '.join(where)}: "
                    + volumes_way_out(name),
                )
            )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SpecErrors(problems)
    return {
        name: tuple((m.replica.replica, m.reason) for m in wrong) for name, wrong in found.items()
    }


def keep_global(per_host: Mapping[str, GlobalHosts], observed: Observed) -> dict[str, GlobalHosts]:
    """`per_host` for a heal, which moves nothing: a global service keeps its running replica
    on a host that is up but that its placement no longer allows (held, as a suspect host's
    is); the next deploy stops it."""
    out: dict[str, GlobalHosts] = {}
    for name, where in per_host.items():
        known = {*where.hosts, *where.holding}
        extra = [
            r.host
            for r in observed.replicas
            if r.service == name and r.running and r.host and r.host not in known
        ]
        out[name] = where.model_copy(update={"holding": (*where.holding, *dict.fromkeys(extra))})
    return out


def _least_loaded(service: Service, hosts: Sequence[FleetHost], counts: Counter[str]) -> str:
    rules = service.placement or ServicePlacement()
    allowed = [h.name for h in hosts if rules.allows(h)]
    if not hosts:
        raise NoAppHostUp(f"service {service.name}: no app host is up to run it")
    if not allowed:
        raise PlacementError(f"service {service.name}: no app host that is up can run it")
    order = {name: i for i, name in enumerate(allowed)}
    return min(allowed, key=lambda h: (counts[h], order[h]))
