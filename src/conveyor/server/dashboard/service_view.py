"""What a service's page shows (issue 11, item 5), read from the backend, the server's
timeline and Prometheus: its replicas, its heals, its rollouts as chart markers, its RED
charts and edges, or why there are no charts. Pure helpers (`chart_json`, `markers`) are
separate from the reads."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from conveyor.app.service_charts import Chart, ServiceCharts, service_charts
from conveyor.app.views import RolloutView, ServiceView
from conveyor.errors import ConveyorError, NotFound
from conveyor.model.events import Event
from conveyor.server.api import ApiState
from conveyor.server.dashboard.sources import ObserveSources

# The server records a successful heal as `drift.corrected` (data.services); a failed one as
# `heal.failed` (subject.service). `heal.succeeded` is what an agent's timeline has.
HEAL_KINDS = ("drift.corrected", "heal.succeeded", "heal.failed")
HEAL_WINDOW = 86400.0  # the heals a page counts: the last day
NO_METRICS = (
    "No metrics: this server runs no Prometheus (metrics are off, or its stack has not "
    "started yet). Replicas and rollouts are shown; request rate, errors and latency are not."
)


@dataclass
class ServiceRow:
    """A service in the services list."""

    env: str
    view: ServiceView


@dataclass
class ServicePage:
    env: str
    project: str
    service: ServiceView
    rollouts: list[RolloutView]  # newest first
    heals: list[Event]  # newest first, over HEAL_WINDOW
    charts: ServiceCharts | None = None
    metrics_problem: str | None = None
    problems: list[str] = field(default_factory=list)


def markers(rollouts: list[RolloutView], start: float, end: float) -> list[dict[str, Any]]:
    """The rollouts that started within [start, end], as chart markers (pure)."""
    return [
        {
            "t": r.started_at,
            "label": f"{r.kind} → #{r.to_release}" if r.to_release else r.kind,
            "status": r.status,
            "kind": r.kind,
        }
        for r in sorted(rollouts, key=lambda r: r.started_at)
        if start <= r.started_at <= end
    ]


def chart_json(chart: Chart, marks: list[dict[str, Any]], start: float, end: float) -> str:
    """The data a chart's script reads (uPlot's columns plus the rollout markers); `</` is
    escaped so the JSON cannot close its <script type="application/json"> element."""
    data = {
        "title": chart.title,
        "start": start,
        "end": end,
        "unit": chart.unit,
        "x": chart.x,
        "series": [{"label": label, "values": values} for label, values in chart.series],
        "markers": marks,
    }
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def latest(values: list[float | None]) -> float | None:
    """The newest value that is there (pure)."""
    for v in reversed(values):
        if v is not None:
            return v
    return None


def heals_service(e: Event, name: str) -> bool:
    """Whether heal event `e` replaced replicas of service `name` (pure)."""
    return e.subject.service == name or name in (e.data.get("services") or [])


def service_rows(state: ApiState) -> tuple[list[ServiceRow], list[str]]:
    """Every environment's services, and what could not be read."""
    rows: list[ServiceRow] = []
    problems: list[str] = []
    for summary in state.backend.environments():
        try:
            detail = state.backend.environment(summary.name)
        except (ConveyorError, OSError) as e:
            problems.append(f"{summary.name}: {e}")
            continue
        if detail.status is not None:
            rows += [ServiceRow(summary.name, s) for s in detail.status.services]
    return rows, problems


def service_page(state: ApiState, sources: ObserveSources, env: str, name: str) -> ServicePage:
    """NotFound for an unknown environment or service."""
    detail = state.backend.environment(env)
    status = detail.status
    found = [s for s in status.services if s.name == name] if status else []
    if status is None or not found:
        known = ", ".join(s.name for s in status.services) if status else "none"
        raise NotFound(f"no service {name!r} in {env} (services: {known})")
    now = time.time()
    heals = [
        e
        for e in state.db.events.recent(HEAL_KINDS, now - HEAL_WINDOW)
        if e.subject.environment == env and heals_service(e, name)
    ]
    out = ServicePage(env, status.project, found[0], state.backend.rollouts(env), heals)
    url = sources.prometheus()
    if url is None:
        out.metrics_problem = NO_METRICS
        return out
    try:
        out.charts = service_charts(url, status.project, name, now)
    except ConveyorError as e:
        out.metrics_problem = f"No metrics: {e}"
    return out
