"""The commit timeline's picture: bars on one time axis."""

from __future__ import annotations

from typing import Literal

from conveyor.app.views import TimelineEntry
from conveyor.server.dashboard.pages_timeline import CHART_W, LABEL_W, gantt


def entry(
    what: Literal["pipeline", "job", "release", "rollout"],
    at: float,
    duration: float | None,
    status: str,
) -> TimelineEntry:
    return TimelineEntry(
        at=at, duration=duration, what=what, project="p", id=1, title=what, status=status
    )


def test_bars_share_one_axis_from_the_first_start_to_the_last_end() -> None:
    g = gantt(
        [
            entry("pipeline", 100.0, 10.0, "success"),
            entry("job", 100.0, 4.0, "success"),
            entry("release", 110.0, None, "created"),
            entry("rollout", 110.0, 10.0, "succeeded"),
        ],
        now=500.0,
    )
    assert g.span == 20.0
    pipeline, job, release, rollout = g.bars
    assert pipeline.x == LABEL_W and pipeline.w == CHART_W / 2
    assert job.w == CHART_W * 4 / 20
    assert rollout.x == LABEL_W + CHART_W / 2
    assert release.w == 3.0 and not release.running  # an instant, not a run
    assert [b.y for b in g.bars] == sorted(b.y for b in g.bars)


def test_what_still_runs_reaches_now() -> None:
    g = gantt(
        [entry("pipeline", 100.0, None, "running"), entry("job", 102.0, 1.0, "success")], 110.0
    )
    assert g.span == 10.0
    assert g.bars[0].running and g.bars[0].w == CHART_W
    assert not g.bars[1].running


def test_nothing_yet() -> None:
    assert gantt([], 0.0).bars == []
