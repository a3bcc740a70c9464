"""`conveyor metrics` as a Rich table (its --json form is the app's MetricsReport), and the
component lines `up` and `status` print."""

from __future__ import annotations

from rich.table import Table

from conveyor.app.metrics_views import MetricsReport
from conveyor.app.views import ComponentView
from conveyor.cli.output import esc


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def metrics_table(report: MetricsReport) -> Table:
    t = Table(
        title=esc(f"{report.project} — last {report.window} (Prometheus {report.prometheus})"),
        title_justify="left",
    )
    for col in ("service", "req/s", "conn/s", "5xx", "p50", "p95", "p99", "avg", "latency from"):
        t.add_column(col, justify="left" if col in ("service", "latency from") else "right")
    for s in report.services:
        lat = s.latency
        t.add_row(
            esc(s.service),
            _rate(s.requests_per_second),
            _rate(s.connections_per_second),
            _ratio(s.error_ratio),
            _ms(lat.p50),
            _ms(lat.p95),
            _ms(lat.p99),
            _ms(lat.avg),
            lat.source,
        )
        for e in s.edges:
            t.add_row(
                esc(f"  └ {e.edge}"),
                _rate(e.requests_per_second),
                "",
                _ratio(e.error_ratio),
                "",
                "",
                "",
                "",
                "",
                style="dim",
            )
    if not report.services:
        t.caption = "no routed service in the serving release"
    return t


def component_lines(components: list[ComponentView]) -> list[str]:
    """One line per platform component: name, URL, health (Rich markup)."""
    out = []
    for c in components:
        if c.healthy:
            state = f"[green]healthy[/] (pid {c.pid})"
        elif c.running:
            state = f"[yellow]not answering[/] (pid {c.pid})"
        else:
            state = "[red]not running[/]"
        detail = f"  [dim]{esc(c.detail)}[/]" if c.detail else ""
        out.append(f"{esc(f'{c.name:<14}')} {esc(c.url):<26} {state}{detail}")
    return out
