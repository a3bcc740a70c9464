"""`conveyor dora` as a Rich table (its --json form is `app.dora.DoraView`)."""

from __future__ import annotations

from rich.table import Table

from conveyor.app.dora import DoraView
from conveyor.cli.output import esc
from conveyor.model.dora import Summary


def duration(seconds: float | None) -> str:
    """`45s`, `12m 5s`, `3h 20m`, `2d 4h`: two units at most."""
    if seconds is None:
        return "-"
    s = round(seconds)
    for unit, size, small, small_size in (
        ("d", 86_400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if s >= size:
            rest = (s % size) // small_size
            return f"{s // size}{unit}" + (f" {rest}{small}" if rest else "")
    return f"{s}s"


def _spread(s: Summary, what: str) -> str:
    if not s.count:
        return f"[dim]no {what}[/]"
    p90 = f", p90 {duration(s.p90)}" if s.p90 is not None else ""
    return f"median {duration(s.median)}{p90}"


def dora_table(view: DoraView) -> Table:
    m = view.metrics
    t = Table(
        title=esc(f"DORA metrics — {view.environment} (last {view.since}, {m.days:g} days)"),
        title_justify="left",
    )
    for col in ("metric", "value", "from"):
        t.add_column(col)
    t.add_row(
        "deployment frequency",
        f"{m.per_day:.2f} per day ({m.per_week:.1f} per week)",
        f"{m.successful} successful deployment{'s' if m.successful != 1 else ''}",
    )
    named = {"git": "git", "release": "the release's creation (no commit git knows)"}
    sources = ", ".join(f"{n} from {named[src]}" for src, n in m.commit_times.items() if n)
    t.add_row(
        "lead time for changes",
        _spread(m.lead_time, "successful deployment"),
        f"commit → serving; commit times: {sources}" if sources else "",
    )
    rate = "-" if m.change_failure_rate is None else f"{m.change_failure_rate:.0%}"
    t.add_row("change failure rate", rate, f"{m.failed} of {m.deployments} deployments failed")
    restored = m.time_to_restore.count
    t.add_row(
        "time to restore",
        _spread(m.time_to_restore, "failure restored"),
        f"{restored} restored" + (f", [yellow]{m.unrestored} not yet[/]" if m.unrestored else ""),
    )
    if m.unfinished:
        t.caption = f"{m.unfinished} deployment(s) still running or interrupted: not counted"
    return t
