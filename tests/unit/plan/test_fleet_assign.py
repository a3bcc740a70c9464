"""plan.fleet_assign: a rollout plan's `start` steps get their hosts from placement: a fresh
start spreads, a rolling update places the new replicas as if the old were gone, a scale-up
keeps the kept replicas where they are, a host that is not observed (down) gets nothing, and
a one-host step serializes as before fleets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conveyor.errors import SpecError
from conveyor.model.endpoint import Endpoint
from conveyor.model.fleet import FleetHost
from conveyor.model.release import Observed, ObservedReplica
from conveyor.model.stack import Service, UpdateConfig
from conveyor.plan.actions import Plan, Step
from conveyor.plan.fleet_assign import assign_hosts, keep_global, moves
from conveyor.plan.placement import NoAppHostUp, PlacementError, VolumesExcluded
from conveyor.plan.rollout import DesiredService, GlobalHosts, plan_rollout
from conveyor.spec.compose import load_stack

HOSTS = [FleetHost(name=n, address=f"{n}.test", labels={"zone": z}) for n, z in
         (("h1", "a"), ("h2", "b"), ("h3", "a"))]  # fmt: skip


def _services(tmp_path: Path, body: str) -> dict[str, Service]:
    (tmp_path / "compose.yaml").write_text("services:\n" + body)
    return load_stack(tmp_path / "compose.yaml", environ={}).services


def _observed(*written: str, spec: str = "new") -> Observed:
    """ "web-1-1@h2" -> a running replica of web on h2."""
    replicas = []
    for i, item in enumerate(written):
        replica, host = item.split("@")
        replicas.append(
            ObservedReplica(
                replica=replica,
                service=replica.split("-")[0],
                container_id=f"c{i}",
                spec_hash=spec,
                release=1,
                endpoint=Endpoint(host=f"{host}.test", port=20000 + i),
                running=True,
                host=host,
            )
        )
    return Observed(replicas=tuple(replicas))


def _starts(*names: str, service: str = "web") -> list[Step]:
    return [Step(kind="start", service=service, replica=n) for n in names]


def _hosts_of(plan: Plan) -> dict[str, str]:
    return {s.replica: s.host for s in plan.steps if s.kind == "start"}


def test_a_fresh_start_spreads_over_the_hosts(tmp_path: Path) -> None:
    services = _services(tmp_path, "  web: {image: web, deploy: {replicas: 4}}\n")
    plan = Plan(steps=tuple(_starts("web-1-1", "web-1-2", "web-1-3", "web-1-4")))
    placed = assign_hosts(plan, services, Observed(), HOSTS)
    assert _hosts_of(placed) == {
        "web-1-1": "h1",
        "web-1-2": "h2",
        "web-1-3": "h3",
        "web-1-4": "h1",
    }


def test_a_rolling_update_places_new_replicas_as_if_the_old_were_gone(tmp_path: Path) -> None:
    services = _services(tmp_path, "  web: {image: web, deploy: {replicas: 3}}\n")
    observed = _observed("web-1-1@h3", "web-1-2@h3", "web-1-3@h2", spec="old")
    steps: list[Step] = []
    for new, old in (("web-2-1", "web-1-1"), ("web-2-2", "web-1-2"), ("web-2-3", "web-1-3")):
        steps += [
            Step(kind="start", service="web", replica=new),
            Step(kind="stop", service="web", replica=old),
        ]
    placed = assign_hosts(Plan(steps=tuple(steps)), services, observed, HOSTS)
    assert sorted(_hosts_of(placed).values()) == ["h1", "h2", "h3"]
    # Steps other than `start` are untouched, in their order.
    assert [s.model_copy(update={"host": ""}) for s in placed.steps] == steps


def test_a_scale_up_keeps_the_running_replicas_and_fills_the_emptiest_host(
    tmp_path: Path,
) -> None:
    services = _services(tmp_path, "  web: {image: web, deploy: {replicas: 3}}\n")
    observed = _observed("web-1-1@h1", "web-1-2@h1")
    placed = assign_hosts(Plan(steps=tuple(_starts("web-1-3"))), services, observed, HOSTS)
    assert _hosts_of(placed) == {"web-1-3": "h2"}


def test_a_host_that_is_down_takes_no_replica(tmp_path: Path) -> None:
    """h2 is down: not among the hosts given, its replica not observed, so the rollout
    planner starts a replacement, which goes to a host that is up."""
    services = _services(tmp_path, "  web: {image: web, deploy: {replicas: 3}}\n")
    observed = _observed("web-1-1@h1", "web-1-3@h3")
    up = [h for h in HOSTS if h.name != "h2"]
    placed = assign_hosts(Plan(steps=tuple(_starts("web-1-4"))), services, observed, up)
    assert _hosts_of(placed)["web-1-4"] in ("h1", "h3")


def test_constraints_hold_and_more_starts_than_placed_go_to_the_least_loaded(
    tmp_path: Path,
) -> None:
    services = _services(
        tmp_path,
        "  web:\n    image: web\n    deploy:\n      replicas: 1\n"
        "      placement: {constraints: [node.labels.zone==a]}\n",
    )
    # Two starts for one replica (a run replacing a settled one): both on zone a.
    placed = assign_hosts(Plan(steps=tuple(_starts("web-1-1", "web-1-2"))), services,
                          Observed(), HOSTS)  # fmt: skip
    hosts = _hosts_of(placed)
    assert Counter(hosts.values()) == Counter({"h1": 1, "h3": 1})


def test_a_constraint_no_host_meets_names_its_line(tmp_path: Path) -> None:
    services = _services(
        tmp_path,
        "  web:\n    image: web\n    deploy:\n"
        "      placement: {constraints: [node.labels.zone==z]}\n",
    )
    with pytest.raises(SpecError) as caught:
        assign_hosts(Plan(steps=tuple(_starts("web-1-1"))), services, Observed(), HOSTS)
    assert caught.value.line == 5


def test_no_host_up_is_a_placement_error(tmp_path: Path) -> None:
    services = _services(tmp_path, "  web: {image: web}\n")
    with pytest.raises(NoAppHostUp):
        assign_hosts(Plan(steps=tuple(_starts("web-1-1"))), services, Observed(), [])


def test_a_plan_without_starts_is_returned_as_it_is(tmp_path: Path) -> None:
    services = _services(tmp_path, "  web: {image: web}\n")
    plan = Plan(steps=(Step(kind="stop", service="web", replica="web-1-1"),))
    assert assign_hosts(plan, services, Observed(), []) is plan


def test_a_step_serializes_its_host_only_on_a_fleet() -> None:
    one = Step(kind="start", service="web", replica="web-1-1")
    assert "host" not in one.model_dump_json()
    assert one.describe() == "web: start web-1-1"
    fleet = one.model_copy(update={"host": "h2"})
    assert Step.model_validate_json(fleet.model_dump_json()) == fleet
    assert fleet.describe() == "web: start web-1-1 on h2"


# ---- named volumes pin their service (plan.fleet_files.volume_pins) -----------------------------


def _rolling(new: str, old: str, service: str = "db") -> list[Step]:
    return [
        Step(kind="start", service=service, replica=new),
        Step(kind="await", service=service, replica=new),
        Step(kind="route", service=service, replica=new),
        Step(kind="drain", service=service, replica=old),
        Step(kind="stop", service=service, replica=old),
        Step(kind="remove", service=service, replica=old),
    ]


def test_a_rolling_update_recreates_a_pinned_replica_on_its_volumes_host(
    tmp_path: Path,
) -> None:
    services = _services(
        tmp_path,
        "  db: {image: db, volumes: [data:/var/db]}\n  web: {image: web}\nvolumes: {data: {}}\n",
    )
    # Unpinned, the new replica would go to the emptiest host (h1: db's own host h3 is
    # where web runs too).
    observed = _observed("db-1-1@h3", "web-1-1@h3", spec="old")
    plan = Plan(steps=tuple(_rolling("db-2-1", "db-1-1")))
    assert _hosts_of(assign_hosts(plan, services, observed, HOSTS)) == {"db-2-1": "h1"}
    placed = assign_hosts(plan, services, observed, HOSTS, pins={"db": ("h3",)})
    assert _hosts_of(placed) == {"db-2-1": "h3"}
    assert placed.notes == ()


def test_a_pinned_service_whose_host_is_down_waits_and_nothing_of_it_runs_elsewhere(
    tmp_path: Path,
) -> None:
    services = _services(
        tmp_path,
        "  db: {image: db, volumes: [data:/var/db]}\n  web: {image: web}\nvolumes: {data: {}}\n",
    )
    up = [h for h in HOSTS if h.name != "h2"]  # db's host h2 is down: its replica unseen
    steps = [
        *_starts("web-1-2", service="web"),
        Step(kind="start", service="db", replica="db-1-2"),
        Step(kind="await", service="db", replica="db-1-2"),
        Step(kind="route", service="db", replica="db-1-2"),
        Step(kind="unroute", service="db", replica="db-1-1", reason="no container"),
    ]
    placed = assign_hosts(Plan(steps=tuple(steps)), services, Observed(), up, pins={"db": ["h2"]})
    assert [(s.kind, s.service) for s in placed.steps] == [("start", "web")]
    assert len(placed.notes) == 1
    assert "db: not started" in placed.notes[0] and "h2" in placed.notes[0]
    # A host that only holds its replicas (suspect) takes no new one either: db waits.
    held = assign_hosts(
        Plan(steps=tuple(_rolling("db-2-1", "db-1-1"))),
        services,
        _observed("db-1-1@h2", spec="old"),
        up,
        holding=[HOSTS[1]],
        pins={"db": ["h2"]},
    )
    assert held.steps == () and held.notes


def test_volumes_on_a_host_the_constraints_exclude_is_a_placement_error(tmp_path: Path) -> None:
    services = _services(
        tmp_path,
        "  db:\n    image: db\n    volumes: [data:/var/db]\n"
        "    deploy: {placement: {constraints: [node.labels.zone==a]}}\nvolumes: {data: {}}\n",
    )
    with pytest.raises(PlacementError, match=r"db's volumes are on h2.*constraints") as caught:
        assign_hosts(
            Plan(steps=tuple(_starts("db-1-1", service="db"))),
            services,
            Observed(),
            HOSTS,
            pins={"db": ["h2"]},
        )
    # the files' fault, not the hosts' state: the GitOps server does not wait it out
    assert not isinstance(caught.value, NoAppHostUp)
    # It names the constraint's line, and the way out.
    assert isinstance(caught.value, SpecError) and caught.value.line == 5
    assert "conveyor down --volumes" in str(caught.value)


# ---- a placement change moves running replicas (at a deploy) ------------------------------

ZONE_A = (
    "  web:\n    image: web\n    deploy:\n      replicas: 2\n"
    "      placement: {constraints: [node.labels.zone==a]}\n"
)


def _routed(observed: Observed) -> Observed:
    return observed.model_copy(
        update={
            "replicas": tuple(
                r.model_copy(update={"router": "ready", "started_at": float(i)})
                for i, r in enumerate(observed.replicas)
            )
        }
    )


def _desired(
    found: dict[str, tuple[tuple[str, str], ...]], order: str = "start-first"
) -> DesiredService:
    return DesiredService(
        name="web",
        spec_hash="new",
        replicas=2,
        update=UpdateConfig(parallelism=1, order=order),  # type: ignore[arg-type]
        routed=True,
        release=2,
        moves=found.get("web", ()),
    )


def test_a_replica_a_constraint_now_excludes_is_replaced_start_first_on_an_allowed_host(
    tmp_path: Path,
) -> None:
    services = _services(tmp_path, ZONE_A)
    observed = _routed(_observed("web-1-1@h1", "web-1-2@h2"))  # h2 is zone b
    found = moves(services, {"web": "new"}, observed, HOSTS)
    assert found == {"web": (("web-1-2", "h2 no longer matches node.labels.zone==a"),)}
    plan = assign_hosts(
        plan_rollout([_desired(found)], observed, frontends=()), services, observed, HOSTS
    )
    # `conveyor plan` says what moves and why; the new one is in rotation before the old drains.
    assert plan.notes == ("web-1-2 on h2 moves: h2 no longer matches node.labels.zone==a",)
    assert [s.describe() for s in plan.steps] == [
        "web: start web-2-1 on h3",
        "web: wait until healthy web-2-1",
        "web: add to rotation web-2-1",
        "web: drain web-1-2 (moves: h2 no longer matches node.labels.zone==a)",
        "web: remove from rotation web-1-2",
        "web: stop web-1-2 (moves: h2 no longer matches node.labels.zone==a)",
    ]
    # Without moves (a heal, or before this change) the replica stayed: the plan was empty.
    assert plan_rollout([_desired({})], observed, frontends=()).empty


def test_only_replicas_of_the_target_spec_are_listed_an_update_replaces_the_others(
    tmp_path: Path,
) -> None:
    services = _services(tmp_path, ZONE_A)
    observed = _observed("web-1-1@h1", "web-1-2@h2", spec="old")
    assert moves(services, {"web": "new"}, observed, HOSTS) == {}
    # ... and the rolling update puts the new replicas on zone a anyway.
    plan = assign_hosts(plan_rollout([_desired({})], observed), services, observed, HOSTS)
    assert sorted(_hosts_of(plan).values()) == ["h1", "h3"]


def test_a_move_that_would_leave_a_volume_behind_is_refused_naming_the_line(
    tmp_path: Path,
) -> None:
    services = _services(
        tmp_path,
        "  db:\n    image: db\n    volumes: [data:/var/db]\n    deploy:\n"
        "      placement: {constraints: [node.hostname==h1]}\nvolumes: {data: {}}\n",
    )
    observed = _observed("db-1-1@h2")
    # Volumes nowhere known (or elsewhere): it moves like any replica.
    assert moves(services, {"db": "new"}, observed, HOSTS, pins={"db": ("h3",)}) == {
        "db": (("db-1-1", "h2 no longer matches node.hostname==h1"),)
    }
    with pytest.raises(VolumesExcluded) as caught:
        moves(services, {"db": "new"}, observed, HOSTS, pins={"db": ("h2",)})
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "compose.yaml"), 6)
    text = str(caught.value)
    assert "db-1-1 would move (h2 no longer matches node.hostname==h1)" in text
    assert "volumes are on h2" in text and "conveyor backup restore db" in text


def test_a_heal_keeps_a_global_replica_on_a_host_its_placement_no_longer_allows() -> None:
    observed = _observed("agent-1-1@h1", "agent-1-2@h2")
    per_host = {"agent": GlobalHosts(hosts=("h1", "h3"))}
    kept = keep_global(per_host, observed)
    assert kept == {"agent": GlobalHosts(hosts=("h1", "h3"), holding=("h2",))}
