"""`conveyor metrics` as a table, and the component lines of `status`: figures in their units,
missing figures as '-', names as text (never Rich markup)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from conveyor.app.metrics_views import EdgeFigures, Latency, MetricsReport, ServiceFigures
from conveyor.app.views import ComponentView
from conveyor.cli.metrics import component_lines, metrics_table


def rendered(table: Table) -> str:
    console = Console(width=400, record=True, file=None)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


def test_figures_are_printed_in_their_units() -> None:
    report = MetricsReport(
        project="shop",
        window="5m",
        prometheus="http://127.0.0.1:19100",
        services=[
            ServiceFigures(
                service="web[/x]",
                requests_per_second=12.345,
                connections_per_second=None,
                error_ratio=0.0125,
                latency=Latency(source="replicas", p50=0.004, p95=0.0201, p99=0.1, avg=0.005),
                edges=[EdgeFigures(edge="internal", requests_per_second=2.0, error_ratio=0.0)],
            ),
            ServiceFigures(
                service="db",
                requests_per_second=None,
                connections_per_second=3.0,
                error_ratio=None,
                latency=Latency(source="none"),
            ),
        ],
    )

    text = rendered(metrics_table(report))

    assert "web[/x]" in text
    assert "12.35" in text and "1.25%" in text
    assert "4.0 ms" in text and "20.1 ms" in text and "100.0 ms" in text
    assert "└ internal" in text and "0.00%" in text
    db = next(line for line in text.splitlines() if "db" in line)
    assert "3.00" in db and db.count("-") >= 6  # no HTTP figures for a TCP service


def test_component_lines_say_where_and_how_each_is() -> None:
    lines = component_lines(
        [
            ComponentView(
                name="prometheus", url="http://127.0.0.1:1", running=True, healthy=True, pid=10
            ),
            ComponentView(
                name="alertmanager", url="http://127.0.0.1:2", running=True, healthy=False, pid=11
            ),
            ComponentView(
                name="node-exporter", url="http://127.0.0.1:3", running=False, healthy=False
            ),
        ]
    )

    assert "http://127.0.0.1:1" in lines[0] and "healthy" in lines[0]
    assert "not answering" in lines[1]
    assert "not running" in lines[2]
