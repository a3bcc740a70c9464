"""`conveyor agent`: the long-running process hosting one project's reconciler and, unless
turned off, its log collector (docs/logs.md)."""

from __future__ import annotations

from conveyor.app import logs as logs_app
from conveyor.app.alerts import RULES_INTERVAL, AlertRulesController, agent_listener
from conveyor.app.checks import TICK, checks_controller
from conveyor.app.deploy import reconciler
from conveyor.app.metrics import METRICS_INTERVAL, MetricsController, serve_own_metrics
from conveyor.app.project import Project
from conveyor.server.alert_listener import AlertListener
from conveyor.server.controllers import ControllerHost


def run_agent(project: Project, interval: float, checks: bool = True, logs: bool = True) -> None:
    """Reconcile the project every `interval` seconds until SIGTERM or SIGINT; with `checks`,
    keep its Nagios configured and running and forward its notifications (app.checks).
    Unless metrics are off for the project, also serve Conveyor's own metrics and keep its
    metrics stack (targets, daemons) in step (docs/metrics.md). Alertmanager's deliveries
    become events on the project's timeline (a listener on 127.0.0.1), and the alert rules
    follow the serving release's SLOs (docs/alerts.md). With `logs` (unless its compose file
    says `x-conveyor.logs: false`), collect its containers' output into its log store."""
    own = serve_own_metrics(project)
    r = reconciler(project)
    timeline = r.engine.timeline
    host = ControllerHost(timeline=timeline)
    if own is None:
        host.add(r, interval)
    else:
        if own.error:
            timeline.emit("reconciler.error", own.error, level="warning")
        host.add(own.metrics.timed(r), interval)
        watch = MetricsController(project, r.engine, own)
        host.add(own.metrics.timed(watch), max(interval, METRICS_INTERVAL))
    if checks:
        host.add(checks_controller(project, r.engine), TICK)
    host.add(AlertRulesController(r.engine), max(interval, RULES_INTERVAL))
    listener = agent_listener(project, r.engine, AlertListener)
    host.install_signal_handlers()

    def report(message: str) -> None:
        timeline.emit("logs.error", message, level="warning")

    collector = (
        logs_app.start_collector(project, timeline.subject.environment, report, events=timeline)
        if logs
        else None
    )
    try:
        host.run()
    finally:
        if collector is not None:
            collector.stop()
        if listener is not None:
            listener.close()
        if own is not None:
            own.close()
