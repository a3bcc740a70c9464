"""The pure placement planner: which fleet host runs each replica (docs/fleet.md).

Given the stack's services, the app hosts that are up (inventory order) and where replicas
run now, it returns where they should run:

- stable: a replica on a host that is still up and still allowed stays there; only what
  must move moves (its host is gone, a constraint now excludes it, the per-host limit is
  lower, or the service scaled down);
- spread: a new replica goes to the allowed host with the fewest replicas of that service
  (after `spread` preferences: the label value with the fewest first), then the fewest
  replicas overall, then the first in the inventory; scaling down takes from the fullest;
- `deploy.mode: global`: one replica per allowed host;
- pinned (`pins`: a service whose named volumes are on some hosts, plan.fleet_files): only
  those hosts; when none of them takes replicas (down, or suspect), the service waits:
  nothing of it starts elsewhere (its data is on that host), what runs stays, and its plan
  says so (`waiting`);
- a placement that cannot be met is an error naming the compose file and line;
- `misplaced`: the running replicas that must move (their host no longer meets the
  service's constraints, or holds more than `max_replicas_per_node`), each with why; the
  rollout planner replaces them start-first like any old replica (docs/fleet.md, "When
  replicas move").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from conveyor.errors import ConveyorError, SpecError, SpecErrors
from conveyor.model.fleet import FleetHost
from conveyor.model.frozen import Frozen
from conveyor.model.placement import ServicePlacement
from conveyor.model.stack import Service

_ANYWHERE = ServicePlacement()


class PlacementError(ConveyorError):
    """No app host can take a replica (none is up); constraint problems are SpecErrors."""


class NoAppHostUp(PlacementError):
    """No app host takes new replicas now: each is down, or suspect (it missed a probe and
    only keeps its replicas). A state of the hosts, not of the files: the same placement may
    succeed once a host answers again (the GitOps server retries such a sync,
    gitops.deferrals)."""


class VolumesExcluded(SpecError, PlacementError):
    """A service's named volumes are on a host its placement now excludes: its replicas
    would have to leave their data behind. The files' fault (a SpecError naming the
    placement's line), not the hosts' state: nothing retries it."""


class PlacedReplica(Frozen):
    """A replica that runs (or is to keep running) on a host."""

    service: str
    replica: str  # the replica's name (plan.rollout.replica_name)
    host: str  # FleetHost.name


class Misplaced(Frozen):
    """A running replica whose host the service's placement no longer allows."""

    replica: PlacedReplica
    reason: str  # e.g. "h2 no longer matches node.labels.zone==a"
    # Where the rule it breaks was written (a constraint, or max_replicas_per_node).
    file: str = ""
    line: int | None = None
    field: str = ""


class ServicePlacementPlan(Frozen):
    """One service's placement: what stays, what starts where, what stops."""

    service: str
    keep: tuple[PlacedReplica, ...] = ()
    start: tuple[str, ...] = ()  # one host name per replica to start
    # Replicas to stop: scaled away, on a host that is down or no longer allowed, or over
    # the per-host limit. A host that is down gets them removed when it comes back.
    stop: tuple[PlacedReplica, ...] = ()
    # Pinned to these hosts (its volumes are there) and none of them takes replicas:
    # nothing starts and nothing stops; the service waits for one of them.
    waiting: tuple[str, ...] = ()

    def hosts(self) -> Counter[str]:
        """Replicas per host once the plan is carried out."""
        return Counter([r.host for r in self.keep] + list(self.start))

    @property
    def unchanged(self) -> bool:
        return not self.start and not self.stop


class FleetPlacement(Frozen):
    services: dict[str, ServicePlacementPlan]

    def hosts(self) -> Counter[str]:
        """Replicas of every service per host."""
        total: Counter[str] = Counter()
        for plan in self.services.values():
            total.update(plan.hosts())
        return total

    @property
    def unchanged(self) -> bool:
        return all(plan.unchanged for plan in self.services.values())


def place(
    services: Mapping[str, Service],
    hosts: Sequence[FleetHost],
    current: Sequence[PlacedReplica] = (),
    holding: Sequence[FleetHost] = (),
    pins: Mapping[str, Sequence[str]] | None = None,
) -> FleetPlacement:
    """The desired placement of `services` (in their order) over `hosts`: the app hosts that
    are up, in inventory order. `current`: where replicas run now (any host, up or not).
    `holding`: hosts whose replicas stay but that take no new ones (a host that missed a
    probe: plan.host_health's suspect hosts). `pins`: service -> the only hosts it may run
    on (where its named volumes are). Raises SpecError(s) naming file:line when a service's
    placement cannot be met."""
    up = {host.name for host in (*hosts, *holding)}
    # Replicas overall per host: every service's current replicas, each service's swapped
    # for its desired ones as it is placed, so later services see where earlier ones went.
    overall: Counter[str] = Counter(
        r.host for r in current if r.service in services and r.host in up
    )
    plans: dict[str, ServicePlacementPlan] = {}
    errors: list[SpecError] = []
    for name, service in services.items():
        mine = [r for r in current if r.service == name]
        overall.subtract(r.host for r in mine if r.host in up)
        try:
            pin = (pins or {}).get(name)
            if pin is not None and not any(h.name in pin for h in hosts):
                plan = ServicePlacementPlan(
                    service=name,
                    keep=tuple(r for r in mine if r.host in up),
                    waiting=tuple(pin),
                )
            else:
                plan = _place_service(name, service, hosts, holding, mine, overall, pin)
        except SpecError as exc:
            errors.append(exc)
            continue
        overall.update(plan.hosts())
        plans[name] = plan
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)
    return FleetPlacement(services=plans)


def _place_service(
    name: str,
    service: Service,
    hosts: Sequence[FleetHost],
    holding: Sequence[FleetHost],
    current: list[PlacedReplica],
    overall: Counter[str],
    pin: Sequence[str] | None = None,
) -> ServicePlacementPlan:
    rules = service.placement or _ANYWHERE
    if pin is not None:
        hosts = [host for host in hosts if host.name in pin]
        holding = [host for host in holding if host.name in pin]
        if not any(rules.allows(host) for host in (*hosts, *holding)):
            first = rules.constraints[0]
            raise VolumesExcluded(
                first.file,
                first.line,
                f"services.{name}.deploy.placement.constraints",
                f"{name}'s volumes are on {', '.join(pin)}, which its constraints "
                f"({', '.join(c.text for c in rules.constraints)}) exclude; "
                + volumes_way_out(name),
            )
    allowed = [host for host in hosts if rules.allows(host)]  # may take new replicas
    held = {host.name for host in holding if rules.allows(host)}  # keep theirs only
    glob = rules.mode == "global"
    limit = 1 if glob else rules.max_replicas_per_node or service.replicas

    keep: list[PlacedReplica] = []
    stop: list[PlacedReplica] = []
    on_host: Counter[str] = Counter()
    for replica in current:
        if (replica.host in held or any(h.name == replica.host for h in allowed)) and on_host[
            replica.host
        ] < limit:
            keep.append(replica)
            on_host[replica.host] += 1
        else:
            stop.append(replica)
    # global: one on every allowed host, new or kept; replicated: the file's count.
    wanted = len(allowed) + sum(1 for h in held if on_host[h]) if glob else service.replicas
    capacity = len(allowed) * limit + sum(on_host[h] for h in held)
    _check_feasible(name, rules, (*hosts, *holding), allowed, wanted, limit, capacity)

    everyone = (*hosts, *holding)
    order = {host.name: i for i, host in enumerate(everyone)}
    by_name = {host.name: host for host in everyone}

    def crowding(host: str) -> tuple[int, ...]:
        """How full a host is for this service: smaller takes the next replica first."""
        groups = tuple(
            sum(
                n
                for h, n in on_host.items()
                if _label(by_name[h], p.label) == _label(by_name[host], p.label)
            )
            for p in rules.preferences
        )
        return (*groups, on_host[host], overall[host] + on_host[host], order[host])

    while len(keep) > wanted:
        # From a host that only holds first (it may be on its way out), then the fullest.
        fullest = max(
            on_host, key=lambda h: (h in held, *crowding(h)) if on_host[h] else (False, -1)
        )
        victim = next(r for r in reversed(keep) if r.host == fullest)
        keep.remove(victim)
        stop.append(victim)
        on_host[fullest] -= 1
    start: list[str] = []
    while len(keep) + len(start) < wanted:
        emptiest = min((h.name for h in allowed if on_host[h.name] < limit), key=crowding)
        start.append(emptiest)
        on_host[emptiest] += 1
    return ServicePlacementPlan(
        service=name, keep=tuple(keep), start=tuple(start), stop=tuple(stop)
    )


def misplaced(
    services: Mapping[str, Service],
    hosts: Sequence[FleetHost],
    current: Sequence[PlacedReplica],
    holding: Sequence[FleetHost] = (),
) -> dict[str, tuple[Misplaced, ...]]:
    """Per replicated service, its running replicas (`current`, oldest first) that must move:
    on a host of `hosts` or `holding` (those that are up) that a constraint now excludes, or
    beyond `max_replicas_per_node` on their host (the newest go). Replicas on other hosts
    (down, gone) are not observed and are replaced anyway; a global service is planned host by
    host (plan.global_service), so it is not listed."""
    up = {host.name: host for host in (*hosts, *holding)}
    out: dict[str, tuple[Misplaced, ...]] = {}
    for name, service in services.items():
        rules = service.placement or _ANYWHERE
        if rules.mode == "global":
            continue
        limit = rules.max_replicas_per_node or 0
        where = f"services.{name}.deploy.placement"
        on_host: Counter[str] = Counter()
        found: list[Misplaced] = []
        for replica in current:
            host = up.get(replica.host)
            if replica.service != name or host is None:
                continue
            broken = next((c for c in rules.constraints if not c.matches(host)), None)
            if broken is not None:
                found.append(
                    Misplaced(
                        replica=replica,
                        reason=f"{host.name} no longer matches {broken.text}",
                        file=broken.file,
                        line=broken.line,
                        field=f"{where}.constraints",
                    )
                )
            elif limit and on_host[host.name] >= limit:
                found.append(
                    Misplaced(
                        replica=replica,
                        reason=f"more than {limit} per host on {host.name} "
                        f"(max_replicas_per_node: {limit})",
                        file=rules.file,
                        line=rules.max_replicas_line or rules.line,
                        field=f"{where}.max_replicas_per_node",
                    )
                )
            else:
                on_host[host.name] += 1
        if found:
            out[name] = tuple(found)
    return out


def volumes_way_out(service: str) -> str:
    """What to do when a service's data is on a host its placement excludes."""
    return (
        "a volume's data does not follow a replica to another host. Keep the placement that "
        "allows that host, or move the data: `conveyor backup create` (the next step removes "
        "every service's volumes), `conveyor down --volumes`, `conveyor up`, `conveyor backup "
        f"restore {service}`"
    )


def _label(host: FleetHost, label: str) -> str | None:
    return host.labels.get(label)


def _check_feasible(
    name: str,
    rules: ServicePlacement,
    hosts: Sequence[FleetHost],
    allowed: list[FleetHost],
    wanted: int,
    limit: int,
    capacity: int,
) -> None:
    """`hosts`: every host that is up (taking replicas or only holding them); `capacity`:
    how many replicas the allowed ones can run."""
    if not hosts:
        if wanted or rules.mode == "global":
            raise NoAppHostUp(f"service {name}: no app host is up to run its replicas")
        return
    where = f"services.{name}.deploy.placement"
    allowed_any = [host for host in hosts if rules.allows(host)]
    if not allowed_any and (wanted or rules.mode == "global"):
        first = rules.constraints[0]
        written = ", ".join(c.text for c in rules.constraints)
        up = ", ".join(host.name for host in hosts)
        raise SpecError(
            first.file,
            first.line,
            f"{where}.constraints",
            f"no app host that is up matches {written} (up: {up})",
        )
    if not allowed and capacity < wanted:
        held = ", ".join(host.name for host in hosts)
        raise NoAppHostUp(
            f"service {name}: no app host can take a new replica (hosts that only hold "
            f"theirs: {held})"
        )
    if capacity < wanted:
        shown = ", ".join(host.name for host in allowed)
        raise SpecError(
            rules.file,
            rules.max_replicas_line or rules.line,
            f"{where}.max_replicas_per_node",
            f"{wanted} replicas do not fit {limit} per host on the {len(allowed)} app "
            f"host(s) allowed and up ({shown})",
        )
