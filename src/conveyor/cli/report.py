"""`status` and `history` as Rich tables (their --json forms are the app's views)."""

from __future__ import annotations

import time

from rich.table import Table

from conveyor.app.views import HistoryView, StatusView, TimelineView
from conveyor.cli.output import esc

_OUTCOME_COLOURS = {
    "succeeded": "green",
    "rolled_back": "yellow",
    "failed": "red",
    "paused": "yellow",
    "interrupted": "magenta",
    "running": "cyan",
}


def status_table(data: StatusView) -> Table:
    t = Table(title=esc(f"{data.project} — release {data.release or '-'}"), title_justify="left")
    for col in ("service", "replica", "release", "port", "state", "health", "router", "url"):
        t.add_column(col)
    for s in data.services:
        mode = " global" if s.mode == "global" else ""
        svc = f"{esc(s.name)} ({s.running_replicas}/{s.desired_replicas}{mode})"
        url = esc(s.url or "")
        if not s.replicas:
            t.add_row(svc, "-", "", "", "[red]none[/]", "", "", url)
            continue
        for i, r in enumerate(s.replicas):
            state = "[green]running[/]" if r.running else f"[red]exited {r.exit_code}[/]"
            health = {"healthy": "[green]healthy[/]", "unhealthy": "[red]unhealthy[/]"}.get(
                r.health, esc(r.health)
            )
            router = {"ready": "[green]ready[/]", "drain": "[yellow]drain[/]"}.get(
                r.router, esc(r.router)
            )
            rel = str(r.release) + ("" if r.current else " (old)")
            first = i == 0
            t.add_row(
                svc if first else "",
                esc(r.name),
                rel,
                # on a project network every replica has the same port at its own address
                str(r.port) if r.address == "127.0.0.1" else f"{r.address}:{r.port}",
                state,
                health,
                router,
                url if first else "",
            )
    return t


def history_table(data: HistoryView) -> Table:
    t = Table(title="rollouts (newest first)", title_justify="left")
    for col in ("id", "when", "kind", "release", "outcome", "duration", "detail"):
        t.add_column(col)
    for r in data.rollouts:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at))
        rel = f"{r.from_release or '-'} → {r.to_release or '-'}"
        dur = "" if r.duration is None else f"{r.duration:.1f}s"
        c = _OUTCOME_COLOURS.get(r.status, "white")
        t.add_row(
            str(r.id), when, r.kind, rel, f"[{c}]{esc(r.status)}[/]", dur, esc(r.error or r.reason)
        )
    return t


_STATUS_COLOURS = _OUTCOME_COLOURS | {"success": "green", "canceled": "magenta", "created": "blue"}


def timeline_table(view: TimelineView) -> Table:
    commit = view.commit[:12] if view.commit else "no commit"
    subject = view.subject if len(view.subject) <= 60 else view.subject[:59] + "…"
    t = Table(title=f"{commit} — {esc(subject)}", title_justify="left")
    for col in ("when", "what", "project", "status", "duration"):
        t.add_column(col)
    start = view.entries[0].at if view.entries else 0.0
    for e in view.entries:
        indent = "  " if e.what in ("job", "rollout") else ""
        when = time.strftime("%H:%M:%S", time.localtime(e.at))
        offset = f" +{e.at - start:.1f}s" if e.at > start else ""
        c = _STATUS_COLOURS.get(e.status, "white")
        dur = "" if e.duration is None else f"{e.duration:.1f}s"
        t.add_row(
            when + offset,
            indent + esc(e.title),
            esc(e.project),
            f"[{c}]{esc(e.status)}[/]",
            dur,
        )
    if not view.entries:
        t.add_row("", "[dim]no pipeline, release or rollout for this commit yet[/]", "", "", "")
    return t
