"""The commands that act on a running `conveyor server` through its API: `env list`,
`env status`, `diff --env`, `promote`, `rollback --env`, `suspend`, `resume`.

The server's address comes from `--server` or CONVEYOR_SERVER (default
http://127.0.0.1:7780), its API token from `--token-file` or CONVEYOR_TOKEN. What the server
answers is rendered here; what a refusal says (401, 403, 404, 409) is the server's reason, as
`app.server_client` words it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.app.server_address import DEFAULT_SERVER
from conveyor.app.server_client import (
    ActionVerdict,
    ServerClient,
    token_from,
)
from conveyor.app.server_views import (
    ActionResult,
    DiffView,
    EnvironmentDetail,
    EnvironmentSummary,
)
from conveyor.cli.options import JsonOpt, ServerOpt, TokenFileOpt
from conveyor.cli.output import console, err, esc, print_json

env_app = typer.Typer(
    help=(
        "The environments of a running `conveyor server` (through its API).\n\n"
        "  conveyor env list\n\n"
        "  conveyor env status staging [--json]"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def connect(server: str, token_file: Path | None) -> ServerClient:
    """The API client the commands use (tests replace it with one over an in-process app)."""
    return ServerClient.connect(server, token_from(token_file, os.environ))


# reading -----------------------------------------------------------------------------------------


@env_app.command("list")
def env_list(
    server: ServerOpt = DEFAULT_SERVER,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every environment of conveyor.yaml: what feeds it, its state, the release it serves."""
    with connect(server, token_file) as client:
        envs = client.environments()
    if as_json:
        print_json([e.model_dump(mode="json") for e in envs])
        return
    if not envs:
        console.print("no environments yet (the server has not read conveyor.yaml)")
        return
    console.print(environments_table(envs))


@env_app.command("status")
def env_status(
    env: Annotated[str, typer.Argument(help="The environment (`conveyor env list`).")],
    server: ServerOpt = DEFAULT_SERVER,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One environment: what git says, what serves, and its services and replicas."""
    with connect(server, token_file) as client:
        detail = client.environment(env)
    if as_json:
        print_json(detail.model_dump(mode="json"))
        return
    show_detail(detail)


def diff(
    env: Annotated[str, typer.Option("--env", help="The environment.", show_default=False)],
    server: ServerOpt = DEFAULT_SERVER,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 3 when the environment differs from git (1 stays for errors).",
        ),
    ] = False,
) -> None:
    """What git says against what runs in an environment, per service."""
    with connect(server, token_file) as client:
        view = client.diff(env)
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        show_diff(view)
    if exit_code and not view.in_sync:
        raise typer.Exit(3)


# acting ------------------------------------------------------------------------------------------


def promote(
    env: Annotated[str, typer.Argument(help="The environment to promote into.")],
    source: Annotated[
        str,
        typer.Option(
            "--from", help="The environment whose release to promote.", show_default=False
        ),
    ],
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the promotion's rollout has ended.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="With --wait: give up after this many seconds.")
    ] = 1800.0,
    server: ServerOpt = DEFAULT_SERVER,
    token_file: TokenFileOpt = None,
) -> None:
    """Promote the release an environment serves into ENV, through ENV's gates.

    The gates (soak time, passed pipeline, approval) are conveyor.yaml's. Exit 1 when the
    server refuses (a gate not met) or, with --wait, when the rollout fails."""
    with connect(server, token_file) as client:
        before = client.last_event_id() if wait else 0
        result = client.promote(env, source)
        show_action(result)
        if wait:
            verdict = client.wait(result, before, timeout)
            _exit_with(verdict)


def rollback_env(env: str, to_release: int | None, server: str, token_file: Path | None) -> None:
    """`conveyor rollback --env ENV [--to RELEASE]` (the command lives in cli/main.py)."""
    with connect(server, token_file) as client:
        show_action(client.rollback(env, to_release))


def suspend(
    env: Annotated[str, typer.Argument(help="The environment.")],
    server: ServerOpt = DEFAULT_SERVER,
    token_file: TokenFileOpt = None,
) -> None:
    """Stop deploying to ENV and correcting its drift, until `conveyor resume ENV`."""
    with connect(server, token_file) as client:
        show_action(client.suspend(env))


def resume(
    env: Annotated[str, typer.Argument(help="The environment.")],
    server: ServerOpt = DEFAULT_SERVER,
    token_file: TokenFileOpt = None,
) -> None:
    """Follow git again in ENV: what its branch says now is brought in at once."""
    with connect(server, token_file) as client:
        show_action(client.resume(env))


# rendering ---------------------------------------------------------------------------------------


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def _fed_by(e: EnvironmentSummary) -> str:
    if e.branch is not None:
        return f"branch {e.branch}"
    return f"promoted from {e.promote_from}" if e.promote_from else "-"


_STATE_COLOURS = {
    "serving": "green",
    "syncing": "cyan",
    "failed": "red",
    "suspended": "yellow",
    "empty": "dim",
}


def _state(e: EnvironmentSummary) -> str:
    colour = _STATE_COLOURS.get(e.state, "white")
    return f"[{colour}]{esc(e.state)}[/]"


def environments_table(envs: list[EnvironmentSummary]) -> Table:
    t = Table(title="environments", title_justify="left")
    for col in ("environment", "fed by", "state", "release", "commit", "protected"):
        t.add_column(col)
    for e in envs:
        t.add_row(
            esc(e.name),
            esc(_fed_by(e)),
            _state(e),
            str(e.release) if e.release is not None else "-",
            _short(e.commit),
            "yes" if e.protected else "",
        )
    return t


def show_detail(detail: EnvironmentDetail) -> None:
    from conveyor.cli.report import status_table

    e = detail.environment
    release = f"release {e.release}" if e.release is not None else "no release"
    console.print(
        f"[bold]{esc(e.name)}[/] ({esc(_fed_by(e))}): {_state(e)}, {release} at {_short(e.commit)}",
        highlight=False,
    )
    if e.branch is not None:
        behind = detail.desired_commit is not None and detail.desired_commit != e.commit
        note = " [yellow](not serving yet)[/]" if behind else ""
        console.print(f"git says: {_short(detail.desired_commit)}{note}", highlight=False)
    if detail.syncing_commit is not None:
        console.print(f"bringing in {_short(detail.syncing_commit)} now", highlight=False)
    if detail.waiting:
        console.print(f"auto-promotion waits: {esc(detail.waiting)}", highlight=False)
    if detail.failed_commit is not None:
        console.print(
            f"[red]not deployed[/]: {_short(detail.failed_commit)}: {esc(detail.reason)}",
            highlight=False,
        )
    if detail.pinned_commit is not None:
        console.print(
            f"pinned at {_short(detail.pinned_commit)} by a rollback: newer commits on "
            f"{esc(e.branch or '')} wait until a push deletes .conveyor/pins/{esc(e.name)}.json",
            highlight=False,
        )
    if detail.superseded is not None:
        console.print(f"last superseded: {esc(detail.superseded.message)}", highlight=False)
    if e.protected:
        console.print("protected: only deployer and admin tokens act on it")
    if detail.approvals:
        approved = ", ".join(str(n) for n in detail.approvals)
        console.print(f"approved for promotion: release {approved}", highlight=False)
    if detail.delivery is not None:
        d = detail.delivery
        flux = {"reconciled": "[green]Flux applied it[/]", "failed": "[red]Flux failed[/]"}
        said = flux.get(d.flux, "Flux has not reported on it yet")
        console.print(
            f"kubernetes: delivered to {esc(d.repo)} {esc(d.branch)}:{esc(d.overlay)} as "
            f"{_short(d.commit)}; {said}" + (f": {esc(d.flux_message)}" if d.flux_message else ""),
            highlight=False,
        )
    if detail.status is not None:
        console.print(status_table(detail.status))


def show_diff(view: DiffView) -> None:
    env = esc(view.environment)
    if view.manifests is not None:
        _show_manifests_diff(view)
        return
    if view.in_sync and not view.services:
        console.print(
            f"[green]{env} is in sync[/]: {_short(view.running_commit)} runs as git says",
            highlight=False,
        )
        return
    console.print(
        f"[yellow]{env} differs[/]: git says {_short(view.desired_commit)}, "
        f"running {_short(view.running_commit)}",
        highlight=False,
    )
    if not view.services:
        return
    t = Table(title_justify="left")
    for col in ("service", "desired", "running", "replicas", "differences"):
        t.add_column(col)
    for s in view.services:
        t.add_row(
            esc(s.service),
            esc(s.desired_image or "(not in git)"),
            esc(s.running_image or "(not running)"),
            f"{s.running_replicas}/{s.desired_replicas}",
            esc("; ".join(s.differences)),
        )
    console.print(t)


def _show_manifests_diff(view: DiffView) -> None:
    """A kubernetes environment: what its next delivery would change in the deploy branch."""
    env = esc(view.environment)
    if view.note:
        err.print(f"[yellow]note[/]: {esc(view.note)}", highlight=False)
    if not view.manifests:
        console.print(
            f"[green]{env} is in sync[/]: the deploy branch holds what "
            f"{_short(view.desired_commit)} renders",
            highlight=False,
        )
        return
    console.print(
        f"[yellow]{env} differs[/]: delivering {_short(view.desired_commit)} would change "
        "the deploy branch:",
        highlight=False,
    )
    colours = {"+": "green", "-": "red", "@": "cyan"}
    for line in view.manifests.splitlines():
        colour = colours.get(line[:1]) if not line.startswith(("+++", "---")) else "bold"
        console.print(f"[{colour}]{esc(line)}[/]" if colour else esc(line), highlight=False)


def show_action(result: ActionResult) -> None:
    extra = []
    if result.release is not None:
        extra.append(f"release {result.release}")
    if result.rollout is not None:
        extra.append(f"rollout {result.rollout}")
    tail = f" [dim]({', '.join(extra)})[/]" if extra else ""
    err.print(f"[bold green]{esc(result.action)}[/]: {esc(result.message)}{tail}", highlight=False)


def _exit_with(verdict: ActionVerdict) -> None:
    if verdict.ok:
        err.print(f"[bold green]done[/]: {esc(verdict.message)}", highlight=False)
        return
    err.print(f"[bold red]{esc(verdict.status)}[/]: {esc(verdict.message)}", highlight=False)
    raise typer.Exit(1)
