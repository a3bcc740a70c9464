"""Retired hosts, the pure part (plan.fleet_retire): which remembered hosts left the fleet,
how the remembered connection follows the inventory, which replicas a deploy moves off a host
that left (and the refusal when its volumes are there), and what `plan`/`status` say."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError
from conveyor.model.endpoint import Endpoint
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.release import Observed, ObservedReplica
from conveyor.model.stack import Stack
from conveyor.plan.fleet_retire import (
    LeftHost,
    RememberedHost,
    leaving,
    remembered_now,
    retire_moves,
    retirement_notes,
)
from conveyor.plan.placement import VolumesExcluded
from conveyor.spec.compose import load_stack


def host(name: str, roles: tuple[str, ...] = ("app",), address: str = "") -> FleetHost:
    return FleetHost.model_validate(
        {"name": name, "address": address or f"{name}.test", "roles": roles, "key": "/k"}
    )


def remembered(*names: str) -> dict[str, RememberedHost]:
    return {
        n: RememberedHost(host=host(n, roles=("app",)), replicas=(f"web-1-{n[-1]}",)) for n in names
    }


def test_a_remembered_host_taken_out_of_the_inventory_left_reached_as_remembered() -> None:
    fleet = Fleet(hosts=(host("h1"), host("h2")))
    left = leaving(remembered("h1", "h2", "h3"), fleet)
    assert [(h.name, h.address, h.key) for h in left] == [("h3", "h3.test", "/k")]


def test_a_host_out_of_the_app_role_left_reached_as_the_inventory_says_now() -> None:
    fleet = Fleet(hosts=(host("h1"), host("h3", roles=("edge",), address="10.0.0.3")))
    left = leaving(remembered("h1", "h3"), fleet)
    assert [(h.name, h.address, h.roles) for h in left] == [("h3", "10.0.0.3", ("app",))]
    # still an app host: nothing left
    assert leaving(remembered("h1"), fleet) == ()


def test_remembering_writes_only_a_change() -> None:
    known = remembered_now({}, host("h1"), ["web-1-1"])
    assert known is not None and known["h1"].replicas == ("web-1-1",)
    assert known["h1"].host.roles == ("app",) and known["h1"].host.labels == {}
    assert remembered_now(known, host("h1"), ["web-1-1"]) is None
    assert remembered_now(known, host("h1")) is None  # replicas not said: kept
    moved = remembered_now(known, host("h1", address="10.0.0.1"))
    assert moved is not None and moved["h1"].host.address == "10.0.0.1"
    assert moved["h1"].replicas == ("web-1-1",)
    scaled = remembered_now(known, host("h1"), ["web-1-4", "web-1-1"])
    assert scaled is not None and scaled["h1"].replicas == ("web-1-1", "web-1-4")


def _stack(tmp_path: Path) -> Stack:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  web: {image: web}\n"
        "  agent: {image: agent, deploy: {mode: global}}\n"
        "  db: {image: db, volumes: [data:/var/db]}\n"
        "volumes: {data: {}}\n"
    )
    return load_stack(tmp_path / "compose.yaml", environ={}).model_copy(update={"project": "p"})


def replica(service: str, name: str, on: str, running: bool = True) -> ObservedReplica:
    return ObservedReplica(
        service=service,
        replica=name,
        container_id=f"c-{name}",
        spec_hash="s",
        release=1,
        endpoint=Endpoint(host=f"{on}.test", port=8000),
        running=running,
        host=on,
    )


def test_a_deploy_moves_the_running_replicas_of_a_host_that_left(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    observed = Observed(
        replicas=(
            replica("web", "web-1-1", "h1"),
            replica("web", "web-1-3", "h3"),
            replica("web", "web-1-4", "h3", running=False),  # removed with the host's rest
            replica("agent", "agent-1-3", "h3"),  # global: stopped host by host
            replica("db", "db-1-1", "h3"),  # its volume is elsewhere (none listed on h3)
        )
    )
    moves = retire_moves(stack, observed, ["h3"], {"h3": ["other_data"]})
    assert moves == {
        "web": (("web-1-3", "h3 left the fleet"),),
        "db": (("db-1-1", "h3 left the fleet"),),
    }
    assert retire_moves(stack, observed, []) == {}


def test_a_replica_whose_volumes_are_on_the_host_that_left_is_refused(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    observed = Observed(replicas=(replica("db", "db-1-1", "h3"),))
    with pytest.raises(VolumesExcluded) as found:
        retire_moves(stack, observed, ["h3"], {"h3": ["p_data"]})
    error = found.value
    assert isinstance(error, SpecError)
    assert error.file.endswith("compose.yaml") and error.field == "services.db.volumes"
    assert error.message.startswith(
        "db-1-1 would move (h3 left the fleet: conveyor.yaml no longer names it as an app "
        "host), but its volumes (data) are on h3: a volume's data does not follow a replica"
    )
    assert "`conveyor down --volumes`" in error.message
    assert "`conveyor backup restore db`" in error.message


def test_what_plan_and_status_say_of_the_hosts_that_left() -> None:
    notes = retirement_notes(
        [
            LeftHost(name="h3", answered=True, replicas=("web-1-3", "db-1-1")),
            LeftHost(name="h4", answered=True),
            LeftHost(name="h5", answered=False, replicas=("web-1-5", "db-1-2"), error="no route"),
            LeftHost(name="h6", answered=False),
        ]
    )
    assert notes == [
        "h3 left the fleet: web-1-3, db-1-1 and its HAProxy are removed (the project's files "
        "and containers there too; named volumes are kept)",
        "h4 left the fleet: its HAProxy is removed (the project's files and containers there "
        "too; named volumes are kept)",
        "h5 left the fleet; 2 replicas still there (unreachable: no route); tried again at "
        "the next deploy",
        "h6 left the fleet; its HAProxy still there (unreachable); tried again at the next deploy",
    ]


def test_a_volume_the_fleet_holds_too_does_not_refuse_the_move(tmp_path: Path) -> None:
    """The host was lost, its service placed afresh and restored from a backup; it answers
    again, with the old copy: its replica there goes, the data on the fleet is the one kept."""
    stack = _stack(tmp_path)
    observed = Observed(replicas=(replica("db", "db-1-1", "h3"), replica("db", "db-1-2", "h1")))
    moves = retire_moves(stack, observed, ["h3"], {"h3": ["p_data"]}, {"data": ["h1"]})
    assert moves == {"db": (("db-1-1", "h3 left the fleet"),)}
