"""`conveyor agent`: the long-running process hosting one project's reconciler and, unless
turned off, its log collector (docs/logs.md)."""

from __future__ import annotations

from conveyor.app import logs as logs_app
from conveyor.app.deploy import reconciler
from conveyor.app.project import Project
from conveyor.server.controllers import ControllerHost


def run_agent(project: Project, interval: float, logs: bool = True) -> None:
    """Reconcile the project every `interval` seconds until SIGTERM or SIGINT; collect its
    containers' output into its log store meanwhile (unless `logs` is False or its compose
    file says `x-conveyor.logs: false`)."""
    r = reconciler(project)
    timeline = r.engine.timeline
    host = ControllerHost(timeline=timeline)
    host.add(r, interval)
    host.install_signal_handlers()

    def report(message: str) -> None:
        timeline.emit("logs.error", message, level="warning")

    collector = (
        logs_app.start_collector(project, timeline.subject.environment, report) if logs else None
    )
    try:
        host.run()
    finally:
        if collector is not None:
            collector.stop()
