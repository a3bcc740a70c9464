"""plan.placement: spread, constraints, limits, global mode, stability and errors naming
the compose file's lines. Services come from real compose files so the lines are real."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.fleet import FleetHost
from conveyor.model.placement import Constraint, ServicePlacement
from conveyor.model.stack import Service
from conveyor.plan.placement import NoAppHostUp, PlacedReplica, misplaced, place
from conveyor.spec.compose import load_compose, load_stack

# Three hosts written as "name key=value ...", in inventory order.
HOSTS = ("h1 zone=a ssd=true", "h2 zone=b", "h3 zone=a")


def _hosts(*written: str) -> list[FleetHost]:
    out = []
    for line in written:
        name, *pairs = line.split()
        labels = dict(pair.split("=", 1) for pair in pairs)
        out.append(FleetHost(name=name, address=f"{name}.test", labels=labels))
    return out


def _services(tmp_path: Path, body: str) -> dict[str, Service]:
    (tmp_path / "compose.yaml").write_text("services:\n" + body)
    return load_stack(tmp_path / "compose.yaml", environ={}).services


def _svc(name: str, deploy: str) -> str:
    """One service of a compose file, on one line: `deploy` is its deploy mapping's body."""
    return f"  {name}: {{image: {name}, deploy: {{{deploy}}}}}\n"


def _current(*written: str) -> list[PlacedReplica]:
    """ "web-1@h1" -> the replica web-1 of service web on h1."""
    out = []
    for item in written:
        replica, host = item.split("@")
        out.append(PlacedReplica(service=replica.split("-")[0], replica=replica, host=host))
    return out


def _shown(counts: Counter[str]) -> str:
    return " ".join(f"{host}:{n}" for host, n in sorted(counts.items()) if n)


CASES: list[tuple[str, str, tuple[str, ...], tuple[str, ...], dict[str, str]]] = [
    # id, services (compose), hosts up, current replicas, expected replicas per host
    ("spread", _svc("web", "replicas: 3"), HOSTS, (), {"web": "h1:1 h2:1 h3:1"}),
    (
        "ties go to the inventory order",
        _svc("web", "replicas: 4"),
        HOSTS,
        (),
        {"web": "h1:2 h2:1 h3:1"},
    ),
    (
        "fewest replicas overall after fewest of the service",
        _svc("web", "replicas: 2") + _svc("api", "replicas: 2"),
        HOSTS,
        (),
        {"web": "h1:1 h2:1", "api": "h1:1 h3:1"},
    ),
    (
        "label equals",
        _svc("web", "replicas: 4, placement: {constraints: [node.labels.zone==a]}"),
        HOSTS,
        (),
        {"web": "h1:2 h3:2"},
    ),
    (
        "label differs (a host without the label differs too)",
        _svc("web", "replicas: 2, placement: {constraints: ['node.labels.ssd != true']}"),
        HOSTS,
        (),
        {"web": "h2:1 h3:1"},
    ),
    (
        "hostname",
        _svc("web", "replicas: 2, placement: {constraints: [node.hostname==h2]}"),
        HOSTS,
        (),
        {"web": "h2:2"},
    ),
    (
        "role and label together",
        _svc("web", "replicas: 2, placement: {constraints: [node.role==app, node.labels.zone!=a]}"),
        HOSTS,
        (),
        {"web": "h2:2"},
    ),
    (
        "max replicas per node",
        _svc("web", "replicas: 5, placement: {max_replicas_per_node: 2}"),
        HOSTS,
        (),
        {"web": "h1:2 h2:2 h3:1"},
    ),
    (
        "global: one per host",
        _svc("agent", "mode: global"),
        HOSTS,
        (),
        {"agent": "h1:1 h2:1 h3:1"},
    ),
    (
        "global with a constraint",
        _svc("agent", "mode: global, placement: {constraints: [node.labels.zone==a]}"),
        HOSTS,
        (),
        {"agent": "h1:1 h3:1"},
    ),
    (
        "spread preference over a label's values first",
        _svc("web", "replicas: 2, placement: {preferences: [{spread: node.labels.zone}]}"),
        ("h1 zone=a", "h2 zone=a", "h3 zone=b"),
        (),
        {"web": "h1:1 h3:1"},
    ),
    (
        "stable: an unbalanced but valid placement stays",
        _svc("web", "replicas: 2"),
        HOSTS,
        ("web-1@h3", "web-2@h3"),
        {"web": "h3:2"},
    ),
    (
        "a host that is down: its replica moves to the emptiest",
        _svc("web", "replicas: 3"),
        ("h1", "h2"),
        ("web-1@h1", "web-2@h2", "web-3@h3"),
        {"web": "h1:2 h2:1"},
    ),
    (
        "scale down takes from the fullest host",
        _svc("web", "replicas: 3"),
        HOSTS,
        ("web-1@h1", "web-4@h1", "web-2@h2", "web-3@h3"),
        {"web": "h1:1 h2:1 h3:1"},
    ),
    (
        "a constraint that now excludes a host moves its replicas",
        _svc("web", "replicas: 2, placement: {constraints: [node.labels.zone==a]}"),
        HOSTS,
        ("web-1@h1", "web-2@h2"),
        {"web": "h1:1 h3:1"},
    ),
    (
        "a lower limit moves the extra replica",
        _svc("web", "replicas: 2, placement: {max_replicas_per_node: 1}"),
        HOSTS,
        ("web-1@h1", "web-2@h1"),
        {"web": "h1:1 h2:1"},
    ),
]


@pytest.mark.parametrize(
    ("services", "hosts", "current", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_placement(
    tmp_path: Path,
    services: str,
    hosts: tuple[str, ...],
    current: tuple[str, ...],
    expected: dict[str, str],
) -> None:
    result = place(_services(tmp_path, services), _hosts(*hosts), _current(*current))
    assert {name: _shown(plan.hosts()) for name, plan in result.services.items()} == expected


def test_what_moves_is_only_what_must(tmp_path: Path) -> None:
    services = _services(tmp_path, _svc("web", "replicas: 3"))
    now = _current("web-1@h1", "web-2@h2", "web-3@h3")
    plan = place(services, _hosts("h1", "h2"), now).services["web"]
    assert [r.replica for r in plan.keep] == ["web-1", "web-2"]
    assert [r.replica for r in plan.stop] == ["web-3"]
    assert plan.start == ("h1",)
    scaled = place(services, _hosts(*HOSTS), [*now, *_current("web-4@h1")]).services["web"]
    assert [r.replica for r in scaled.stop] == ["web-4"]
    assert scaled.start == ()


def test_too_few_hosts_for_the_limit_names_the_line(tmp_path: Path) -> None:
    services = _services(
        tmp_path,
        "  web:\n"
        "    image: w\n"
        "    deploy:\n"
        "      replicas: 3\n"
        "      placement:\n"
        "        max_replicas_per_node: 1\n",
    )
    with pytest.raises(SpecError) as caught:
        place(services, _hosts("h1", "h2"))
    assert caught.value.line == 7
    assert caught.value.file.endswith("compose.yaml")
    assert caught.value.field == "services.web.deploy.placement.max_replicas_per_node"
    assert "3 replicas do not fit 1 per host on the 2 app host(s) allowed and up (h1, h2)" in str(
        caught.value
    )


def test_a_constraint_no_host_meets_names_its_line(tmp_path: Path) -> None:
    services = _services(
        tmp_path,
        "  db: {image: d}\n"
        "  web:\n"
        "    image: w\n"
        "    deploy:\n"
        "      placement:\n"
        "        constraints:\n"
        "          - node.labels.zone==c\n",
    )
    with pytest.raises(SpecError) as caught:
        place(services, _hosts(*HOSTS))
    assert caught.value.line == 8
    assert "no app host that is up matches node.labels.zone==c (up: h1, h2, h3)" in str(
        caught.value
    )


def test_no_host_up() -> None:
    # NoAppHostUp: the hosts' state, which the GitOps server waits out (gitops.deferrals)
    with pytest.raises(NoAppHostUp, match="no app host is up"):
        place({"web": Service(name="web", replicas=1)}, [])


def test_bad_constraints_are_file_errors(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  web:\n"
        "    image: w\n"
        "    deploy:\n"
        "      placement:\n"
        "        constraints: [node.labels.zone=a]\n"
        "        preferences: [{spread: node.hostname}]\n"
    )
    with pytest.raises(Exception) as caught:
        load_stack(tmp_path / "compose.yaml", environ={})
    text = str(caught.value)
    where = "services.web.deploy.placement"
    assert f"compose.yaml:6: {where}.constraints[0]: 'node.labels.zone=a' is not a" in text
    assert f"compose.yaml:7: {where}.preferences[0]: must be {{spread: node.labels.NAME}}" in text


def test_the_model_keeps_what_the_file_says(tmp_path: Path) -> None:
    services = _services(
        tmp_path,
        "  web:\n"
        "    image: w\n"
        "    deploy:\n"
        "      replicas: 2\n"
        "      placement:\n"
        "        constraints: ['engine.labels.ssd == true', node.id!=h2]\n"
        "        max_replicas_per_node: 1\n",
    )
    rules = services["web"].placement
    assert rules is not None
    assert [(c.attribute, c.label, c.op, c.value, c.line) for c in rules.constraints] == [
        ("label", "ssd", "==", "true", 7),
        ("hostname", None, "!=", "h2", 7),
    ]
    assert (rules.max_replicas_per_node, rules.max_replicas_line) == (1, 8)
    assert services["web"].replicas == 2


# ---- property-style: random fleets, services and current placements -----------------------


def _random_case(rng: random.Random) -> tuple[dict[str, Service], list[FleetHost]]:
    hosts = [
        FleetHost(name=f"h{i}", address=f"h{i}.test", labels={"zone": rng.choice("ab")})
        for i in range(rng.randint(1, 6))
    ]
    services: dict[str, Service] = {}
    for s in range(rng.randint(1, 4)):
        constraints: tuple[Constraint, ...] = ()
        if rng.random() < 0.3:
            constraints = (
                Constraint(
                    attribute="label",
                    label="zone",
                    op=rng.choice(("==", "!=")),
                    value=rng.choice("ab"),
                    text="node.labels.zone",
                    file="compose.yaml",
                    line=s + 1,
                ),
            )
        rules = ServicePlacement(
            mode="global" if rng.random() < 0.15 else "replicated",
            constraints=constraints,
            max_replicas_per_node=rng.choice((None, 1, 2, 3)),
            file="compose.yaml",
            line=s + 1,
        )
        services[f"s{s}"] = Service(name=f"s{s}", replicas=rng.randint(0, 7), placement=rules)
    return services, hosts


def _replicas_of(result_hosts: dict[str, Counter[str]]) -> list[PlacedReplica]:
    return [
        PlacedReplica(service=service, replica=f"{service}-{host}-{i}", host=host)
        for service, counts in result_hosts.items()
        for host, n in counts.items()
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(200))
def test_random_fleets(seed: int) -> None:
    rng = random.Random(seed)
    services, hosts = _random_case(rng)
    try:
        result = place(services, hosts)
    except (SpecError, SpecErrors):
        # Infeasible: check that it really is.
        assert any(_infeasible(svc, hosts) for svc in services.values())
        return
    assert not any(_infeasible(svc, hosts) for svc in services.values())
    placed = {name: plan.hosts() for name, plan in result.services.items()}
    for name, svc in services.items():
        rules = svc.placement or ServicePlacement()
        allowed = [h.name for h in hosts if rules.allows(h)]
        counts = placed[name]
        assert set(counts) <= set(allowed), "only allowed hosts"
        if rules.mode == "global":
            assert counts == Counter(allowed)
        else:
            assert sum(counts.values()) == svc.replicas
            limit = rules.max_replicas_per_node or svc.replicas
            assert all(n <= limit for n in counts.values())
            # Spread: no allowed host has two more than another that had room.
            if counts:
                assert max(counts.values()) - min(counts.get(h, 0) for h in allowed) <= 1
    # Stable: placing again from the result moves nothing.
    again = place(services, hosts, _replicas_of(placed))
    assert again.unchanged
    # A host that only holds keeps what it has: nothing moves.
    suspect = rng.choice(hosts)
    rest = [h for h in hosts if h is not suspect]
    held = place(services, rest, _replicas_of(placed), holding=[suspect])
    assert held.unchanged
    # Losing a host moves only that host's replicas.
    if len(hosts) > 1:
        lost = rng.choice(hosts)
        rest = [h for h in hosts if h is not lost]
        try:
            after = place(services, rest, _replicas_of(placed))
        except (SpecError, SpecErrors):
            return
        for name, plan in after.services.items():
            assert all(
                r.host == lost.name for r in plan.stop if r.host not in {h.name for h in rest}
            )
            moved = [r for r in plan.stop if r.host != lost.name]
            assert moved == [], f"{name}: replicas on hosts still up moved: {moved}"


def _infeasible(svc: Service, hosts: list[FleetHost]) -> bool:
    rules = svc.placement or ServicePlacement()
    allowed = [h for h in hosts if rules.allows(h)]
    if rules.mode == "global":
        return not allowed
    limit = rules.max_replicas_per_node or svc.replicas
    return len(allowed) * limit < svc.replicas


def test_attributes_the_inventory_lacks_are_warned_and_ignored(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  web:\n"
        "    image: w\n"
        "    deploy:\n"
        "      placement:\n"
        "        constraints: [node.platform.os==linux, node.labels.zone==a]\n"
    )
    loaded = load_compose([tmp_path / "compose.yaml"], environ={})
    rules = loaded.stack.services["web"].placement
    assert rules is not None
    assert [c.text for c in rules.constraints] == ["node.labels.zone==a"]
    assert any(
        "constraints[0]: ignored: Conveyor matches node.hostname, node.id, node.role and "
        "node.labels, not node.platform.os" in w.render()
        for w in loaded.warnings
    )


@pytest.mark.parametrize(
    ("replicas", "current", "expected"),
    [
        (3, ("web-1@h1", "web-2@h2"), "h1:1 h2:1 h3:1"),  # keeps its replica, gets no new one
        (4, ("web-1@h1", "web-2@h2", "web-3@h3"), "h1:2 h2:1 h3:1"),
        (2, ("web-1@h1", "web-2@h2", "web-3@h3"), "h1:1 h3:1"),  # scaled down there first
    ],
    ids=["heal", "scale up", "scale down"],
)
def test_a_host_that_only_holds_keeps_its_replicas_and_takes_none(
    tmp_path: Path, replicas: int, current: tuple[str, ...], expected: str
) -> None:
    services = _services(tmp_path, _svc("web", f"replicas: {replicas}"))
    h1, h2, h3 = _hosts(*HOSTS)
    result = place(services, [h1, h3], _current(*current), holding=[h2])
    assert _shown(result.services["web"].hosts()) == expected


def test_global_on_a_host_that_only_holds(tmp_path: Path) -> None:
    services = _services(tmp_path, _svc("agent", "mode: global"))
    h1, h2, h3 = _hosts(*HOSTS)
    kept = place(services, [h1], _current("agent-1@h2"), holding=[h2, h3]).services["agent"]
    assert (_shown(kept.hosts()), kept.stop) == ("h1:1 h2:1", ())


def test_no_host_takes_new_replicas() -> None:
    (h2,) = _hosts("h2")
    with pytest.raises(NoAppHostUp, match="no app host can take a new replica"):
        place({"web": Service(name="web", replicas=2)}, [], _current("web-1@h2"), holding=[h2])


# ---- misplaced: running replicas a placement change excludes -----------------------------


def _moving(found: dict[str, tuple[object, ...]]) -> dict[str, list[tuple[str, str, int | None]]]:
    return {
        name: [(m.replica.replica, m.reason, m.line) for m in wrong]  # type: ignore[attr-defined]
        for name, wrong in found.items()
    }


def test_a_replica_on_a_host_a_constraint_now_excludes_moves_and_says_why(
    tmp_path: Path,
) -> None:
    services = _services(
        tmp_path,
        "  web:\n    image: web\n    deploy:\n      replicas: 2\n"
        "      placement: {constraints: [node.role==app, node.labels.zone==a]}\n"
        + _svc("api", "replicas: 3"),
    )
    current = _current("web-1@h1", "web-2@h2", "api-1@h2", "api-2@h2", "api-3@h1")
    found = misplaced(services, _hosts(*HOSTS), current)
    # The first constraint the host breaks, at its line; api has no placement: nothing moves.
    assert _moving(found) == {"web": [("web-2", "h2 no longer matches node.labels.zone==a", 6)]}
    # `place` agrees: what misplaced lists is what place stops, and it starts one on zone a.
    planned = place(services, _hosts(*HOSTS), current).services["web"]
    assert [r.replica for r in planned.stop] == ["web-2"] and planned.start == ("h3",)


def test_a_host_that_only_holds_is_checked_too_and_a_host_not_up_is_not(tmp_path: Path) -> None:
    services = _services(
        tmp_path, _svc("web", "replicas: 3, placement: {constraints: [node.labels.zone!=b]}")
    )
    h1, h2, h3 = _hosts(*HOSTS)
    current = _current("web-1@h1", "web-2@h2", "web-3@h3")
    # h2 suspect (holding): its replica still moves; h3 down (not given): not listed.
    found = misplaced(services, [h1], current, holding=[h2])
    assert _moving(found) == {"web": [("web-2", "h2 no longer matches node.labels.zone!=b", 2)]}
    # Unchanged placement: nothing moves.
    assert misplaced(services, [h1, h3], _current("web-1@h1", "web-3@h3")) == {}


def test_replicas_over_a_lowered_limit_move_the_newest_first(tmp_path: Path) -> None:
    services = _services(
        tmp_path,
        "  web:\n    image: web\n    deploy:\n      replicas: 3\n"
        "      placement:\n        max_replicas_per_node: 1\n",
    )
    current = _current("web-1@h1", "web-2@h1", "web-3@h2")  # oldest first
    found = misplaced(services, _hosts(*HOSTS), current)
    assert _moving(found) == {
        "web": [("web-2", "more than 1 per host on h1 (max_replicas_per_node: 1)", 7)]
    }


def test_a_global_service_is_not_listed_its_planner_retires_per_host(tmp_path: Path) -> None:
    services = _services(
        tmp_path, _svc("agent", "mode: global, placement: {constraints: [node.labels.zone==a]}")
    )
    current = _current("agent-1@h1", "agent-2@h2", "agent-3@h3")
    assert misplaced(services, _hosts(*HOSTS), current) == {}
