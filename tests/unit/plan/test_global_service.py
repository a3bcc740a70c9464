"""plan.global_service and plan.fleet_assign.global_hosts: `deploy.mode: global` on a fleet is
one replica on every app host that is up and allowed. A fresh start puts one on each host, a
rolling update replaces each host's replica on that host (start-first or stop-first), a host
that is down gets nothing re-placed elsewhere, a host back gets one, a host that leaves (or a
constraint that now excludes it) loses it, and a suspect host is left alone. Plans are carried
out on an in-memory fleet (`carry_out`) to check what a user would see: replicas per host
while the plan runs and after it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conveyor.errors import SpecError
from conveyor.model.endpoint import Endpoint
from conveyor.model.fleet import FleetHost
from conveyor.model.release import Observed, ObservedReplica, Release, ServiceRelease
from conveyor.model.stack import Service, UpdateConfig
from conveyor.plan.actions import Plan, Step
from conveyor.plan.fleet_assign import assign_hosts, global_hosts
from conveyor.plan.rollout import DesiredService, GlobalHosts, desired_services, plan_rollout
from conveyor.spec.compose import load_stack

HOSTS = [FleetHost(name=n, address=f"{n}.test", labels={"zone": z}) for n, z in
         (("h1", "a"), ("h2", "b"), ("h3", "a"))]  # fmt: skip
ALL = ("h1", "h2", "h3")


def web(
    hosts: tuple[str, ...] = ALL,
    holding: tuple[str, ...] = (),
    spec: str = "new",
    release: int = 2,
    **update: object,
) -> DesiredService:
    return DesiredService(
        name="web",
        spec_hash=spec,
        replicas=len(hosts) + len(holding),
        update=UpdateConfig(**update),  # type: ignore[arg-type]
        routed=True,
        release=release,
        hosts=hosts,
        holding=holding,
    )


def observed(*written: str) -> Observed:
    """ "web-1-1@h2" -> a running, routed replica of web on h2, of spec "old" (release 1) or
    "new" (release 2, from its name)."""
    replicas = []
    for i, item in enumerate(written):
        replica, host = item.split("@")
        release = int(replica.split("-")[1])
        replicas.append(
            ObservedReplica(
                replica=replica,
                service="web",
                container_id=f"c{i}",
                spec_hash="new" if release == 2 else "old",
                release=release,
                endpoint=Endpoint(host=f"{host}.test", port=20000 + i),
                running=True,
                router="ready",
                started_at=float(i),
                host=host,
            )
        )
    return Observed(replicas=tuple(replicas), frontends={"web": 18000})


def plan(svc: DesiredService, obs: Observed) -> Plan:
    return plan_rollout([svc], obs, frontends=["web"])


def short(step: Step) -> str:
    on = f"@{step.host}" if step.host else ""
    return f"{step.kind} {step.replica}{on}".rstrip()


def carry_out(p: Plan, obs: Observed) -> tuple[Observed, int]:
    """`obs` after `p`, and the most replicas one host ran at any moment while it ran."""
    running = {r.replica: r for r in obs.replicas}
    most = 0
    for step in p.steps:
        if step.kind == "start":
            assert step.host, f"{step.replica} starts on no host"
            running[step.replica] = ObservedReplica(
                replica=step.replica,
                service=step.service,
                container_id=f"n-{step.replica}",
                spec_hash="new",
                release=2,
                endpoint=Endpoint(host=f"{step.host}.test", port=30000),
                running=True,
                router="ready",
                started_at=100.0 + len(running),
                host=step.host,
            )
        elif step.kind in ("stop", "remove"):
            running.pop(step.replica)
        per_host = Counter(r.host for r in running.values())
        most = max(most, *per_host.values(), 0)
    return obs.model_copy(update={"replicas": tuple(running.values())}), most


def per_host(obs: Observed) -> Counter[str]:
    return Counter(r.host for r in obs.replicas)


def test_a_fresh_start_puts_one_replica_on_every_host_at_once() -> None:
    p = plan(web(), observed())
    assert [short(s) for s in p.steps if s.kind == "start"] == [
        "start web-2-1@h1",
        "start web-2-2@h2",
        "start web-2-3@h3",
    ]
    assert {s.batch for s in p.steps} == {0}  # nothing replaced: all at once
    after, _ = carry_out(p, observed())
    assert per_host(after) == Counter(ALL)
    assert plan(web(), after).empty


@pytest.mark.parametrize(("order", "most"), [("start-first", 2), ("stop-first", 1)])
def test_a_rolling_update_replaces_each_hosts_replica_on_that_host(order: str, most: int) -> None:
    """The old replicas were started in another order than the inventory's: each new one
    still goes where the one it replaces ran."""
    before = observed("web-1-1@h3", "web-1-2@h1", "web-1-3@h2")
    p = plan(web(order=order), before)
    by_batch: dict[int, list[str]] = {}
    for s in p.steps:
        if s.kind in ("start", "stop"):
            by_batch.setdefault(s.batch, []).append(short(s))
    first, second = ("stop web-1-2", "start web-2-1@h1")
    if order == "start-first":
        first, second = second, first
    assert by_batch[1] == [first, second]  # h1's, in the inventory's order
    assert [set(b) for b in by_batch.values()] == [
        {"start web-2-1@h1", "stop web-1-2"},
        {"start web-2-2@h2", "stop web-1-3"},
        {"start web-2-3@h3", "stop web-1-1"},
    ]
    after, seen_most = carry_out(p, before)
    assert seen_most == most  # start-first: two on a host only while its replica is replaced
    assert per_host(after) == Counter(ALL)
    assert {r.spec_hash for r in after.replicas} == {"new"}
    assert plan(web(order=order), after).empty


def test_parallelism_replaces_that_many_hosts_per_batch_with_the_delay_between() -> None:
    before = observed("web-1-1@h1", "web-1-2@h2", "web-1-3@h3")
    p = plan(web(parallelism=2, delay=5.0, monitor=3.0), before)
    kinds = [(s.kind, s.batch, s.host) for s in p.steps if s.kind in ("start", "sleep", "monitor")]
    assert kinds == [
        ("start", 1, "h1"),
        ("start", 1, "h2"),
        ("sleep", 0, ""),
        ("start", 2, "h3"),
        ("monitor", 2, ""),
    ]
    assert per_host(carry_out(p, before)[0]) == Counter(ALL)


def test_a_host_that_is_down_gets_nothing_re_placed_and_one_back_gets_its_replica() -> None:
    # h2 is down: not among the hosts, its replica not observed. Nothing to do.
    up = observed("web-2-1@h1", "web-2-3@h3")
    assert plan(web(hosts=("h1", "h3")), up).empty
    # A rolling update while it is down replaces the two that run, and starts none for h2.
    old = observed("web-1-1@h1", "web-1-3@h3")
    p = plan(web(hosts=("h1", "h3")), old)
    assert sorted(s.host for s in p.steps if s.kind == "start") == ["h1", "h3"]
    # h2 is back (its stale containers removed by the runtime): it gets one, the rest stay.
    p = plan(web(), up)
    assert [short(s) for s in p.steps if s.kind in ("start", "stop")] == ["start web-2-2@h2"]


def test_a_host_that_leaves_or_that_a_constraint_now_excludes_loses_its_replica() -> None:
    running = observed("web-2-1@h1", "web-2-2@h2", "web-2-3@h3")
    p = plan(web(hosts=("h1", "h3")), running)
    assert [short(s) for s in p.steps] == ["drain web-2-2", "unroute web-2-2", "stop web-2-2"]
    assert p.steps[0].reason == "placement excludes h2"
    # An old replica on it is not replaced there either.
    p = plan(web(hosts=("h1", "h3")), observed("web-1-1@h1", "web-1-2@h2", "web-1-3@h3"))
    after, _ = carry_out(p, observed("web-1-1@h1", "web-1-2@h2", "web-1-3@h3"))
    assert per_host(after) == Counter({"h1": 1, "h3": 1})


def test_a_suspect_host_keeps_its_old_replica_and_gets_no_new_one() -> None:
    before = observed("web-1-1@h1", "web-1-2@h2", "web-1-3@h3")
    p = plan(web(hosts=("h1", "h3"), holding=("h2",)), before)
    touched = {s.replica for s in p.steps if s.replica}
    assert "web-1-2" not in touched
    assert sorted(s.host for s in p.steps if s.kind == "start") == ["h1", "h3"]


def test_an_interrupted_rollout_is_finished_without_touching_a_host_already_done() -> None:
    """A crash left h1 with its new replica beside its old one (start-first, before the old
    one drained): the old one on h1 goes, h2 and h3 are replaced on their hosts."""
    before = observed("web-1-1@h1", "web-1-2@h2", "web-1-3@h3", "web-2-1@h1")
    p = plan(web(), before)
    stops = [s for s in p.steps if s.kind == "stop"]
    assert [(s.replica, s.batch) for s in stops] == [("web-1-1", 1), ("web-1-2", 2), ("web-1-3", 3)]
    assert [short(s) for s in p.steps if s.kind == "start"] == [
        "start web-2-2@h2",
        "start web-2-3@h3",
    ]
    after, _ = carry_out(p, before)
    assert per_host(after) == Counter(ALL)
    assert "web-2-1" in {r.replica for r in after.replicas}  # h1's new one stayed


def test_two_replicas_of_the_spec_on_one_host_become_one() -> None:
    p = plan(web(), observed("web-2-1@h1", "web-2-2@h1", "web-2-3@h2", "web-2-4@h3"))
    assert [short(s) for s in p.steps if s.kind in ("start", "stop")] == ["stop web-2-2"]
    assert p.steps[0].reason == "scale down"


def _services(tmp_path: Path, body: str) -> dict[str, Service]:
    (tmp_path / "compose.yaml").write_text("services:\n" + body)
    return load_stack(tmp_path / "compose.yaml", environ={}).services


GLOBAL_IN_ZONE_A = (
    "  web:\n    image: web\n    deploy:\n      mode: global\n"
    "      placement: {constraints: [node.labels.zone==a]}\n"
    "  db: {image: db}\n"
)


def test_global_hosts_are_the_allowed_hosts_that_are_up(tmp_path: Path) -> None:
    services = _services(tmp_path, GLOBAL_IN_ZONE_A)
    assert global_hosts(services, Observed(), HOSTS) == {"web": GlobalHosts(hosts=("h1", "h3"))}
    # h3 suspect with a replica: it keeps it; h1 down: not among the hosts.
    obs = observed("web-2-1@h3")
    assert global_hosts(services, obs, HOSTS[1:2], HOSTS[2:]) == {
        "web": GlobalHosts(hosts=(), holding=("h3",))
    }
    # suspect without a replica: none is started there.
    only = global_hosts(services, Observed(), HOSTS[:2], HOSTS[2:])
    assert only == {"web": GlobalHosts(hosts=("h1",))}


def test_a_constraint_no_host_that_is_up_meets_names_its_line(tmp_path: Path) -> None:
    services = _services(tmp_path, GLOBAL_IN_ZONE_A)
    with pytest.raises(SpecError) as caught:
        global_hosts(services, Observed(), HOSTS[1:2])
    assert caught.value.line == 6 and "node.labels.zone==a" in str(caught.value)


def test_the_count_is_the_hosts_on_a_fleet_and_one_on_one_host(tmp_path: Path) -> None:
    services = _services(tmp_path, GLOBAL_IN_ZONE_A)
    stack = load_stack(tmp_path / "compose.yaml", environ={})
    release = Release(
        number=2,
        project=stack.project,
        services={
            n: ServiceRelease(service=s, image_id=f"sha256:{n}", image_ref=n)
            for n, s in services.items()
        },
        stack=stack,
    )
    one_host = {d.name: (d.replicas, d.hosts) for d in desired_services(release)}
    assert one_host == {"web": (1, None), "db": (1, None)}
    fleet = desired_services(release, per_host=global_hosts(services, Observed(), HOSTS))
    assert {d.name: (d.replicas, d.hosts) for d in fleet} == {
        "web": (2, ("h1", "h3")),
        "db": (1, None),
    }
    # The engine's placer: the global starts keep their hosts, the others are placed.
    p = plan_rollout(fleet, Observed())
    placed = assign_hosts(p, services, Observed(), HOSTS)
    starts = [(s.service, s.host) for s in placed.steps if s.kind == "start"]
    assert sorted(h for s, h in starts if s == "web") == ["h1", "h3"]
    assert [s for s, h in starts if s == "db" and h in ALL] == ["db"]
