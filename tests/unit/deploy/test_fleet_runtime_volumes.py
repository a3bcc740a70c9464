"""FleetRuntime's named volumes (docs/fleet.md, "Files and volumes on a fleet"): made on the
host of the replica that mounts them, not on every host; a service that mounts one is placed
where it is, and a host that is down still holds it (remembered in the state directory), so
its service waits instead of starting elsewhere with an empty volume. Engines and health are
stand-ins: what is checked is the runtime's own bookkeeping and the plan it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from conveyor.deploy.fleet_runtime import FleetRuntime
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.release import Observed, Release, ServiceRelease
from conveyor.plan.actions import Plan, Step
from conveyor.runtime.protocol import ReplicaRun
from conveyor.spec.compose import load_stack

HOSTS = tuple(FleetHost(name=n, address=f"{n}.test") for n in ("h1", "h2", "h3"))


class Engine:
    def __init__(self) -> None:
        self.volumes: list[str] = []
        self.made: list[tuple[Any, ...]] = []

    def ensure_volume(self, *args: Any) -> str:
        self.made.append(args)
        self.volumes.append(f"{args[0]}_{args[1]}")
        return f"{args[0]}_{args[1]}"

    def project_volumes(self, project: str) -> list[str]:
        return list(self.volumes)

    def local_image(self, ref: str) -> str | None:
        return ref

    def mount_sources(self, project: str) -> list[str]:
        return []

    def run(self, req: ReplicaRun, warn: Any = None) -> str:
        return f"c-{req.replica}"

    def inspect(self, container_id: str) -> None:
        return None  # gone already: FleetRuntime's published-port check has nothing to check


class Engines:
    def __init__(self) -> None:
        self.fleet = Fleet(hosts=HOSTS)
        self.known_hosts = None
        self.engines = {h.name: Engine() for h in HOSTS}

    def engine(self, name: str) -> Engine:
        return self.engines[name]


class Health:
    def __init__(self) -> None:
        self.up = list(HOSTS)

    def placeable(self) -> tuple[FleetHost, ...]:
        return tuple(self.up)

    def holding(self) -> tuple[FleetHost, ...]:
        return ()

    def serving(self) -> tuple[FleetHost, ...]:
        return tuple(self.up)


def _release(tmp_path: Path) -> Release:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  db: {image: db, volumes: [data:/var/db]}\nvolumes: {data: {}}\n"
    )
    stack = load_stack(tmp_path / "compose.yaml", environ={})
    return Release(
        number=1,
        project="shop",
        services={
            "db": ServiceRelease(service=stack.services["db"], image_id="sha256:1", image_ref="db")
        },
        stack=stack,
    )


def _start(runtime: FleetRuntime, release: Release, replica: str) -> Plan:
    plan = Plan(steps=(Step(kind="start", service="db", replica=replica),))
    placed = runtime.assign(plan, release, Observed())
    for step in placed.steps:
        docker_name = runtime.ensure_volume("shop", "data", False)  # as the executor does
        runtime.run(
            ReplicaRun(
                project="shop",
                replica=step.replica,
                release=1,
                spec_hash="x",
                image_id="sha256:1",
                port=0,
                service=release.services["db"].service,
                volume_names={"data": docker_name},
            )
        )
    return placed


def test_a_volume_is_made_on_its_replicas_host_and_holds_the_service_there(
    tmp_path: Path,
) -> None:
    engines, health = Engines(), Health()
    state = tmp_path / "state" / "fleet-volumes.json"
    runtime = FleetRuntime(cast(Any, engines), cast(Any, health), cast(Any, None), state)
    release = _release(tmp_path)
    health.up = list(HOSTS[1:])  # h1 is away when db first starts: it lands on h2
    first = _start(runtime, release, "db-1-1")
    host = next(s.host for s in first.steps)
    assert host == "h2"
    assert [n for n, e in engines.engines.items() if e.made] == [host]
    health.up = list(HOSTS)
    # Re-created (a rolling update, a heal): back on the volume's host, not the first
    # (emptiest) one.
    for replica in ("db-2-1", "db-3-1"):
        assert [s.host for s in _start(runtime, release, replica).steps] == [host]

    # A new controller process while that host is down: the state file says where it is.
    health.up = [h for h in HOSTS if h.name != host]
    later = FleetRuntime(cast(Any, engines), cast(Any, health), cast(Any, None), state)
    waiting = _start(later, release, "db-4-1")
    assert waiting.steps == ()
    assert len(waiting.notes) == 1 and f"volumes are on {host}" in waiting.notes[0]
    assert sum(len(e.made) for e in engines.engines.values()) == 3  # nothing made elsewhere


def test_a_host_lost_right_after_the_first_start_still_holds_its_service(
    tmp_path: Path,
) -> None:
    """The plan lists the hosts' volumes before the first replica makes its volume: the start
    itself remembers it, so a new controller while that host is down does not start the
    service elsewhere with an empty volume (and a backup names that host)."""
    engines, health = Engines(), Health()
    state = tmp_path / "state" / "fleet-volumes.json"
    runtime = FleetRuntime(cast(Any, engines), cast(Any, health), cast(Any, None), state)
    release = _release(tmp_path)
    host = next(s.host for s in _start(runtime, release, "db-1-1").steps)
    assert host is not None
    health.up = [h for h in HOSTS if h.name != host]
    later = FleetRuntime(cast(Any, engines), cast(Any, health), cast(Any, None), state)
    waiting = _start(later, release, "db-2-1")
    assert waiting.steps == ()
    assert f"volumes are on {host}" in waiting.notes[0]
