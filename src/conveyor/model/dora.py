"""DORA's four key metrics from Conveyor's own rollout records (pure).

What counts (docs/dora.md says the same to users):

- A **deployment** is a rollout of kind `up` or `deploy` that moves the environment to a
  different release (`to_release != from_release`): a new change reaching it. Rollbacks, heals,
  recoveries and `down` are not deployments. A rollout a crash interrupted counts with the
  outcome of the recovery that finished it.
- It **succeeded** when the rollout did; it **failed** when it ended `failed`, `rolled_back`
  or `paused` (the change did not reach every replica as planned). One still running, or
  interrupted and never recovered, is *unfinished* and left out of the rates.
- **Deployment frequency**: successful deployments finished in the window, per day and per
  week.
- **Lead time for changes**: for each successful deployment, from its commit's time to the
  rollout's end (serving). Median and 90th percentile (nearest rank).
- **Change failure rate**: failed deployments / finished deployments.
- **Time to restore**: for each failed deployment, from the start of the failed rollout to the
  end of the next successful rollout that changes what runs (a deploy, an `up`, a rollback — an
  automatic one included — or a recovery). Median. Failures not restored yet are counted apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

from conveyor.model.frozen import Frozen
from conveyor.model.release import RolloutKind, RolloutStatus

DAY = 86_400.0
DEFAULT_WINDOW = 30 * DAY

CommitTimeSource = Literal["git", "release"]
DeploymentOutcome = Literal["succeeded", "failed", "rolled_back", "paused"]

_DEPLOYING: frozenset[str] = frozenset({"up", "deploy"})
_RESTORING: frozenset[str] = frozenset({"up", "deploy", "rollback", "recover"})
# A finished deployment's rollout status is its outcome; any other status is not finished.
_OUTCOMES: dict[str, DeploymentOutcome] = {
    s: s for s in ("succeeded", "failed", "rolled_back", "paused")
}


class RolloutRecord(Frozen):
    """One rollout as the state database has it, with its release's commit and that commit's
    time (from git, or the release's creation time when git cannot say)."""

    id: int
    kind: RolloutKind
    status: RolloutStatus
    started_at: float
    finished_at: float | None = None
    from_release: int | None = None
    to_release: int | None = None
    recovers: int | None = None  # a recovery: the interrupted rollout it finishes
    commit: str | None = None
    commit_time: float | None = None
    commit_time_source: CommitTimeSource | None = None


class Deployment(Frozen):
    rollout: int
    release: int | None
    commit: str | None
    started_at: float
    finished_at: float
    outcome: DeploymentOutcome
    lead_time: float | None = None  # seconds, successful deployments with a commit time
    commit_time_source: CommitTimeSource | None = None
    restored_at: float | None = None  # failed deployments: when service was restored
    restored_by: int | None = None  # the rollout that restored it
    time_to_restore: float | None = None


class Summary(Frozen):
    """A distribution of durations in seconds."""

    count: int
    median: float | None = None
    p90: float | None = None


class DoraMetrics(Frozen):
    since: float  # the window, as UNIX times
    until: float
    days: float
    deployments: int  # finished in the window (successful + failed)
    successful: int
    failed: int
    unfinished: int  # started in the window, still running or never recovered
    per_day: float
    per_week: float
    lead_time: Summary
    commit_times: dict[CommitTimeSource, int]  # where lead times' commit times came from
    change_failure_rate: float | None  # None: no finished deployment in the window
    time_to_restore: Summary
    unrestored: int  # failed deployments nothing has restored yet
    records: tuple[Deployment, ...] = ()


def dora(
    records: Sequence[RolloutRecord], now: float, window: float = DEFAULT_WINDOW
) -> DoraMetrics:
    """The four metrics over the `window` seconds before `now`."""
    since = now - window
    ordered = sorted(records, key=lambda r: r.id)
    finished, unfinished = _deployments(ordered, since, now)
    restored = [_restore(d, ordered) for d in finished]
    ok = [d for d in restored if d.outcome == "succeeded"]
    bad = [d for d in restored if d.outcome != "succeeded"]
    leads = [d.lead_time for d in ok if d.lead_time is not None]
    restores = [d.time_to_restore for d in bad if d.time_to_restore is not None]
    sources: dict[CommitTimeSource, int] = {"git": 0, "release": 0}
    for d in ok:
        if d.lead_time is not None and d.commit_time_source is not None:
            sources[d.commit_time_source] += 1
    days = window / DAY
    return DoraMetrics(
        since=since,
        until=now,
        days=days,
        deployments=len(restored),
        successful=len(ok),
        failed=len(bad),
        unfinished=unfinished,
        per_day=len(ok) / days if days else 0.0,
        per_week=len(ok) / days * 7 if days else 0.0,
        lead_time=summary(leads),
        commit_times=sources,
        change_failure_rate=len(bad) / len(restored) if restored else None,
        time_to_restore=summary(restores, p90=False),
        unrestored=sum(1 for d in bad if d.restored_at is None),
        records=tuple(restored),
    )


def summary(values: Sequence[float], p90: bool = True) -> Summary:
    if not values:
        return Summary(count=0)
    return Summary(
        count=len(values),
        median=statistics.median(values),
        p90=percentile(values, 0.9) if p90 else None,
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `q` of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _deployments(
    ordered: Sequence[RolloutRecord], since: float, until: float
) -> tuple[list[Deployment], int]:
    """Deployments finished in [since, until], and how many started there but never ended."""
    recovered_by = {r.recovers: r for r in ordered if r.recovers is not None}
    out: list[Deployment] = []
    unfinished = 0
    for r in ordered:
        if r.kind not in _DEPLOYING or r.to_release is None or r.to_release == r.from_release:
            continue
        status, finished_at = _settled(r, recovered_by)
        outcome = _OUTCOMES.get(status)
        if outcome is None or finished_at is None:
            if since <= r.started_at <= until:
                unfinished += 1
            continue
        if not since <= finished_at <= until:
            continue
        lead = None
        if outcome == "succeeded" and r.commit_time is not None:
            lead = max(0.0, finished_at - r.commit_time)  # clocks may disagree a little
        out.append(
            Deployment(
                rollout=r.id,
                release=r.to_release,
                commit=r.commit,
                started_at=r.started_at,
                finished_at=finished_at,
                outcome=outcome,
                lead_time=lead,
                commit_time_source=r.commit_time_source if lead is not None else None,
            )
        )
    return out, unfinished


def _settled(
    r: RolloutRecord, recovered_by: dict[int, RolloutRecord]
) -> tuple[RolloutStatus, float | None]:
    """How `r` ended: its own status, or for an interrupted one, its recovery's (a chain of
    recoveries, each interrupted in turn, ends with the last)."""
    seen: set[int] = set()
    while r.status == "interrupted" and r.id in recovered_by and r.id not in seen:
        seen.add(r.id)
        r = recovered_by[r.id]
    return r.status, r.finished_at


def _restore(d: Deployment, ordered: Sequence[RolloutRecord]) -> Deployment:
    if d.outcome == "succeeded":
        return d
    fix = next(
        (
            r
            for r in ordered
            if r.id > d.rollout
            and r.kind in _RESTORING
            and r.status == "succeeded"
            and r.finished_at is not None
        ),
        None,
    )
    if fix is None or fix.finished_at is None:
        return d
    return d.model_copy(
        update={
            "restored_at": fix.finished_at,
            "restored_by": fix.id,
            "time_to_restore": max(0.0, fix.finished_at - d.started_at),
        }
    )
