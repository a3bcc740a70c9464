"""A service as the rollout planners see it, and the steps they build its plans from (pure).

Shared by the replicated planner (plan.rollout: a count of replicas anywhere) and the
per-host one (plan.global_service: `deploy.mode: global` on a fleet, one replica on each of
a list of hosts): naming new replicas, bringing them up, retiring old ones, clearing dead
ones, adopting healthy ones left outside rotation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from conveyor.model.release import ObservedReplica
from conveyor.model.routing import FULL_WEIGHT
from conveyor.model.stack import Frozen, Restart, UpdateConfig
from conveyor.plan.actions import Step
from conveyor.plan.network import DesiredAddress


class DesiredService(Frozen):
    name: str
    spec_hash: str
    replicas: int
    update: UpdateConfig
    routed: bool
    release: int
    oneshot: bool = False  # runs to completion once per spec (service_completed_successfully)
    address: DesiredAddress | None = None  # its service address (project networking)
    # Which exited replicas are replaced (Compose `restart`); "no" keeps an exited one as
    # the record of its run instead of starting another.
    restart: Restart = Restart()
    # `deploy.mode: global` on a fleet (None otherwise): one replica on each of `hosts` (the
    # app hosts that are up and allowed, inventory order); a replica on a `holding` host (one
    # that missed a probe) is left as it is, and none is started there. `replicas` is then
    # the number of both.
    hosts: tuple[str, ...] | None = None
    holding: tuple[str, ...] = ()
    # On a fleet, at a deploy: running replicas of this spec whose host the placement no
    # longer allows (plan.placement.misplaced), each with why; replaced like old ones.
    moves: tuple[tuple[str, str], ...] = ()  # (replica, reason)

    def move_reason(self, replica: str) -> str:
        """Why `replica` moves ("" when it stays)."""
        return next((why for name, why in self.moves if name == replica), "")


class GlobalHosts(Frozen):
    """Where a `deploy.mode: global` service runs on a fleet (plan.fleet_assign.global_hosts):
    one replica on each of `hosts`; `holding` hosts keep theirs and get none."""

    hosts: tuple[str, ...]
    holding: tuple[str, ...] = ()


def replica_name(service: str, release: int, taken: set[str]) -> str:
    """`<service>-<release>-<n>` with the smallest n not yet used."""
    n = 1
    while f"{service}-{release}-{n}" in taken:
        n += 1
    name = f"{service}-{release}-{n}"
    taken.add(name)
    return name


def sort_key(r: ObservedReplica) -> tuple[float, str]:
    return (r.started_at, r.replica)


def settled(svc: DesiredService, observed: Sequence[ObservedReplica]) -> list[ObservedReplica]:
    """Exited replicas of this spec whose restart policy says they stay exited (`restart:
    "no"`, or `on-failure` after a clean exit): they count as the service's replicas."""
    return [
        r
        for r in observed
        if not r.running and r.spec_hash == svc.spec_hash and not svc.restart.restarts(r.exit_code)
    ]


def clear_dead(svc: DesiredService, observed: Sequence[ObservedReplica]) -> list[Step]:
    """Dead containers go first: they serve nothing, and HAProxy already marks them down."""
    steps: list[Step] = []
    for r in sorted(observed, key=sort_key):
        if r.running:
            continue
        if svc.routed and r.router != "absent":
            steps.append(Step(kind="unroute", service=svc.name, replica=r.replica, reason="dead"))
        why = "crashed" if (r.exit_code or 0) != 0 else "exited"
        steps.append(Step(kind="remove", service=svc.name, replica=r.replica, reason=why))
    return steps


def settle(
    svc: DesiredService, observed: Sequence[ObservedReplica]
) -> tuple[list[Step], list[ObservedReplica], list[ObservedReplica], list[ObservedReplica]]:
    """What every plan of a service starts with: dead replicas cleared, settled ones out of
    rotation, current ones outside rotation adopted. Returns those steps, the settled
    replicas, the running ones of the desired spec (`current`, oldest first) and the running
    ones to replace (`old`: another spec, or failing its health check)."""
    done = settled(svc, observed)
    steps = clear_dead(svc, [r for r in observed if r not in done])
    steps += [
        Step(kind="unroute", service=svc.name, replica=r.replica, reason="exited")
        for r in done
        if svc.routed and r.router != "absent"
    ]
    running = sorted((r for r in observed if r.running), key=sort_key)
    # A replica failing its health check is replaced like an old one: start-first, so its
    # replacement is in rotation before it goes. So is one on a host it may no longer run on.
    moving = {name for name, _ in svc.moves}
    current = [
        r
        for r in running
        if r.spec_hash == svc.spec_hash and not r.failing and r.replica not in moving
    ]
    old = [r for r in running if r not in current]
    # Replicas of the desired spec outside rotation (a crash mid-rollout, a server deleted,
    # put in maintenance or drained behind Conveyor's back): probe and adopt. One whose weight
    # was changed is in rotation: routing it again gives it its weight back.
    if svc.routed:
        for r in current:
            why = outside_rotation(r)
            if not why:
                continue
            if r.router != "ready":
                steps.append(Step(kind="await", service=svc.name, replica=r.replica, reason=why))
            steps.append(Step(kind="route", service=svc.name, replica=r.replica, reason=why))
    return steps, done, current, old


def bring_up(
    svc: DesiredService, replicas: Iterable[str], batch: int, hosts: Sequence[str] = ()
) -> list[Step]:
    """Start every replica, then wait for each and route it. `hosts`: each start's host (a
    fleet's per-host planner), in the order of `replicas`."""
    names = list(replicas)
    on = list(hosts) or [""] * len(names)
    steps = [
        Step(kind="start", service=svc.name, replica=n, batch=batch, host=h)
        for n, h in zip(names, on, strict=True)
    ]
    for n in names:
        steps.append(Step(kind="await", service=svc.name, replica=n, batch=batch))
        if svc.routed:
            steps.append(Step(kind="route", service=svc.name, replica=n, batch=batch))
    return steps


def outside_rotation(r: ObservedReplica) -> str:
    """Why a running replica of the desired spec must be routed again ("" when it need not):
    `adopt` (not in HAProxy), `adopt: maint`, `adopt: drain`, `adopt: weight 10`."""
    if r.router == "ready":
        if r.weight is None or r.weight == FULL_WEIGHT:
            return ""
        return f"adopt: weight {r.weight}"
    if r.router in ("maint", "drain"):
        return f"adopt: {r.router}"
    return "adopt"


def why(r: ObservedReplica, svc: DesiredService | None = None) -> str:
    moves = svc.move_reason(r.replica) if svc is not None else ""
    if moves:
        return f"moves: {moves}"
    if r.paused:
        return "paused"
    return "unhealthy" if r.failing else "replaced"


def retire(svc: DesiredService, r: ObservedReplica, reason: str, batch: int = 0) -> list[Step]:
    steps: list[Step] = []
    if svc.routed and r.router != "absent":
        steps.append(
            Step(kind="drain", service=svc.name, replica=r.replica, batch=batch, reason=reason)
        )
        steps.append(Step(kind="unroute", service=svc.name, replica=r.replica, batch=batch))
    steps.append(Step(kind="stop", service=svc.name, replica=r.replica, batch=batch, reason=reason))
    return steps


def delay(svc: DesiredService, batch: int) -> list[Step]:
    """update_config.delay before every batch but the first."""
    if batch <= 1 or svc.update.delay <= 0:
        return []
    return [Step(kind="sleep", service=svc.name, seconds=svc.update.delay, reason="update delay")]


def monitor(svc: DesiredService, batch: int) -> list[Step]:
    """update_config.monitor after the last batch of a rolling update."""
    if svc.update.monitor <= 0:
        return []
    return [Step(kind="monitor", service=svc.name, seconds=svc.update.monitor, batch=batch)]
