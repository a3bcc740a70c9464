"""What the metrics use cases return (`conveyor metrics`, `up`, `status`); `--json` prints them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from conveyor.app.views import ComponentView

# haproxy-log: Conveyor's histogram of HAProxy's access log; replicas: the replicas' own
# histograms (x-conveyor.metrics); haproxy-average: HAProxy's exporter's average only.
LatencySource = Literal["haproxy-log", "replicas", "haproxy-average", "none"]


class EdgeFigures(BaseModel):
    """One entry into a service: `external` (stable and published ports) or `internal`
    (other services calling it by name)."""

    edge: str
    requests_per_second: float | None
    error_ratio: float | None


class Latency(BaseModel):
    source: LatencySource
    p50: float | None = None  # seconds
    p95: float | None = None
    p99: float | None = None
    avg: float | None = None  # HAProxy's response-time average over the window


class ServiceFigures(BaseModel):
    service: str
    requests_per_second: float | None
    connections_per_second: float | None
    error_ratio: float | None  # 5xx / all responses; None without responses
    latency: Latency
    edges: list[EdgeFigures] = []


class MetricsReport(BaseModel):
    project: str
    window: str
    prometheus: str  # its URL
    services: list[ServiceFigures]


class MetricsUp(BaseModel):
    """What `up` (or the agent) did to the metrics stack."""

    enabled: bool
    components: list[ComponentView] = []
    reloaded: list[str] = []
    restarted: list[str] = []
    error: str | None = None  # a component could not be configured or started


class GrafanaFiles(BaseModel):
    directory: str
    dashboards: list[str]
    provisioning: str
