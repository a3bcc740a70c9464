"""`conveyor agent`: the long-running process hosting one project's reconciler."""

from __future__ import annotations

from conveyor.app.deploy import reconciler
from conveyor.app.project import Project
from conveyor.server.controllers import ControllerHost


def run_agent(project: Project, interval: float) -> None:
    """Reconcile the project every `interval` seconds until SIGTERM or SIGINT."""
    r = reconciler(project)
    host = ControllerHost(timeline=r.engine.timeline)
    host.add(r, interval)
    host.install_signal_handlers()
    host.run()
