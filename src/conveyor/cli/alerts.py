"""`conveyor alerts` as a Rich table (its --json form is `model.alerts.AlertsView`)."""

from __future__ import annotations

import time

from rich.table import Table

from conveyor.cli.dora import duration
from conveyor.cli.output import esc
from conveyor.model.alerts import AlertsView

_STATES = {"firing": "red", "suppressed": "yellow", "resolved": "green"}


def alerts_table(view: AlertsView, now: float | None = None) -> Table:
    now = time.time() if now is None else now
    t = Table(title=esc(f"alerts — {view.alertmanager}"), title_justify="left")
    for col in ("alert", "state", "severity", "where", "since", "summary"):
        t.add_column(col)
    for a in view.alerts:
        where = "/".join(x for x in (a.environment or a.project, a.service) if x)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.since))
        if a.state == "resolved" and a.ended is not None:
            since += f" (for {duration(a.ended - a.since)})"
        else:
            since += f" ({duration(now - a.since)} ago)"
        colour = _STATES.get(a.state, "white")
        t.add_row(
            esc(a.name),
            f"[{colour}]{a.state}[/]",
            esc(a.severity or ""),
            esc(where or a.labels.get("instance", "")),
            since,
            esc(a.summary),
        )
    if not view.alerts:
        t.caption = "no alert firing, none resolved in the window"
    return t
