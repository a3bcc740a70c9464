"""`conveyor agent`: the long-running process hosting one project's reconciler."""

from __future__ import annotations

from conveyor.app.deploy import reconciler
from conveyor.app.metrics import METRICS_INTERVAL, MetricsController, serve_own_metrics
from conveyor.app.project import Project
from conveyor.server.controllers import ControllerHost


def run_agent(project: Project, interval: float) -> None:
    """Reconcile the project every `interval` seconds until SIGTERM or SIGINT. Unless metrics
    are off for the project, also serve Conveyor's own metrics and keep its metrics stack
    (targets, daemons) in step (docs/metrics.md)."""
    own = serve_own_metrics(project)
    r = reconciler(project)
    host = ControllerHost(timeline=r.engine.timeline)
    if own is None:
        host.add(r, interval)
    else:
        if own.error:
            r.engine.timeline.emit("reconciler.error", own.error, level="warning")
        host.add(own.metrics.timed(r), interval)
        watch = MetricsController(project, r.engine, own)
        host.add(own.metrics.timed(watch), max(interval, METRICS_INTERVAL))
    host.install_signal_handlers()
    try:
        host.run()
    finally:
        if own is not None:
            own.close()
