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


def test_a_commit_run_many_times_keeps_its_newest_pipelines() -> None:
    from conveyor.app.views import TimelineJob, TimelinePipeline, TimelineView
    from conveyor.server.dashboard.pages_timeline import newest_pipelines

    def pipeline(i: int) -> TimelinePipeline:
        job = TimelineJob(
            id=100 + i, name="unit", stage="test", status="success", started_at=float(i),
            finished_at=i + 1.0, duration=1.0, environment=None,
        )  # fmt: skip
        return TimelinePipeline(
            id=i, project="p", ref="main", status="success", started_at=float(i),
            finished_at=i + 1.0, duration=1.0, jobs=[job],
        )  # fmt: skip

    pipelines = [pipeline(i) for i in range(1, 6)]
    entries = [
        TimelineEntry(
            at=float(p.id), duration=1.0, what=what, project="p", id=i, title="", status="success"
        )
        for p in pipelines
        for what, i in (("pipeline", p.id), ("job", p.jobs[0].id))
    ] + [entry("rollout", 9.0, 1.0, "succeeded")]
    view = TimelineView(commit="c", subject="s", pipelines=pipelines, releases=[], entries=entries)
    kept, hidden = newest_pipelines(view, 2)
    assert hidden == 3 and [p.id for p in kept.pipelines] == [4, 5]
    assert [(e.what, e.id) for e in kept.entries] == [
        ("pipeline", 4), ("job", 104), ("pipeline", 5), ("job", 105), ("rollout", 1),
    ]  # fmt: skip
    assert newest_pipelines(view, 5) == (view, 0)
