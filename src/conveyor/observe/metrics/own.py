"""Conveyor's own metrics (prometheus-client): rollouts, heals, reconcile loops, pipelines, jobs,
webhook deliveries, replicas desired and running, daemon restarts. Names and labels are
docs/metrics.md's ("Conveyor's own").

Most figures come from the timeline: `ConveyorMetrics.observe_event` is a subscriber, so nothing
in the engines knows about metrics. The reconcile loop is timed by wrapping its controllers
(`timed`); replica counts are asked for at scrape time from a function the app gives
(`replica_source`). `serve` exposes the registry on 127.0.0.1 for Prometheus's `conveyor` job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.errors import ConveyorError, LockBusy
from conveyor.model.events import Event

# Rollouts take seconds to many minutes; pipelines minutes to an hour.
ROLLOUT_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
PIPELINE_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# HTTP requests through HAProxy: a millisecond to ten seconds.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_ROLLOUT_ENDS = {
    "rollout.succeeded": "succeeded",
    "rollout.failed": "failed",
    "rollout.rolled_back": "rolled_back",
    "rollout.interrupted": "interrupted",
}
_HEALS = {"heal.succeeded": "succeeded", "heal.failed": "failed", "heal.backoff": "backoff"}


@dataclass(frozen=True)
class ReplicaCount:
    project: str
    environment: str
    service: str
    desired: int
    running: int


ReplicaSource = Callable[[], Iterable[ReplicaCount]]


class Controller(Protocol):
    name: str

    def tick(self) -> object: ...


class _Replicas(Collector):
    """Replica gauges asked for at scrape time, so they are never stale."""

    def __init__(self) -> None:
        self.sources: list[ReplicaSource] = []

    def collect(self) -> Iterator[Metric]:
        labels = ["project", "environment", "service"]
        desired = GaugeMetricFamily(
            "conveyor_service_replicas_desired",
            "Replicas the serving release asks for",
            labels=labels,
        )
        running = GaugeMetricFamily(
            "conveyor_service_replicas_running", "Replicas running right now", labels=labels
        )
        for source in self.sources:
            try:
                counts = list(source())
            except ConveyorError:
                continue  # the engine is away: no figure rather than a wrong one
            for c in counts:
                values = [c.project, c.environment, c.service]
                desired.add_metric(values, c.desired)
                running.add_metric(values, c.running)
        yield desired
        yield running


class ConveyorMetrics:
    """One registry of Conveyor's own metrics (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rollouts = Counter(
            "conveyor_rollouts_total",
            "Rollouts finished, by kind and result",
            ["project", "environment", "kind", "result"],
            registry=r,
        )
        self.rollout_seconds = Histogram(
            "conveyor_rollout_duration_seconds",
            "How long rollouts took",
            ["project", "environment", "result"],
            buckets=ROLLOUT_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "conveyor_rollouts_in_progress",
            "Rollouts under way",
            ["project", "environment"],
            registry=r,
        )
        self.heals = Counter(
            "conveyor_heals_total",
            "Heals of the reconciler, by result",
            ["project", "environment", "result"],
            registry=r,
        )
        self.reconcile_runs = Counter(
            "conveyor_reconcile_runs_total",
            "Ticks of the reconcile loop's controllers, by result",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "conveyor_reconcile_duration_seconds",
            "How long one controller tick took",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.pipelines = Counter(
            "conveyor_pipelines_total",
            "Pipelines finished, by status",
            ["project", "status"],
            registry=r,
        )
        self.pipeline_seconds = Histogram(
            "conveyor_pipeline_duration_seconds",
            "How long pipelines took",
            ["project", "status"],
            buckets=PIPELINE_BUCKETS,
            registry=r,
        )
        self.jobs = Counter(
            "conveyor_jobs_total", "CI jobs finished, by status", ["project", "status"], registry=r
        )
        self.webhooks = Counter(
            "conveyor_webhook_deliveries_total",
            "Webhook deliveries received, by source and result",
            ["source", "result"],
            registry=r,
        )
        self.daemon_restarts = Counter(
            "conveyor_daemon_restarts_total",
            "Supervised daemons found dead and started again",
            ["daemon"],
            registry=r,
        )
        self.engine_up = Gauge(
            "conveyor_engine_up",
            "1 while the Docker Engine answers, 0 while it is away",
            ["project"],
            registry=r,
        )
        self.requests = Histogram(
            "conveyor_http_request_duration_seconds",
            "HTTP requests through HAProxy by service and entry, timed from its access log",
            ["project", "environment", "service", "edge"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        # backups (docs/backups.md): the last success per service, and what the server's
        # schedules expect; the ConveyorBackupMissed rule compares them
        self.backup_last_success = Gauge(
            "conveyor_backup_last_success_timestamp_seconds",
            "When the service's last backup succeeded (Unix time)",
            ["project", "environment", "service"],
            registry=r,
        )
        self.backup_interval = Gauge(
            "conveyor_backup_schedule_interval_seconds",
            "How often a schedule backs the service up",
            ["project", "environment", "service"],
            registry=r,
        )
        self.backup_since = Gauge(
            "conveyor_backup_schedule_since_timestamp_seconds",
            "Since when the server has watched the schedule (for a service never backed up)",
            ["project", "environment", "service"],
            registry=r,
        )
        self._replicas = _Replicas()
        r.register(self._replicas)
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, str, float]] = {}  # rollout id -> labels, start
        self._backup_successes: dict[tuple[str, str, str], float] = {}

    # ---- sources ------------------------------------------------------------------------------

    def replica_source(self, source: ReplicaSource) -> None:
        self._replicas.sources.append(source)

    def observe_event(self, event: Event) -> None:
        """A timeline subscriber: counts what the event reports."""
        s = event.subject
        env = s.environment or s.project
        kind = event.kind
        if kind == "rollout.started" and s.rollout is not None:
            with self._lock:
                self._running[s.rollout] = (s.project, env, event.ts)
                self._set_in_progress(s.project, env)
        elif kind in _ROLLOUT_ENDS:
            result = _ROLLOUT_ENDS[kind]
            self.rollouts.labels(s.project, env, str(event.data.get("kind", "")), result).inc()
            with self._lock:
                started = self._running.pop(s.rollout, None) if s.rollout is not None else None
                self._set_in_progress(s.project, env)
            seconds = event.data.get("seconds")
            if not isinstance(seconds, int | float) and started is not None:
                seconds = event.ts - started[2]
            if isinstance(seconds, int | float):
                self.rollout_seconds.labels(s.project, env, result).observe(seconds)
        elif kind in _HEALS:
            self.heals.labels(s.project, env, _HEALS[kind]).inc()
        elif kind == "pipeline.finished":
            status = str(event.data.get("status", "unknown"))
            self.pipelines.labels(s.project, status).inc()
            seconds = event.data.get("seconds")
            if isinstance(seconds, int | float):
                self.pipeline_seconds.labels(s.project, status).observe(seconds)
        elif kind == "job.finished":
            self.jobs.labels(s.project, str(event.data.get("status", "unknown"))).inc()
        elif kind == "engine.away":
            self.engine_up.labels(s.project).set(0)
        elif kind in {"engine.back", "reconciler.started"}:
            self.engine_up.labels(s.project).set(1)
        elif kind == "daemon.restarted":
            self.daemon_restarts.labels(str(event.data.get("component", "unknown"))).inc()
        elif kind == "backup.created" and s.service is not None:
            self._backup_success(s.project, env, s.service, event.ts)

    def backup_schedule(
        self,
        project: str,
        environment: str,
        service: str,
        interval: float,
        since: float,
        last_success: float | None,
    ) -> None:
        """What a backup schedule expects of a service (the scheduler tells, each tick)."""
        self.backup_interval.labels(project, environment, service).set(interval)
        self.backup_since.labels(project, environment, service).set(since)
        if last_success is not None:
            self._backup_success(project, environment, service, last_success)

    def _backup_success(self, project: str, environment: str, service: str, ts: float) -> None:
        # The newest of what the events and the bucket said wins (an event may come before
        # the scheduler's first look at the bucket).
        with self._lock:
            key = (project, environment, service)
            newest = max(ts, self._backup_successes.get(key, 0.0))
            self._backup_successes[key] = newest
        self.backup_last_success.labels(project, environment, service).set(newest)

    def request(
        self, project: str, environment: str, service: str, edge: str, seconds: float
    ) -> None:
        self.requests.labels(project, environment, service, edge).observe(seconds)

    def webhook(self, source: str, result: str) -> None:
        self.webhooks.labels(source, result).inc()

    def timed(self, controller: Controller) -> Controller:
        """The controller, its ticks counted and timed (by result: ok, busy, error)."""
        return _Timed(controller, self)

    def _set_in_progress(self, project: str, env: str) -> None:
        n = sum(1 for p, e, _ in self._running.values() if (p, e) == (project, env))
        self.in_progress.labels(project, env).set(n)

    # ---- exposition ---------------------------------------------------------------------------

    def serve(self, port: int, address: str = "127.0.0.1") -> MetricsEndpoint:
        """Serve the registry at http://address:port/metrics (a daemon thread)."""
        httpd, thread = start_http_server(port, addr=address, registry=self.registry)
        return MetricsEndpoint(httpd.shutdown, httpd.server_close, thread, port)


@dataclass
class MetricsEndpoint:
    _shutdown: Callable[[], None]
    _close: Callable[[], None]
    thread: threading.Thread
    port: int

    def close(self) -> None:
        self._shutdown()
        self._close()


class _Timed:
    def __init__(self, inner: Controller, metrics: ConveyorMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics

    def tick(self) -> object:
        t0 = time.monotonic()
        result = "error"
        try:
            out = self.inner.tick()
            result = "ok"
            return out
        except LockBusy:
            result = "busy"
            raise
        finally:
            self.metrics.reconcile_runs.labels(self.name, result).inc()
            self.metrics.reconcile_seconds.labels(self.name).observe(time.monotonic() - t0)
