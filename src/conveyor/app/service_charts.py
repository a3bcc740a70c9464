"""A service's RED charts for the dashboard (issue 11, item 5): request rate, error ratio and
latency over the last minutes, from the server's one Prometheus (docs/metrics.md), with the
PromQL of `conveyor metrics` (observe.metrics.promql) asked as range queries, and the
service's edges (HAProxy's `edge` label: external, internal) now.

`None` from `server_prometheus_url`: metrics are off (no stack was ever started), and the page
says so instead of drawing empty charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.app.metrics_views import EdgeFigures
from conveyor.observe.metrics import promql
from conveyor.observe.metrics.query import PrometheusClient
from conveyor.observe.metrics.supervisor import MetricsLayout, MetricsPorts

RATE_WINDOW = "1m"  # each point is a rate over this much time before it
EDGE_WINDOW = "5m"


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float | None]]


@dataclass(frozen=True)
class Chart:
    """One chart: its series share the time axis `x` (UNIX seconds); a value is None where a
    series has no point (uPlot draws a gap)."""

    title: str
    unit: str  # "req/s", "ratio", "s"
    x: list[float]
    series: list[tuple[str, list[float | None]]]

    @property
    def empty(self) -> bool:
        return not any(v is not None for _, values in self.series for v in values)


@dataclass
class ServiceCharts:
    prometheus: str
    start: float
    end: float
    charts: list[Chart] = field(default_factory=list)
    edges: list[EdgeFigures] = field(default_factory=list)
    latency_source: str = "none"  # haproxy-log, replicas, haproxy-average, none


def server_prometheus_url(data_dir: Path) -> str | None:
    """The server's Prometheus (`<data>/metrics/ports.json`), None when metrics never ran."""
    lay = MetricsLayout(data_dir / "metrics")
    if lay.off_file.exists():
        return None
    try:
        ports = MetricsPorts.from_json(lay.ports_file.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"http://127.0.0.1:{ports.prometheus}"


def align(title: str, unit: str, series: Sequence[Series]) -> Chart:
    """Series on one time axis (the union of their times, sorted): pure."""
    xs = sorted({t for s in series for t, _ in s.points})
    columns = []
    for s in series:
        at: dict[float, float | None] = dict(s.points)
        columns.append((s.label, [at.get(x) for x in xs]))
    return Chart(title, unit, xs, columns)


def _series(
    found: Sequence[tuple[Mapping[str, str], list[tuple[float, float | None]]]], label: str
) -> list[Series]:
    return [Series(label, points) for _, points in found]


def service_charts(
    url: str, project: str, service: str, end: float, span: float = 1800.0, step: float = 15.0
) -> ServiceCharts:
    """The charts of `service` of `project` over `span` seconds before `end`. Raises
    MetricsError when Prometheus does not answer."""
    client = PrometheusClient(url, timeout=3.0)
    start = end - span

    def ask(q: str) -> list[tuple[Mapping[str, str], list[tuple[float, float | None]]]]:
        return client.query_range(q, start, end, step)

    out = ServiceCharts(url, start, end)
    rate = _series(ask(promql.request_rate(project, RATE_WINDOW, service)), "requests/s")
    out.charts.append(align("Request rate", "req/s", rate))
    errors = _series(ask(promql.error_ratio(project, RATE_WINDOW, service)), "5xx ratio")
    out.charts.append(align("Error ratio", "ratio", errors))
    latency: list[Series] = []
    for source, histogram in (
        ("haproxy-log", promql.ACCESS_LOG_HISTOGRAM),
        ("replicas", promql.REPLICA_HISTOGRAM),
    ):
        for q in (0.5, 0.95, 0.99):
            found = ask(promql.quantile_latency(q, project, RATE_WINDOW, service, histogram))
            latency += _series(found, f"p{int(q * 100)}")
        if any(v is not None for s in latency for _, v in s.points):
            out.latency_source = source
            break
        latency = []
    if not latency:
        latency = _series(ask(promql.average_latency(project, RATE_WINDOW, service)), "average")
        out.latency_source = "haproxy-average" if latency else "none"
    out.charts.append(align("Latency", "s", latency))
    edge_rates = client.query(promql.edge_request_rate(project, EDGE_WINDOW, service))
    edge_errors = {
        s.labels.get("edge", ""): s.value
        for s in client.query(promql.edge_error_ratio(project, EDGE_WINDOW, service))
    }
    out.edges = sorted(
        (
            EdgeFigures(
                edge=s.labels["edge"],
                requests_per_second=s.value,
                error_ratio=edge_errors.get(s.labels["edge"]),
            )
            for s in edge_rates
            if s.labels.get("edge")
        ),
        key=lambda e: e.edge,
    )
    return out
