"""Retired hosts (docs/fleet.md, "Hosts that leave the fleet"). Pure.

The controller remembers every app host it ran something of the project on (a replica, a
service address, a network, its HAProxy), with the connection it used (`RememberedHost`,
kept by deploy.fleet_runtime in `fleet-hosts.json`). A remembered host that is no longer an
app host of the fleet (taken out of conveyor.yaml's `hosts:`/`inventory:`, or out of the
`app` role) *left*: the next deploy (not a heal) retires it —

- its running replicas are observed (through its remembered connection) and replaced on the
  hosts of the fleet like any replica a placement change excludes (`retire_moves`: a
  start-first move, "h3 left the fleet"), so they are drained from the other hosts'
  HAProxies before they stop;
- then what is left of the project there (its HAProxy, service addresses, networks, copied
  files) is removed, and the host is forgotten.

A replica whose host holds its service's named volumes is not moved (its data would stay
behind): the deploy is refused (VolumesExcluded), as for a placement change. A host that
does not answer keeps its replicas (not observed: the plan replaces them on the others, as
for a lost host) and is tried again at the next deploy; `retirement_notes` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.frozen import Frozen
from conveyor.model.release import Observed
from conveyor.model.stack import Stack
from conveyor.plan.fleet_files import named_volumes
from conveyor.plan.placement import VolumesExcluded, volumes_way_out


class RememberedHost(Frozen):
    """An app host the project ran on, as the controller reached it, and the replicas it was
    last seen running there (what `status` says of it when it no longer answers)."""

    host: FleetHost  # its connection (name, address, user, port, key) when last used
    replicas: tuple[str, ...] = ()


class LeftHost(Frozen):
    """A remembered host that left the fleet, as a deploy (or `plan`, `status`) found it."""

    name: str
    answered: bool
    # Answered: the replicas running there now; not answered: those last seen there.
    replicas: tuple[str, ...] = ()
    error: str | None = None  # why it did not answer


def connection(host: FleetHost) -> FleetHost:
    """`host` as remembered: how to reach it (roles, labels and its line are the
    inventory's, which no longer names it as an app host)."""
    return FleetHost(
        name=host.name, address=host.address, user=host.user, port=host.port, key=host.key
    )


def leaving(remembered: Mapping[str, RememberedHost], fleet: Fleet) -> tuple[FleetHost, ...]:
    """The remembered hosts that are not app hosts of `fleet` now, by name. One still in
    the inventory (another role) is reached as the inventory says now; one taken out, as
    remembered."""
    app = {h.name for h in fleet.with_role("app")}
    out: list[FleetHost] = []
    for name in sorted(remembered):
        if name in app:
            continue
        now = fleet.host(name)
        out.append(connection(now) if now is not None else remembered[name].host)
    return tuple(out)


def remembered_now(
    remembered: Mapping[str, RememberedHost],
    host: FleetHost,
    replicas: Iterable[str] | None = None,
) -> dict[str, RememberedHost] | None:
    """`remembered` with `host` (an app host the project runs on) as reached now, and its
    replicas when given (else those known); None when nothing changed (nothing to write)."""
    known = remembered.get(host.name)
    reach = connection(host)
    names = tuple(sorted(replicas)) if replicas is not None else None
    if known is not None and known.host == reach and (names is None or names == known.replicas):
        return None
    entry = RememberedHost(
        host=reach,
        replicas=names if names is not None else (known.replicas if known else ()),
    )
    return {**remembered, host.name: entry}


def retire_moves(
    stack: Stack,
    observed: Observed,
    left: Iterable[str],
    volumes: Mapping[str, Sequence[str]] | None = None,
    kept: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Service -> (replica, why) of the running replicas of a replicated service on a host
    that `left` the fleet: moved by the deploy like a replica a constraint excludes. A
    `deploy.mode: global` service is planned host by host (a host that left is not one of
    its hosts: its replica there is stopped). `volumes`: host -> the Docker names of the
    project's volumes on it; a replica whose host holds one of its service's named volumes
    would leave its data behind: refused (VolumesExcluded, at the service's placement line),
    unless the fleet's hosts hold that volume too (`kept`: volume key -> app hosts; a
    replacement already runs there, restored from a backup after the host was lost: its
    replacements go there, and the host's copy is what the user left behind)."""
    gone = set(left)
    volumes = volumes or {}
    prefix = f"{stack.project}_"
    found: dict[str, list[tuple[str, str]]] = {}
    problems: list[SpecError] = []
    for r in sorted(observed.replicas, key=lambda r: r.replica):
        svc = stack.services.get(r.service)
        if not r.running or r.host not in gone or svc is None:
            continue
        if svc.placement is not None and svc.placement.mode == "global":
            continue
        held = [
            k
            for k in named_volumes(svc, stack)
            if f"{prefix}{k}" in volumes.get(r.host, ()) and not (kept or {}).get(k)
        ]
        if held:
            problems.append(
                VolumesExcluded(
                    stack.file,
                    svc.placement.line if svc.placement is not None else None,
                    f"services.{svc.name}.volumes",
                    f"{r.replica} would move ({r.host} left the fleet: conveyor.yaml no "
                    f"longer names it as an app host), but its volumes ({', '.join(held)}) "
                    f"are on {r.host}: " + volumes_way_out(svc.name),
                )
            )
            continue
        found.setdefault(r.service, []).append((r.replica, f"{r.host} left the fleet"))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SpecErrors(problems)
    return {name: tuple(pairs) for name, pairs in found.items()}


def retirement_notes(left: Sequence[LeftHost]) -> list[str]:
    """What `plan` and `status` say of each host that left: what a deploy removes there,
    or that it does not answer (tried again at the next deploy)."""
    notes: list[str] = []
    for host in left:
        n = len(host.replicas)
        if host.answered:
            what = f"{', '.join(host.replicas)} and its HAProxy" if n else "its HAProxy"
            notes.append(
                f"{host.name} left the fleet: {what} are removed (the project's files and "
                "containers there too; named volumes are kept)"
                if n
                else f"{host.name} left the fleet: {what} is removed (the project's files and "
                "containers there too; named volumes are kept)"
            )
            continue
        said = f"{n} replica{'s' if n != 1 else ''} still there" if n else "its HAProxy still there"
        why = f": {host.error}" if host.error else ""
        notes.append(
            f"{host.name} left the fleet; {said} (unreachable{why}); tried again at the next deploy"
        )
    return notes
