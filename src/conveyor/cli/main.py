"""The `conveyor` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.app.server_address import DEFAULT_SERVER
from conveyor.cli.lazy import Lazy, lazy_group
from conveyor.cli.options import (
    AskServerOpt,
    FieldOpt,
    FileOpt,
    FilesOpt,
    FollowOpt,
    ForceOpt,
    GrepOpt,
    HostOpt,
    JsonOpt,
    LevelOpt,
    LogJsonOpt,
    NoLogsOpt,
    ProfileOpt,
    ProjectOpt,
    ReleaseOpt,
    ReplicaOpt,
    ServerOpt,
    ServicesArg,
    SinceOpt,
    StreamOpt,
    TailOpt,
    TokenFileOpt,
    UntilOpt,
)
from conveyor.cli.output import console, err, esc, print_error, print_json, text_of
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.app.one_writer import Command
    from conveyor.app.project import Project
    from conveyor.app.views import RolloutResult
    from conveyor.model.ownership import ServerOwner

# The headings of `conveyor --help`, and the order of the commands under them.
RUN = "Run on this machine"
OBSERVE = "Observe"
DELIVER = "Deliver through a server (GitOps)"
BUILD = "Pipelines and infrastructure"
ORDER = (
    "up", "plan", "deploy", "rollback", "status", "history", "down", "agent", "bootstrap",
    "logs", "metrics", "alerts", "checks", "timeline", "dora",
    "server", "env", "diff", "promote", "suspend", "resume", "token",
    "ci", "aws", "render", "provision", "backup",
)  # fmt: skip

# Commands whose modules are imported only when they run (cli/lazy.py): `conveyor --help`,
# `--version` and shell completion stay fast however many commands there are.
LAZY = {
    "ci": Lazy(
        "conveyor.cli.ci:app", "Run .gitlab-ci.yml pipelines locally (GitLab semantics).", BUILD
    ),
    "checks": Lazy(
        "conveyor.cli.checks:app",
        "Infrastructure checks (Nagios): states, downtimes (docs/checks.md).",
        OBSERVE,
    ),
    "aws": Lazy("conveyor.cli.aws:app", "AWS infrastructure as code (docs/aws.md).", BUILD),
    "backup": Lazy("conveyor.cli.backup:app", "Backups to S3 and EBS (docs/backups.md).", RUN),
    "provision": Lazy(
        "conveyor.cli.provision:provision",
        "Configure the fleet's hosts with Ansible (docs/provision.md).",
        BUILD,
    ),
    "render": Lazy(
        "conveyor.cli.render:app",
        "Kubernetes manifests (Kustomize), Flux files, and their checks "
        "(docs/kubernetes.md, docs/flux.md).",
        BUILD,
    ),
    "server": Lazy(
        "conveyor.cli.server:server",
        "Run the GitOps server in the foreground: its HTTP API and webhooks (Ctrl-C stops it).",
        DELIVER,
    ),
    "token": Lazy("conveyor.cli.server:token_app", "API tokens of `conveyor server`.", DELIVER),
    "env": Lazy(
        "conveyor.cli.environments:env_app",
        "The environments of a running `conveyor server`.",
        DELIVER,
    ),
    "diff": Lazy(
        "conveyor.cli.environments:diff",
        "What git says against what runs in an environment, per service.",
        DELIVER,
    ),
    "promote": Lazy(
        "conveyor.cli.environments:promote",
        "Promote the release an environment serves into ENV, through ENV's gates.",
        DELIVER,
    ),
    "suspend": Lazy(
        "conveyor.cli.environments:suspend",
        "Stop deploying to ENV and correcting its drift, until `conveyor resume ENV`.",
        DELIVER,
    ),
    "resume": Lazy(
        "conveyor.cli.environments:resume",
        "Follow git again in ENV: what its branch says now is brought in at once.",
        DELIVER,
    ),
}

app = typer.Typer(
    cls=lazy_group(LAZY, ORDER),
    name="conveyor",
    help=(
        "Deploy a Compose application on this machine with zero-downtime rollouts behind "
        "HAProxy.\n\n"
        "Typical use, in a directory with a compose.yaml:\n\n"
        "  conveyor bootstrap   # once: install Docker Engine + HAProxy, make the base image\n\n"
        "  conveyor up          # build, start, wait until healthy, print URLs\n\n"
        "  conveyor deploy      # roll out what changed, rolling back on failure\n\n"
        "  conveyor status      # what runs where\n\n"
        "  conveyor timeline    # what happened to this commit: pipeline, release, rollouts"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        console.print(f"conveyor {version('conveyor')}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    profile: ProfileOpt = None,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Global options, accepted before the command as Docker Compose does."""
    ctx.obj = {"file": file, "project_name": project_name, "profiles": profile or []}


def _project(ctx: typer.Context, file: list[Path] | None, project_name: str | None) -> Project:
    """The project a read-only command reads (as its server has it, when one manages it)."""
    from conveyor.cli.one_writer import open_project

    return open_project(ctx, file, project_name)


def _writable(
    ctx: typer.Context,
    file: list[Path] | None,
    project_name: str | None,
    command: Command,
    force: bool,
) -> Project:
    """The project a command that changes it works on, once one writer allows it: a project a
    `conveyor server` manages is refused (exit 2) unless --force."""
    from conveyor.cli.one_writer import target

    found = target(ctx, file, project_name, command, force=force)
    assert found.project is not None  # only rollback and status go through the API
    return found.project


def _outcome(o: RolloutResult, verb: str) -> None:
    error = esc(o.error or "")
    if o.status == "unchanged":
        err.print(f"[green]nothing to {verb}[/]: release {o.release} already runs")
    elif o.status == "succeeded":
        err.print(f"[bold green]{verb} succeeded[/]: release {o.release} in {o.seconds:.1f}s")
    elif o.status == "rolled_back":
        err.print(f"[bold red]{verb} failed[/]: {error}")
        err.print(
            f"[yellow]rolled back to release {o.release}[/]: the previous release kept serving"
        )
    else:
        err.print(f"[bold red]{verb} {o.status}[/]: {error}")


def _exit_unless(ok: bool) -> None:
    if not ok:
        raise typer.Exit(1)


@app.command(rich_help_panel=RUN)
def up(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    no_agent: Annotated[
        bool, typer.Option("--no-agent", help="Do not leave the healing agent running.")
    ] = False,
    no_logs: NoLogsOpt = False,
    no_checks: Annotated[
        bool,
        typer.Option(
            "--no-checks",
            help="Do not run Nagios's infrastructure checks (stops them if they ran).",
        ),
    ] = False,
    no_metrics: Annotated[
        bool,
        typer.Option(
            "--no-metrics",
            help="Do not run Prometheus, Alertmanager and node exporter for this project "
            "(kept until an `up` without it; CONVEYOR_METRICS=0 does the same).",
        ),
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Build images, start every service, wait until healthy, print URLs.

    Leaves the healing agent running in the background (`conveyor down` stops it), collecting
    the containers' logs for `conveyor logs` unless --no-logs, Nagios checking the project
    (docs/checks.md) unless --no-checks or CONVEYOR_CHECKS=off, and the project's Prometheus,
    Alertmanager and node exporter on 127.0.0.1 (docs/metrics.md) unless --no-metrics.

    Refused (exit 2) on a project a `conveyor server` manages: push to its branch instead."""
    from conveyor.app import deploy as deploy_app
    from conveyor.cli.one_writer import target
    from conveyor.cli.progress import progress

    found = target(ctx, file, project_name, "up", force=force)
    project = found.project
    assert project is not None
    # The server heals the projects it manages: no agent of ours beside it.
    agent = not no_agent and found.owner is None
    with progress() as show:
        project.subscribe(show)
        r = deploy_app.up(
            project,
            agent=agent,
            checks=not no_checks,
            metrics=not no_metrics,
            logs=not no_logs,
        )
    for rec in r.recovered:
        _outcome(rec, "recovery")
    _outcome(r.outcome, "up")
    _exit_unless(r.outcome.ok)
    if r.agent_pid is not None:
        err.print(f"[dim]agent running (pid {r.agent_pid}), log: {esc(r.agent_log or '')}[/]")
    if r.checks_error is not None:
        err.print(f"[yellow]checks not running:[/] {esc(r.checks_error)}", highlight=False)
    elif r.checks:
        err.print("[dim]Nagios checks the project: `conveyor checks`[/]")
    for w in r.warnings:
        err.print(f"[yellow]warning:[/] {esc(w)}", highlight=False, soft_wrap=True)
    console.print(f"[bold]{esc(r.project)}[/] is up:")
    for u in r.urls:
        console.print(esc(f"  {u.name:<16} {u.url}"), highlight=False)
    for c in r.components:
        console.print(esc(f"  {c.name:<16} {c.url}"), highlight=False)


@app.command(rich_help_panel=RUN)
def plan(
    ctx: typer.Context,
    services: Annotated[list[str] | None, typer.Argument(help="Only these services.")] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what a deploy would change, without starting or stopping anything.

    Images are built (cached) to learn whether they changed."""
    from conveyor.app import deploy as deploy_app

    p = deploy_app.plan(_project(ctx, file, project_name), services or [])
    if as_json:
        print_json(p.as_json())
        return
    for w in p.warnings:  # accepted, but not done as written: say so before the steps
        err.print(f"[yellow]warning:[/] {esc(w)}", highlight=False, soft_wrap=True)
    if not p.steps:
        if p.notes:  # a host that left with nothing to move: its HAProxy still goes
            console.print("no replica changes:")
        else:
            console.print("[green]no changes[/]: the running state matches the files")
        for n in p.notes:
            console.print(f"[yellow]note:[/] {esc(n)}")
        return
    what = "new release" if p.new_release else f"release {p.release}"
    console.print(f"[bold]{len(p.steps)} steps[/] ({what}):")
    for s in p.steps:
        console.print(f"  {esc(s.description)}", highlight=False)
    for n in p.notes:
        console.print(f"[yellow]note:[/] {esc(n)}")


@app.command(rich_help_panel=RUN)
def deploy(
    ctx: typer.Context,
    services: Annotated[
        list[str] | None, typer.Argument(help="Only roll out these services.")
    ] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    force: ForceOpt = False,
) -> None:
    """Roll out the current files with each service's update policy; roll back on failure.

    Refused (exit 2) on a project a `conveyor server` manages: push to its branch instead."""
    from conveyor.app import deploy as deploy_app
    from conveyor.cli.progress import progress

    project = _writable(ctx, file, project_name, "deploy", force)
    with progress() as show:
        project.subscribe(show)
        r = deploy_app.deploy(project, services or [])
    for rec in r.recovered:
        _outcome(rec, "recovery")
    _outcome(r.outcome, "deploy")
    _exit_unless(r.outcome.ok)


@app.command(rich_help_panel=RUN)
def rollback(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Roll back this environment of a running `conveyor server` (through its API).",
            show_default=False,
        ),
    ] = None,
    to_release: Annotated[
        int | None,
        typer.Option(
            "--to", help="With --env: the release to go back to (default: the previous one)."
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token_file: TokenFileOpt = None,
    force: ForceOpt = False,
) -> None:
    """Go back to the previous release (same zero-downtime path, with rollback_config).

    With --env, the server rolls its environment back and records it in git.

    On a project a running `conveyor server` manages, rollback goes through its API as --env does.

    One service alone, or a stopped server's project, is refused (exit 2) unless --force."""
    from conveyor.app import deploy as deploy_app
    from conveyor.cli.one_writer import target
    from conveyor.cli.progress import progress

    if env is not None:
        if service is not None:
            raise typer.BadParameter(
                "rollback --env rolls the whole environment back", param_hint="SERVICE"
            )
        from conveyor.cli.environments import rollback_env

        rollback_env(env, to_release, server, token_file)
        return
    if to_release is not None:
        raise typer.BadParameter(
            "--to needs --env (here, rollback goes to the previous release)", param_hint="--to"
        )
    found = target(ctx, file, project_name, "rollback", force=force, service=service)
    if found.project is None:
        assert found.owner is not None
        from conveyor.cli.environments import rollback_env

        rollback_env(found.owner.environment, None, found.owner.server_url, token_file)
        return
    project = found.project
    with progress() as show:
        project.subscribe(show)
        r = deploy_app.rollback(project, service)
    for rec in r.recovered:
        _outcome(rec, "recovery")
    _outcome(r.outcome, "rollback")
    _exit_unless(r.outcome.ok)


@app.command(rich_help_panel=RUN)
def status(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
    token_file: TokenFileOpt = None,
) -> None:
    """Services, replicas, health, release and ports.

    On a project a running `conveyor server` manages: its `env status` (token: CONVEYOR_TOKEN)."""
    from conveyor.app import deploy as deploy_app
    from conveyor.cli.one_writer import target
    from conveyor.cli.report import status_table

    found = target(ctx, file, project_name, "status")
    if found.project is None:
        assert found.owner is not None
        if _status_through_server(found.owner, token_file, as_json):
            return
    data = deploy_app.status(found.local())
    if as_json:
        print_json(data.model_dump(mode="json"))
        return
    console.print(status_table(data))
    agent = f"running (pid {data.agent.pid})" if data.agent.running else "[red]not running[/]"
    console.print(
        f"agent: {agent}   router: {'running' if data.router.running else '[red]down[/]'}"
    )
    if data.checks is not None:
        colour = "green" if data.checks.running and not data.checks.problems else "yellow"
        if not data.checks.enabled and not data.checks.running:
            colour = "dim"
        console.print(f"checks: [{colour}]Nagios {esc(data.checks.summary)}[/]", highlight=False)
    from conveyor.cli.metrics import component_lines

    for line in component_lines(data.components):
        console.print(line, highlight=False)
    for note in data.notes:
        console.print(f"[yellow]note:[/] {esc(note)}", highlight=False)


def _status_through_server(owner: ServerOwner, token_file: Path | None, as_json: bool) -> bool:
    """`conveyor env status ENV` for the project's environment; False (said why) when the
    server cannot answer it, so the caller shows this host's view instead."""
    from conveyor.app.server_address import TOKEN_VARIABLE
    from conveyor.app.server_client import token_from
    from conveyor.cli.environments import connect, show_detail

    if token_from(token_file, os.environ) is None:
        err.print(
            f"[dim]no API token ({TOKEN_VARIABLE} or --token-file): showing this host's view[/]"
        )
        return False
    try:
        with connect(owner.server_url, token_file) as client:
            detail = client.environment(owner.environment)
    except ConveyorError as e:
        err.print(
            f"[yellow]the server did not answer[/] ({esc(text_of(e))}): showing this host's view",
            highlight=False,
        )
        return False
    if as_json:
        if detail.status is None:  # nothing serves: this host's view says so in its shape
            return False
        print_json(detail.status.model_dump(mode="json"))
        return True
    show_detail(detail)
    return True


@app.command(rich_help_panel=RUN)
def history(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many rollouts.")] = 20,
) -> None:
    """Releases and rollouts, newest first, with outcome and duration."""
    from conveyor.app import deploy as deploy_app
    from conveyor.cli.report import history_table

    data = deploy_app.history(_project(ctx, file, project_name), limit)
    if as_json:
        print_json(data.model_dump(mode="json"))
        return
    console.print(history_table(data))


@app.command(rich_help_panel=OBSERVE)
def dora(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help=(
                "The environment: with --server (or CONVEYOR_SERVER), one of the server's; "
                "else a project under the same state home, like -p."
            ),
            show_default=False,
        ),
    ] = None,
    since: Annotated[str, typer.Option("--since", help="The window: 30d, 2w, 12h, 90m…")] = "30d",
    server: AskServerOpt = None,
    token_file: TokenFileOpt = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """DORA metrics from Conveyor's records: deployment frequency, lead time for changes,
    change failure rate, time to restore (docs/dora.md says what counts).

    With --server (or CONVEYOR_SERVER) and --env, from the server's records of that
    environment; else from this project's."""
    from conveyor.app.dora import dora_report, parse_window
    from conveyor.cli.dora import dora_table

    try:
        parse_window(since)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--since") from None
    if server is not None and env is not None:
        from conveyor.cli.environments import connect

        with connect(server, token_file) as client:
            view = client.dora(env, since)
    else:
        view = dora_report(_project(ctx, file, project_name), env, since)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    console.print(dora_table(view))


@app.command(rich_help_panel=OBSERVE)
def alerts(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", help="List alerts resolved in this window: 1h, 30m, 2d…")
    ] = "1h",
    alertmanager: Annotated[
        str | None,
        typer.Option(
            "--alertmanager",
            envvar="CONVEYOR_ALERTMANAGER_URL",
            help="Ask this Alertmanager (default: the project's, from its metrics stack).",
            show_default=False,
        ),
    ] = None,
    server: AskServerOpt = None,
    token_file: TokenFileOpt = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Alerts firing now (Alertmanager's, silenced and inhibited ones marked) and the ones
    resolved recently, with labels, since when and summary (docs/alerts.md).

    With --server (or CONVEYOR_SERVER), the server's alerts of every environment."""
    from conveyor.app.alerts import project_alerts
    from conveyor.app.dora import parse_window
    from conveyor.cli.alerts import alerts_table

    try:
        window = parse_window(since)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--since") from None
    if server is not None:
        from conveyor.cli.environments import connect

        with connect(server, token_file) as client:
            view = client.alerts(window)
    else:
        view = project_alerts(_project(ctx, file, project_name), alertmanager, window)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    console.print(alerts_table(view))


@app.command(rich_help_panel=OBSERVE)
def timeline(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="A commit, branch or tag (default: HEAD).")
    ] = None,
    release: Annotated[
        int | None,
        typer.Option("--release", help="A release instead of a commit (for files not in git)."),
    ] = None,
    events: Annotated[bool, typer.Option("--events", help="Also list every event.")] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="With --server (or CONVEYOR_SERVER): the newest commits of this environment.",
            show_default=False,
        ),
    ] = None,
    server: AskServerOpt = None,
    token_file: TokenFileOpt = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What happened to a commit: pipeline and jobs, releases, rollouts and their verdicts.

    In time order with durations, in every environment the commit reached (CI review apps too).

    Outside git (or with --release N), one release and its rollouts. With --env and a server,
    the environment's newest commits, newest first, from the server."""
    from conveyor.app.timeline import timeline as timeline_of
    from conveyor.cli.report import timeline_table

    if env is not None:
        if server is None:
            raise typer.BadParameter(
                "--env asks a Conveyor server: give --server URL or set CONVEYOR_SERVER",
                param_hint="--env",
            )
        from conveyor.cli.environments import connect

        with connect(server, token_file) as client:
            views = client.timeline(env)
        if as_json:
            print_json([v.model_dump(mode="json") for v in views])
            return
        if not views:
            console.print(f"{esc(env)} has no commit with a pipeline or a release yet")
        for one in views:
            console.print(timeline_table(one))
        return
    view = timeline_of(_project(ctx, file, project_name), ref, release, events)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    console.print(timeline_table(view))
    if events:
        for e in view.events:
            console.print(f"  [dim]{esc(f'{e.kind:<20}')}[/] {esc(e.message)}", highlight=False)


@app.command(rich_help_panel=OBSERVE)
def logs(
    ctx: typer.Context,
    services: ServicesArg = None,
    grep: GrepOpt = None,
    level: LevelOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    release: ReleaseOpt = None,
    field: FieldOpt = None,
    replica: ReplicaOpt = None,
    host: HostOpt = None,
    stream: StreamOpt = None,
    tail: TailOpt = 100,
    follow: FollowOpt = False,
    as_json: LogJsonOpt = False,
    file: FilesOpt = None,
    project_name: ProjectOpt = None,
) -> None:
    """Search the project's logs: every replica's output (replicas gone since included),
    one-shot and CI job containers, parsed (JSON, logfmt) and labelled (docs/logs.md).

    Prints the newest matching lines, oldest first; -f keeps printing new ones. On a fleet
    each replica is named with its host (`web-1-2@h2`). Before the agent has collected
    anything, `logs SERVICE` reads the Docker Engine as before."""
    from conveyor.cli.logs import run_logs

    run_logs(
        _project(ctx, file, project_name),
        services or [],
        grep=grep,
        level=level,
        since=since,
        until=until,
        release=release,
        fields=field or [],
        replicas=replica or [],
        hosts=host or [],
        streams=stream or [],
        tail=tail,
        follow=follow,
        as_json=as_json,
    )


@app.command(rich_help_panel=OBSERVE)
def metrics(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    window: Annotated[
        str, typer.Option("--window", "-w", help="The window figures are over: 30s, 5m, 1h…")
    ] = "5m",
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep the table on screen, refreshed (Ctrl-C ends).")
    ] = False,
    every: Annotated[
        float, typer.Option("--every", help="With --watch: seconds between refreshes.")
    ] = 2.0,
    grafana_dir: Annotated[
        Path | None,
        typer.Option(
            "--grafana-dir",
            help="Write Grafana dashboards (JSON) and their provisioning file into DIR, then exit.",
            show_default=False,
        ),
    ] = None,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per service request rate, 5xx ratio and latency over a window, from the project's
    Prometheus (docs/metrics.md says what each figure is computed from).

    --grafana-dir writes dashboards for Grafana instead (not tested in a running Grafana)."""
    from conveyor.app.metrics import metrics_report
    from conveyor.cli.metrics import metrics_table

    project = _project(ctx, file, project_name)
    if grafana_dir is not None:
        from conveyor.app.metrics import write_grafana

        written = write_grafana(project, grafana_dir)
        if as_json:
            print_json(written.model_dump(mode="json"))
            return
        for name in written.dashboards:
            err.print(f"[dim]dashboard[/] {esc(name)}", highlight=False)
        err.print(f"[dim]provisioning[/] {esc(written.provisioning)}", highlight=False)
        return
    try:
        report = metrics_report(project, service, window)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--window") from None
    if as_json and not watch:
        print_json(report.model_dump(mode="json"))
        return
    if not watch:
        console.print(metrics_table(report))
        return
    import time

    if as_json:  # one JSON object per line and refresh, for a program to follow
        import json

        try:
            while True:
                sys.stdout.write(json.dumps(report.model_dump(mode="json")) + "\n")
                sys.stdout.flush()
                time.sleep(every)
                report = metrics_report(project, service, window)
        except KeyboardInterrupt:
            return
    from rich.live import Live

    try:
        with Live(metrics_table(report), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(every)  # the refresh period the user asked for
                live.update(metrics_table(metrics_report(project, service, window)), refresh=True)
    except KeyboardInterrupt:
        pass


@app.command(rich_help_panel=RUN)
def down(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes",
            "-v",
            help="Also delete the project's named volumes and their data (never external ones).",
        ),
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Stop the agent, drain and stop every replica and HAProxy. History stays, and named
    volumes too unless --volumes.

    Refused (exit 2) on a project a `conveyor server` manages: `conveyor suspend ENV` instead."""
    from conveyor.app import deploy as deploy_app
    from conveyor.cli.progress import progress

    project = _writable(ctx, file, project_name, "down", force)
    with progress() as show:
        project.subscribe(show)
        r = deploy_app.down(project, volumes=volumes)
    if r.agent_stopped:
        err.print("[dim]agent stopped[/]")
    if r.checks_stopped:
        err.print("[dim]Nagios stopped[/]")
    for name in r.components_stopped:
        err.print(f"[dim]{esc(name)} stopped[/]")
    for name in r.volumes_removed:
        err.print(f"[dim]volume {esc(name)} removed[/]")
    err.print(f"[bold green]down[/]: {esc(r.project)} stopped in {r.seconds:.1f}s")


@app.command(rich_help_panel=RUN)
def agent(
    ctx: typer.Context,
    file: FileOpt = None,
    project_name: ProjectOpt = None,
    interval: Annotated[float, typer.Option(help="Seconds between observations.")] = 1.0,
    no_logs: NoLogsOpt = False,
    no_checks: Annotated[
        bool, typer.Option("--no-checks", help="Leave Nagios alone (no checks).")
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Run the supervising agent in the foreground (`up` starts it in the background); it
    collects the project's logs too, unless --no-logs.

    It also keeps Nagios checking the project and restarts it if it dies (docs/checks.md).

    Refused (exit 2) on a project a `conveyor server` manages: the server heals it."""
    from conveyor.cli.logging import log_events
    from conveyor.server.agent import run_agent

    project = _writable(ctx, file, project_name, "agent", force)
    project.subscribe(log_events(json_lines=not err.is_terminal))
    run_agent(project, interval, checks=not no_checks, logs=not no_logs)


@app.command(rich_help_panel=RUN)
def bootstrap(
    check: Annotated[bool, typer.Option("--check", help="Only report; install nothing.")] = False,
) -> None:
    """Check and install what Conveyor needs: Docker Engine, HAProxy, registry, base images.

    Images: the Python base image and the browser-test image conveyor/selenium (docs/ci.md)."""
    from conveyor.app.bootstrap import run_bootstrap

    def report(step: str, what: str) -> None:
        colour = (
            "green" if what in ("ok", "done") else "red" if what.startswith("failed") else "yellow"
        )
        err.print(
            f"  {esc(f'{step:<44}')} [{colour}]{esc(what)}[/]", highlight=False, soft_wrap=True
        )

    ok = run_bootstrap(check_only=check, report=report)
    if not ok:
        err.print(
            "[red]some components are missing[/]" + (": run `conveyor bootstrap`" if check else "")
        )
        raise typer.Exit(1)
    err.print("[green]host ready[/]")


def main() -> None:
    from conveyor.cli.logging import configure_logging

    configure_logging(json_lines=False, quiet=True)
    try:
        app()
    except ConveyorError as e:
        # The one place a Conveyor error becomes output: a line (or one per spec error), exit 1.
        print_error("error:", text_of(e))
        sys.exit(1)
    except KeyboardInterrupt:
        print_error("interrupted", "")
        sys.exit(130)
    except Exception as e:
        # A bug, not bad input: say so in one line; the traceback is one variable away.
        if os.environ.get("CONVEYOR_DEBUG"):
            raise
        print_error(
            "internal error:",
            f"{type(e).__name__}: {text_of(e)}",
            hint="this is a bug in Conveyor; set CONVEYOR_DEBUG=1 for the traceback",
        )
        sys.exit(2)
