"""`conveyor backup`: backups of the stack's volumes and databases to S3 (docs/backups.md).

conveyor backup create [SERVICE]...            back up (every service with state when none)
conveyor backup list [SERVICE]                 the stored backups, oldest first
conveyor backup restore SERVICE [--id ID]      put the newest (or that) backup back
conveyor backup verify [SERVICE]... [--id ID]  download, decrypt, check (+ trial restore)

`--env NAME` acts on the environment a `conveyor server` runs on this host; exit code 1
when any service failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.app.backup import (
    BackupTarget,
    aws_stack,
    backup_target,
    create,
    create_snapshots,
    list_backups,
    list_snapshots,
    restore,
    verify,
)
from conveyor.app.project import Project
from conveyor.cli.options import FileOpt, ProjectOpt
from conveyor.cli.output import console, err, esc, print_json
from conveyor.model.backup import BackupOutcome

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")

EnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env",
        help="The environment a `conveyor server` runs here (default: the project itself).",
        show_default=False,
    ),
]
ConveyorFileOpt = Annotated[
    Path, typer.Option("--conveyor-file", help="The file whose `backups:` section is read.")
]
IdOpt = Annotated[
    str | None, typer.Option("--id", help="This backup, not the newest.", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
EbsOpt = Annotated[
    bool,
    typer.Option(
        "--ebs",
        help="EBS snapshots of the AWS stack's host volumes instead (docs/backups.md).",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        envvar="AWS_ENDPOINT_URL",
        help="With --ebs: another EC2 endpoint than AWS's (moto).",
        show_default=False,
    ),
]


def _target(
    file: list[Path] | None, project_name: str | None, env: str | None, conveyor_file: Path
) -> BackupTarget:
    project = Project.open(file, project_name, dict(os.environ), Path.cwd())
    return backup_target(project, env, conveyor_file)


def _progress(as_json: bool) -> Callable[[str], None]:
    def show(line: str) -> None:
        if not as_json:
            err.print(esc(line), highlight=False)

    return show


def _report(outcomes: list[BackupOutcome], as_json: bool) -> None:
    if as_json:
        print_json([o.model_dump(mode="json") for o in outcomes])
    else:
        for o in outcomes:
            mark = "[green]ok[/]" if o.ok else "[red]failed[/]"
            ident = f" {esc(o.id)}" if o.id else ""
            console.print(
                f"{mark} {o.action} {esc(o.service)}{ident}: {esc(o.message)}", highlight=False
            )
    if any(not o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command("create")
def create_cmd(
    services: Annotated[
        list[str] | None, typer.Argument(help="Only these services.", show_default=False)
    ] = None,
    env: EnvOpt = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    conveyor_file: ConveyorFileOpt = Path("conveyor.yaml"),
    ebs: EbsOpt = False,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Back up the services' named volumes (paused or stopped meanwhile) or their database's
    own dump, compressed and encrypted, to the bucket; then apply the retention."""
    target = _target(file, project_name, env, conveyor_file)
    if ebs:
        project = Project.open(file, project_name, dict(os.environ), Path.cwd())
        stack, region = aws_stack(project, conveyor_file)
        run = create_snapshots(stack, region, target.settings.retention, endpoint_url)
        if as_json:
            print_json(
                {
                    "made": [s.model_dump(mode="json") for s in run.made],
                    "deleted": [s.model_dump(mode="json") for s in run.deleted],
                }
            )
            return
        for snap in run.made:
            console.print(f"snapshot {esc(snap.id)} of {esc(snap.volume)}: {esc(snap.state)}")
        for snap in run.deleted:
            console.print(f"retention deleted {esc(snap.id)} of {esc(snap.volume)}")
        return
    outcomes = create(target, services or [], progress=_progress(as_json))
    if not outcomes and not as_json:
        console.print("nothing to back up: no service has a named volume or a database")
    _report(outcomes, as_json)


@app.command("list")
def list_cmd(
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    env: EnvOpt = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    conveyor_file: ConveyorFileOpt = Path("conveyor.yaml"),
    ebs: EbsOpt = False,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The stored backups, oldest first."""
    if ebs:
        project = Project.open(file, project_name, dict(os.environ), Path.cwd())
        snaps = list_snapshots(*aws_stack(project, conveyor_file), endpoint_url)
        if as_json:
            print_json([s.model_dump(mode="json") for s in snaps])
            return
        for snap in snaps:
            when = datetime.fromtimestamp(snap.started, UTC).strftime("%Y-%m-%d %H:%M:%S")
            console.print(f"{esc(snap.id)} {esc(snap.volume)} {when} {esc(snap.state)}")
        return
    target = _target(file, project_name, env, conveyor_file)
    found = list_backups(target, service)
    if as_json:
        print_json([{"prefix": b.prefix, **b.manifest.model_dump(mode="json")} for b in found])
        return
    if not found:
        console.print(f"no backups of {esc(service or target.project)} yet")
        return
    table = Table(title=esc(f"backups of {target.environment}"), title_justify="left")
    hosts = any(b.manifest.host for b in found)  # a fleet: the host each was made on
    for col in ("service", "id", "created (UTC)", "kind", "release", "stored"):
        table.add_column(col)
    if hosts:
        table.add_column("host")
    for b in found:
        created = datetime.fromtimestamp(b.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        release = str(b.manifest.release) if b.manifest.release is not None else ""
        row = [esc(b.service), esc(b.id), created, esc(b.manifest.kind), release, _size(b.size)]
        table.add_row(*row, *([esc(b.manifest.host or "")] if hosts else []))
    console.print(table)


@app.command("restore")
def restore_cmd(
    service: Annotated[str, typer.Argument(help="The service to restore.")],
    backup_id: IdOpt = None,
    env: EnvOpt = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    conveyor_file: ConveyorFileOpt = Path("conveyor.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Put the service back as its newest backup (or --id): checked first, then its volumes
    replaced (replicas stopped meanwhile) or its dump loaded."""
    target = _target(file, project_name, env, conveyor_file)
    _report([restore(target, service, backup_id, progress=_progress(as_json))], as_json)


@app.command("verify")
def verify_cmd(
    services: Annotated[
        list[str] | None, typer.Argument(help="Only these services.", show_default=False)
    ] = None,
    backup_id: IdOpt = None,
    env: EnvOpt = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    conveyor_file: ConveyorFileOpt = Path("conveyor.yaml"),
    no_trial: Annotated[
        bool, typer.Option("--no-trial", help="Skip the trial restore of database dumps.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download, decrypt and check the newest backup of each service against its manifest,
    and load PostgreSQL dumps into a throwaway container. Exit 1 if one cannot be restored."""
    if backup_id is not None and len(services or []) != 1:
        raise typer.BadParameter("--id needs exactly one SERVICE", param_hint="--id")
    target = _target(file, project_name, env, conveyor_file)
    outcomes = verify(
        target, services or [], backup_id, progress=_progress(as_json), trial=not no_trial
    )
    _report(outcomes, as_json)


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
