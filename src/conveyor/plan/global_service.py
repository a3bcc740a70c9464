"""The per-host planner of a `deploy.mode: global` service on a fleet (docs/fleet.md). Pure.

The replicated planner (plan.rollout) counts replicas anywhere; a global service is one
replica on each of a list of hosts (`DesiredService.hosts`: the app hosts that are up and
allowed by its constraints, computed by the engine's placer), so this plans host by host:

- a host without a replica gets one (batch 0, all at once, each `start` naming its host);
- a host whose replica is of another spec (or failing) has it replaced **on that host**, in
  batches of `update_config.parallelism` hosts, start-first (the new one is in rotation
  before the old one drains: two on the host for that moment) or stop-first;
- a second replica on a host, or one on a host that is no longer allowed, is retired;
- a host that only holds its replicas (missed a probe) is left as it is: none started,
  none stopped. A host that is down is not observed and not in `hosts`: nothing of it is
  re-placed elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.model.release import ObservedReplica
from conveyor.plan.actions import Step
from conveyor.plan.service_steps import (
    DesiredService,
    bring_up,
    delay,
    monitor,
    replica_name,
    retire,
    settle,
    why,
)


def plan_global(
    svc: DesiredService, observed: Sequence[ObservedReplica], taken: set[str]
) -> list[Step]:
    """Steps that leave one replica of `svc` on each of `svc.hosts`."""
    targets = svc.hosts or ()
    holding = set(svc.holding)
    steps, done, current, old = settle(svc, observed)
    # A host has its replica: a running one of this spec (the oldest), or a settled one.
    covered = {r.host for r in done}
    for r in current:
        if r.host in holding:
            continue
        if r.host in targets and r.host not in covered:
            covered.add(r.host)
            continue
        reason = "scale down" if r.host in targets else f"placement excludes {r.host or 'it'}"
        steps.extend(retire(svc, r, reason))
    # Hosts without a replica of this spec: their old one (if any) is replaced there.
    pairs: list[tuple[str, list[ObservedReplica]]] = []
    fresh: list[str] = []
    for host in targets:
        if host in covered:
            continue
        mine = [r for r in old if r.host == host]
        if mine:
            pairs.append((host, mine))
        else:
            fresh.append(host)
    replaced = {r.replica for _, mine in pairs for r in mine}
    # Old replicas nothing replaces: their host has a current one, or is not allowed.
    unpaired = [r for r in old if r.host not in holding and r.replica not in replaced]

    new = [replica_name(svc.name, svc.release, taken) for _ in fresh]
    steps.extend(bring_up(svc, new, batch=0, hosts=fresh))
    if not pairs and not unpaired:
        return steps
    per = svc.update.parallelism or max(len(pairs), len(unpaired))
    batch = 0
    for i in range(0, len(unpaired), per):
        batch += 1
        steps += delay(svc, batch)
        for r in unpaired[i : i + per]:
            steps.extend(retire(svc, r, why(r), batch))
    for i in range(0, len(pairs), per):
        batch += 1
        steps += delay(svc, batch)
        chunk = pairs[i : i + per]
        names = [replica_name(svc.name, svc.release, taken) for _ in chunk]
        up = bring_up(svc, names, batch, hosts=[host for host, _ in chunk])
        down = [st for _, mine in chunk for r in mine for st in retire(svc, r, why(r), batch)]
        steps.extend(down + up if svc.update.order == "stop-first" else up + down)
    return steps + monitor(svc, batch)
