"""DORA metrics over hand-built rollout records: each metric, what counts as a deployment,
an empty history, nothing but failures, restores and recoveries."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from conveyor.model.dora import DAY, RolloutRecord, dora, percentile

NOW = 1_700_000_000.0
HOUR = 3600.0


class History:
    """Rollouts in id order; each deploy goes to a new release."""

    def __init__(self) -> None:
        self.records: list[RolloutRecord] = []
        self._ids = count(1)
        self.release = 0

    def add(self, **fields: Any) -> RolloutRecord:
        r = RolloutRecord(id=next(self._ids), **fields)
        self.records.append(r)
        return r

    def deploy(
        self,
        at: float,
        took: float = 60.0,
        status: str = "succeeded",
        commit_age: float | None = None,
        source: str = "git",
        kind: str = "deploy",
    ) -> RolloutRecord:
        prev, self.release = self.release, self.release + 1
        return self.add(
            kind=kind,
            status=status,
            started_at=at,
            finished_at=at + took,
            from_release=prev or None,
            to_release=self.release,
            commit="c" * 40 if commit_age is not None else None,
            commit_time=at - commit_age if commit_age is not None else None,
            commit_time_source=source if commit_age is not None else None,
        )

    def rollback(self, at: float, took: float = 30.0, status: str = "succeeded") -> RolloutRecord:
        return self.add(
            kind="rollback",
            status=status,
            started_at=at,
            finished_at=at + took,
            from_release=self.release,
            to_release=self.release - 1,
        )


def test_empty_history() -> None:
    m = dora([], now=NOW)
    assert (m.deployments, m.successful, m.failed, m.unfinished) == (0, 0, 0, 0)
    assert (m.per_day, m.per_week) == (0.0, 0.0)
    assert m.change_failure_rate is None
    assert m.lead_time.count == 0 and m.lead_time.median is None and m.lead_time.p90 is None
    assert m.time_to_restore.count == 0 and m.unrestored == 0
    assert (m.since, m.until, m.days) == (NOW - 30 * DAY, NOW, 30.0)


def test_deployment_frequency_counts_successful_deploys_in_the_window() -> None:
    h = History()
    h.deploy(NOW - 40 * DAY)  # before the window
    for day in range(1, 7):
        h.deploy(NOW - day * DAY)
    h.rollback(NOW - 0.5 * DAY)  # not a deployment
    h.add(kind="heal", status="succeeded", started_at=NOW - 1, finished_at=NOW - 1,
          from_release=6, to_release=6)  # fmt: skip
    h.add(kind="up", status="succeeded", started_at=NOW - 2, finished_at=NOW - 1,
          from_release=6, to_release=6)  # fmt: skip  # the same release again: no change
    m = dora(h.records, now=NOW)
    assert (m.deployments, m.successful) == (6, 6)
    assert m.per_day == pytest.approx(6 / 30)
    assert m.per_week == pytest.approx(6 / 30 * 7)
    weekly = dora(h.records, now=NOW, window=7 * DAY)
    assert weekly.successful == 6 and weekly.per_week == pytest.approx(6.0)


def test_the_first_up_is_a_deployment() -> None:
    h = History()
    h.deploy(NOW - HOUR, kind="up")
    assert dora(h.records, now=NOW).successful == 1


def test_lead_time_median_and_p90_from_commit_to_serving() -> None:
    h = History()
    # commit ages at rollout start; each rollout takes 60 s more to serve
    for i, age in enumerate([0, 60, 120, 180, 3540]):
        h.deploy(NOW - (i + 1) * HOUR, commit_age=age, source="git" if i < 4 else "release")
    h.deploy(NOW - 10 * HOUR)  # no commit time at all: not in the lead time
    m = dora(h.records, now=NOW)
    assert m.lead_time.count == 5
    assert m.lead_time.median == 180.0  # 60, 120, 180, 240, 3600
    assert m.lead_time.p90 == 3600.0  # nearest rank: the 5th of 5
    assert m.commit_times == {"git": 4, "release": 1}
    assert [d.lead_time for d in m.records][:2] == [60.0, 120.0]


def test_change_failure_rate() -> None:
    h = History()
    for i in range(7):
        h.deploy(NOW - (i + 10) * HOUR)
    h.deploy(NOW - 5 * HOUR, status="rolled_back")
    h.deploy(NOW - 4 * HOUR, status="failed")
    h.deploy(NOW - 3 * HOUR, status="paused")
    m = dora(h.records, now=NOW)
    assert (m.deployments, m.successful, m.failed) == (10, 7, 3)
    assert m.change_failure_rate == pytest.approx(0.3)
    assert m.per_day == pytest.approx(7 / 30)  # failures are not deployments that reached users


def test_nothing_but_failures() -> None:
    h = History()
    for i in range(3):
        h.deploy(NOW - (i + 1) * HOUR, status="failed", commit_age=60)
    m = dora(h.records, now=NOW)
    assert (m.successful, m.failed, m.change_failure_rate) == (0, 3, 1.0)
    assert m.per_day == 0.0 and m.lead_time.count == 0
    assert m.unrestored == 3 and m.time_to_restore.count == 0
    assert all(d.restored_at is None for d in m.records)


def test_time_to_restore_runs_to_the_next_successful_rollout() -> None:
    h = History()
    h.deploy(NOW - 10 * HOUR)
    # an automatic rollback: the failed rollout started at T, its rollback ended 300 s later
    bad = h.deploy(NOW - 9 * HOUR, took=200, status="rolled_back")
    back = h.rollback(NOW - 9 * HOUR + 200, took=100)
    # a failed deploy nothing rolled back: restored by the next good deploy, 2 h later
    failed = h.deploy(NOW - 5 * HOUR, status="failed")
    h.add(kind="heal", status="succeeded", started_at=NOW - 4 * HOUR,
          finished_at=NOW - 4 * HOUR + 5, from_release=1, to_release=1)  # fmt: skip  # no fix
    fix = h.deploy(NOW - 3 * HOUR, took=60)
    last = h.deploy(NOW - HOUR, status="failed")  # not restored yet
    m = dora(h.records, now=NOW)
    by_id = {d.rollout: d for d in m.records}
    assert (by_id[bad.id].restored_by, by_id[bad.id].time_to_restore) == (back.id, 300.0)
    assert by_id[failed.id].restored_by == fix.id
    assert by_id[failed.id].time_to_restore == 2 * HOUR + 60
    assert by_id[last.id].restored_at is None
    assert m.time_to_restore.count == 2
    assert m.time_to_restore.median == (300.0 + 2 * HOUR + 60) / 2
    assert m.unrestored == 1


def test_an_interrupted_deploy_counts_with_its_recovery() -> None:
    h = History()
    cut = h.deploy(NOW - 5 * HOUR, took=10, status="interrupted", commit_age=50)
    h.add(kind="recover", status="succeeded", started_at=NOW - 4 * HOUR,
          finished_at=NOW - 4 * HOUR + 40, to_release=cut.to_release, recovers=cut.id)  # fmt: skip
    never = h.deploy(NOW - 2 * HOUR, status="interrupted")
    h.add(kind="deploy", status="running", started_at=NOW - 60, to_release=99, from_release=3)
    m = dora(h.records, now=NOW)
    (d,) = m.records
    assert (d.rollout, d.outcome, d.finished_at) == (cut.id, "succeeded", NOW - 4 * HOUR + 40)
    assert d.lead_time == HOUR + 40 + 50
    assert m.unfinished == 2 and never.id not in {r.rollout for r in m.records}


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.9) is None
    assert percentile([5.0], 0.9) == 5.0
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0.9) == 9.0
    assert percentile(values, 0.5) == 5.0
    assert percentile(list(reversed(values)), 1.0) == 10.0
