"""The services pages in process (the in-memory backend), and their pure parts."""

from __future__ import annotations

import json
import re
import socket

from conveyor.app.service_charts import Series, align
from conveyor.app.views import RolloutView
from conveyor.model.events import Event, Subject
from conveyor.server.dashboard.service_view import NO_METRICS, chart_json, latest, markers
from conveyor.server.dashboard.sources import ObserveSources, install_sources
from tests.unit.app.test_service_charts import fake_prometheus
from tests.unit.server.dashboard.conftest import Dash


def _rollout(i: int, started: float, status: str = "succeeded") -> RolloutView:
    return RolloutView.model_validate(
        {
            "id": i,
            "kind": "deploy",
            "from_release": i - 1 or None,
            "to_release": i,
            "status": status,
            "started_at": started,
            "finished_at": started + 5,
            "duration": 5.0,
            "actor": "ci",
            "error": None,
            "reason": "push",
        }
    )


def test_series_share_one_time_axis_with_gaps() -> None:
    chart = align(
        "Latency",
        "s",
        [Series("p50", [(10.0, 0.1), (25.0, 0.2)]), Series("p95", [(25.0, 0.5), (40.0, None)])],
    )
    assert chart.x == [10.0, 25.0, 40.0]
    assert chart.series == [("p50", [0.1, 0.2, None]), ("p95", [None, 0.5, None])]
    assert not chart.empty
    assert align("Rate", "req/s", [Series("r", [(1.0, None)])]).empty
    assert latest([0.1, 0.3, None]) == 0.3 and latest([None]) is None


def test_rollouts_in_the_window_become_markers_and_the_json_stays_in_its_script() -> None:
    rollouts = [_rollout(3, 500.0, "failed"), _rollout(2, 150.0), _rollout(1, 50.0)]
    marks = markers(rollouts, 100.0, 600.0)
    assert [m["t"] for m in marks] == [150.0, 500.0]
    assert marks[1] == {"t": 500.0, "label": "deploy → #3", "status": "failed", "kind": "deploy"}
    chart = align("Rate", "req/s", [Series("</script><b>", [(1.0, 2.0)])])
    text = chart_json(chart, marks, 0.0, 2.0)
    assert "</script>" not in text
    data = json.loads(text)
    assert data["series"][0]["label"] == "</script><b>" and data["x"] == [1.0]
    assert (data["start"], data["end"]) == (0.0, 2.0)


def test_the_services_list_links_each_service(dash: Dash) -> None:
    dash.sign_in("viewer")
    page = dash.client.get("/services")
    assert page.status_code == 200
    assert '/environments/staging/services/web"' in page.text
    env = dash.client.get("/environments/staging")
    for link in ("/services/web", "/logs", "/delivery"):
        assert f'href="/environments/staging{link}"' in env.text, link


def test_a_service_page_says_plainly_when_there_are_no_metrics(dash: Dash) -> None:
    dash.sign_in("viewer")
    page = dash.client.get("/environments/staging/services/web")
    assert page.status_code == 200, page.text
    assert NO_METRICS.split(":")[0] in page.text and "data-chart" not in page.text
    assert "heals in the last 24 h: <strong>0</strong>" in page.text
    assert dash.client.get("/environments/staging/services/nope").status_code == 404
    assert dash.client.get("/environments/nope/services/web").status_code == 404


def test_a_prometheus_that_does_not_answer_is_named(dash: Dash) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    install_sources(
        dash.client.app,  # type: ignore[arg-type]
        ObserveSources(prometheus=lambda: f"http://127.0.0.1:{port}"),
    )
    dash.sign_in("viewer")
    page = dash.client.get("/environments/staging/services/web")
    assert page.status_code == 200
    assert "No metrics: Prometheus does not answer" in page.text


def test_a_service_page_draws_what_prometheus_answers(dash: Dash) -> None:
    with fake_prometheus() as prometheus:
        _draws(dash, prometheus)


def _draws(dash: Dash, prometheus: str) -> None:
    install_sources(
        dash.client.app,  # type: ignore[arg-type]
        ObserveSources(prometheus=lambda: prometheus),
    )
    dash.sign_in("viewer")
    page = dash.client.get("/environments/staging/services/web")
    assert page.status_code == 200
    charts = re.findall(
        r'<script type="application/json" id="chart-\d-data">(.*?)</script>', page.text
    )
    assert len(charts) == 2  # rate and latency; the error ratio had no value: said in words
    rate = json.loads(charts[0])
    assert rate["title"] == "Request rate" and rate["series"][0]["values"] == [2.0, 3.0]
    assert "No data in this window" in page.text
    assert "requests/s 3.00 req/s" in page.text
    assert "external" in page.text and "25.00 %" in page.text  # its edge's 5xx ratio
    assert "/static/charts.js" in page.text


def test_the_services_heals_are_counted_from_the_servers_timeline(dash: Dash) -> None:
    def heal(kind: str, **more: object) -> Event:
        service = more.pop("service", None)
        return Event(
            kind=kind,  # type: ignore[arg-type]
            message=f"{kind} {more}",
            subject=Subject(project="shop-staging", environment="staging", service=service),  # type: ignore[arg-type]
            data=dict(more),
        )

    dash.db.events.append(heal("drift.corrected", services=["web", "worker"]))
    dash.db.events.append(heal("heal.failed", service="web"))
    dash.db.events.append(heal("drift.corrected", services=["worker"]))  # not web's
    dash.sign_in("viewer")
    page = dash.client.get("/environments/staging/services/web")
    assert "heals in the last 24 h: <strong>2</strong>" in page.text
