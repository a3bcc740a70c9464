"""What the delivery page shows (issue 11, item 8): each environment's DORA metrics over the
last 30 days (backend `dora`, the code of `conveyor dora`) and their trend, one window per
week over the last weeks, each computed by the same code with the window ending that week;
and what the environment page offers to do (promote, approve, roll back, suspend, resume)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from conveyor.app.dora import DoraView
from conveyor.errors import ConveyorError
from conveyor.model.dora import DoraMetrics
from conveyor.server.api import ApiState
from conveyor.server.dashboard.cards import EnvironmentCard, EnvironmentPage

WEEK = 7 * 86400.0
WEEKS = 6  # the trend's windows
SINCE = "30d"
DORA_SECONDS = 60.0
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard-dora")


def week_ends(now: float, weeks: int = WEEKS) -> list[float]:
    """The ends of the last `weeks` one-week windows, oldest first, the newest ending `now`
    (pure)."""
    return [now - WEEK * i for i in reversed(range(weeks))]


@dataclass
class WeekPoint:
    until: float
    metrics: DoraMetrics


@dataclass
class Delivery:
    env: EnvironmentPage | None
    name: str
    dora: DoraView | None = None
    trend: list[WeekPoint] = field(default_factory=list)  # oldest first
    problems: list[str] = field(default_factory=list)

    @property
    def busiest(self) -> int:
        """The most deployments of a week in the trend (the meters' maximum; at least 1)."""
        return max([1, *(p.metrics.deployments for p in self.trend)])


class DoraCache:
    """Seven DORA reads per environment (each opens its state database and asks git for
    commit times) are the page's cost: the answers are reused while no event was recorded
    (a rollout is one) for at most `seconds`, then read again."""

    def __init__(self, seconds: float = DORA_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._kept: dict[tuple[int, str], tuple[int | None, float, DoraView, list[WeekPoint]]] = {}

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def get(self, state: ApiState, env: str, now: float) -> tuple[DoraView, list[WeekPoint]]:
        mark, key = state.backend.last_event_id(), (id(state), env)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[0] == mark and now - kept[1] < self.seconds:
            return kept[2], kept[3]
        view = state.backend.dora(env, SINCE, now)
        trend = [
            WeekPoint(end, state.backend.dora(env, "7d", end).metrics) for end in week_ends(now)
        ]
        with self._lock:
            self._kept[key] = (mark, now, view, trend)
        return view, trend


DORA = DoraCache()


def actions_page(state: ApiState, env: str) -> EnvironmentPage:
    """What the actions need (the serving and previous releases, approvals, the source):
    the environment page's facts without its slower reads (pipelines, drift, commit)."""
    b = state.backend
    summaries = {s.name: s for s in b.environments()}
    summary = summaries[env] if env in summaries else b.environment(env).environment
    card = EnvironmentCard(summary, detail=b.environment(env))
    source = summaries.get(summary.promote_from) if summary.promote_from else None
    return EnvironmentPage(card, b.releases(env), source)


def delivery(state: ApiState, env: str, now: float) -> Delivery:
    out = Delivery(None, env)
    try:
        out.env = actions_page(state, env)
    except (ConveyorError, OSError) as e:
        out.problems.append(f"status: {e}")
    try:
        out.dora, out.trend = DORA.get(state, env, now)
    except (ConveyorError, OSError) as e:
        out.problems.append(f"DORA metrics: {e}")
    return out


def deliveries(state: ApiState, only: str | None = None) -> list[Delivery]:
    """Every environment's (or `only` its) delivery, in conveyor.yaml's order."""
    now = time.time()
    names = [e.name for e in state.backend.environments()]
    if only is not None:
        state.backend.environment(only)  # NotFound for an unknown one
        names = [only]
    made = [_POOL.submit(delivery, state, name, now) for name in names]
    return [m.result() for m in made]
