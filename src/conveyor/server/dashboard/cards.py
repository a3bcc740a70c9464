"""What the overview and environment pages show, read from the server's backend (the API's
`ServerBackend`) and its alerts view: one `EnvironmentCard` per environment. Whatever cannot be
read (an environment's status, Alertmanager down) is named in the card's `problems` instead of
failing the page. The reads of each environment run in parallel: each opens the environment's
databases and asks Docker, and a page waits for the slowest."""

from __future__ import annotations

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

T = TypeVar("T")
ALERTS_WINDOW = 3600.0  # seconds of resolved alerts the alerts view reads (only firing shown)
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dashboard")


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
    rollouts: list[RolloutView] = field(default_factory=list)  # newest first
    problems: list[str] = field(default_factory=list)  # what could not be read, one phrase each

    @property
    def name(self) -> str:
        return self.summary.name

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
        _POOL.submit(_attempt, c.problems, "drift", lambda: b.diff(env))
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
    found = pipelines.result()
    c.pipeline = found[0] if found else None
    c.rollouts = (rollouts.result() or [])[:3]
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
    return [card(state, s, alerts, alerts_problem) for s in summaries]


@dataclass
class EnvironmentPage:
    card: EnvironmentCard
    releases: list[ReleaseView]
    rollouts: list[RolloutView]
    pipelines: list[PipelineSummary]
    source: EnvironmentSummary | None  # the environment it is promoted from

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
    all_rollouts = _POOL.submit(_attempt, problems, "rollouts", lambda: b.rollouts(env))
    pipelines = _POOL.submit(_attempt, problems, "pipelines", lambda: b.pipelines(env))
    alerts, alerts_problem = alerts_future.result()
    c = card(state, summary, alerts, alerts_problem)
    c.problems += problems
    source = summaries.get(summary.promote_from) if summary.promote_from else None
    return EnvironmentPage(
        c, releases.result() or [], all_rollouts.result() or [], pipelines.result() or [], source
    )
