"""The timeline of a commit (issue 11 item 3): commit -> pipeline (stages and jobs with their
durations) -> release -> rollout and its steps -> verdict, as one picture (bars on a shared
time axis, drawn in SVG) and as a list, live while it runs (the page's region reloads on the
event stream's `changed`). The facts come from `conveyor timeline REF`'s use case
(app/timeline.py) through the backend's `commit_timeline`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.app.server_views import CommitView
from conveyor.app.views import RolloutView, TimelineEntry, TimelineView
from conveyor.errors import ConveyorError, NotFound
from conveyor.model.events import Event
from conveyor.server.api import ApiState
from conveyor.server.dashboard.auth import CurrentVisit, api_state
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.render import page

router = APIRouter(include_in_schema=False)

LABEL_W, CHART_W, ROW_H, PAD = 260, 560, 22, 6
STEP_KINDS = frozenset({"step.done", "step.failed", "step.skipped"})
MAX_PIPELINES = 10  # of one commit, on its page (the newest)
RUNNING = frozenset({"running", "created", "pending", "in_progress", "started"})


@dataclass(frozen=True)
class Bar:
    """One row of the picture: an entry's bar from its start to its end (now while it runs;
    a thin mark for an instant such as a release)."""

    entry: TimelineEntry
    y: int
    x: float
    w: float
    running: bool


@dataclass(frozen=True)
class Gantt:
    bars: list[Bar]
    width: int
    height: int
    span: float  # seconds from the first start to the last end


def gantt(entries: list[TimelineEntry], now: float) -> Gantt:
    """Bars on one time axis: x from the first entry's start, scaled to CHART_W. Pure."""
    if not entries:
        return Gantt([], LABEL_W + CHART_W + PAD * 2, PAD * 2, 0.0)
    start = min(e.at for e in entries)
    ends = []
    for e in entries:
        ends.append(now if _running(e) else e.at + (e.duration or 0.0))
    span = max(max(ends) - start, 1e-3)
    scale = CHART_W / span
    bars = []
    for i, (e, end) in enumerate(zip(entries, ends, strict=True)):
        x = LABEL_W + (e.at - start) * scale
        w = max(3.0, (end - e.at) * scale)  # an instant still shows
        running = _running(e)
        bars.append(
            Bar(
                e,
                PAD + i * ROW_H,
                round(x, 1),
                round(min(w, LABEL_W + CHART_W - x + 3), 1),
                running,
            )
        )
    return Gantt(bars, LABEL_W + CHART_W + PAD * 2, PAD * 2 + len(entries) * ROW_H, span)


def newest_pipelines(view: TimelineView, keep: int) -> tuple[TimelineView, int]:
    """The view with only its newest `keep` pipelines (and their jobs' entries), and how many
    were left out: a commit run again and again would make a page of thousands of rows."""
    if len(view.pipelines) <= keep:
        return view, 0
    kept = sorted(view.pipelines, key=lambda p: p.started_at)[-keep:]
    ids = {(p.project, p.id) for p in kept}
    jobs = {(p.project, j.id) for p in kept for j in p.jobs}
    entries = [
        e
        for e in view.entries
        if (e.what != "pipeline" or (e.project, e.id) in ids)
        and (e.what != "job" or (e.project, e.id) in jobs)
    ]
    trimmed = view.model_copy(update={"pipelines": kept, "entries": entries})
    return trimmed, len(view.pipelines) - keep


def _running(e: TimelineEntry) -> bool:
    """Still going: no duration yet and a running status (a release is an instant: its
    `created` is not a run)."""
    return e.what != "release" and e.duration is None and e.status in RUNNING


@dataclass
class RolloutSteps:
    rollout: RolloutView
    release: int
    environment: str
    steps: list[Event] = field(default_factory=list)


@dataclass
class CommitTimeline:
    env: str
    sha: str
    view: TimelineView
    commit: CommitView | None
    picture: Gantt
    rollouts: list[RolloutSteps]
    hidden: int = 0  # older pipelines of the commit left out (newest_pipelines)

    @property
    def verdict(self) -> str:
        """What became of the commit: the newest rollout's outcome, else its pipeline's, else
        `waiting`."""
        if self.rollouts:
            return self.rollouts[-1].rollout.status
        if self.view.pipelines:
            return self.view.pipelines[-1].status
        return "waiting"

    @property
    def job_pipelines(self) -> dict[tuple[str, int], int]:
        """(project, job id) -> its pipeline, for links to the job's page."""
        return {(p.project, j.id): p.id for p in self.view.pipelines for j in p.jobs}

    @property
    def live(self) -> bool:
        return any(b.running for b in self.picture.bars)


def commit_timeline(state: ApiState, env: str, sha: str) -> CommitTimeline:
    b = state.backend
    try:
        view = b.commit_timeline(env, sha, MAX_PIPELINES)
    except NotFound as e:
        raise PageError(404, str(e)) from None
    try:
        commit = b.commit(env, view.commit or sha)
    except ConveyorError:
        commit = None  # the mirror may not have it (a deploy of files): the sha is shown
    view, hidden = newest_pipelines(view, MAX_PIPELINES)  # a backend that read them all
    hidden += view.pipelines_left_out
    steps: dict[int, list[Event]] = {}
    for ev in view.events:
        if ev.kind in STEP_KINDS and ev.subject.rollout is not None:
            steps.setdefault(ev.subject.rollout, []).append(ev)
    rollouts = [
        RolloutSteps(r, rel.number, rel.environment, steps.get(r.id, []))
        for rel in view.releases
        for r in rel.rollouts
    ]
    rollouts.sort(key=lambda r: r.rollout.started_at)
    return CommitTimeline(
        env, view.commit or sha, view, commit, gantt(view.entries, time.time()), rollouts, hidden
    )


def _context(state: ApiState, env: str, sha: str) -> dict[str, Any]:
    return {"t": commit_timeline(state, env, sha)}


@router.get("/environments/{env}/commits/{sha}")
async def timeline_page(request: Request, env: str, sha: str, visit: CurrentVisit) -> Response:
    state = api_state(request)
    context = await run_in_threadpool(_context, state, env, sha)
    base = await run_in_threadpool(base_context, state, visit, f"env:{env}")
    return page("timeline.html", **base, **context)


@router.get("/fragments/environments/{env}/commits/{sha}")
def timeline_fragment(request: Request, env: str, sha: str, visit: CurrentVisit) -> Response:
    return page("fragments/timeline.html", visit=visit, **_context(api_state(request), env, sha))
