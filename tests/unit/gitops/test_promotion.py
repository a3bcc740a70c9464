"""Promotion gates (gitops.promotion): which promotions are allowed at all, which gates hold
for given facts, and what the soak gate reads from real rollout records (the deploy engine on
in-memory fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.gitops.promotion import (
    GateFacts,
    failures_since,
    promotion_refusal,
    serving_since,
    unmet_gates,
)
from conveyor.model.environments import ConveyorConfig, EnvironmentSpec, PromotionGates
from tests.unit.gitops.engine_world import World

CONFIG = ConveyorConfig(
    environments={
        "staging": EnvironmentSpec(name="staging", branch="main"),
        "qa": EnvironmentSpec(name="qa", promote_from="staging"),
        "production": EnvironmentSpec(name="production", promote_from="qa"),
    }
)
COMMIT = "c0ffee" * 6 + "abcd"


def facts(**update: object) -> GateFacts:
    base = GateFacts(
        source="staging",
        release=4,
        commit=COMMIT,
        now=1000.0,
        serving_since=400.0,
        pipeline="success",
        pipeline_id=9,
        approved_by="alice",
    )
    return base.model_copy(update=update)


@pytest.mark.parametrize(
    ("env", "source", "expected"),
    [
        ("qa", "staging", None),
        ("production", "qa", None),
        ("production", "staging", "production is promoted from qa, not from staging"),
        ("staging", "qa", "staging follows branch 'main': it is not promoted into"),
        ("qa", "nowhere", "there is no environment 'nowhere' to promote from"),
    ],
)
def test_promotion_goes_only_along_promote_from(
    env: str, source: str, expected: str | None
) -> None:
    refusal = promotion_refusal(CONFIG, env, source)
    if expected is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal.startswith(expected)


def test_every_gate_holding_lets_the_release_through() -> None:
    gates = PromotionGates(soak=600, pipeline_passed=True, approval=True)
    assert unmet_gates(gates, facts()) == []


def test_each_unmet_gate_is_named_with_its_reason() -> None:
    gates = PromotionGates(soak=3600, pipeline_passed=True, approval=True)
    unmet = unmet_gates(gates, facts(pipeline="failed", approved_by=None))
    assert [u.split(":")[0] for u in unmet] == ["soak", "pipeline_passed", "approval"]
    assert "has served 600s of the 3600s required" in unmet[0]
    assert f"pipeline 9 of commit {COMMIT[:12]} failed" in unmet[1]
    assert "nobody approved release 4 of staging" in unmet[2]


def test_gates_not_asked_for_are_not_checked() -> None:
    gates = PromotionGates(soak=0, pipeline_passed=False, approval=False)
    assert unmet_gates(gates, facts(pipeline="failed", approved_by=None)) == []


def test_a_commit_without_a_pipeline_passes_the_pipeline_gate() -> None:
    gates = PromotionGates(pipeline_passed=True)
    assert unmet_gates(gates, facts(pipeline_needed=False, pipeline="failed")) == []
    # a pipeline that selected no job left no record: nothing failed
    assert unmet_gates(gates, facts(pipeline=None, pipeline_id=None)) == []
    assert unmet_gates(gates, facts(pipeline="running"))[0].startswith("pipeline_passed:")


def test_an_unhealthy_or_failing_release_has_not_soaked_even_with_no_soak_time() -> None:
    gates = PromotionGates(soak=0)
    sick = unmet_gates(gates, facts(unhealthy=("web has 1 of 2 replicas running",)))
    assert sick == [
        "soak: release 4 of staging is not healthy now: web has 1 of 2 replicas running"
    ]
    failed = unmet_gates(gates, facts(failures_since=("heal failed",)))
    assert failed == ["soak: release 4 of staging failed since it began serving: heal failed"]


def test_an_unknown_start_fails_a_soak_time_only() -> None:
    assert unmet_gates(PromotionGates(soak=0), facts(serving_since=None)) == []
    (unmet,) = unmet_gates(PromotionGates(soak=5), facts(serving_since=None))
    assert "when release 4 of staging began serving is not known" in unmet


def test_serving_since_is_the_end_of_the_rollout_that_made_the_release_current(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    assert world.deploy("1").status == "succeeded"
    world.bad.add("2")
    failed = world.deploy("2")  # fails its probe, rolled back to release 1
    assert failed.status == "rolled_back"
    rows = world.store.rollouts.latest()
    back = next(r for r in rows if r.kind == "rollback")
    assert serving_since(1, rows) == back.finished_at
    # the failed attempt at release 2 says nothing against release 1
    assert back.finished_at is not None
    assert failures_since(1, back.finished_at, rows) == []
    assert serving_since(2, rows) is None


def test_a_failed_heal_after_the_release_began_serving_counts_against_it(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.deploy("1")
    rows = world.store.rollouts.latest()
    since = serving_since(1, rows)
    assert since is not None
    world.bad.add("1")  # from now on its replicas never become healthy
    world.kill_a_replica()
    healed = world.engine.heal()
    assert healed is not None and healed.status == "failed"
    rows = world.store.rollouts.latest()
    assert failures_since(1, since, rows) == ["heal failed"]
    assert serving_since(1, rows) == since  # a heal does not restart the clock
