"""`conveyor agent`: the long-running process hosting one project's reconciler."""

from __future__ import annotations

from conveyor.app.checks import TICK, checks_controller
from conveyor.app.deploy import reconciler
from conveyor.app.project import Project
from conveyor.server.controllers import ControllerHost


def run_agent(project: Project, interval: float, checks: bool = True) -> None:
    """Reconcile the project every `interval` seconds until SIGTERM or SIGINT; with `checks`,
    keep its Nagios configured and running and forward its notifications (app.checks)."""
    r = reconciler(project)
    host = ControllerHost(timeline=r.engine.timeline)
    host.add(r, interval)
    if checks:
        host.add(checks_controller(project, r.engine), TICK)
    host.install_signal_handlers()
    host.run()
