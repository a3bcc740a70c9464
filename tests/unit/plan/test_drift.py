"""Heal plans made by the real planner from drifted observations, read back as the drift
they correct (plan.drift.corrections)."""

from __future__ import annotations

import pytest

from conveyor.model.endpoint import Endpoint
from conveyor.model.release import Observed, ObservedReplica
from conveyor.model.stack import UpdateConfig
from conveyor.plan.drift import corrections
from conveyor.plan.rollout import DesiredService, plan_rollout

WEB = DesiredService(
    name="web", spec_hash="h1", replicas=2, update=UpdateConfig(), routed=True, release=3
)


def replica(n: int, **kw: object) -> ObservedReplica:
    fields: dict[str, object] = {
        "replica": f"web-3-{n}",
        "service": "web",
        "container_id": f"c{n}",
        "spec_hash": "h1",
        "release": 3,
        "endpoint": Endpoint.loopback(20000 + n),
        "running": True,
        "router": "ready",
        "started_at": float(n),
    }
    return ObservedReplica.model_validate(fields | kw)


def heal(*replicas: ObservedReplica, **observed: object) -> list[str]:
    seen = Observed.model_validate({"replicas": replicas, "frontends": {"web": 8080}} | observed)
    return corrections(plan_rollout([WEB], seen))


def test_nothing_drifted_nothing_corrected() -> None:
    assert heal(replica(1), replica(2)) == []


@pytest.mark.parametrize(("exit_code", "word"), [(137, "crashed"), (0, "exited")])
def test_a_stopped_replica_is_replaced(exit_code: int, word: str) -> None:
    got = heal(replica(1), replica(2, running=False, exit_code=exit_code))
    assert got == [f"web: replica web-3-2 {word}: replaced"]


def test_a_removed_replica_restores_the_count_and_its_stale_server_goes() -> None:
    got = heal(replica(1), orphans=(("web", "web-3-2"),))
    assert got == [
        "web: HAProxy server web-3-2 removed (no container)",
        "web: replica count restored (1 started)",
    ]


@pytest.mark.parametrize(
    ("change", "was"),
    [
        ({"router": "maint"}, "in maintenance"),
        ({"router": "drain"}, "draining"),
        ({"router": "absent"}, "missing from HAProxy"),
        ({"weight": 10}, "at weight 10"),
        ({"weight": 0}, "at weight 0"),
    ],
)
def test_an_haproxy_server_changed_behind_our_back_is_restored(
    change: dict[str, object], was: str
) -> None:
    assert heal(replica(1), replica(2, **change)) == [
        f"web: HAProxy server web-3-2 restored (it was {was})"
    ]


def test_a_server_at_full_weight_or_of_unknown_weight_is_left_alone() -> None:
    assert heal(replica(1, weight=100), replica(2, weight=None)) == []


def test_a_reweighted_server_is_routed_again_without_waiting_for_its_probe() -> None:
    seen = Observed(replicas=(replica(1), replica(2, weight=10)), frontends={"web": 8080})
    steps = [(s.kind, s.replica, s.reason) for s in plan_rollout([WEB], seen).steps]
    assert steps == [("route", "web-3-2", "adopt: weight 10")]


def test_a_changed_or_unhealthy_container_is_replaced() -> None:
    assert heal(replica(1), replica(2, spec_hash="other")) == [
        "web: replica web-3-2 changed: replaced"
    ]
    assert heal(replica(1), replica(2, health="unhealthy")) == [
        "web: replica web-3-2 unhealthy: replaced"
    ]
    assert heal(replica(1), replica(2, paused=True)) == ["web: replica web-3-2 paused: replaced"]


def test_an_extra_replica_is_removed() -> None:
    assert heal(replica(1), replica(2), replica(3)) == ["web: extra replica web-3-3 removed"]


def test_haproxy_gone_is_its_frontends_restored() -> None:
    got = heal(replica(1), replica(2), frontends={})
    assert got == ["HAProxy frontends restored"]
