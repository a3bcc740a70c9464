"""The pure rollout planner: desired release + observed replicas -> ordered steps.

Level-triggered: the same function heals (dead replicas, missing replicas), adopts (healthy
replicas left outside the router by a crash), scales and rolls out new specs. Rolling back is
planning toward the previous release with its rollback_config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from conveyor.model.release import Observed, ObservedReplica, Release
from conveyor.plan.actions import Plan, Step
from conveyor.plan.global_service import plan_global
from conveyor.plan.network import (
    DesiredNetwork,
    desired_address,
    plan_address_steps,
    plan_network_steps,
    retire_steps,
)
from conveyor.plan.service_steps import (
    DesiredService,
    GlobalHosts,
    bring_up,
    delay,
    monitor,
    replica_name,
    retire,
    settle,
    sort_key,
    why,
)

__all__ = [
    "DesiredService",
    "GlobalHosts",
    "Mode",
    "desired_services",
    "plan_down",
    "plan_rollout",
    "plan_service",
    "replica_name",
]

Mode = Literal["update", "rollback"]


def desired_services(
    release: Release,
    mode: Mode = "update",
    slots: Mapping[str, int] | None = None,
    per_host: Mapping[str, GlobalHosts] | None = None,
    moves: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> list[DesiredService]:
    """The planner's view of a release, in dependency order. `slots` place each service
    address in its networks (see plan.network). `per_host`: on a fleet, the hosts of each
    `deploy.mode: global` service (on one host a global service has one replica). `moves`:
    on a fleet, service -> (replica, why) of running replicas its placement no longer allows
    (plan.fleet_assign.moves): replaced like old ones."""
    slots = slots or {}
    per_host = per_host or {}
    moves = moves or {}
    out: list[DesiredService] = []
    oneshots = release.stack.oneshots()
    for name in release.order():
        sr = release.services[name]
        svc = sr.service
        update = svc.rollback_config if mode == "rollback" else svc.update_config
        if svc.networking == "project" and svc.udp_ports():
            # Docker publishes the UDP port from the one replica: two cannot hold it at once.
            update = update.model_copy(update={"order": "stop-first"})
        where = per_host.get(name) if name not in oneshots else None
        out.append(
            DesiredService(
                name=name,
                spec_hash=sr.spec_hash,
                replicas=svc.replicas if where is None else len(where.hosts + where.holding),
                update=update,
                routed=svc.routed and name not in oneshots,
                release=release.number,
                oneshot=name in oneshots,
                address=(
                    None
                    if name in oneshots
                    else desired_address(release.stack, name, slots.get(name))
                ),
                restart=svc.restart_policy,
                hosts=None if where is None else where.hosts,
                holding=() if where is None else where.holding,
                moves=tuple(moves.get(name, ())) if where is None and name not in oneshots else (),
            )
        )
    return out


def plan_service(
    svc: DesiredService, observed: Sequence[ObservedReplica], taken: set[str]
) -> list[Step]:
    """Steps that bring one service from `observed` to `svc`."""
    if svc.oneshot:
        return _plan_job(svc, observed, taken)
    if svc.hosts is not None:
        return plan_global(svc, observed, taken)
    steps, settled, current, old = settle(svc, observed)
    # Scale down: the newest replicas of the desired spec beyond the count go.
    extras = current[svc.replicas :]
    for r in reversed(extras):
        steps.extend(retire(svc, r, "scale down"))
    keep = len(current) - len(extras)
    to_start = max(0, svc.replicas - keep - len(settled))
    if not old:
        # A fresh start or a scale-up replaces nothing: start every missing replica at once.
        new = [replica_name(svc.name, svc.release, taken) for _ in range(to_start)]
        steps.extend(bring_up(svc, new, batch=0))
        return steps
    steps.extend(_rolling(svc, old, keep, to_start, taken))
    return steps


def _plan_job(
    svc: DesiredService, observed: Sequence[ObservedReplica], taken: set[str]
) -> list[Step]:
    """A run-to-completion service: done once a container of this spec exited 0. Containers
    of other specs, and failed runs, are removed after the new run succeeds."""
    mine = sorted(observed, key=sort_key)
    done = [r for r in mine if r.spec_hash == svc.spec_hash and not r.running and r.exit_code == 0]
    running = [r for r in mine if r.spec_hash == svc.spec_hash and r.running]
    steps: list[Step] = []
    failed = [r for r in mine if r.spec_hash == svc.spec_hash and not r.running and r.exit_code]
    if not done and not running and failed and not svc.restart.restarts(failed[-1].exit_code):
        # `restart: "no"`: the failed run is the result; another would run it again.
        done = [failed[-1]]
    if not done:
        if running:
            steps.append(
                Step(kind="await", service=svc.name, replica=running[0].replica, reason="one-shot")
            )
        else:
            new = replica_name(svc.name, svc.release, taken)
            steps.append(Step(kind="start", service=svc.name, replica=new, reason="one-shot"))
            steps.append(Step(kind="await", service=svc.name, replica=new, reason="one-shot"))
    keep = {done[-1].replica} if done else {running[0].replica} if running else set()
    for r in mine:
        if r.replica in keep:
            continue
        if r.running and r.spec_hash != svc.spec_hash:
            steps.append(Step(kind="stop", service=svc.name, replica=r.replica, reason="replaced"))
        elif not r.running:
            steps.append(Step(kind="remove", service=svc.name, replica=r.replica, reason="old run"))
    return steps


def _rolling(
    svc: DesiredService, old: list[ObservedReplica], keep: int, to_start: int, taken: set[str]
) -> list[Step]:
    """Replace `old` in batches of `parallelism` (0 = all at once). Old replicas beyond the
    desired count (adopted new ones already cover them, or a scale-down) go first, unpaired."""
    steps: list[Step] = []
    per = svc.update.parallelism or max(to_start, len(old))
    batch = 0
    retiring = list(old)
    excess = min(len(retiring), keep + len(retiring) - svc.replicas)
    while excess > 0:
        batch += 1
        steps += delay(svc, batch)
        k = min(per, excess)
        going, retiring = retiring[:k], retiring[k:]
        excess -= k
        for r in going:
            steps.extend(retire(svc, r, why(r, svc), batch))
    while to_start > 0 or retiring:
        batch += 1
        steps += delay(svc, batch)
        k_start = min(per, to_start)
        k_stop = min(per, len(retiring))
        going, retiring = retiring[:k_stop], retiring[k_stop:]
        new = [replica_name(svc.name, svc.release, taken) for _ in range(k_start)]
        to_start -= k_start
        down = [st for r in going for st in retire(svc, r, why(r, svc), batch)]
        up = bring_up(svc, new, batch)
        steps.extend(down + up if svc.update.order == "stop-first" else up + down)
    return steps + monitor(svc, batch)


def plan_rollout(
    desired: Sequence[DesiredService],
    observed: Observed,
    frontends: Iterable[str] | None = None,
    networks: Sequence[DesiredNetwork] = (),
    held: Sequence[DesiredService] = (),
) -> Plan:
    """Every step that makes `observed` match `desired`, dependencies first.

    `frontends` names the services that must have an HAProxy frontend (default: the routed
    desired and held services); a `frontends` step is planned when that differs from
    `observed.frontends`, when a service address is (re)made, or when HAProxy runs another
    shape (`router_stale`).
    `networks` are the project networks the desired services use: created first, and those
    no longer desired removed last. `held` services are left as they are this time (a heal
    backing off): no step for their replicas (the caller hides those), but their service
    addresses are kept and repaired like the others'.
    """
    routed = (d.name for d in (*desired, *held) if d.routed)
    want_fe = tuple(sorted(frontends if frontends is not None else routed))
    wanted = {d.name for d in (*desired, *held)}
    gone = sorted({r.service for r in observed.replicas} - wanted)
    have_fe = tuple(sorted(observed.frontends))
    steps, notes = plan_network_steps(networks, observed.networks)
    addresses = {d.name: d.address for d in (*desired, *held) if d.address is not None}
    address_steps = plan_address_steps(addresses, observed.addresses)
    steps += address_steps
    # New frontends must exist before replicas are routed; retired ones go after their replicas.
    during = tuple(sorted(set(want_fe) | (set(have_fe) & set(gone))))
    if during != have_fe or address_steps or observed.router_stale:
        why = "frontends changed" if during != have_fe else "listeners changed"
        steps.append(Step(kind="frontends", services=during, reason=why))
    # Servers whose container is gone (removed outside Conveyor) only confuse the router.
    for service, server in observed.orphans:
        steps.append(Step(kind="unroute", service=service, replica=server, reason="no container"))
    taken = {r.replica for r in observed.replicas} | {server for _, server in observed.orphans}
    for d in desired:
        mine = observed.of(d.name)
        steps.extend(plan_service(d, mine, taken))
        notes.extend(
            f"{r.replica} on {r.host} moves: {d.move_reason(r.replica)}"
            for r in mine
            if r.running and d.move_reason(r.replica)
        )
        if (
            d.update.order == "stop-first"
            and d.replicas == 1
            and any(
                r.running and (r.spec_hash != d.spec_hash or d.move_reason(r.replica)) for r in mine
            )
        ):
            notes.append(
                f"{d.name}: stop-first with one replica: the service is down during its update"
            )
    for name in reversed(gone):
        for r in sorted(observed.of(name), key=sort_key, reverse=True):
            if r.router != "absent":
                if r.running:
                    steps.append(
                        Step(
                            kind="drain", service=name, replica=r.replica, reason="service removed"
                        )
                    )
                steps.append(Step(kind="unroute", service=name, replica=r.replica))
            kind = "stop" if r.running else "remove"
            steps.append(Step(kind=kind, service=name, replica=r.replica, reason="service removed"))
    if during != want_fe:
        steps.append(Step(kind="frontends", services=want_fe, reason="service removed"))
    steps += retire_steps(networks, addresses, observed.addresses, observed.networks)
    return Plan(steps=tuple(steps), notes=tuple(notes))


def plan_down(observed: Observed, order: Sequence[str] = ()) -> Plan:
    """Stop every replica, draining first so in-flight requests finish. `order` is the
    release's dependency order: services stop in reverse (as `docker compose down` does), so a
    database is drained after the apps holding sessions to it are gone, not for its whole grace
    period; services it does not name stop first."""
    steps = [
        Step(kind="unroute", service=service, replica=server, reason="no container")
        for service, server in observed.orphans
    ]
    rank = {name: i for i, name in enumerate(reversed(order))}

    def key(r: ObservedReplica) -> tuple[int, str, str]:
        return (rank.get(r.service, -1), r.service, r.replica)

    for r in sorted(observed.replicas, key=key):
        if r.router != "absent":
            if r.running:
                steps.append(
                    Step(kind="drain", service=r.service, replica=r.replica, reason="down")
                )
            steps.append(Step(kind="unroute", service=r.service, replica=r.replica))
        steps.append(
            Step(kind="stop" if r.running else "remove", service=r.service, replica=r.replica)
        )
    # Service addresses and networks after every replica: nothing is left attached to them.
    steps += retire_steps((), {}, observed.addresses, observed.networks, reason="down")
    return Plan(steps=tuple(steps))
