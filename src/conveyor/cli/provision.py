"""`conveyor provision [--check] [--diff] [--limit HOST] [--json]`: configure the fleet's
hosts with the shipped Ansible roles (docs/provision.md). Progress per host and task on
stderr; the recap per host on stdout; exit code 1 when a host failed or was unreachable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.status import Status
from rich.table import Table

from conveyor.app.provision import provision as run_provision
from conveyor.app.provision import provision_inputs
from conveyor.cli.output import console, err, esc, print_json
from conveyor.model.provision import ProvisionEvent, ProvisionResult


class _Progress:
    """Each changed, failed or unreachable step on its own line; the running one on the
    spinner (a terminal only)."""

    def __init__(self, status: Status | None, diff: bool) -> None:
        self.status, self.diff = status, diff

    def __call__(self, e: ProvisionEvent) -> None:
        where = f"{e.role} : {e.task}" if e.role else e.task
        host = esc(e.host or "")
        match e.kind:
            case "play.started":
                err.print(f"[bold]{esc(e.task)}[/]", highlight=False)
            case "task.started":
                if self.status is not None:
                    self.status.update(f"{host}: {esc(where)}")
            case "task.changed":
                err.print(f"  [yellow]~[/] {host}: {esc(where)}", highlight=False)
                if self.diff and e.diff:
                    err.print(f"[dim]{esc(e.diff)}[/]", highlight=False)
            case "task.failed":
                err.print(f"  [red]✗[/] {host}: {esc(where)}: {esc(e.message)}", highlight=False)
            case "host.unreachable":
                err.print(
                    f"  [red]✗[/] {host}: unreachable at {esc(where)}: {esc(e.message)}",
                    highlight=False,
                )


def _recap(result: ProvisionResult) -> Table:
    mode = " (check: nothing changed)" if result.check else ""
    t = Table(title=f"recap{mode}, {result.seconds:.0f}s", title_justify="left")
    for col in ("host", "ok", "changed", "unreachable", "failed", "skipped", "failed task"):
        t.add_column(col)
    for h in result.hosts:
        colour = "green" if h.succeeded else "red"
        why = f"{h.failed_task}: {h.message}" if h.failed_task else ""
        t.add_row(
            f"[{colour}]{esc(h.host)}[/]",
            str(h.ok),
            str(h.changed),
            str(h.unreachable),
            str(h.failed),
            str(h.skipped),
            esc(why),
        )
    return t


def provision(
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing: report what would change.")
    ] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show the changes to files.")] = False,
    limit: Annotated[
        str | None, typer.Option("--limit", help="Only this host.", show_default=False)
    ] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option(
            "-f",
            "--file",
            help="Compose file (its published ports are opened).",
            show_default=False,
        ),
    ] = None,
    project_name: Annotated[
        str | None,
        typer.Option("-p", "--project-name", envvar="COMPOSE_PROJECT_NAME", show_default=False),
    ] = None,
    conveyor_file: Annotated[
        Path, typer.Option("--conveyor-file", help="The file whose hosts:/inventory: is read.")
    ] = Path("conveyor.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Configure the fleet's hosts with Ansible: base (deploy user, SSH hardening, time sync,
    security upgrades), Docker Engine, HAProxy, the agent's unit, node exporter, NRPE and the
    firewall. Idempotent: a second run changes nothing."""
    inputs = provision_inputs(
        conveyor_file, file or [], dict(os.environ), Path.cwd(), project_name=project_name
    )
    status = err.status("") if not as_json and err.is_terminal else None
    if status is not None:
        status.start()
    try:
        result = run_provision(
            inputs,
            check=check,
            diff=diff,
            limit=limit,
            on_event=None if as_json else _Progress(status, diff),
        )
    finally:
        if status is not None:
            status.stop()
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        console.print(_recap(result))
    if not result.succeeded:
        raise typer.Exit(1)
