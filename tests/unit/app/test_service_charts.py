"""A service's RED charts asked of a fake Prometheus (in process, on loopback): the range
queries `conveyor metrics`' PromQL makes, the latency source chosen, the edges."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from conveyor.app.service_charts import server_prometheus_url, service_charts
from conveyor.errors import MetricsError

ASKED: list[tuple[str, dict[str, list[str]]]] = []


def _answer(path: str, q: str) -> dict[str, Any]:
    if path == "/api/v1/query":  # the edges, now
        if "haproxy_frontend_http_responses_total" in q:
            result = [{"metric": {"service": "web", "edge": "external"}, "value": [1, "0.25"]}]
        else:
            result = [
                {"metric": {"service": "web", "edge": "external"}, "value": [1, "4"]},
                {"metric": {"service": "web", "edge": "internal"}, "value": [1, "1.5"]},
            ]
        return {"resultType": "vector", "result": result}
    values: list[list[Any]] = []
    if "haproxy_backend_http_requests_total" in q:
        values = [[100, "2"], [115, "3"]]
    elif "conveyor_http_request_duration_seconds_bucket" in q:
        values = [[100, "NaN"], [115, "NaN"]]  # no request through the access log
    elif "http_request_duration_seconds_bucket" in q:
        values = [[115, "0.05"]]  # the replicas' own histogram answers
    return {
        "resultType": "matrix",
        "result": [{"metric": {"service": "web"}, "values": values}] if values else [],
    }


@contextmanager
def fake_prometheus() -> Iterator[str]:
    """A Prometheus API on loopback answering `_answer`; its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = parse_qs(url.query)
            ASKED.append((url.path, params))
            body = json.dumps(
                {"status": "success", "data": _answer(url.path, params["query"][0])}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    ASKED.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def prometheus() -> Iterator[str]:
    with fake_prometheus() as url:
        yield url


def test_the_charts_come_from_range_queries_of_the_service(prometheus: str) -> None:
    c = service_charts(prometheus, "shop-staging", "web", end=200.0, span=100.0, step=15.0)
    ranges = [p for path, p in ASKED if path == "/api/v1/query_range"]
    assert ranges and all(p["start"] == ["100.000"] and p["end"] == ["200.000"] for p in ranges)
    assert all('project="shop-staging", service="web"' in p["query"][0] for p in ranges)
    rate, errors, latency = c.charts
    assert rate.title == "Request rate" and rate.x == [100.0, 115.0]
    assert rate.series == [("requests/s", [2.0, 3.0])]
    assert errors.empty
    assert c.latency_source == "replicas"  # the access log had no value, the replicas had
    assert [label for label, _ in latency.series] == ["p50", "p95", "p99"]
    assert [(e.edge, e.requests_per_second, e.error_ratio) for e in c.edges] == [
        ("external", 4.0, 0.25),
        ("internal", 1.5, None),
    ]


def test_a_prometheus_that_is_not_there_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MetricsError):
        service_charts("http://127.0.0.1:9", "p", "web", end=200.0)
    assert server_prometheus_url(tmp_path) is None  # no stack ever started
