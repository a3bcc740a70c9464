"""Whether a release may move from one environment into the next (pure).

`promote(env, source)` is allowed only along `promote_from`; then every gate of the target
environment's `gates` must hold for the source environment's serving release:

- soak: the release has served, healthy, for `soak` seconds: since the rollout that made it
  current finished, with no failed heal and no failed rollout to it since, and every service
  has its replicas running and none unhealthy now;
- pipeline_passed: the newest pipeline of its commit succeeded (a commit without
  `.gitlab-ci.yml`, or whose pipeline selected no job, has none and passes);
- approval: someone approved this release for this environment through the API.

The controller gathers the facts (`GateFacts`) from the source project's records and the
running containers; `unmet_gates` names every gate that does not hold, each with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from conveyor.model.environments import ConveyorConfig, PromotionGates
from conveyor.model.frozen import Frozen

# Rollouts after which the release they reached serves from then on (heals keep it serving).
_MOVES = frozenset({"up", "deploy", "rollback", "recover"})
_BAD = frozenset({"failed", "rolled_back", "paused", "interrupted"})


class RolloutFacts(Protocol):
    """What the soak gate reads of a rollout (store.rollouts.RolloutRow has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def to_release(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def finished_at(self) -> float | None: ...


class GateFacts(Frozen):
    """What is known of the source environment's serving release when a promotion is asked."""

    source: str  # the source environment's name
    release: int  # its serving release
    commit: str
    now: float
    serving_since: float | None  # when that release began to serve (None: unknown)
    failures_since: tuple[str, ...] = ()  # failed heals / rollouts to it since then
    unhealthy: tuple[str, ...] = ()  # services short of replicas or with unhealthy ones now
    pipeline_needed: bool = True  # the commit has a .gitlab-ci.yml
    pipeline: str | None = None  # status of the newest pipeline of the commit (None: none)
    pipeline_id: int | None = None
    approved_by: str | None = None  # who approved the release for the target (None: nobody)


def promotion_refusal(config: ConveyorConfig, env: str, source: str) -> str | None:
    """Why `env` cannot be promoted into from `source` at all, or None."""
    target = config.environments[env]
    if source not in config.environments:
        return f"there is no environment {source!r} to promote from"
    if target.promote_from is None:
        return (
            f"{env} follows branch {target.branch!r}: it is not promoted into "
            "(conveyor.yaml gives it no promote_from)"
        )
    if target.promote_from != source:
        return f"{env} is promoted from {target.promote_from}, not from {source}"
    return None


def unmet_gates(gates: PromotionGates, facts: GateFacts) -> list[str]:
    """Every gate of `gates` that `facts` do not satisfy, one phrase each (empty: go)."""
    unmet: list[str] = []
    what = f"release {facts.release} of {facts.source}"
    soaked = _soak(gates.soak, facts, what)
    if soaked:
        unmet.append(f"soak: {soaked}")
    if gates.pipeline_passed and facts.pipeline_needed and facts.pipeline not in (None, "success"):
        unmet.append(
            f"pipeline_passed: pipeline {facts.pipeline_id} of commit {facts.commit[:12]} "
            f"{facts.pipeline}"
        )
    if gates.approval and facts.approved_by is None:
        unmet.append(f"approval: nobody approved {what} (POST .../approve {{release: N}})")
    return unmet


def _soak(soak: float, facts: GateFacts, what: str) -> str:
    if facts.unhealthy:
        return f"{what} is not healthy now: {'; '.join(facts.unhealthy)}"
    if facts.failures_since:
        return f"{what} failed since it began serving: {'; '.join(facts.failures_since)}"
    if soak <= 0:
        return ""
    if facts.serving_since is None:
        return f"when {what} began serving is not known"
    served = max(0.0, facts.now - facts.serving_since)
    if served < soak:
        return f"{what} has served {_secs(served)} of the {_secs(soak)} required"
    return ""


def serving_since(release: int, rollouts: Iterable[RolloutFacts]) -> float | None:
    """When `release` last began to serve: the end of the newest succeeded rollout to it that
    moved the environment (not a heal)."""
    ends = [
        r.finished_at
        for r in rollouts
        if r.to_release == release
        and r.kind in _MOVES
        and r.status == "succeeded"
        and r.finished_at is not None
    ]
    return max(ends) if ends else None


def failures_since(release: int, since: float, rollouts: Iterable[RolloutFacts]) -> list[str]:
    """Heals that failed, and rollouts to `release` that failed, after `since`. Failed
    rollouts to another release (a newer one that was rolled back) say nothing against it."""
    found: list[str] = []
    for r in rollouts:
        if r.status not in _BAD or r.started_at < since:
            continue
        if r.kind == "heal" or r.to_release == release:
            found.append(f"{r.kind} {r.status}")
    return found


def _secs(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"
