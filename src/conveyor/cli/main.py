"""The `conveyor` command."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.status import Status

from conveyor.cli.context import Context, agent_pid, find_compose_file, start_agent, stop_agent
from conveyor.cli.logging import configure_logging
from conveyor.cli.output import console, err, fail, print_json
from conveyor.deploy.engine import Engine, Outcome
from conveyor.deploy.project import project_lock
from conveyor.errors import ConveyorError
from conveyor.plan.actions import Step

app = typer.Typer(
    name="conveyor",
    help=(
        "Deploy a Compose application on this machine with zero-downtime rollouts behind "
        "HAProxy.\n\n"
        "Typical use, in a directory with a compose.yaml:\n\n"
        "  conveyor bootstrap   # once: install Docker Engine + HAProxy, make the base image\n\n"
        "  conveyor up          # build, start, wait until healthy, print URLs\n\n"
        "  conveyor deploy      # roll out what changed, rolling back on failure\n\n"
        "  conveyor status      # what runs where"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)

FileOpt = Annotated[
    Path | None,
    typer.Option(
        "-f",
        "--file",
        help="Compose file (default: compose.yaml in this directory).",
        envvar="COMPOSE_FILE",
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


def _add_ci() -> None:
    from conveyor.cli.ci import app as ci_app

    app.add_typer(
        ci_app, name="ci", help="Run .gitlab-ci.yml pipelines locally (GitLab semantics)."
    )


_add_ci()


@app.callback()
def main_options(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
) -> None:
    """Global options, accepted before the command as Docker Compose does."""
    ctx.obj = {"file": file, "project_name": project_name}


def _context(ctx: typer.Context, file: Path | None, project_name: str | None) -> Context:
    glob = ctx.obj or {}
    f = file or glob.get("file")
    p = project_name or glob.get("project_name")
    return Context(compose_file=find_compose_file(f), project_name=p, console=console, err=err)


@contextmanager
def step_progress(enabled: bool = True) -> Iterator[Callable[[Step, str], None]]:
    """Show the running step on a spinner line and print each finished one with its time."""
    status: Status | None = err.status("") if enabled and err.is_terminal else None
    started: dict[int, float] = {}

    def report(step: Step, what: str) -> None:
        key = id(step)
        if what == "start":
            started[key] = time.monotonic()
            if status is not None:
                status.update(step.describe())
            return
        took = time.monotonic() - started.pop(key, time.monotonic())
        if what == "done":
            err.print(f"  [green]✓[/] {step.describe()} [dim]{took:.1f}s[/]", highlight=False)
        else:
            err.print(f"  [red]✗[/] {step.describe()}: {what}", highlight=False)

    if status is not None:
        status.start()
    try:
        yield report
    finally:
        if status is not None:
            status.stop()


def _outcome(o: Outcome, verb: str) -> None:
    if o.status == "unchanged":
        err.print(f"[green]nothing to {verb}[/]: release {o.release} already runs")
    elif o.status == "succeeded":
        err.print(f"[bold green]{verb} succeeded[/]: release {o.release} in {o.duration:.1f}s")
    elif o.status == "rolled_back":
        err.print(f"[bold red]{verb} failed[/]: {o.error}")
        err.print(
            f"[yellow]rolled back to release {o.release}[/]: the previous release kept serving"
        )
    else:
        err.print(f"[bold red]{verb} {o.status}[/]: {o.error}")


def _urls(engine: Engine) -> None:
    cur = engine.store.current_release()
    if cur is None:
        return
    ports = engine.store.ports()
    for name in cur.order():
        key = f"frontend:{name}"
        if key in ports:
            console.print(f"  {name:<16} http://127.0.0.1:{ports[key]}/")
    if "stats" in ports:
        console.print(f"  {'haproxy stats':<16} http://127.0.0.1:{ports['stats']}/stats")


@app.command()
def up(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    no_agent: Annotated[
        bool, typer.Option("--no-agent", help="Do not leave the healing agent running.")
    ] = False,
) -> None:
    """Build images, start every service, wait until healthy, print URLs.

    Leaves the healing agent running in the background (`conveyor down` stops it)."""
    c = _context(ctx, file, project_name)
    stack = c.stack()
    paths = c.paths(stack)
    with step_progress() as report, project_lock(paths):
        engine = c.engine(paths, report)
        engine.recover()
        release = engine.build_release(stack)
        o = engine.apply(release, "up", "conveyor up")
    _outcome(o, "up")
    if not o.ok:
        raise typer.Exit(1)
    if not no_agent:
        pid = start_agent(c, paths)
        err.print(f"[dim]agent running (pid {pid}), log: {paths.agent_log}[/]")
    console.print(f"[bold]{stack.project}[/] is up:")
    _urls(engine)


@app.command()
def plan(
    ctx: typer.Context,
    services: Annotated[list[str] | None, typer.Argument(help="Only these services.")] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what a deploy would change, without starting or stopping anything.

    Images are built (cached) to learn whether they changed."""
    c = _context(ctx, file, project_name)
    stack = c.stack()
    paths = c.paths(stack)
    engine = c.engine(paths)
    release = engine.build_release(stack, services or ())
    p = engine.plan(release)
    cur = engine.store.current_release()
    if as_json:
        out = {
            "version": 1,
            "from_release": cur.number if cur else None,
            "new_release": release.number == 0,
            "steps": [s.model_dump(mode="json") | {"description": s.describe()} for s in p.steps],
            "notes": list(p.notes),
        }
        print_json(out)
        return
    if p.empty:
        console.print("[green]no changes[/]: the running state matches the files")
        return
    what = "new release" if release.number == 0 else f"release {release.number}"
    console.print(f"[bold]{len(p.steps)} steps[/] ({what}):")
    for s in p.steps:
        console.print(f"  {s.describe()}", highlight=False)
    for n in p.notes:
        console.print(f"[yellow]note:[/] {n}")


@app.command()
def deploy(
    ctx: typer.Context,
    services: Annotated[
        list[str] | None, typer.Argument(help="Only roll out these services.")
    ] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
) -> None:
    """Roll out the current files with each service's update policy; roll back on failure."""
    c = _context(ctx, file, project_name)
    stack = c.stack()
    paths = c.paths(stack)
    with step_progress() as report, project_lock(paths):
        engine = c.engine(paths, report)
        for o in engine.recover():
            _outcome(o, "recovery")
        release = engine.build_release(stack, services or ())
        o = engine.apply(release, "deploy", "conveyor deploy")
    _outcome(o, "deploy")
    if not o.ok:
        raise typer.Exit(1)


@app.command()
def rollback(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
) -> None:
    """Go back to the previous release (same zero-downtime path, with rollback_config)."""
    c = _context(ctx, file, project_name)
    paths = c.paths()
    with step_progress() as report, project_lock(paths):
        engine = c.engine(paths, report)
        recovered = engine.recover()
        for r in recovered:
            _outcome(r, "recovery")
        # A rollback a crash interrupted, now finished, is the rollback asked for: another
        # one would go forward again.
        done = [r for r in recovered if r.finished_rollback]
        o = done[-1] if done else engine.rollback(service)
    _outcome(o, "rollback")
    if not o.ok:
        raise typer.Exit(1)


@app.command()
def status(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Services, replicas, health, release and ports."""
    from conveyor.cli.report import status_data, status_table

    c = _context(ctx, file, project_name)
    paths = c.paths()
    engine = c.engine(paths)
    data = status_data(engine, engine.observe(), agent_pid(paths))
    if as_json:
        print_json(data)
        return
    console.print(status_table(data))
    agent = (
        f"running (pid {data['agent']['pid']})"
        if data["agent"]["running"]
        else "[red]not running[/]"
    )
    console.print(
        f"agent: {agent}   router: {'running' if data['router']['running'] else '[red]down[/]'}"
    )


@app.command()
def history(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many rollouts.")] = 20,
) -> None:
    """Releases and rollouts, newest first, with outcome and duration."""
    from conveyor.cli.report import history_data, history_table
    from conveyor.store.db import Store

    c = _context(ctx, file, project_name)
    paths = c.paths()
    data = history_data(Store.open(paths.state_dir), limit)
    if as_json:
        print_json(data)
        return
    console.print(history_table(data))


@app.command()
def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service whose replicas to show.")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", help="Lines per replica from the end.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Compose file.", envvar="COMPOSE_FILE")
    ] = None,
    project_name: ProjectOpt = None,
) -> None:
    """The replicas' output, interleaved, each line prefixed with its replica."""
    from conveyor.runtime.docker_engine import DockerEngine

    try:
        c = _context(ctx, file, project_name)
        stack = c.stack()
        if service not in stack.services:
            raise ConveyorError(
                f"no such service: {service} (services: {', '.join(stack.services)})"
            )
        colours = ["cyan", "magenta", "green", "yellow", "blue"]
        seen: dict[str, str] = {}
        for replica, line in DockerEngine().logs(stack.project, service, follow, tail):
            col = seen.setdefault(replica, colours[len(seen) % len(colours)])
            console.print(f"[{col}]{replica}[/] | {escape(line)}", highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        pass


@app.command()
def down(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
) -> None:
    """Stop the agent, drain and stop every replica and HAProxy. Named volumes and history stay."""
    c = _context(ctx, file, project_name)
    paths = c.paths()
    if stop_agent(paths):
        err.print("[dim]agent stopped[/]")
    with step_progress() as report, project_lock(paths):
        engine = c.engine(paths, report)
        o = engine.down()
    err.print(f"[bold green]down[/]: {paths.project} stopped in {o.duration:.1f}s")


@app.command()
def agent(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    interval: Annotated[float, typer.Option(help="Seconds between observations.")] = 1.0,
) -> None:
    """Run the supervising agent in the foreground (`up` starts it in the background)."""
    from conveyor.server.agent import Agent

    c = _context(ctx, file, project_name)
    paths = c.paths()
    configure_logging(json_lines=not err.is_terminal)
    a = Agent(paths=paths, make_engine=lambda: c.engine(paths, actor="agent"), interval=interval)
    a.install_signal_handlers()
    a.run()


@app.command()
def bootstrap(
    check: Annotated[bool, typer.Option("--check", help="Only report; install nothing.")] = False,
) -> None:
    """Check and install what Conveyor needs: Docker Engine, HAProxy, the Python base image."""
    from conveyor.provision.bootstrap import run_bootstrap

    def report(step: str, what: str) -> None:
        colour = (
            "green" if what in ("ok", "done") else "red" if what.startswith("failed") else "yellow"
        )
        err.print(f"  {step:<28} [{colour}]{what}[/]", highlight=False)

    ok = run_bootstrap(check_only=check, report=report)
    if not ok:
        err.print(
            "[red]some components are missing[/]" + (": run `conveyor bootstrap`" if check else "")
        )
        raise typer.Exit(1)
    err.print("[green]host ready[/]")


def main() -> None:
    configure_logging(json_lines=False, quiet=True)
    try:
        app()
    except ConveyorError as e:
        # The one place a Conveyor error becomes output: a line (or one per spec error), exit 1.
        fail(e)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as e:
        # A bug, not bad input: say so in one line; the traceback is one variable away.
        if os.environ.get("CONVEYOR_DEBUG"):
            raise
        err.print(
            f"[bold red]internal error:[/] {type(e).__name__}: {escape(str(e))}\n"
            "[dim]this is a bug in Conveyor; set CONVEYOR_DEBUG=1 for the traceback[/]",
            highlight=False,
        )
        sys.exit(2)
