"""`conveyor logs`: search the project's log store (docs/logs.md), or follow it with -f.

Before anything collected the project's logs (no agent has run since logs were added, or it
runs with --no-logs) there is no store: `conveyor logs SERVICE` then reads the replicas'
output from the Docker Engine as before, and says so on stderr.
"""

from __future__ import annotations

import json
import sys
import time

import typer

from conveyor.app import deploy as deploy_app
from conveyor.app import logs as logs_app
from conveyor.app.project import Project
from conveyor.cli.output import console, err, esc
from conveyor.errors import LogQueryError
from conveyor.model.logs import LogQuery, LogRecord

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")
_LEVEL_STYLE = {
    "trace": "dim",
    "debug": "dim",
    "info": "",
    "warning": "yellow",
    "error": "red",
    "critical": "bold red",
}
# The CLI's spelling of each filter, for errors.
OPTION_NAMES = {
    "level": "--level",
    "field": "--field",
    "since": "--since",
    "until": "--until",
    "limit": "--tail",
    "stream": "--stream",
}


def run_logs(
    project: Project,
    services: list[str],
    *,
    grep: str | None,
    level: str | None,
    since: str | None,
    until: str | None,
    release: int | None,
    fields: list[str],
    replicas: list[str],
    streams: list[str],
    tail: int,
    hosts: list[str] | None = None,
    follow: bool,
    as_json: bool,
) -> None:
    try:
        query = logs_app.log_query(
            services,
            grep=grep,
            level=level,
            since=since,
            until=until,
            release=release,
            fields=fields,
            replicas=replicas,
            hosts=hosts or (),
            streams=streams,
            limit=tail,
            names=OPTION_NAMES,
        )
    except LogQueryError as e:
        raise typer.BadParameter(e.reason, param_hint=e.option) from None
    path = logs_app.store_path(project)
    if not path.exists():
        _from_docker(project, query, follow, tail)
        return
    show = _Printer(as_json)
    try:
        if follow:
            for record in logs_app.follow(path, query):
                show(record)
            return
        found = logs_app.search(path, query)
        # The newest by arrival, printed in time order (stdout and stderr arrive apart).
        for record in sorted(found, key=lambda r: (r.ts, r.id)):
            show(record)
        if not found and not as_json:
            err.print("[dim]no matching lines[/]")
    except KeyboardInterrupt:
        pass


def _from_docker(project: Project, query: LogQuery, follow: bool, tail: int) -> None:
    """Today's behaviour before any store exists: one service's replicas, from Docker."""
    filtered = (
        query.text
        or query.level
        or query.fields
        or query.since is not None
        or query.until is not None
        or query.release is not None
        or query.replicas
        or query.hosts
        or query.streams
    )
    if len(query.services) != 1 or filtered:
        raise typer.BadParameter(
            f"no log store for {project.paths().project} yet ({logs_app.store_path(project)}): "
            "it is written by the agent `conveyor up` leaves running (unless --no-logs). "
            "Until then `conveyor logs SERVICE [-f] [--tail N]` reads one service's output "
            "from the Docker Engine, without filters",
        )
    err.print(
        "[dim]no log store yet: reading the replicas' output from the Docker Engine[/]",
        highlight=False,
    )
    seen: dict[str, str] = {}
    lines = deploy_app.logs(project, query.services[0], follow, tail)
    try:
        for replica, line in lines:
            col = seen.setdefault(replica, _COLOURS[len(seen) % len(_COLOURS)])
            console.print(
                f"[{col}]{esc(replica)}[/] | {esc(line)}", highlight=False, soft_wrap=True
            )
    except KeyboardInterrupt:
        pass


class _Printer:
    """One line per record: time, where it comes from, level, message, fields; or JSON, one
    object per line (`--json`)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.colours: dict[str, str] = {}

    def __call__(self, r: LogRecord) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(r.model_dump(mode="json")) + "\n")
            sys.stdout.flush()
            return
        who = _origin(r)
        col = self.colours.setdefault(who, _COLOURS[len(self.colours) % len(_COLOURS)])
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.ts)) + f".{_millis(r.ts)}"
        level = ""
        if r.level is not None:
            style = _LEVEL_STYLE[r.level]
            level = f"[{style}]{r.level:<8}[/] " if style else f"{r.level:<8} "
        fields = " ".join(f"{k}={v}" for k, v in r.fields.items())
        if r.whole_line():  # a structured line without a message key: its fields say it all
            text = esc(fields)
        else:
            text = esc(r.message) + (f" [dim]{esc(fields)}[/]" if fields else "")
        console.print(
            f"[dim]{stamp}[/] [{col}]{esc(who)}[/] {level}{text}",
            highlight=False,
            soft_wrap=True,
        )


def _origin(r: LogRecord) -> str:
    labels = r.labels
    if labels.replica:
        # On a fleet, with the host whose engine ran it (one host: the replica alone).
        return labels.replica if labels.host is None else f"{labels.replica}@{labels.host}"
    if labels.job is not None:
        return f"job {labels.job}"
    return labels.service or labels.container[:12]


def _millis(ts: float) -> str:
    return f"{int(ts * 1000) % 1000:03d}"
