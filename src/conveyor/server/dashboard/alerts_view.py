"""What the alerts page shows (issue 11, item 7): Alertmanager's alerts (firing, then resolved
over the last day), its silences, and Nagios: whether it runs for each environment, what it
said last about each check, and its notifications (state changes are `check.changed` events
on the server's timeline). Each source that does not answer is named, not hidden."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from conveyor.app.alerts_page import Silence, check_history, latest_check_states
from conveyor.app.views import ChecksHealthView
from conveyor.errors import AlertsError, ConveyorError
from conveyor.model.alerts import AlertView
from conveyor.model.events import Event
from conveyor.server.api import ApiState
from conveyor.server.dashboard.sources import ObserveSources

RESOLVED_WINDOW = 86400.0
CHECKS_WINDOW = 7 * 86400.0


@dataclass
class AlertsPage:
    alertmanager: str | None = None  # the URL asked
    firing: list[AlertView] = field(default_factory=list)
    resolved: list[AlertView] = field(default_factory=list)
    alerts_problem: str | None = None
    silences: list[Silence] = field(default_factory=list)
    silences_problem: str | None = None
    checks: dict[str, ChecksHealthView | None] = field(default_factory=dict)  # per environment
    check_states: list[Event] = field(default_factory=list)  # the newest per check
    check_history: list[Event] = field(default_factory=list)  # newest first
    problems: list[str] = field(default_factory=list)

    @property
    def checks_run(self) -> bool:
        return any(c is not None and c.enabled for c in self.checks.values())


NO_STACK = (
    "No Alertmanager runs for this server: its metrics stack is off (CONVEYOR_METRICS=0) or "
    "has not started yet."
)


def _for_the_web(e: AlertsError) -> str:
    """The error in a web page's words: the one meaning "no stack" speaks to the command line
    (its --alertmanager option), so it is said here without it."""
    text = str(e)
    return NO_STACK if text.startswith("no Alertmanager known") else text


def alerts_page(state: ApiState, sources: ObserveSources) -> AlertsPage:
    out = AlertsPage()
    if state.alerts_view is None:
        out.alerts_problem = "This server has no Alertmanager to ask."
    else:
        try:
            view = state.alerts_view(RESOLVED_WINDOW)
            out.alertmanager = view.alertmanager
            out.firing = [a for a in view.alerts if a.state != "resolved"]
            out.resolved = [a for a in view.alerts if a.state == "resolved"]
        except AlertsError as e:
            out.alerts_problem = _for_the_web(e)
    if sources.silences is None:
        out.silences_problem = "This server has no Alertmanager to ask."
    else:
        try:
            out.silences = sources.silences()
        except AlertsError as e:
            out.silences_problem = _for_the_web(e)
    for summary in state.backend.environments():
        try:
            status = state.backend.environment(summary.name).status
            out.checks[summary.name] = status.checks if status else None
        except (ConveyorError, OSError) as e:
            out.problems.append(f"{summary.name}: {e}")
    out.check_history = check_history(state.db.events, time.time() - CHECKS_WINDOW)
    out.check_states = latest_check_states(out.check_history)
    return out
