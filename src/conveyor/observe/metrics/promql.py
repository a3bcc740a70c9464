"""The PromQL behind `conveyor metrics` (pure): per service rate, error ratio and latency over a
window, in the label scheme of docs/metrics.md. Each function returns one query whose result
is a vector with a `service` label (and `edge` for the per-entry figures)."""

from __future__ import annotations

import re

QUANTILES = (0.5, 0.95, 0.99)

# Conveyor's histogram of every HTTP request through HAProxy, from its access log.
ACCESS_LOG_HISTOGRAM = "conveyor_http_request_duration_seconds_bucket"
# The histogram a replica's prometheus-client (or most clients) exports for HTTP requests.
REPLICA_HISTOGRAM = "http_request_duration_seconds_bucket"

_WINDOW = re.compile(r"[1-9][0-9]*(ms|s|m|h|d|w|y)\Z")
_LABEL_VALUE = re.compile(r'[^"\\\n]*\Z')


def check_window(window: str) -> str:
    """A Prometheus range (`5m`, `30s`, `1h`); raises ValueError otherwise."""
    if not _WINDOW.match(window):
        raise ValueError(f"not a window: {window!r} (use a number and a unit: 30s, 5m, 1h, 1d)")
    return window


def selector(project: str, service: str | None = None, **more: str) -> str:
    """`{project="…", service="…"}`; values are quoted as PromQL strings."""
    pairs = {"project": project, **({"service": service} if service else {}), **more}
    for value in pairs.values():
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"label value {value!r} holds a quote, backslash or newline")
    return "{" + ", ".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def request_rate(project: str, window: str, service: str | None = None) -> str:
    """HTTP requests per second into each service (every entry and port)."""
    sel = selector(project, service)
    return f"sum by (service) (rate(haproxy_backend_http_requests_total{sel}[{window}]))"


def connection_rate(project: str, window: str, service: str | None = None) -> str:
    """Connections per second into each service (TCP services' requests)."""
    sel = selector(project, service)
    return f"sum by (service) (rate(haproxy_backend_sessions_total{sel}[{window}]))"


def error_ratio(project: str, window: str, service: str | None = None) -> str:
    """Share of HTTP responses that were 5xx (HAProxy's own 503s included); no value when
    there was no response."""
    return _5xx_ratio("backend", "service", project, window, service)


def edge_request_rate(project: str, window: str, service: str | None = None) -> str:
    """HTTP requests per second by entry: `external` (stable and published ports) and
    `internal` (other services calling by name)."""
    sel = selector(project, service)
    return f"sum by (service, edge) (rate(haproxy_frontend_http_requests_total{sel}[{window}]))"


def edge_error_ratio(project: str, window: str, service: str | None = None) -> str:
    return _5xx_ratio("frontend", "service, edge", project, window, service)


def _5xx_ratio(side: str, by: str, project: str, window: str, service: str | None) -> str:
    """5xx responses / all responses of HAProxy's `side` (backend: per service; frontend:
    per entry), summed `by`."""
    metric = f"haproxy_{side}_http_responses_total"
    sel = selector(project, service)
    errors = selector(project, service, code="5xx")
    return (
        f"sum by ({by}) (rate({metric}{errors}[{window}]))"
        f" / sum by ({by}) (rate({metric}{sel}[{window}]))"
    )


def average_latency(project: str, window: str, service: str | None = None) -> str:
    """HAProxy's response-time average (its last 1024 requests), averaged over the window, for
    each service's main port."""
    sel = selector(project, service, port="")
    return (
        "avg by (service) "
        f"(avg_over_time(haproxy_backend_response_time_average_seconds{sel}[{window}]))"
    )


def quantile_latency(
    q: float,
    project: str,
    window: str,
    service: str | None = None,
    histogram: str = ACCESS_LOG_HISTOGRAM,
) -> str:
    """A latency quantile per service from a request-duration histogram: HAProxy's access log
    (every entry), or the replicas' own (`REPLICA_HISTOGRAM`)."""
    sel = selector(project, service)
    return f"histogram_quantile({q}, sum by (service, le) (rate({histogram}{sel}[{window}])))"
