"""Conveyor's own metrics as a timeline subscriber and a timed controller (prometheus-client)."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from conveyor.errors import LockBusy, RouterError
from conveyor.model.events import Event, EventKind, Subject
from conveyor.observe.metrics.own import ConveyorMetrics, ReplicaCount


def _event(what: EventKind, ts: float = 100.0, rollout: int | None = None, **data: Any) -> Event:
    subject = Subject(project="shop", environment="prod", rollout=rollout)
    return Event(kind=what, message="m", subject=subject, ts=ts, data=data)


def _value(m: ConveyorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_a_rollout_is_counted_timed_and_in_progress_meanwhile() -> None:
    m = ConveyorMetrics()
    m.observe_event(_event("rollout.started", ts=100.0, rollout=7, kind="deploy"))

    assert _value(m, "conveyor_rollouts_in_progress", project="shop", environment="prod") == 1

    m.observe_event(_event("rollout.succeeded", ts=112.0, rollout=7, kind="deploy", seconds=12.0))

    labels = {"project": "shop", "environment": "prod"}
    assert _value(m, "conveyor_rollouts_in_progress", **labels) == 0
    assert _value(m, "conveyor_rollouts_total", **labels, kind="deploy", result="succeeded") == 1
    assert _value(m, "conveyor_rollout_duration_seconds_sum", **labels, result="succeeded") == 12
    assert (
        _value(
            m, "conveyor_rollout_duration_seconds_bucket", **labels, result="succeeded", le="10.0"
        )
        == 0
    )


def test_a_rollout_without_seconds_is_timed_from_its_start_event() -> None:
    m = ConveyorMetrics()
    m.observe_event(_event("rollout.started", ts=100.0, rollout=3, kind="deploy"))
    m.observe_event(_event("rollout.failed", ts=104.5, rollout=3, kind="deploy"))

    labels = {"project": "shop", "environment": "prod", "result": "failed"}
    assert _value(m, "conveyor_rollout_duration_seconds_sum", **labels) == 4.5


def test_an_interrupted_rollout_of_an_earlier_life_does_not_go_below_zero() -> None:
    m = ConveyorMetrics()
    m.observe_event(_event("rollout.interrupted", rollout=9, kind="deploy"))

    labels = {"project": "shop", "environment": "prod"}
    assert _value(m, "conveyor_rollouts_in_progress", **labels) == 0
    assert _value(m, "conveyor_rollouts_total", **labels, kind="deploy", result="interrupted") == 1


def test_pipelines_jobs_heals_engine_and_daemons() -> None:
    m = ConveyorMetrics()
    for e in (
        _event("pipeline.finished", status="failed", seconds=30.0),
        _event("job.finished", status="success"),
        _event("heal.failed"),
        _event("engine.away"),
        _event("daemon.restarted", component="prometheus"),
    ):
        m.observe_event(e)

    assert _value(m, "conveyor_pipelines_total", project="shop", status="failed") == 1
    assert (
        _value(m, "conveyor_pipeline_duration_seconds_count", project="shop", status="failed") == 1
    )
    assert _value(m, "conveyor_jobs_total", project="shop", status="success") == 1
    assert (
        _value(m, "conveyor_heals_total", project="shop", environment="prod", result="failed") == 1
    )
    assert _value(m, "conveyor_engine_up", project="shop") == 0
    assert _value(m, "conveyor_daemon_restarts_total", daemon="prometheus") == 1
    m.observe_event(_event("engine.back"))
    assert _value(m, "conveyor_engine_up", project="shop") == 1


class _Ticking:
    name = "reconciler"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def tick(self) -> str:
        if self.error is not None:
            raise self.error
        return "done"


@pytest.mark.parametrize(
    ("error", "result"), [(None, "ok"), (LockBusy("busy"), "busy"), (RouterError("x"), "error")]
)
def test_controller_ticks_are_counted_by_result(error: Exception | None, result: str) -> None:
    m = ConveyorMetrics()
    timed = m.timed(_Ticking(error))

    if error is None:
        assert timed.tick() == "done"
    else:
        with pytest.raises(type(error)):
            timed.tick()

    assert timed.name == "reconciler"
    assert _value(m, "conveyor_reconcile_runs_total", controller="reconciler", result=result) == 1
    assert _value(m, "conveyor_reconcile_duration_seconds_count", controller="reconciler") == 1


def test_replica_gauges_are_asked_for_at_scrape_time() -> None:
    m = ConveyorMetrics()
    counts = [ReplicaCount("shop", "prod", "web", desired=3, running=3)]
    m.replica_source(lambda: list(counts))
    labels = {"project": "shop", "environment": "prod", "service": "web"}

    assert _value(m, "conveyor_service_replicas_running", **labels) == 3
    counts[0] = ReplicaCount("shop", "prod", "web", desired=3, running=1)
    assert _value(m, "conveyor_service_replicas_running", **labels) == 1
    assert _value(m, "conveyor_service_replicas_desired", **labels) == 3


def test_served_on_loopback_in_prometheus_text(unused_port: int) -> None:
    m = ConveyorMetrics()
    m.webhook("gitlab", "accepted")
    endpoint = m.serve(unused_port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        endpoint.close()

    assert 'conveyor_webhook_deliveries_total{result="accepted",source="gitlab"} 1.0' in text


@pytest.fixture
def unused_port() -> int:
    from conveyor.testing.net import free_port

    return free_port()
