"""`conveyor render flux --repo URL [--out DIR]` (a command of the `render` group,
cli/render.py): the deploy repository's Flux files, the cluster's observability and the
canaries (docs/flux.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from conveyor.app.flux import deploy_target_warnings, flux_inputs, render_flux, write_files
from conveyor.cli.options import ProjectOpt
from conveyor.cli.output import console, esc

RepoOpt = Annotated[
    str,
    typer.Option(
        "--repo",
        help="The deploy repository's URL, as Flux clones it (ssh://... or https://...).",
        show_default=False,
    ),
]
OutOpt = Annotated[
    Path,
    typer.Option("--out", help="The deploy repository's work tree (or any directory)."),
]
FileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "-f",
        "--file",
        help="Compose file (repeat to merge several; default: each environment's `compose:`).",
        show_default=False,
    ),
]
ConveyorFileOpt = Annotated[
    Path, typer.Option("--conveyor-file", help="The file whose environments and `flux:` are read.")
]
ElasticsearchOpt = Annotated[
    str | None,
    typer.Option(
        "--elasticsearch",
        help="Where Fluent Bit ships (default: conveyor.yaml's logs.ship Elasticsearch, else "
        "http://elasticsearch.logging.svc:9200).",
        show_default=False,
    ),
]


def render_flux_command(
    repo: RepoOpt,
    out: OutOpt = Path("."),
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    conveyor_file: ConveyorFileOpt = Path("conveyor.yaml"),
    elasticsearch: ElasticsearchOpt = None,
) -> None:
    """Write flux-system/, infrastructure/ and observability/<env>/ for the deploy
    repository: Flux's sources, Kustomizations, alerts and image automation; monitors,
    rules, Fluent Bit, dashboards; Flagger canaries."""
    inputs = flux_inputs(
        repo,
        file or [],
        conveyor_file,
        dict(os.environ),
        Path.cwd(),
        project_name=project_name,
        elasticsearch_url=elasticsearch,
    )
    written = write_files(render_flux(inputs), out)
    for warning in deploy_target_warnings(repo, conveyor_file, Path.cwd()):
        console.print(f"[yellow]warning[/] {esc(warning.render())}", highlight=False)
    envs = ", ".join(e.name for e in inputs.environments)
    console.print(
        f"wrote {len(written)} files into {esc(out)} (environments: {esc(envs)})",
        highlight=False,
    )
