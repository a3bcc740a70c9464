"""The options and arguments several commands share, declared once: a module that imports
nothing but typer, so the commands' modules can be imported only when they run (cli/lazy.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.app.server_address import SERVER_VARIABLE, TOKEN_VARIABLE

FileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "-f",
        "--file",
        help=(
            "Compose file; repeat to merge several in order (default: COMPOSE_FILE, else "
            "compose.yaml and compose.override.yaml in this directory)."
        ),
        show_default=False,
    ),
]
ProfileOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--profile",
        help="Enable the services of this profile; repeat for several (default: COMPOSE_PROFILES).",
        show_default=False,
    ),
]
ProjectOpt = Annotated[
    str | None,
    typer.Option(
        "-p",
        "--project-name",
        help="Project name (default: `name:` or the directory).",
        envvar="COMPOSE_PROJECT_NAME",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (docs/cli.md).")]
NoLogsOpt = Annotated[
    bool,
    typer.Option(
        "--no-logs",
        help="Collect no logs (a short-lived review environment); "
        "`x-conveyor.logs: false` in compose.yaml says it for good.",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help=(
            "Act even on a project a `conveyor server` manages (refused otherwise, exit 2). "
            "Risky: the server is not told, git no longer says what runs, the server's drift "
            "correction or next deploy may undo it, and conveyor.yaml's overrides are not "
            "applied (docs/server.md, One writer)."
        ),
    ),
]
ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        envvar=SERVER_VARIABLE,
        help="The Conveyor server's URL.",
        show_envvar=True,
    ),
]
# For commands that work locally unless a server is named (`dora --env`, `timeline --env`).
AskServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=SERVER_VARIABLE,
        show_envvar=True,
        help="With --env: ask this Conveyor server (token: CONVEYOR_TOKEN or --token-file).",
        show_default=False,
    ),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help=f"A file holding the API token (default: the {TOKEN_VARIABLE} variable).",
        show_default=False,
    ),
]

# `conveyor logs` (and `conveyor ci logs`)
# The options, shared with main.py's command.
ServicesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Only these services (default: every one, CI jobs included).", show_default=False
    ),
]
GrepOpt = Annotated[
    str | None,
    typer.Option(
        "--grep",
        "-g",
        help="Words the line holds, all of them (`time*`: a prefix).",
        show_default=False,
    ),
]
LevelOpt = Annotated[
    str | None,
    typer.Option(
        "--level",
        "-l",
        help="This level and above: debug, info, warning, error…",
        show_default=False,
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="From this time: 10m, 2h, 3d ago, an ISO time or UNIX seconds.",
        show_default=False,
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", help="Up to this time (as --since).", show_default=False),
]
ReleaseOpt = Annotated[
    int | None, typer.Option("--release", help="Only this release's replicas.", show_default=False)
]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        help="KEY=VALUE of a JSON or logfmt line; repeat for several.",
        show_default=False,
    ),
]
ReplicaOpt = Annotated[
    list[str] | None,
    typer.Option("--replica", help="Only this replica (repeat for several).", show_default=False),
]
HostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--host", help="Only lines from this fleet host (repeat for several).", show_default=False
    ),
]
StreamOpt = Annotated[
    list[str] | None,
    typer.Option("--stream", help="stdout or stderr.", show_default=False),
]
TailOpt = Annotated[
    int, typer.Option("--tail", "-n", help="How many of the newest matching lines.")
]
FollowOpt = Annotated[
    bool,
    typer.Option("-f", "--follow", help="Then keep printing new lines (every replica, release)."),
]
LogJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
FilesOpt = Annotated[
    list[Path] | None, typer.Option("--file", help="Compose file (repeat to merge several).")
]
