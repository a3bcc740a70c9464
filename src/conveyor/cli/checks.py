"""`conveyor checks`: the project's infrastructure checks as Nagios runs them, and downtimes.

conveyor checks [--json]                          every host and check, its state and why
conveyor checks downtime SERVICE --for 1h         no notification for its checks meanwhile
"""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.app.checks import checks_view, schedule_downtime
from conveyor.app.checks_views import ChecksView
from conveyor.app.project import Project
from conveyor.cli.options import FileOpt, ProjectOpt
from conveyor.cli.output import console, err, esc, print_json

app = typer.Typer(no_args_is_help=False, rich_markup_mode="rich")

_COLOURS = {
    "OK": "green",
    "UP": "green",
    "WARNING": "yellow",
    "UNKNOWN": "magenta",
    "PENDING": "dim",
    "CRITICAL": "red",
    "DOWN": "red",
    "UNREACHABLE": "red",
}


def _project(ctx: typer.Context, file: list[Path] | None, project_name: str | None) -> Project:
    from conveyor.cli.one_writer import open_project

    return open_project(ctx, file, project_name)


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0, round(now - ts))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def checks_table(view: ChecksView) -> Table:
    now = time.time()
    t = Table(title=esc(f"{view.project} — checks"), title_justify="left")
    for col in ("host", "check", "state", "last check", "flags", "output"):
        t.add_column(col)
    for s in view.checks:
        colour = _COLOURS.get(s.state, "white")
        state = f"[{colour}]{s.state}[/]" + ("" if s.state_type == "hard" else " (soft)")
        flags = [f for f, on in (("flapping", s.flapping), ("downtime", s.in_downtime)) if on]
        if s.acknowledged:
            flags.append("acknowledged")
        t.add_row(
            esc(s.host),
            esc(s.check or "(host)"),
            state,
            _ago(s.last_check, now),
            esc(", ".join(flags)),
            esc(s.output),
        )
    return t


@app.callback(invoke_without_command=True)
def checks(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every host and check Nagios runs for the project: state, output, last check, whether
    it flaps or is in a downtime (docs/checks.md)."""
    if ctx.invoked_subcommand is not None:
        return
    view = checks_view(_project(ctx, file, project_name))
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    if not view.nagios.running:
        err.print(f"[yellow]Nagios: {esc(view.nagios.summary)}[/]")
        raise typer.Exit(1)
    console.print(checks_table(view))
    for d in view.downtimes:
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.end))
        what = d.check or f"host {d.host}"
        console.print(f"[dim]downtime until {until}: {esc(what)} ({esc(d.comment)})[/]")
    console.print(f"Nagios: {esc(view.nagios.summary)}", highlight=False)


@app.command()
def downtime(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="A Compose service (all its checks), a check's name, or a host.",
            show_default=False,
        ),
    ],
    for_: Annotated[
        str, typer.Option("--for", help="How long: 30m, 1h, 2h30m…", show_default=False)
    ] = "1h",
    comment: Annotated[str, typer.Option("--comment", help="Why.")] = "maintenance",
    file: FileOpt = None,
    project_name: ProjectOpt = None,
) -> None:
    """Schedule a downtime: Nagios keeps checking, but sends no notification for these checks
    until it ends."""
    from conveyor.app.checks import parse_for

    try:
        seconds = parse_for(for_)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--for") from None
    r = schedule_downtime(
        _project(ctx, file, project_name), target, seconds, getpass.getuser(), comment
    )
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.end))
    what = ", ".join(r.checks) if r.checks else f"host {r.host}"
    confirmed = "" if r.confirmed else " (sent; Nagios has not listed it yet)"
    console.print(f"downtime until {until}: {esc(what)}{confirmed}", highlight=False)
