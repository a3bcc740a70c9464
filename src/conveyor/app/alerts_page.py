"""What the dashboard's alerts page reads besides the alerts themselves (app.alerts): the
server's Alertmanager silences, and the history of Nagios's checks (their state changes are
`check.changed` events on the server's timeline, `check.note` for the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conveyor.app.alerts import alertmanager_url
from conveyor.model.events import Event
from conveyor.observe.metrics.silences import Silence, silences
from conveyor.store.events import EventLog

CHECK_KINDS = ("check.changed", "check.note")
CHECKS_DAEMON_KINDS = ("checks.started", "checks.stopped", "checks.error", "checks.restarted")


def server_silences(data_dir: Path, environ: Mapping[str, str]) -> list[Silence]:
    """The active and pending silences of the server's Alertmanager. AlertsError when none is
    known or it does not answer."""
    return silences(alertmanager_url(data_dir, environ, None))


def check_history(events: EventLog, since: float, limit: int = 200) -> list[Event]:
    """Nagios's notifications since `since`, newest first."""
    return events.recent(CHECK_KINDS, since, limit)


def check_subject(e: Event) -> str:
    """`HOST/CHECK` (`HOST` for the host itself) of a check event's notification."""
    host, check = e.data.get("host"), e.data.get("check")
    if host is None:
        return e.message
    return f"{host}/{check}" if check else str(host)


def latest_check_states(history: list[Event]) -> list[Event]:
    """The newest notification of each check (`data.subject`), from a newest-first history:
    pure. What Nagios said last about each check (or host) it told about."""
    seen: set[str] = set()
    out = []
    for e in history:
        subject = check_subject(e)
        if subject in seen:
            continue
        seen.add(subject)
        out.append(e)
    return out


__all__ = [
    "CHECK_KINDS",
    "Silence",
    "check_history",
    "check_subject",
    "latest_check_states",
    "server_silences",
]
