"""`conveyor aws`: the project's AWS infrastructure as code (docs/aws.md).

conveyor aws render [--out DIR]     write DIR/template.json and DIR/parameters.json
conveyor aws plan                   the change set CloudFormation computes (nothing kept)
conveyor aws apply                  execute a change set, wait with progress, print outputs
conveyor aws diff                   the deployed stack's template against the rendered one
conveyor aws hosts [--json]         the stack's instances: what `hosts_from: aws` makes the fleet
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from conveyor.app.aws import (
    AwsInputs,
    AwsStack,
    aws_apply,
    aws_diff,
    aws_inputs,
    aws_plan,
    render_files,
)
from conveyor.app.aws_hosts import aws_hosts
from conveyor.cli.options import FileOpt, ProjectOpt
from conveyor.cli.output import console, esc, print_json
from conveyor.model.aws import ChangeSetPlan, StackEvent

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")

ConveyorFileOpt = Annotated[
    Path,
    typer.Option("--conveyor-file", help="The file whose `aws:` section is read."),
]
RegionOpt = Annotated[
    str | None,
    typer.Option("--region", help="Over aws.region (default us-east-1).", show_default=False),
]
StackOpt = Annotated[
    str | None,
    typer.Option(
        "--stack-name", help="Over aws.stack_name (default conveyor-<project>).", show_default=False
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        envvar="AWS_ENDPOINT_URL",
        help="Another endpoint than AWS's (moto, LocalStack).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@dataclass(frozen=True)
class Stack:
    """Which stack a command is about: the options every `aws` command takes."""

    file: list[Path] | None
    project_name: str | None
    conveyor_file: Path
    region: str | None
    stack_name: str | None
    endpoint_url: str | None = None

    def where(self) -> AwsStack:
        return AwsStack(
            self.file or [],
            self.conveyor_file,
            dict(os.environ),
            Path.cwd(),
            project_name=self.project_name,
            region=self.region,
            stack_name=self.stack_name,
        )

    def inputs(self) -> AwsInputs:
        return aws_inputs(self.where())


_KEYWORD = inspect.Parameter.KEYWORD_ONLY
# The options of `Stack`, as typer reads them from a command's signature.
_STACK_OPTIONS = (
    inspect.Parameter("file", _KEYWORD, annotation=FileOpt, default=None),
    inspect.Parameter("project_name", _KEYWORD, annotation=ProjectOpt, default=None),
    inspect.Parameter(
        "conveyor_file", _KEYWORD, annotation=ConveyorFileOpt, default=Path("conveyor.yaml")
    ),
    inspect.Parameter("region", _KEYWORD, annotation=RegionOpt, default=None),
    inspect.Parameter("stack_name", _KEYWORD, annotation=StackOpt, default=None),
)
_ENDPOINT_OPTION = inspect.Parameter("endpoint_url", _KEYWORD, annotation=EndpointOpt, default=None)


def _on_stack(*, endpoint: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command `command(stack: Stack, ...)` given the stack options (and --endpoint-url
    unless `endpoint` is False) as one `Stack`: declared once here, added to the signature
    typer reads, so each command lists only its own options."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [p.replace(kind=_KEYWORD) for p in signature.parameters.values() if p.name != "stack"]
        shared = (*_STACK_OPTIONS, _ENDPOINT_OPTION) if endpoint else _STACK_OPTIONS
        names = {f.name for f in fields(Stack)}

        @functools.wraps(command)
        def run(**given: Any) -> None:
            stack = Stack(**{k: v for k, v in given.items() if k in names})
            command(stack, **{k: v for k, v in given.items() if k not in names})

        run.__signature__ = inspect.Signature([*shared, *own])  # type: ignore[attr-defined]
        return run

    return decorate


@app.command()
@_on_stack(endpoint=False)
def render(
    stack: Stack,
    out: Annotated[Path, typer.Option("--out", help="Directory to write into.")] = Path(
        "cloudformation"
    ),
) -> None:
    """Write the CloudFormation template (and its parameters) from conveyor.yaml's `aws:`
    section and the compose file's published services."""
    inputs = stack.inputs()
    files = render_files(inputs, out)
    served = ", ".join(f"{s.name}:{s.port}" for s in inputs.services) or "none"
    console.print(
        f"wrote {esc(files.template)} and {esc(files.parameters)} "
        f"(stack {esc(inputs.stack_name)}, {esc(inputs.settings.region)}; "
        f"published services: {esc(served)})",
        highlight=False,
    )


def _changes_table(plan: ChangeSetPlan) -> Table:
    t = Table(
        title=esc(f"{plan.stack_name}: {plan.kind.lower()}, {len(plan.changes)} change(s)"),
        title_justify="left",
    )
    for col in ("action", "resource", "type", "replacement"):
        t.add_column(col)
    colours = {"Add": "green", "Modify": "yellow", "Remove": "red"}
    for c in plan.changes:
        colour = colours.get(c.action, "white")
        t.add_row(
            f"[{colour}]{esc(c.action)}[/]",
            esc(c.logical_id),
            esc(c.resource_type),
            esc(c.replacement or ""),
        )
    return t


@app.command()
@_on_stack()
def plan(stack: Stack, as_json: JsonOpt = False) -> None:
    """What `apply` would change: CloudFormation's change set of the rendered template
    (create or update). The change set is deleted again: nothing changes."""
    result = aws_plan(stack.inputs(), stack.endpoint_url)
    if as_json:
        print_json(result.model_dump(mode="json", exclude={"change_set"}))
        return
    if not result.changes:
        console.print(f"{esc(result.stack_name)}: no changes", highlight=False)
        return
    console.print(_changes_table(result))


def _progress(event: StackEvent) -> None:
    colour = "red" if "FAILED" in event.status else "green" if "COMPLETE" in event.status else ""
    status = f"[{colour}]{esc(event.status)}[/]" if colour else esc(event.status)
    why = f" — {esc(event.reason)}" if event.reason else ""
    console.print(
        f"{esc(event.logical_id)} ({esc(event.resource_type)}): {status}{why}", highlight=False
    )


@app.command()
@_on_stack()
def apply(stack: Stack) -> None:
    """Create or update the stack through a change set, print progress until it settles,
    then its outputs. A rollback ends with the failed resources and AWS's reasons."""
    inputs = stack.inputs()
    result = aws_apply(inputs, stack.endpoint_url, on_event=_progress)
    if not result.executed:
        console.print(f"{esc(inputs.stack_name)}: no changes", highlight=False)
    else:
        console.print(_changes_table(result.plan))
    console.print(f"{esc(inputs.stack_name)}: {esc(result.state.status)}", highlight=False)
    for key, value in sorted(result.state.outputs.items()):
        console.print(f"  {esc(key)} = {esc(value)}", highlight=False)


@app.command()
@_on_stack()
def diff(stack: Stack, as_json: JsonOpt = False) -> None:
    """The deployed stack's template against the rendered one, resource by resource (exit
    code 1 when they differ)."""
    inputs = stack.inputs()
    diffs = aws_diff(inputs, stack.endpoint_url)
    if as_json:
        print_json([d.model_dump(mode="json") for d in diffs])
    else:
        if not diffs:
            console.print(f"{esc(inputs.stack_name)}: the deployed template is the rendered one")
        colours = {"added": "green", "removed": "red", "changed": "yellow"}
        for d in diffs:
            colour = colours[d.action]
            console.print(
                f"[{colour}]{d.action}[/] {esc(d.logical_id)} ({esc(d.resource_type)})",
                highlight=False,
            )
            for line in d.lines[2:]:  # the two header lines name the resource again
                console.print(f"    {esc(line)}", highlight=False)
    if diffs:
        raise typer.Exit(1)


@app.command()
@_on_stack()
def hosts(stack: Stack, as_json: JsonOpt = False) -> None:
    """The instances of the stack's Auto Scaling group: what the fleet is with `hosts_from:
    aws` in conveyor.yaml (instance, zone, address, state), and why an instance is not in it."""
    found = aws_hosts(stack.where(), stack.endpoint_url)
    if as_json:
        print_json(
            {
                "stack_name": found.stack_name,
                "region": found.region,
                "hosts": [
                    {
                        **row.instance.model_dump(mode="json"),
                        "in_fleet": row.host is not None,
                        "host": None if row.host is None else row.host.model_dump(mode="json"),
                        "left_out": row.left_out,
                    }
                    for row in found.rows
                ],
            }
        )
        return
    t = Table(
        title=esc(
            f"{found.stack_name} ({found.region}): {len(found.fleet)} fleet host(s) of "
            f"{len(found.rows)} instance(s)"
        ),
        title_justify="left",
    )
    for col in ("instance", "zone", "type", "address", "state", "fleet"):
        t.add_column(col)
    for row in found.rows:
        i = row.instance
        address = row.host.address if row.host is not None else i.private_ip or i.public_ip or ""
        state = f"{i.state}, {i.lifecycle}"
        fleet = (
            "[green]yes[/]" if row.host is not None else f"[yellow]no[/]: {esc(row.left_out or '')}"
        )
        t.add_row(
            esc(i.instance_id), esc(i.zone), esc(i.instance_type), esc(address), esc(state), fleet
        )
    console.print(t)
