"""One writer, for the local commands: before `up`, `deploy`, `rollback`, `down` or `agent`
touch a project, find whether a `conveyor server` manages it (`app.ownership`) and do what
`app.one_writer.decide` says: go on, go through the server's API, refuse (exit 2, naming
the server and its way to do it), or, with `--force`, go on behind the server with a warning.
Read-only commands open a managed project as the server has it (its name and state), so
`conveyor -p shop-staging history` works from anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from conveyor.app.one_writer import REFUSED_EXIT, Command, WriterDecision, decide
from conveyor.app.ownership import Resolved, open_owned, resolve
from conveyor.app.project import Project
from conveyor.cli.output import err, esc, print_error
from conveyor.model.ownership import ServerOwner


@dataclass(frozen=True)
class Target:
    """What a command works on: the project (None when it goes through the API), the server
    that manages it (None: no server does) and what was decided."""

    project: Project | None
    owner: ServerOwner | None
    decision: WriterDecision
    found: Resolved
    files: list[Path]
    profiles: list[str]

    def local(self) -> Project:
        """The project on this host, for a read the API could not answer."""
        return self.project or _open(self.found, self.files, self.profiles)


def _named(
    ctx: typer.Context, file: list[Path] | None, project_name: str | None
) -> tuple[list[Path], str | None, list[str]]:
    glob: dict[str, Any] = ctx.obj or {}
    files = file or glob.get("file") or []
    return list(files), project_name or glob.get("project_name"), list(glob.get("profiles") or [])


def _resolve(
    ctx: typer.Context, file: list[Path] | None, project_name: str | None
) -> tuple[Resolved, list[Path], list[str]]:
    files, name, profiles = _named(ctx, file, project_name)
    found = resolve(files, name, os.environ, Path.cwd(), profiles)
    return found, files, profiles


def _open(found: Resolved, files: list[Path], profiles: list[str]) -> Project:
    if found.owner is None:
        return found.require()
    return open_owned(found.owner, found, os.environ, Path.cwd(), files, profiles)


def open_project(ctx: typer.Context, file: list[Path] | None, project_name: str | None) -> Project:
    """The project a read-only command reads: as named, or as its server has it."""
    found, files, profiles = _resolve(ctx, file, project_name)
    return _open(found, files, profiles)


def target(
    ctx: typer.Context,
    file: list[Path] | None,
    project_name: str | None,
    command: Command,
    *,
    force: bool = False,
    service: str | None = None,
) -> Target:
    """Decide, tell the user what was decided, and open the project unless the command goes
    through the API. A refusal ends the command here with exit code 2."""
    found, files, profiles = _resolve(ctx, file, project_name)
    decision = decide(found.owner, command, running=found.running, force=force, service=service)
    if decision.verdict == "refuse":
        print_error("refused:", decision.message, hint=decision.hint)
        raise typer.Exit(REFUSED_EXIT)
    if decision.verdict == "force":
        err.print(f"[bold yellow]warning:[/] {esc(decision.message)}", highlight=False)
        if decision.hint:
            err.print(f"[dim]{esc(decision.hint)}[/]", highlight=False)
    elif decision.message:
        err.print(f"[dim]{esc(decision.message)}[/]", highlight=False)
    project = None if decision.verdict == "api" else _open(found, files, profiles)
    return Target(project, found.owner, decision, found, files, profiles)
