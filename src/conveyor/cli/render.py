"""`conveyor render`: standard files for other platforms, from the compose file and
conveyor.yaml.

conveyor render kubernetes [--env ENV] [--out DIR]   a Kustomize base + one overlay per env
conveyor render flux --repo URL [--out DIR]          Flux, observability, canaries (docs/flux.md)
conveyor render --check                               kube-score-style findings per service
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.app.render import kube_rendering, validate_rendering, write_rendering
from conveyor.cli.options import FileOpt, JsonOpt, ProjectOpt
from conveyor.cli.output import console, esc, print_json
from conveyor.cli.render_flux import render_flux_command
from conveyor.model.kube import GatewayRef

app = typer.Typer(rich_markup_mode="rich", invoke_without_command=True)

ConveyorFileOpt = Annotated[
    Path,
    typer.Option("--conveyor-file", help="The file whose environments become overlays."),
]
_COLOURS = {"ok": "green", "warning": "yellow", "critical": "red"}


@app.callback()
def render(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option("--check", help="Kube-score-style findings per service; exit 1 if critical."),
    ] = False,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    conveyor_file: ConveyorFileOpt = Path("conveyor.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Render the project for other platforms (docs/kubernetes.md)."""
    if ctx.invoked_subcommand is not None:
        return
    if not check:
        console.print(ctx.get_help())
        raise typer.Exit(2)
    result = kube_rendering(
        file or [], conveyor_file, dict(os.environ), Path.cwd(), project_name=project_name
    )
    findings = result.findings()
    if as_json:
        print_json([f.__dict__ for f in findings])
    else:
        t = Table(title=esc(f"{result.project}: Kubernetes checks"), title_justify="left")
        for col in ("service", "check", "level", "finding"):
            t.add_column(col)
        for f in findings:
            colour = _COLOURS[f.level]
            t.add_row(esc(f.service), esc(f.check), f"[{colour}]{f.level}[/]", esc(f.message))
        console.print(t)
    if any(f.level == "critical" for f in findings):
        raise typer.Exit(1)


@app.command()
def kubernetes(
    out: Annotated[Path, typer.Option("--out", help="Directory to write into.")] = Path(
        "kubernetes"
    ),
    env: Annotated[
        str | None,
        typer.Option("--env", help="Render this environment's overlay only.", show_default=False),
    ] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    conveyor_file: ConveyorFileOpt = Path("conveyor.yaml"),
    ingress: Annotated[
        bool | None,
        typer.Option(
            "--ingress/--gateway-api",
            help="Ingresses, or Gateway API HTTPRoutes (over conveyor.yaml's kubernetes.traffic; "
            "default HTTPRoutes).",
            show_default=False,
        ),
    ] = None,
    ingress_class: Annotated[
        str | None, typer.Option("--ingress-class", show_default=False)
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            "--gateway",
            help="The Gateway HTTPRoutes attach to: NAME or NAMESPACE/NAME (default conveyor).",
            show_default=False,
        ),
    ] = None,
    age_recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--age-recipient", help="age public key for .sops.yaml (repeat).", show_default=False
        ),
    ] = None,
    encrypt_secrets: Annotated[
        bool,
        typer.Option(
            "--encrypt-secrets",
            help="Fill the Secrets from the compose file's secrets and environment and "
            "encrypt them with sops to the age recipients.",
        ),
    ] = False,
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            help="SERVICE=REFERENCE the overlays run (a digest or a tag; repeat).",
            show_default=False,
        ),
    ] = None,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Run kubectl kustomize on each part.")
    ] = True,
) -> None:
    """Write a Kustomize base and one overlay per conveyor.yaml environment."""
    flags: dict[str, object] = {}
    if ingress is not None:
        flags["traffic"] = "ingress" if ingress else "gateway"
    if gateway is not None:
        namespace, _, name = gateway.rpartition("/")
        flags["gateway"] = GatewayRef(name=name, namespace=namespace or None)
    if ingress_class is not None:
        flags["ingress_class"] = ingress_class
    if age_recipient:
        flags["age_recipients"] = tuple(age_recipient)
    images: dict[str, str] = {}
    for item in image or []:
        service, sep, ref = item.partition("=")
        if not sep or not service or not ref:
            raise typer.BadParameter(
                f"expected SERVICE=REFERENCE, got {item!r}", param_hint="--image"
            )
        images[service] = ref
    result = kube_rendering(
        file or [],
        conveyor_file,
        dict(os.environ),
        Path.cwd(),
        project_name=project_name,
        env=env,
        images=images,
        encrypt=encrypt_secrets,
        flags=flags,
    )
    written = write_rendering(result.rendering, out)
    for warning in result.warnings:
        console.print(f"[yellow]warning[/] {esc(warning.render())}", highlight=False)
    console.print(
        f"wrote {len(written)} files under {esc(out)} (base + overlays "
        f"{esc(', '.join(result.environments))})",
        highlight=False,
    )
    if not validate:
        return
    failed = False
    for verdict in validate_rendering(out, result.rendering):
        if verdict.ok:
            console.print(f"kubectl kustomize {esc(verdict.file)}: ok", highlight=False)
        else:
            failed = True
            said = "; ".join(verdict.messages)
            console.print(f"[red]kubectl kustomize {esc(verdict.file)}[/]: {esc(said)}")
    if failed:
        raise typer.Exit(1)


# The deploy repository's Flux files: cli/render_flux.py.
app.command(name="flux")(render_flux_command)
