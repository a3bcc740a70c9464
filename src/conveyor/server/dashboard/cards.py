"""What the overview and environment pages show, read from the server's backend (the API's
`ServerBackend`) and its alerts view: one `EnvironmentCard` per environment. Whatever cannot be
read (an environment's status, Alertmanager down) is named in the card's `problems` instead of
failing the page. The reads of each environment run in parallel: each opens the environment's
databases and asks Docker, and a page waits for the slowest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from conveyor.app.ci_views import PipelineSummary
from conveyor.app.server_views import CommitView, DiffView, EnvironmentDetail, EnvironmentSummary
from conveyor.app.views import ChecksHealthView, ReleaseView, RolloutView, ServiceView
from conveyor.errors import AlertsError, ConveyorError
from conveyor.model.alerts import AlertView
from conveyor.server.api import ApiState
from conveyor.server.dashboard.backups_view import BackupRow, recent_backups

T = TypeVar("T")
ALERTS_WINDOW = 3600.0  # seconds of resolved alerts the alerts view reads (only firing shown)
DRIFT_SECONDS = 10.0  # a drift answer is reused this long while no new event is recorded
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dashboard")
# Cards wait for their reads in _POOL, so they are made in a pool of their own (no deadlock).
_CARDS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard-card")


class DriftCache:
    """The backend's diff is the slowest read (it loads the compose file at the desired commit):
    each environment's answer is reused while no event was recorded since, for at most
    DRIFT_SECONDS. A change to what runs makes events (a heal, a rollout), so the cache is
    dropped then; drift no event announces shows at most DRIFT_SECONDS late."""

    def __init__(self, seconds: float = DRIFT_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[int | None, float, DiffView]] = {}

    def get(self, state: ApiState, env: str) -> DiffView:
        mark, now = state.backend.last_event_id(), time.monotonic()
        with self._lock:
            kept = self._kept.get(env)
        if kept is not None and kept[0] == mark and now - kept[1] < self.seconds:
            return kept[2]
        view = state.backend.diff(env)
        with self._lock:
            self._kept[env] = (mark, now, view)
        return view


DRIFT = DriftCache()


@dataclass(frozen=True)
class ServiceLine:
    """A service as the overview shows it: replicas ready (running, routed, not unhealthy)
    against desired."""

    name: str
    image: str | None
    ready: int
    desired: int
    unhealthy: int
    view: ServiceView

    @property
    def ok(self) -> bool:
        return self.ready >= self.desired and self.unhealthy == 0


def service_line(s: ServiceView) -> ServiceLine:
    current = [r for r in s.replicas if r.current]
    ready = [r for r in current if r.running and r.router == "ready" and r.health != "unhealthy"]
    unhealthy = [r for r in current if r.health == "unhealthy" or (r.running is False)]
    return ServiceLine(s.name, s.image, len(ready), s.desired_replicas, len(unhealthy), s)


@dataclass
class EnvironmentCard:
    summary: EnvironmentSummary
    detail: EnvironmentDetail | None = None
    commit: CommitView | None = None
    pipeline: PipelineSummary | None = None  # the newest
    services: list[ServiceLine] = field(default_factory=list)
    drift: DiffView | None = None
    alerts: list[AlertView] = field(default_factory=list)  # firing (or silenced) now
    alerts_problem: str | None = None  # why alerts are unknown (no Alertmanager answers)
    all_rollouts: list[RolloutView] = field(default_factory=list)  # newest first
    all_pipelines: list[PipelineSummary] = field(default_factory=list)  # newest first
    problems: list[str] = field(default_factory=list)  # what could not be read, one phrase each

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def rollouts(self) -> list[RolloutView]:
        """The last deploys the overview lists."""
        return self.all_rollouts[:3]

    @property
    def checks(self) -> ChecksHealthView | None:
        status = self.detail.status if self.detail else None
        return status.checks if status else None

    @property
    def health(self) -> str:
        """`healthy`, `degraded` (a service short of ready replicas), or `unknown`."""
        if self.detail is None or self.detail.status is None:
            return "unknown"
        return "healthy" if all(s.ok for s in self.services) else "degraded"


def _attempt(problems: list[str], what: str, read: Callable[[], T]) -> T | None:
    try:
        return read()
    except (ConveyorError, OSError) as e:  # one environment's trouble is shown, not a 500
        problems.append(f"{what}: {e}")
        return None


def card(
    state: ApiState,
    summary: EnvironmentSummary,
    alerts: list[AlertView],
    alerts_problem: str | None = None,
) -> EnvironmentCard:
    """Everything the overview says about one environment."""
    b, env = state.backend, summary.name
    c = EnvironmentCard(summary, alerts_problem=alerts_problem)
    c.alerts = [a for a in alerts if a.environment == env and a.state != "resolved"]
    detail = _POOL.submit(_attempt, c.problems, "status", lambda: b.environment(env))
    pipelines = _POOL.submit(_attempt, c.problems, "pipelines", lambda: b.pipelines(env))
    rollouts = _POOL.submit(_attempt, c.problems, "rollouts", lambda: b.rollouts(env))
    drift = (
        _POOL.submit(_attempt, c.problems, "drift", lambda: DRIFT.get(state, env))
        if summary.release is not None
        else None
    )
    sha = summary.commit
    commit = (
        _POOL.submit(_attempt, c.problems, "commit", lambda: b.commit(env, sha))
        if sha is not None
        else None
    )
    c.detail = detail.result()
    if c.detail is not None and c.detail.status is not None:
        c.services = [service_line(s) for s in c.detail.status.services]
    c.all_pipelines = pipelines.result() or []
    c.pipeline = c.all_pipelines[0] if c.all_pipelines else None
    c.all_rollouts = rollouts.result() or []
    c.drift = drift.result() if drift is not None else None
    c.commit = commit.result() if commit is not None else None
    return c


def firing_alerts(state: ApiState) -> tuple[list[AlertView], str | None]:
    """The alerts firing now, and why none could be read (None when they were)."""
    if state.alerts_view is None:
        return [], None
    try:
        view = state.alerts_view(ALERTS_WINDOW)
    except AlertsError as e:
        return [], str(e)
    return [a for a in view.alerts if a.state != "resolved"], None


def cards(state: ApiState) -> list[EnvironmentCard]:
    """One card per environment, in conveyor.yaml's order."""
    alerts_future = _POOL.submit(firing_alerts, state)
    summaries = state.backend.environments()
    alerts, alerts_problem = alerts_future.result()
    made = [_CARDS.submit(card, state, s, alerts, alerts_problem) for s in summaries]
    return [m.result() for m in made]


@dataclass
class EnvironmentPage:
    card: EnvironmentCard
    releases: list[ReleaseView]
    source: EnvironmentSummary | None  # the environment it is promoted from
    backups: list[BackupRow] = field(default_factory=list)  # newest backup/restore events

    @property
    def rollouts(self) -> list[RolloutView]:
        return self.card.all_rollouts

    @property
    def pipelines(self) -> list[PipelineSummary]:
        return self.card.all_pipelines

    @property
    def previous_release(self) -> int | None:
        """The release a rollback goes back to by default: the newest one before the serving."""
        current = self.card.summary.release
        older = [r.number for r in self.releases if current is not None and r.number < current]
        return max(older) if older else None

    @property
    def to_approve(self) -> int | None:
        """The source environment's serving release when it is not approved here yet."""
        if self.source is None or self.source.release is None or self.card.detail is None:
            return None
        return None if self.source.release in self.card.detail.approvals else self.source.release


def environment_page(state: ApiState, env: str) -> EnvironmentPage:
    """The environment page's facts: its card, then its history. NotFound for an unknown
    environment (404)."""
    b = state.backend
    summaries = {s.name: s for s in b.environments()}
    summary = summaries.get(env)
    if summary is None:
        b.environment(env)  # the backend's own NotFound, with its words
        raise AssertionError(f"{env} listed nowhere but found")  # pragma: no cover
    alerts_future = _POOL.submit(firing_alerts, state)
    problems: list[str] = []
    releases = _POOL.submit(_attempt, problems, "releases", lambda: b.releases(env))
    backups = _POOL.submit(_attempt, problems, "backups", lambda: recent_backups(b, env))
    alerts, alerts_problem = alerts_future.result()
    c = card(state, summary, alerts, alerts_problem)
    c.problems += problems
    source = summaries.get(summary.promote_from) if summary.promote_from else None
    return EnvironmentPage(c, releases.result() or [], source, backups.result() or [])
